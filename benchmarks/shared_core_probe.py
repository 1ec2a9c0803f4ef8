"""Does a tiny batch cost more CPU when its core is shared? One tiny pipeline's batch of one,
as a serving worker answers it (`profiler.generate.served_batch`, one torch thread), timed in
this process pinned to one core: back to back, after --idle-s idle, and after --idle-s idle
while a neighbour process pinned to the same core runs tiny-light back to back (another CPU
replica's work; SIGSTOPped in the other conditions). Conditions alternate in blocks, so a drift
of the machine's speed falls on all three. Each call's thread CPU (`time.thread_time`: the
compute, not the time the neighbour holds the core) and wall time.

    python benchmarks/shared_core_probe.py [--blocks 5] [--calls 10] [--idle-s 0.1] [--core 0]

Prints one line per model and condition, and last `shared_over_idle_cpu_heavy=<ratio>
shared_over_idle_cpu_light=<ratio>`: the p50 CPU time of a call after idle with the neighbour
running over that with the core quiet (session 22: 1.05 and 1.12 on the device machine).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np

MODELS = {"heavy": ("tiny:3:16", 4), "light": ("tiny:1:8", 1)}  # `profile all --tiny`'s
CONDITIONS = ("back-to-back", "idle", "shared-idle")
RESOLUTION = 32


def load(name: str):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from profiler.generate import served_batch
    from profiler.latency import PROFILE_PROMPT
    from profiler.sharding import PipelineSource

    torch.set_num_threads(1)
    source, steps = MODELS[name]
    pipe = PipelineSource(source, "fp32").load("cpu")
    return lambda: served_batch(pipe, [PROFILE_PROMPT], [0], steps=steps, resolution=RESOLUTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10, help="per block and condition")
    parser.add_argument("--idle-s", type=float, default=0.1)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--neighbour", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blocks < 1 or args.calls < 1 or args.idle_s < 0:
        parser.error("expected --blocks >= 1, --calls >= 1 and --idle-s >= 0")
    if args.core not in os.sched_getaffinity(0):
        parser.error(f"--core {args.core}: not one of this process's cores")
    os.sched_setaffinity(0, {args.core})
    if args.neighbour:
        call = load("light")
        while True:
            call()
    cmd = [sys.executable, __file__, "--neighbour", "--core", str(args.core)]
    neighbour = subprocess.Popen(cmd)
    try:
        time.sleep(6.0)  # its pipeline loads
        p50 = {}
        for name in MODELS:
            call = load(name)
            for _ in range(5):  # warm-up
                call()
            times = {c: [] for c in CONDITIONS}
            for _ in range(args.blocks):
                for condition in CONDITIONS:
                    shared = condition == "shared-idle"
                    neighbour.send_signal(signal.SIGCONT if shared else signal.SIGSTOP)
                    for _ in range(args.calls):
                        if condition != "back-to-back":
                            time.sleep(args.idle_s)
                        cpu0, wall0 = time.thread_time(), time.perf_counter()
                        call()
                        times[condition].append(
                            (time.thread_time() - cpu0, time.perf_counter() - wall0)
                        )
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
    finally:
        neighbour.kill()
    print(
        " ".join(
            f"shared_over_idle_cpu_{n}={p50[n, 'shared-idle'] / p50[n, 'idle']:.3f}" for n in MODELS
        )
    )


if __name__ == "__main__":
    main()
