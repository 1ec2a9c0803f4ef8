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
not established, results/validation/HISTORY.md, sessions 27 and 28).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from probe_setup import probe_stack

SETTLE_S = 3.0  # after Serve starts, before the segment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--calls", type=int, default=30, help="per model and segment")
    parser.add_argument("--idle-s", type=float, default=0.2)
    parser.add_argument("--serve-stack", default="lean")
    args = parser.parse_args()
    if args.pairs < 1 or args.calls < 1 or args.idle_s < 0:
        parser.error("expected --pairs >= 1, --calls >= 1 and --idle-s >= 0")
    stack = probe_stack(parser, args.serve_stack)
    from profiler.neighbour import PROBE_MODELS, probe_calls, thread_cpu_after_idle

    calls = probe_calls()
    pooled = {(name, place): [] for name in PROBE_MODELS for place in ("alone", "beside")}
    for k in range(1, args.pairs + 1):
        alone = thread_cpu_after_idle(calls, args.calls, args.idle_s)
        with stack.local_serve(num_cpus=2):
            time.sleep(SETTLE_S)
            beside = thread_cpu_after_idle(calls, args.calls, args.idle_s)
        parts = []
        for name in PROBE_MODELS:
            pooled[name, "alone"] += alone[name]
            pooled[name, "beside"] += beside[name]
            a, b = np.median(alone[name]) * 1e3, np.median(beside[name]) * 1e3
            parts.append(f"{name} alone {a:.2f} ms, beside {b:.2f} ms ({b / a:.3f})")
        print(f"pair {k}: " + "; ".join(parts), flush=True)
    print(
        " ".join(
            f"beside_over_alone_cpu_{name}="
            f"{np.median(pooled[name, 'beside']) / np.median(pooled[name, 'alone']):.3f}"
            for name in PROBE_MODELS
        )
    )


if __name__ == "__main__":
    main()
