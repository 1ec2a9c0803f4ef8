"""How steady is this machine? One tiny pipeline's batch of one, as a serving worker answers it
(`profiler.generate.served_batch`, one torch thread: a CPU replica's), timed back to back in
this bare process (no Ray) for --seconds, the median per --bin-s bin (`profiler.speed_drift`).

    python benchmarks/machine_drift.py [--seconds 120] [--bin-s 10] [--model tiny:1:8]
                                       [--steps 1] [--resolution 32] [--out bins.csv]

Defaults: `t2isim profile all --tiny`'s tiny-light. Prints one line per bin (median, p90, calls,
stolen CPU share) and last `drift_ratio=<slowest bin median / fastest> steal_max=<%>`. On a
dedicated machine the ratio stays near 1; the validation report shows it next to the tiny
diffusers experiments, whose offline profile is a snapshot of this speed.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from profiler.cpu_threads import CPU_WORKER_THREADS
from profiler.latency import PROFILE_PROMPT
from profiler.speed_drift import DriftError, drift_ratio, time_in_bins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--bin-s", type=float, default=10.0)
    parser.add_argument("--model", default="tiny:1:8", help="tiny:<seed>:<width>")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--out", type=Path, help="write the bins here (CSV)")
    args = parser.parse_args()
    if not args.model.startswith("tiny:"):
        parser.error(f"--model {args.model!r}: expected tiny:<seed>:<width> (CPU, no weights)")
    if args.steps < 1 or args.resolution < 8 or args.resolution % 8:
        parser.error(
            f"--steps {args.steps} --resolution {args.resolution}: expected steps >= 1 and a "
            "resolution that is a multiple of 8"
        )
    os.environ["OMP_NUM_THREADS"] = str(CPU_WORKER_THREADS)
    import torch

    from profiler.generate import served_batch
    from profiler.pipelines import PipelineError
    from profiler.sharding import PipelineSource

    torch.set_num_threads(CPU_WORKER_THREADS)
    try:
        pipe = PipelineSource(args.model, "fp32").load("cpu")

        def call() -> object:
            return served_batch(
                pipe, [PROFILE_PROMPT], [0], steps=args.steps, resolution=args.resolution
            )

        call()  # warm-up, not timed
        bins = time_in_bins(call, args.seconds, args.bin_s)
    except (DriftError, PipelineError) as exc:
        parser.error(str(exc))
    for row in bins.itertuples():
        print(
            f"bin {row.bin} ({row.start_s:g} s): median {row.median_ms:.2f} ms, "
            f"p90 {row.p90_ms:.2f} ms, {row.calls} calls, stolen {row.steal_share:.1%}",
            flush=True,
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        bins.to_csv(args.out, index=False)
    steal_max = bins["steal_share"].max()
    steal = f"{steal_max:.1%}" if math.isfinite(steal_max) else "nan"
    print(f"drift_ratio={drift_ratio(bins):.2f} steal_max={steal}")


if __name__ == "__main__":
    main()
