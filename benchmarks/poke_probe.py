"""Does a call reaching a serving replica while it computes a batch prolong that batch? One
Serve replica (the serving path's Serve stack, lean by default) serves tiny batches of one as
the diffusers backend's workers do (`profiler.neighbour.batch_of_one` in `asyncio.to_thread`,
one torch thread, each after --idle-s idle), in triples: one quiet, one "poked" (this process
sends the replica a small call --poke-after-s after asking for the batch, as the ingress sends
a worker a query while it serves another) and one "elsewhere" (the same call at the same time
to another, idle replica: what sending and answering it costs the machine, not the replica
that computes). The order within each triple is drawn from --seed.
Each batch's wall time is taken around the thread call on the replica's event loop (as a
worker's `service_s`), with its thread CPU (`time.thread_time`) beside it. A poke counts as
having landed if the replica ran it between the batch's start and end.

    python benchmarks/poke_probe.py [--blocks 4] [--triples 15] [--idle-s 0.2]
        [--poke-after-s 0.006] [--seed 0] [--switch-interval-s S]

`--switch-interval-s` sets the replica process's GIL switch interval (`sys.setswitchinterval`;
Python's default is 0.005 s): how long a thread that wants the GIL waits before it asks the
holder to drop it.

Prints one line per block and model (the poked and elsewhere over quiet p50 wall ratios), one
per model (p50 wall and CPU of each kind, the share of pokes that landed in their batch), and
last `poked_over_quiet_wall_<model>=<ratio>` and `elsewhere_over_quiet_wall_<model>=<ratio>`,
then the same `_cpu_` ratios and `landed_share_<model>=<share>` for heavy and light.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import numpy as np
from probe_setup import probe_stack

from profiler.neighbour import PROBE_MODELS

KINDS = ("quiet", "poked", "elsewhere")


class Batcher:
    """A replica serving batches of one of each tiny model (`profiler.neighbour.PROBE_MODELS`)
    and answering pokes, each stamped on one clock (`time.perf_counter`)."""

    def __init__(self, switch_interval_s: float | None) -> None:
        import sys

        from profiler.neighbour import probe_calls

        if switch_interval_s is not None:
            sys.setswitchinterval(switch_interval_s)
        self.calls = probe_calls()
        self.poked_at: list[float] = []

    def _timed(self, name: str) -> float:
        cpu0 = time.thread_time()
        self.calls[name]()
        return time.thread_time() - cpu0

    async def batch(self, name: str, idle_s: float) -> tuple[float, float, float, float]:
        """(start, end, thread CPU seconds, the last poke's time or NaN) of one batch after
        `idle_s` idle."""
        await asyncio.sleep(idle_s)
        start = time.perf_counter()
        cpu_s = await asyncio.to_thread(self._timed, name)
        end = time.perf_counter()
        return start, end, cpu_s, self.poked_at[-1] if self.poked_at else float("nan")

    async def poke(self) -> None:
        """A small call, as a query reaching a worker is."""
        self.poked_at.append(time.perf_counter())


class Sink:
    """The other replica: answers pokes, computes nothing."""

    async def poke(self) -> None:
        return None


def time_triples(
    replica, sink, blocks: int, triples: int, idle_s: float, poke_after_s: float, seed: int
):
    """model -> kind -> per block, its batches' (wall s, CPU s); model -> pokes landed in
    their batch (bools)."""
    rng = random.Random(seed)
    times = {n: {k: [[] for _ in range(blocks)] for k in KINDS} for n in PROBE_MODELS}
    landed: dict[str, list[bool]] = {n: [] for n in PROBE_MODELS}
    target = {"poked": replica, "elsewhere": sink}
    for name in PROBE_MODELS:
        for block in range(blocks):
            for _ in range(triples):
                for kind in rng.sample(KINDS, len(KINDS)):
                    answer = replica.batch.remote(name, idle_s)
                    if kind in target:
                        time.sleep(idle_s + poke_after_s)
                        target[kind].poke.remote().result()
                    start, end, cpu_s, poked_s = answer.result()
                    times[name][kind][block].append((end - start, cpu_s))
                    if kind == "poked":
                        landed[name].append(start <= poked_s <= end)
    return times, landed


def p50(rows: list[tuple[float, float]], column: int) -> float:
    return float(np.median([r[column] for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--triples", type=int, default=15, help="of each kind, per block")
    parser.add_argument("--idle-s", type=float, default=0.2)
    parser.add_argument("--poke-after-s", type=float, default=0.006)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--switch-interval-s", type=float, help="the replica's (default: Python's)")
    parser.add_argument("--serve-stack", default="lean")
    args = parser.parse_args()
    if args.blocks < 1 or args.triples < 1 or args.idle_s < 0 or args.poke_after_s < 0:
        parser.error("expected --blocks >= 1, --triples >= 1, --idle-s >= 0, --poke-after-s >= 0")
    if args.switch_interval_s is not None and not args.switch_interval_s > 0:
        parser.error(f"--switch-interval-s {args.switch_interval_s:g}: expected seconds > 0")
    stack = probe_stack(parser, args.serve_stack)
    from ray import serve

    with stack.local_serve(num_cpus=2):
        options = stack.replica_options({"num_cpus": 0.01})
        replica = serve.run(
            serve.deployment(Batcher, ray_actor_options=options).bind(args.switch_interval_s),
            name="probe",
            route_prefix=None,
        )
        sink = serve.run(
            serve.deployment(Sink, ray_actor_options=options).bind(),
            name="probe-sink",
            route_prefix=None,
        )
        times, landed = time_triples(
            replica, sink, args.blocks, args.triples, args.idle_s, args.poke_after_s, args.seed
        )
        serve.delete("probe")
        serve.delete("probe-sink")
    fields = {}
    for name in PROBE_MODELS:
        kinds = times[name]
        for k, (quiet, poked, elsewhere) in enumerate(zip(*(kinds[kind] for kind in KINDS)), 1):
            print(
                f"block {k} {name}: poked over quiet wall {p50(poked, 0) / p50(quiet, 0):.3f}, "
                f"elsewhere over quiet wall {p50(elsewhere, 0) / p50(quiet, 0):.3f}"
            )
        pooled = {kind: [r for block in kinds[kind] for r in block] for kind in KINDS}
        wall = {kind: p50(rows, 0) for kind, rows in pooled.items()}
        cpu = {kind: p50(rows, 1) for kind, rows in pooled.items()}
        share = float(np.mean(landed[name]))
        print(
            f"{name}: n={len(pooled['quiet'])} triples, wall p50 "
            + ", ".join(f"{kind} {wall[kind] * 1e3:.2f}" for kind in KINDS)
            + " ms, CPU p50 "
            + ", ".join(f"{kind} {cpu[kind] * 1e3:.2f}" for kind in KINDS)
            + f" ms, pokes landed in their batch {share:.0%}",
            flush=True,
        )
        for kind in KINDS[1:]:
            fields[f"{kind}_over_quiet_wall_{name}"] = wall[kind] / wall["quiet"]
            fields[f"{kind}_over_quiet_cpu_{name}"] = cpu[kind] / cpu["quiet"]
        fields[f"landed_share_{name}"] = share
    order = sorted(fields, key=lambda f: ("_cpu_" in f, f.startswith("landed"), f))
    print(" ".join(f"{f}={fields[f]:.3f}" for f in order))


if __name__ == "__main__":
    main()
