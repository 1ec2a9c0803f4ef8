"""Does a tiny batch cost more CPU when its core is shared? One tiny pipeline's batch of one,
as a serving worker answers it (`profiler.generate.served_batch`, one torch thread), timed in
this process pinned to one core with a neighbour process on the same core running tiny-light
back to back (`profiler.neighbour.CoreNeighbour`: another CPU replica's work), in four
conditions: back to back and after --idle-s idle with the neighbour stopped; after --idle-s
idle with the neighbour running throughout, the call included ("shared-idle"); and with it
running during the idle gap only ("neighbour-idle"). Conditions alternate in blocks, so a drift
of the machine's speed falls on all four.
Each call's thread CPU (`time.thread_time`: the compute, not the time the neighbour holds the
core) and wall time.

    python benchmarks/shared_core_probe.py [--blocks 5] [--calls 10] [--idle-s 0.1]

Prints one line per model and condition, and last `shared_over_idle_cpu_heavy=<ratio>
shared_over_idle_cpu_light=<ratio> neighbour_over_idle_cpu_heavy=<ratio>
neighbour_over_idle_cpu_light=<ratio>`: the p50 CPU time of a call after idle with the
neighbour running (throughout; during the gap only) over that with the core quiet (session 22,
on the device machine, before "neighbour-idle" existed: shared 1.05 and 1.12).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

MODELS = {"heavy": ("tiny:3:16", 4), "light": ("tiny:1:8", 1)}  # `profile all --tiny`'s
CONDITIONS = ("back-to-back", "idle", "shared-idle", "neighbour-idle")
RESOLUTION = 32


def time_conditions(call, neighbour, blocks: int, calls: int, idle_s: float) -> dict:
    """condition -> [(thread CPU s, wall s)] of its calls, the conditions alternating."""
    times = {c: [] for c in CONDITIONS}
    for _ in range(blocks):
        for condition in CONDITIONS:
            for _ in range(calls):
                if condition == "neighbour-idle":
                    neighbour.idle(idle_s)
                elif condition == "shared-idle":
                    neighbour.run()
                    time.sleep(idle_s)
                elif condition == "idle":
                    time.sleep(idle_s)
                cpu0, wall0 = time.thread_time(), time.perf_counter()
                call()
                times[condition].append((time.thread_time() - cpu0, time.perf_counter() - wall0))
                if condition == "shared-idle":
                    neighbour.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10, help="per block and condition")
    parser.add_argument("--idle-s", type=float, default=0.1)
    args = parser.parse_args()
    if args.blocks < 1 or args.calls < 1 or args.idle_s < 0:
        parser.error("expected --blocks >= 1, --calls >= 1 and --idle-s >= 0")
    os.environ["OMP_NUM_THREADS"] = "1"
    from profiler.neighbour import CoreNeighbour, NeighbourError, batch_of_one

    p50 = {}
    try:
        with CoreNeighbour() as neighbour:
            for name in MODELS:
                call = batch_of_one(*MODELS[name], RESOLUTION)
                for _ in range(5):  # warm-up
                    call()
                times = time_conditions(call, neighbour, args.blocks, args.calls, args.idle_s)
                for condition, rows in times.items():
                    ms = np.array(rows) * 1e3
                    cpu = np.percentile(ms[:, 0], [5, 50, 95])
                    p50[name, condition] = cpu[1]
                    print(
                        f"{name} {condition}: n={len(ms)} cpu p05/p50/p95 "
                        f"{cpu[0]:.1f}/{cpu[1]:.1f}/{cpu[2]:.1f} ms; wall p50 "
                        f"{np.median(ms[:, 1]):.1f} ms",
                        flush=True,
                    )
    except NeighbourError as exc:
        parser.error(str(exc))
    ratios = {"shared": "shared-idle", "neighbour": "neighbour-idle"}
    print(
        " ".join(
            f"{k}_over_idle_cpu_{n}={p50[n, c] / p50[n, 'idle']:.3f}"
            for k, c in ratios.items()
            for n in MODELS
        )
    )


if __name__ == "__main__":
    main()
