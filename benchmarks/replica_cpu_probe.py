"""Does a Ray Serve replica cost a tiny batch more CPU than a plain process? One tiny pipeline's
batch of one, as a serving worker answers it (`profiler.neighbour.batch_of_one`: one torch
thread), each after --idle-s idle and run in `asyncio.to_thread` as the diffusers backend runs
it, timed in four places in turn: this process, a plain Ray actor, a Serve replica on the
serving path's Serve stack (`serving.stack`, lean by default), and that replica while this
process sends it --ping-qps requests a second ("pinged": its event loop answers requests between
and during the batches, as a serving replica's does). Blocks alternate between the places, so a
drift of the machine's speed falls on all of them. Each call's thread CPU (`time.thread_time`):
the compute, not the time spent waiting for a core.

    python benchmarks/replica_cpu_probe.py [--blocks 4] [--calls 15] [--idle-s 0.2]
        [--ping-qps 8]

Prints one line per model and place, one per block and model with the pinged replica over the
quiet one, and last `actor_over_process_cpu_heavy=<ratio> actor_over_process_cpu_light=<ratio>
serve_over_process_cpu_heavy=<ratio> serve_over_process_cpu_light=<ratio>
pinged_over_serve_cpu_heavy=<ratio> pinged_over_serve_cpu_light=<ratio>`: p50 CPU ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import numpy as np
from probe_setup import probe_stack

from profiler.neighbour import PROBE_MODELS

PLACES = ("process", "actor", "serve", "pinged")
PING_BYTES = 4096  # about a 32x32 PNG answer in base64


class Timer:
    """Batches of one of each tiny model (`profiler.neighbour.PROBE_MODELS`), each after
    `idle_s` idle, in a worker thread."""

    def __init__(self) -> None:
        from profiler.neighbour import probe_calls

        self.calls = probe_calls()

    def _timed(self, name: str) -> float:
        cpu0 = time.thread_time()
        self.calls[name]()
        return time.thread_time() - cpu0

    async def ping(self, payload: str) -> str:
        """A request the event loop answers (the payload back)."""
        return payload

    async def time(self, name: str, calls: int, idle_s: float) -> list[float]:
        """Each call's thread CPU seconds."""
        cpu_s = []
        for _ in range(calls):
            await asyncio.sleep(idle_s)
            cpu_s.append(await asyncio.to_thread(self._timed, name))
        return cpu_s


class Pinger:
    """While inside: `qps` ping requests a second to `replica` from a thread of this process,
    each answered before the next is sent (a late answer delays the next)."""

    def __init__(self, replica, qps: float) -> None:
        self.replica, self.gap_s = replica, 1.0 / qps
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        payload = "x" * PING_BYTES
        due = time.monotonic()
        while not self.stop.is_set():
            self.replica.ping.remote(payload).result()
            due += self.gap_s
            self.stop.wait(max(0.0, due - time.monotonic()))

    def __enter__(self) -> Pinger:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def time_places(stack, blocks: int, calls: int, idle_s: float, ping_qps: float) -> dict:
    """(model, place) -> per block, its calls' CPU seconds, the places alternating in blocks."""
    import ray
    from ray import serve

    options = stack.replica_options({"num_cpus": 0.01})
    replica = serve.run(
        serve.deployment(Timer, ray_actor_options=options).bind(),
        name="probe",
        route_prefix=None,
    )
    actor = ray.remote(Timer).options(num_cpus=0.01).remote()
    local = Timer()

    def pinged(name: str) -> list[float]:
        with Pinger(replica, ping_qps):
            return replica.time.remote(name, calls, idle_s).result()

    timers = {
        "process": lambda name: asyncio.run(local.time(name, calls, idle_s)),
        "actor": lambda name: ray.get(actor.time.remote(name, calls, idle_s)),
        "serve": lambda name: replica.time.remote(name, calls, idle_s).result(),
        "pinged": pinged,
    }
    times = {(name, place): [] for name in PROBE_MODELS for place in PLACES}
    for name in PROBE_MODELS:
        for _ in range(blocks):
            for place in PLACES:
                times[name, place].append(timers[place](name))
    ray.kill(actor)
    serve.delete("probe")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--calls", type=int, default=15, help="per block and place")
    parser.add_argument("--idle-s", type=float, default=0.2)
    parser.add_argument("--ping-qps", type=float, default=8.0)
    parser.add_argument("--serve-stack", default="lean")
    args = parser.parse_args()
    if args.blocks < 1 or args.calls < 1 or args.idle_s < 0 or not args.ping_qps > 0:
        parser.error("expected --blocks >= 1, --calls >= 1, --idle-s >= 0 and --ping-qps > 0")
    stack = probe_stack(parser, args.serve_stack)
    with stack.local_serve(num_cpus=2):
        times = time_places(stack, args.blocks, args.calls, args.idle_s, args.ping_qps)
    for name in PROBE_MODELS:
        for k, (quiet, busy) in enumerate(zip(times[name, "serve"], times[name, "pinged"]), 1):
            ratio = np.median(busy) / np.median(quiet)
            print(f"block {k} {name}: pinged over serve {ratio:.3f}", flush=True)
    p50 = {}
    for (name, place), blocks in times.items():
        cpu = np.percentile(np.concatenate(blocks) * 1e3, [5, 50, 95])
        p50[name, place] = cpu[1]
        print(
            f"{name} {place}: n={sum(map(len, blocks))} cpu p05/p50/p95 "
            f"{cpu[0]:.2f}/{cpu[1]:.2f}/{cpu[2]:.2f} ms",
            flush=True,
        )
    ratios = [(place, "process") for place in ("actor", "serve")] + [("pinged", "serve")]
    print(
        " ".join(
            f"{place}_over_{base}_cpu_{name}={p50[name, place] / p50[name, base]:.3f}"
            for place, base in ratios
            for name in PROBE_MODELS
        )
    )


if __name__ == "__main__":
    main()
