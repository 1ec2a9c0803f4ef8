"""Does a Ray Serve replica cost a tiny batch more CPU than a plain process? One tiny pipeline's
batch of one, as a serving worker answers it (`profiler.neighbour.batch_of_one`: one torch
thread), each after --idle-s idle and run in `asyncio.to_thread` as the diffusers backend runs
it, timed in three places in turn: this process, a plain Ray actor, and a Serve replica on the
serving path's Serve stack (`serving.stack`, lean by default). Blocks alternate between the
places, so a drift of the machine's speed falls on all three. Each call's thread CPU
(`time.thread_time`): the compute, not the time spent waiting for a core.

    python benchmarks/replica_cpu_probe.py [--blocks 4] [--calls 15] [--idle-s 0.2]

Prints one line per model and place, and last `actor_over_process_cpu_heavy=<ratio>
actor_over_process_cpu_light=<ratio> serve_over_process_cpu_heavy=<ratio>
serve_over_process_cpu_light=<ratio>`: the p50 CPU of a call in the actor and in the replica
over that in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np

from profiler.neighbour import PROBE_MODELS

PLACES = ("process", "actor", "serve")


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

    async def time(self, name: str, calls: int, idle_s: float) -> list[float]:
        """Each call's thread CPU seconds."""
        cpu_s = []
        for _ in range(calls):
            await asyncio.sleep(idle_s)
            cpu_s.append(await asyncio.to_thread(self._timed, name))
        return cpu_s


def time_places(stack, blocks: int, calls: int, idle_s: float) -> dict:
    """(model, place) -> its calls' CPU seconds, the places alternating in blocks."""
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
    timers = {
        "process": lambda name: asyncio.run(local.time(name, calls, idle_s)),
        "actor": lambda name: ray.get(actor.time.remote(name, calls, idle_s)),
        "serve": lambda name: replica.time.remote(name, calls, idle_s).result(),
    }
    times = {(name, place): [] for name in PROBE_MODELS for place in PLACES}
    for name in PROBE_MODELS:
        for _ in range(blocks):
            for place in PLACES:
                times[name, place] += timers[place](name)
    ray.kill(actor)
    serve.delete("probe")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--calls", type=int, default=15, help="per block and place")
    parser.add_argument("--idle-s", type=float, default=0.2)
    parser.add_argument("--serve-stack", default="lean")
    args = parser.parse_args()
    if args.blocks < 1 or args.calls < 1 or args.idle_s < 0:
        parser.error("expected --blocks >= 1, --calls >= 1 and --idle-s >= 0")
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from serving.stack import serve_stack
    from simulator.errors import InputError

    try:
        stack = serve_stack(args.serve_stack)
    except InputError as exc:
        parser.error(str(exc))
    with stack.local_serve(num_cpus=2):
        times = time_places(stack, args.blocks, args.calls, args.idle_s)
    p50 = {}
    for (name, place), cpu_s in times.items():
        cpu = np.percentile(np.array(cpu_s) * 1e3, [5, 50, 95])
        p50[name, place] = cpu[1]
        print(
            f"{name} {place}: n={len(cpu_s)} cpu p05/p50/p95 "
            f"{cpu[0]:.2f}/{cpu[1]:.2f}/{cpu[2]:.2f} ms",
            flush=True,
        )
    print(
        " ".join(
            f"{place}_over_process_cpu_{name}={p50[name, place] / p50[name, 'process']:.3f}"
            for place in ("actor", "serve")
            for name in PROBE_MODELS
        )
    )


if __name__ == "__main__":
    main()
