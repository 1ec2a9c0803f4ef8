"""How much an experiment's simulated p50 moves with its arrivals' timing at the millisecond.

Re-simulates a committed validation experiment (`results/validation/<name>`: its `sim`
configuration, trace and measured hops) with the arrival times shifted in four ways:

- as the trace gives them (the validation's own simulation, without the arrival hop);
- as each real run's load generator sent them (`real-k/queries.parquet` `arrival_s`);
- with `--draws` independent exponential delays per query, of mean 0.1 ms and 1 ms;
- with the measured arrival hop (`overheads.json` `arrival_overhead_ms`, when present) and
  `--draws` replicates of its draws (the simulator's own spread at that hop).

An adaptive policy's controller counts arrivals per 1 s tick; a query that lands a millisecond
later can fall in the next tick, move the demand estimate and, near a tie between plans, flip
the plan. The last line is `p50_exact_s= p50_sent_s= p50_jitter_1ms_mean_s= p50_hop_mean_s=`.

    python benchmarks/arrival_timing.py [--experiment hadis-azure-full] [--draws 30]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import policies  # noqa: E402,F401  (registers the adaptive policies)
from experiments.inputs import resolve_bundle, resolve_trace  # noqa: E402
from serving.hops import with_overheads  # noqa: E402
from simulator.config import SimConfig  # noqa: E402
from simulator.run import run_simulation  # noqa: E402
from simulator.workloads import Trace  # noqa: E402


def p50_s(bundle, policy: str, config: SimConfig, arrival_s, prompt_idx, replicate=0) -> float:
    order = np.argsort(arrival_s, kind="stable")
    trace = Trace(np.asarray(arrival_s)[order], np.asarray(prompt_idx)[order])
    run = run_simulation(bundle, trace, policy, config, replicate=replicate)
    return float(run.summary["p50_latency_s"])


def describe(label: str, values: list[float]) -> str:
    v = np.asarray(values)
    return (
        f"{label}: mean {v.mean():.3f} s, std {v.std(ddof=1):.3f}, "
        f"range {v.min():.3f}-{v.max():.3f} ({len(v)} draws)"
    )


def fail(message: str) -> None:
    """A one-line error and exit 2 (bad input)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="hadis-azure-full")
    parser.add_argument("--draws", type=int, default=30)
    args = parser.parse_args()
    folder = ROOT / "results" / "validation" / args.experiment
    if not (folder / "sim" / "config.json").is_file():
        fail(f"{folder}: no committed validation experiment (sim/config.json)")
    resolved = json.loads((folder / "sim" / "config.json").read_text())
    reals = sorted(folder.glob("real-*"))
    if not reals:
        fail(f"{folder}: no real runs (real-1 ...)")
    trace_spec = json.loads((reals[0] / "summary.json").read_text())["trace_spec"]
    config = SimConfig(**resolved["sim"])
    policy = resolved["policy"]
    if resolved.get("policy_options"):
        fail("this script re-simulates policies without options only")
    measured = json.loads((folder / "overheads.json").read_text())
    without_arrival = {k: v for k, v in measured.items() if not k.startswith("arrival_")}
    bundle = with_overheads(resolve_bundle("default"), without_arrival)
    trace = resolve_trace(trace_spec, bundle, config.seed)
    rng = np.random.default_rng(0)

    exact = p50_s(bundle, policy, config, trace.arrival_s, trace.prompt_idx)
    print(f"{args.experiment}, {policy}: p50 as the trace gives the arrivals {exact:.3f} s")
    sent = []
    for run in reals:
        real = pd.read_parquet(run / "queries.parquet").sort_values("query_id")
        sent.append(p50_s(bundle, policy, config, real["arrival_s"], trace.prompt_idx))
        print(
            f"  with {run.name}'s send times: {sent[-1]:.3f} s "
            f"(that run's own p50 {real['latency_s'].median():.3f} s)"
        )
    jitter = {}
    for mean_ms in (0.1, 1.0):
        jitter[mean_ms] = [
            p50_s(
                bundle,
                policy,
                config,
                trace.arrival_s + rng.exponential(mean_ms / 1e3, len(trace)),
                trace.prompt_idx,
            )
            for _ in range(args.draws)
        ]
        print("  " + describe(f"exponential delays of mean {mean_ms:g} ms", jitter[mean_ms]))
    hop = [math.nan]
    if measured.get("arrival_overhead_ms", 0) > 0:
        hopped = with_overheads(bundle, measured)
        hop = [
            p50_s(hopped, policy, config, trace.arrival_s, trace.prompt_idx, replicate=k)
            for k in range(args.draws)
        ]
        print(
            "  "
            + describe(
                f"the measured arrival hop ({measured['arrival_overhead_ms']:g} ms, p95 "
                f"{measured['arrival_overhead_p95_ms']:g}), replicates",
                hop,
            )
        )
    print(
        f"p50_exact_s={exact:.4f} p50_sent_s={np.mean(sent) if sent else math.nan:.4f} "
        f"p50_jitter_1ms_mean_s={np.mean(jitter[1.0]):.4f} p50_hop_mean_s={np.mean(hop):.4f}"
    )


if __name__ == "__main__":
    main()
