"""Does an idle Ray + Serve cluster on the machine cost a tiny batch CPU? One tiny pipeline's
batch of one, as a serving worker answers it (`profiler.neighbour.batch_of_one`: one torch
thread), each after --idle-s idle in this process's main thread, timed in segments that
alternate: no Ray running ("alone", as `profile latency` times it), then a local Ray cluster
with Serve started on the serving path's stack and left idle ("beside"), --pairs times. Each
call's thread CPU (`time.thread_time`: the compute, not the wait for a core).

    python benchmarks/background_cpu_probe.py [--pairs 2] [--calls 30] [--idle-s 0.2]

Prints one line per pair, and last `beside_over_alone_cpu_heavy=<ratio>
beside_over_alone_cpu_light=<ratio>`: the p50 CPU beside the cluster over that alone, all
pairs pooled (session 27: 1.081 and 1.045 in one run's pairs, 0.988 and 1.029 in the next's;
session 28, pre-registered, 6 pairs: heavy 1.032, light 1.014, above 1 in 3 of 6 pairs each;
not established, results/validation/NOTES.md).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

MODELS = {"heavy": ("tiny:3:16", 4), "light": ("tiny:1:8", 1)}  # `profile all --tiny`'s
RESOLUTION = 32
WARMUP_CALLS = 5
SETTLE_S = 3.0  # after Serve starts, before the segment


def segment(calls: dict, n: int, idle_s: float) -> dict[str, list[float]]:
    """model -> the thread CPU seconds of `n` calls, each after `idle_s` idle."""
    cpu_s = {}
    for name, call in calls.items():
        cpu_s[name] = []
        for _ in range(n):
            time.sleep(idle_s)
            cpu0 = time.thread_time()
            call()
            cpu_s[name].append(time.thread_time() - cpu0)
    return cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--calls", type=int, default=30, help="per model and segment")
    parser.add_argument("--idle-s", type=float, default=0.2)
    parser.add_argument("--serve-stack", default="lean")
    args = parser.parse_args()
    if args.pairs < 1 or args.calls < 1 or args.idle_s < 0:
        parser.error("expected --pairs >= 1, --calls >= 1 and --idle-s >= 0")
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from profiler.neighbour import batch_of_one
    from serving.stack import serve_stack
    from simulator.errors import InputError

    try:
        stack = serve_stack(args.serve_stack)
    except InputError as exc:
        parser.error(str(exc))
    calls = {name: batch_of_one(*model, RESOLUTION) for name, model in MODELS.items()}
    for call in calls.values():
        for _ in range(WARMUP_CALLS):
            call()
    pooled = {(name, place): [] for name in MODELS for place in ("alone", "beside")}
    for k in range(1, args.pairs + 1):
        alone = segment(calls, args.calls, args.idle_s)
        with stack.local_serve(num_cpus=2):
            time.sleep(SETTLE_S)
            beside = segment(calls, args.calls, args.idle_s)
        parts = []
        for name in MODELS:
            pooled[name, "alone"] += alone[name]
            pooled[name, "beside"] += beside[name]
            a, b = np.median(alone[name]) * 1e3, np.median(beside[name]) * 1e3
            parts.append(f"{name} alone {a:.2f} ms, beside {b:.2f} ms ({b / a:.3f})")
        print(f"pair {k}: " + "; ".join(parts), flush=True)
    print(
        " ".join(
            f"beside_over_alone_cpu_{name}="
            f"{np.median(pooled[name, 'beside']) / np.median(pooled[name, 'alone']):.3f}"
            for name in MODELS
        )
    )


if __name__ == "__main__":
    main()
