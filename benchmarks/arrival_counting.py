"""Which counting of arrivals a validation's real runs follow, from their recorded inputs.

A simulation counts a new query at its model either at its trace time (`route_at=arrival`,
validate's until session 46) or once its arrival hop has passed (`route_at=ingress`, the
default since, as the serving path's ingress counts a visit when it sends the query on). An
adaptive policy reads each model's arrival rate (an EWMA of the visits per 1 s tick), so the
two countings differ where a query lands within an arrival hop of a tick boundary. This
script re-simulates a committed validation experiment (its `sim` configuration, trace and
measured hops) both ways,
`--replicates` times each (the cluster's randomness from other streams), and compares each
real run's recorded inputs (`real-k/observations.csv`, since session 45) with them: per
counting, the median over the replicates of the mean |real - simulated| arrival rate per
model over a common window of calls, the same for both countings of replicate k: the calls
up to `--through-call` (default 6, the re-plan at 30 s) and up to the first call at which
the run's plans part from either counting's (inputs there are still comparable; later,
partings and queue-aware routing move the rates for reasons other than the counting; since
session 46, before which the window ended where each counting's plans parted and later calls
weighed in). With `--call K` it also counts the plans each side put in force at the K-th
call (0: the first) and gives each side's p50 latency, mean and standard error over its runs
(the simulation's expected p50 against the real runs' mean). The last line is
`runs_closer_to_ingress=N/M arrival_mean_qps= ingress_mean_qps=` (the medians over the runs),
then with `--call` `real_p50_s= real_p50_se_s=` and the same for each counting.

    python benchmarks/arrival_counting.py [--experiment hadis-azure-slo16 | --folder DIR]
        [--replicates 20] [--through-call 6] [--call 6]
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
from serving.fidelity import completed_latency_s, mean_se  # noqa: E402
from serving.hops import with_overheads  # noqa: E402
from serving.loadgen import plans_frame  # noqa: E402
from serving.plan_replay import recorded_keys  # noqa: E402
from serving.planner_inputs import OBSERVATIONS_FILE, read_observations  # noqa: E402
from simulator.config import ROUTING_MOMENTS, SimConfig  # noqa: E402
from simulator.run import run_simulation  # noqa: E402

PLAN_MATCH_S = 0.5  # a plan planned this long after a call is that call's (half a tick)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run's arrival rate per model at each call of its policy, the plan it put in force
    there (`serving.plan_replay.recorded_keys`) and its p50 latency."""

    rates_qps: np.ndarray  # (calls, models)
    plans: list[str]
    p50_s: float


def run_of(observations, plans: pd.DataFrame, queries: pd.DataFrame) -> Run:
    rates = np.array([o.model_arrival_qps for o in observations], dtype=np.float64)
    keys = recorded_keys(plans, [o.now_s for o in observations], PLAN_MATCH_S)
    return Run(rates, keys, float(np.percentile(completed_latency_s(queries), 50)))


def first_parting(a: Run, b: Run) -> int:
    """The first call at which two runs' plans part (the calls both made where none does)."""
    n = min(len(a.plans), len(b.plans))
    return next((k for k in range(n) if a.plans[k] != b.plans[k]), n)


def comparable_calls(real: Run, sims: list[Run], through_call: int) -> int:
    """How many calls from the first one compare `real` with each of `sims` on the counting
    alone: up to `through_call` and up to the first parting of the plans from any of them
    (the inputs at a parting call precede it)."""
    return min([through_call + 1] + [first_parting(real, sim) + 1 for sim in sims])


def distance_qps(real: Run, sim: Run, calls: int) -> float:
    """Mean |real - simulated| arrival rate over models and the first `calls` calls."""
    calls = min(calls, len(real.rates_qps), len(sim.rates_qps))
    return float(np.mean(np.abs(real.rates_qps[:calls] - sim.rates_qps[:calls])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="hadis-azure-slo16")
    parser.add_argument("--folder", help="a validation folder (default: the experiment's)")
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument(
        "--through-call", type=int, default=6, help="the last call the rates are compared at"
    )
    parser.add_argument("--call", type=int, help="count the plans in force at this call")
    args = parser.parse_args()
    if args.replicates < 1:
        fail(f"--replicates {args.replicates}: expected at least 1")
    if args.through_call < 0:
        fail(f"--through-call {args.through_call}: expected at least 0")
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
            pd.read_parquet(d / "queries.parquet"),
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
            simulated[counting].append(run_of(sim.raw.observations, plans, sim.queries))
    print(f"{folder.name}, {policy}: {len(reals)} real runs, {args.replicates} replicates each")
    closer, medians = 0, {c: [] for c in ROUTING_MOMENTS}
    for name, run in real.items():
        distances = {c: [] for c in ROUTING_MOMENTS}
        for k in range(args.replicates):
            pair = [simulated[c][k] for c in ROUTING_MOMENTS]
            calls = comparable_calls(run, pair, args.through_call)
            for c, sim in zip(ROUTING_MOMENTS, pair):
                distances[c].append(distance_qps(run, sim, calls))
        per = {c: float(np.median(values)) for c, values in distances.items()}
        for c, value in per.items():
            medians[c].append(value)
        closer += per["ingress"] < per["arrival"]
        text = ", ".join(f"{c} {v:.4f} qps" for c, v in per.items())
        print(f"  {name}: mean |real - simulated| arrival rate over the comparable calls: {text}")
    last = (
        f"runs_closer_to_ingress={closer}/{len(real)} "
        f"arrival_mean_qps={np.median(medians['arrival']):.4f} "
        f"ingress_mean_qps={np.median(medians['ingress']):.4f}"
    )
    if args.call is not None:
        sides = {"real": list(real.values()), **simulated}
        for side, runs in sides.items():
            labels = [r.plans[args.call].split("|")[0] for r in runs if args.call < len(r.plans)]
            shares = "; ".join(f"{n} x {label}" for label, n in Counter(labels).most_common())
            print(f"  plans at call {args.call}, {side} ({len(runs)} runs): {shares}")
            mean, se = mean_se([r.p50_s for r in runs])
            last += f" {side}_p50_s={mean:.4f} {side}_p50_se_s={se:.4f}"
    print(last)


if __name__ == "__main__":
    main()
