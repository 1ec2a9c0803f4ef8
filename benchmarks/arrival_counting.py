"""Which counting of arrivals a validation's real runs follow, from their recorded inputs.

A simulation counts a new query at its model either at its trace time (`route_at=arrival`,
validate's) or once its arrival hop has passed (`route_at=ingress`, as the serving path's
ingress counts a visit when it sends the query on). An adaptive policy reads each model's
arrival rate (an EWMA of the visits per 1 s tick), so the two countings differ where a query
lands within an arrival hop of a tick boundary. This script re-simulates a committed
validation experiment (its `sim` configuration, trace and measured hops) both ways,
`--replicates` times each (the cluster's randomness from other streams), and compares each
real run's recorded inputs (`real-k/observations.csv`, since session 45) with them: per
counting, the median over the replicates of the mean |real - simulated| arrival rate per
model over the calls before the run's plan first parts from that replicate's (most inputs
agree to the bit either way; the mean weighs the few that do not). With `--call K`
it also counts the plans each side put in force at the K-th call (0: the first). The last line
is `runs_closer_to_ingress=N/M arrival_mean_qps= ingress_mean_qps=` (the medians over the
runs).

    python benchmarks/arrival_counting.py [--experiment hadis-azure-slo16 | --folder DIR]
        [--replicates 20] [--call 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arrival_timing import fail  # noqa: E402  (the one-line input error, exit 2)

import policies  # noqa: E402,F401  (registers the adaptive policies)
from experiments.inputs import resolve_bundle, resolve_trace  # noqa: E402
from serving.hops import with_overheads  # noqa: E402
from serving.loadgen import plans_frame  # noqa: E402
from serving.plan_replay import recorded_keys  # noqa: E402
from serving.planner_inputs import OBSERVATIONS_FILE, read_observations  # noqa: E402
from simulator.config import ROUTING_MOMENTS, SimConfig  # noqa: E402
from simulator.run import run_simulation  # noqa: E402

PLAN_MATCH_S = 0.5  # a plan planned this long after a call is that call's (half a tick)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run's arrival rate per model at each call of its policy and the plan it put in
    force there (`serving.plan_replay.recorded_keys`)."""

    rates_qps: np.ndarray  # (calls, models)
    plans: list[str]


def run_of(observations, plans: pd.DataFrame) -> Run:
    rates = np.array([o.model_arrival_qps for o in observations], dtype=np.float64)
    return Run(rates, recorded_keys(plans, [o.now_s for o in observations], PLAN_MATCH_S))


def distance_qps(real: Run, sim: Run) -> float:
    """Mean |real - simulated| arrival rate over models and the calls before the two runs'
    plans first part (NaN where they part at the first call)."""
    n = min(len(real.plans), len(sim.plans))
    parted = [k for k in range(n) if real.plans[k] != sim.plans[k]]
    calls = parted[0] if parted else n
    if calls == 0:
        return float("nan")
    return float(np.mean(np.abs(real.rates_qps[:calls] - sim.rates_qps[:calls])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="hadis-azure-slo16")
    parser.add_argument("--folder", help="a validation folder (default: the experiment's)")
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--call", type=int, help="count the plans in force at this call")
    args = parser.parse_args()
    if args.replicates < 1:
        fail(f"--replicates {args.replicates}: expected at least 1")
    folder = Path(args.folder) if args.folder else ROOT / "results/validation" / args.experiment
    if not (folder / "sim" / "config.json").is_file():
        fail(f"{folder}: no validation experiment (sim/config.json)")
    reals = sorted(folder.glob("real-*"), key=lambda d: int(d.name.split("-")[1]))
    unrecorded = [d.name for d in reals if not (d / OBSERVATIONS_FILE).is_file()]
    if not reals or unrecorded:
        fail(
            f"{folder}: no real run recorded its policy's inputs ({OBSERVATIONS_FILE}; runs "
            f"before session 45 did not): {', '.join(unrecorded) or 'no real-k folder'}"
        )
    resolved = json.loads((folder / "sim" / "config.json").read_text())
    summary = json.loads((reals[0] / "summary.json").read_text())
    config = SimConfig(**resolved["sim"])
    policy, options = resolved["policy"], resolved.get("policy_options") or {}
    base = resolve_bundle(summary.get("bundle_source", "default"))
    bundle = with_overheads(base, json.loads((folder / "overheads.json").read_text()))
    names = bundle.model_names
    trace = resolve_trace(summary["trace_spec"], bundle, config.seed)
    real = {
        d.name: run_of(
            read_observations(d / OBSERVATIONS_FILE, names, config.n_workers, config.slo_s),
            pd.read_csv(d / "plans.csv"),
        )
        for d in reals
    }
    simulated = {}
    for counting in ROUTING_MOMENTS:
        counted = dataclasses.replace(config, route_at=counting)
        simulated[counting] = []
        for k in range(args.replicates):
            sim = run_simulation(
                bundle, trace, policy, counted, options, replicate=k, planner_bundle=bundle
            )
            plans = plans_frame(sim.raw.plans, names)
            simulated[counting].append(run_of(sim.raw.observations, plans))
    print(f"{folder.name}, {policy}: {len(reals)} real runs, {args.replicates} replicates each")
    closer, medians = 0, {c: [] for c in ROUTING_MOMENTS}
    for name, run in real.items():
        per = {
            c: float(np.nanmedian([distance_qps(run, s) for s in simulated[c]])) for c in medians
        }
        for c, value in per.items():
            medians[c].append(value)
        closer += per["ingress"] < per["arrival"]
        text = ", ".join(f"{c} {v:.4f} qps" for c, v in per.items())
        print(f"  {name}: mean |real - simulated| arrival rate before the plans part: {text}")
    if args.call is not None:
        sides = {"real": list(real.values()), **simulated}
        for side, runs in sides.items():
            labels = [r.plans[args.call].split("|")[0] for r in runs if args.call < len(r.plans)]
            shares = "; ".join(f"{n} x {label}" for label, n in Counter(labels).most_common())
            print(f"  plans at call {args.call}, {side}: {shares}")
    print(
        f"runs_closer_to_ingress={closer}/{len(real)} "
        f"arrival_mean_qps={np.median(medians['arrival']):.4f} "
        f"ingress_mean_qps={np.median(medians['ingress']):.4f}"
    )


if __name__ == "__main__":
    main()
