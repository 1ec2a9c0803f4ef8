"""Simulator vs real serving on the same inputs and seed (the way Vidur, Frontier and
LLMServingSim validate): `repeats` real runs (serve + load generator, a fresh Serve instance
each) and one simulated run, then a fidelity table with each error beside the real runs' own
run-to-run spread, and a PNG overlaying their timeseries.

DIR/real-1 ... real-N and DIR/sim are ordinary run folders; DIR/fidelity.csv holds one row per
metric: real mean, real spread (sample std; for shares in percentage points), simulated value,
error (relative % for latencies, throughput and completions; percentage points for shares) and
whether it meets the goal (issue 14: |p50| <= 5%, |p99| <= 10%, violation ratio within 1 pp or
the real spread, the same plan in >= 90% of plan epochs).

The per-hop overheads of the serving stack (`simulator.bundle.HOPS`) are measured from the real
runs' own timestamps, query by query (`hop_overheads_ms`), and applied to the simulation the
table compares with (`--overheads measured`, the default), or taken from the bundle or from a
file (DIR/overheads.json of an earlier validation, for an out-of-sample check): DIR/sim is that
simulation, DIR/sim-no-overhead the one without (and DIR/sim-measured-overheads the in-sample
one, when the applied overheads are not measured), DIR/overheads.csv the values per real run
and DIR/overheads.json their mean (a bundle.json `overheads` object). With two real runs or
more, each is also held out: compared with a simulation that applies the hops of the other runs
only (DIR/leave_one_out.csv; the table's `error_leave_one_out`, the mean over the runs), so the
hops are never fitted on the run they are judged against. `compare_overheads` and
`compare_served_latency` (another experiment's overheads.json and served_latency.csv, or any
latency table in the bundle's shape) add DIR/sim-compared, a prediction from measurements made
elsewhere (`error_compared`).
DIR/plan_inputs.csv sets the planners' inputs side by side at each re-plan (`plan_inputs_table`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from serving.arrival_charge import (
    ARRIVAL_CHARGE_FILE,
    applied_charge_ms,
    arrival_charge_fit,
)
from serving.loadgen import planner_log_writer
from serving.profile_rounds import rounds_bundles
from serving.query_classes import CLASSES_FILE, query_classes_table, query_classes_text
from serving.served_shapes import (
    SERVED_SHAPES_FILE,
    compared_shapes,
    sent_once_hops,
    served_shapes,
    with_shapes,
)
from serving.service_times import (
    SPEED_BIN_S,
    compared_latency,
    compared_latency_served_tails,
    discriminator_charge_s,
    preemption_fit,
    read_batches,
    served_latency_table,
    speed_over_time,
    with_served_latency,
)
from serving.setup import SIM_REPEATS, ServeSetup
from serving.stack import recorded_stack
from simulator.atomic import atomic_folder
from simulator.bundle import (
    ARRIVAL_CHARGE_FIELD,
    HOPS,
    MAX_OVERHEAD_MS,
    Bundle,
    BundleError,
    check_overheads,
)
from simulator.config import SimConfig
from simulator.errors import InputError, one_line
from simulator.json_input import read_json_object
from simulator.results import write_run
from simulator.service_shape import EMPIRICAL_SERVICE

SHARE_METRICS = ("slo_violation_ratio", "heavy_share")
GOALS = {  # metric -> (limit, unit) of |error|
    "p50_latency_s": (5.0, "%"),
    "p99_latency_s": (10.0, "%"),
    "slo_violation_ratio": (1.0, "pp"),
}
SAME_PLAN_GOAL = 0.9
TINY_P50_GOAL_PCT = 10.0  # the tiny diffusers backend's goal: |p50 error| <= 10%
FIDELITY_FILE = "fidelity.csv"  # written last: a folder that has it holds a whole report
REPORT_FILE = "fidelity.md"
PREEMPTION_FILE = "preemption_fit.csv"
SPEED_FILE = "speed_bins.csv"
LATENCY_QUANTILES = {f"p{q}_latency_s": q for q in (50, 90, 99)}  # metric -> percentile
PLAN_RATIOS = ("router_ratio", "disc_ratio")  # a plan's thresholds in a timeseries
OVERHEAD_MODES = ("measured", "bundle", "none")  # or the path of an overheads.json
REAL_RUN_NEEDS = {  # file -> {column the comparison reads: whether it must be numeric}
    "queries.parquet": {
        "arrival_s": True,
        "completion_s": True,
        "latency_s": True,
        "outcome": False,
    },
    "timeseries.csv": {"second": True, "plan": False, "slo_violation_ratio": True},
}


def read_real_run(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A real run folder's queries, timeseries and summary, with what the comparison reads of
    them (REAL_RUN_NEEDS; numeric where it computes); InputError naming the file otherwise."""
    tables = []
    for name, read in (("queries.parquet", pd.read_parquet), ("timeseries.csv", pd.read_csv)):
        path = folder / name
        try:
            table = read(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:  # pyarrow's are ValueErrors
            raise InputError(f"{path}: cannot read ({one_line(str(exc))})") from None
        for column, numeric in REAL_RUN_NEEDS[name].items():
            if column not in table.columns:
                raise InputError(f"{path}: column {column}: missing")
            if numeric and not pd.api.types.is_numeric_dtype(table[column]):
                raise InputError(f"{path}: column {column}: not numeric")
        tables.append(table)
    summary = read_json_object(folder / "summary.json", keys=SHARE_METRICS)
    return tables[0], tables[1], summary


def completed_latency_s(queries: pd.DataFrame) -> np.ndarray:
    """The latencies of a run's queries that were not dropped (those its quantiles count)."""
    return queries.loc[queries["outcome"].astype(str) != "drop", "latency_s"].to_numpy()


def run_metrics(queries: pd.DataFrame, summary: dict, model_names) -> dict:
    """The compared metrics of one run folder's tables."""
    done = queries["outcome"].astype(str) != "drop"
    latency = completed_latency_s(queries)
    span = queries.loc[done, "completion_s"].max() - queries["arrival_s"].min()
    row = {
        f"p{q}_latency_s": float(np.percentile(latency, q)) if latency.size else np.nan
        for q in LATENCY_QUANTILES.values()
    }
    row["slo_violation_ratio"] = summary["slo_violation_ratio"]
    row["throughput_qps"] = float(done.sum() / span) if done.any() and span > 0 else 0.0
    row["heavy_share"] = summary["heavy_share"]
    final = queries.loc[done, "final_model"].astype(str)
    for name in model_names:
        row[f"completions_{name}"] = int((final == name).sum())
    return row


def same_plan_share(
    real_ts: pd.DataFrame, sim_ts: pd.DataFrame, plan_interval_s: float, thresholds: bool = False
) -> float:
    """Share of plan epochs (consecutive plan intervals from t = 0) in which both runs had the
    same plan: the same flow (label) and the same workers per model in force for most of the
    epoch's seconds (`epoch_plans`); with `thresholds`, the same router and discriminator
    ratios too."""
    n = min(len(real_ts), len(sim_ts))
    if not n:
        return float("nan")
    real, sim = (epoch_plans(ts, n, plan_interval_s, thresholds) for ts in (real_ts, sim_ts))
    return float((real == sim).mean())


def epoch_plans(
    ts: pd.DataFrame, n: int, plan_interval_s: float, thresholds: bool = False
) -> pd.Series:
    """Per plan epoch of the first `n` seconds, the plan in force for most of its seconds (flow
    and workers per model, and with `thresholds` the router and discriminator ratios; the
    earliest such plan on a tie). A timeseries row holds the plan
    in force at the row's second, and a plan takes effect at an epoch's first second: the
    simulator's at that instant, the real path's a delivery delay later (the ingress's
    `set_plan`, tens of ms), so comparing the first second alone counts each change of plan as
    a disagreement."""
    columns = ["plan"] + [c for c in ts.columns if c.startswith("workers_")]
    plans = ts[columns].iloc[:n]
    if thresholds:  # as floats, rounded: a run read back from CSV may hold 0.3 as 0.3 or 0
        plans = plans.assign(**{c: ts[c].iloc[:n].astype(float).round(6) for c in PLAN_RATIOS})
    epoch = np.arange(n) // max(1, int(round(plan_interval_s)))
    labels = plans.astype(str).agg("|".join, axis=1).to_numpy()
    return pd.Series(labels).groupby(epoch).agg(lambda x: x.value_counts(sort=True).index[0])


def plan_inputs_table(
    real_ts: list[pd.DataFrame], sim_ts: pd.DataFrame, plan_interval_s: float
) -> pd.DataFrame:
    """One row per re-plan (each plan epoch's first second after t = 0): the inputs the
    simulated and the real planners read there (demand estimate, queue estimate per model:
    the timeseries' `demand_estimate_qps` and `queue_estimate_*`, the real ones averaged over
    the runs; NaN where a run did not record them) and the share of real runs whose plan for
    that epoch is the simulation's (`epoch_plans`)."""
    n = min(len(sim_ts), *(len(ts) for ts in real_ts))
    step = max(1, int(round(plan_interval_s)))
    seconds = np.arange(step, n, step)
    inputs = ["demand_estimate_qps"] + [c for c in sim_ts.columns if c.startswith("queue_est")]
    sim_plans = epoch_plans(sim_ts, n, plan_interval_s)
    same = np.mean([epoch_plans(ts, n, plan_interval_s) == sim_plans for ts in real_ts], axis=0)
    table = pd.DataFrame({"second": seconds, "real_same_plan": same[seconds // step]})
    for column in inputs:
        table[f"sim_{column}"] = sim_ts[column].to_numpy()[seconds]
        real = [ts[column].to_numpy()[seconds] if column in ts else np.nan for ts in real_ts]
        table[f"real_{column}"] = np.mean(np.array(real, dtype=np.float64), axis=0)
    return table


def plan_inputs_text(table: pd.DataFrame) -> str:
    """The planner inputs' agreement at the re-plans where the real plans agree with the
    simulation's and where they part: median |real - simulated| demand and total queue."""
    queue_sim = table.filter(like="sim_queue_est").sum(axis=1, min_count=1)
    queue_real = table.filter(like="real_queue_est").sum(axis=1, min_count=1)
    demand = (table["real_demand_estimate_qps"] - table["sim_demand_estimate_qps"]).abs()
    queue = (queue_real - queue_sim).abs()
    parts = []
    same = table["real_same_plan"]
    for name, rows in (("agree", same == 1), ("part", same < 1)):
        if not rows.any():
            continue
        text = f"{int(rows.sum())} re-plans where the real plans {name}: demand |real - sim| "
        text += f"median {demand[rows].median():.2f} qps"
        if queue[rows].notna().any():
            text += (
                f", total queue |real - sim| median {queue[rows].median():.2f} "
                f"(simulated {queue_sim[rows].median():.2f})"
            )
        else:
            text += ", queue estimates not recorded by the real runs"
        parts.append(text)
    return "Planner inputs (DIR/plan_inputs.csv): " + "; ".join(parts) + "."


def hop_overheads_ms(real: pd.DataFrame) -> dict[str, float]:
    """The serving stack's per-hop overheads in one real run (a bundle.json `overheads`
    object, ms), from the run's own timestamps: `hops_s`, a completed query's latency less the
    time the server measured it spend where the simulator models time (`serving.loadgen`). No
    simulation enters, so the queueing of either driver, and whether their plans agree, does
    not either. Over the queries never sent again (resent or retried): the dispatch hop is the
    median and 95th percentile of `hops_s` for queries served by one model; for two it is
    dispatch plus escalation: the median less the dispatch median, the p95 at the dispatch
    hop's spread (the same Ray handle call). The arrival hop is the median and 95th percentile
    of `counted_after_s` over every query the ingress counted. NaN for a hop no query took, and
    for a run folder without the column (made before the serving path recorded it)."""
    hops, visits = sent_once_hops(real)

    def percentile_ms(n_visits: int, q: float) -> float:
        x = hops[visits == n_visits]
        return float(np.percentile(x, q)) * 1e3 if x.size else math.nan

    dispatch = percentile_ms(1, 50)
    spread = percentile_ms(1, 95) / dispatch if dispatch > 0 else 1.0
    escalation = percentile_ms(2, 50) - dispatch
    counted = real.get("counted_after_s", pd.Series(dtype=np.float64)).to_numpy(np.float64)
    counted = counted[~np.isnan(counted)]
    arrival, arrival_p95 = (
        np.percentile(counted, [50, 95]) * 1e3 if counted.size else (math.nan, math.nan)
    )
    return {
        "dispatch_overhead_ms": dispatch,
        "dispatch_overhead_p95_ms": dispatch * spread,
        "escalation_overhead_ms": escalation,
        "escalation_overhead_p95_ms": escalation * spread,
        "arrival_overhead_ms": float(arrival),
        "arrival_overhead_p95_ms": float(arrival_p95),
    }


def pooled_overheads_ms(per_run: list[dict[str, float]]) -> dict[str, float]:
    """One `overheads` object: each field the mean over the real runs that measured it, to
    0.1 ms, at most the bundle's MAX_OVERHEAD_MS (a run whose queueing differs from the
    simulated one's measures that, not a hop); a hop with a median <= 0 (or none measured)
    gets none."""
    pooled = {}
    for hop in HOPS:
        for field in (f"{hop}_overhead_ms", f"{hop}_overhead_p95_ms"):
            values = [r[field] for r in per_run if r[field] == r[field]]
            pooled[field] = (
                round(min(float(np.mean(values)), MAX_OVERHEAD_MS), 1) if values else 0.0
            )
        if pooled[f"{hop}_overhead_ms"] <= 0:
            pooled[f"{hop}_overhead_ms"] = pooled[f"{hop}_overhead_p95_ms"] = 0.0
        elif pooled[f"{hop}_overhead_p95_ms"] <= pooled[f"{hop}_overhead_ms"]:
            pooled[f"{hop}_overhead_p95_ms"] = pooled[f"{hop}_overhead_ms"]
    return pooled


def with_overheads(bundle: Bundle, overheads: dict[str, float]) -> Bundle:
    """`bundle` with this `overheads` object (ms) in its meta."""
    check_overheads(overheads)
    return dataclasses.replace(bundle, meta={**bundle.meta, "overheads": dict(overheads)})


def overheads_spec(spec: str, flag: str = "--overheads") -> str | dict[str, float]:
    """`--overheads` (or `flag`, which errors name): one of OVERHEAD_MODES, or the path of a
    JSON `overheads` object (such as DIR/overheads.json of an earlier validation)."""
    if spec in OVERHEAD_MODES:
        return spec
    path = Path(spec)
    if not path.is_file():
        raise InputError(
            f"{flag} {spec!r}: expected {', '.join(OVERHEAD_MODES)} or an overheads.json file"
        )
    try:
        data = read_json_object(path)
        check_overheads(data)
    except (ValueError, UnicodeDecodeError, BundleError) as exc:
        problem = str(exc).removeprefix("bundle.json: column overheads.").splitlines()[0]
        raise InputError(f"{flag} {spec}: {problem}") from None
    return data


def applied_overheads(spec, bundle: Bundle, measured: dict[str, float]) -> dict[str, float]:
    """The `overheads` object the compared simulation runs with."""
    if isinstance(spec, dict):
        return dict(spec)
    if spec == "measured":
        return dict(measured)
    if spec == "bundle":
        return dict(bundle.meta.get("overheads", {}))
    return {}


def fidelity_table(
    real: list[dict],
    sim: dict,
    same_plan: list[float],
    others: dict[str, dict] | None = None,
    replicates: list[dict] | None = None,
    same_plan_thresholds: list[float] | None = None,
    real_latency_s: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per metric: real mean and spread, simulated value, error, goal met; the
    simulator's own spread over `replicates` (the metrics of `sim` and of its replicates,
    the cluster's randomness from other streams; NaN without); and the error of each of
    `others` (name -> the metrics of another simulation) as `error_NAME`. The same plan's
    share is judged on flow and workers (`same_plan`, the goal fixed in session 5); with the
    thresholds too (`same_plan_thresholds`) it is reported without a verdict. A latency
    quantile's `real_level` is where its simulated value sits among `real_latency_s` (the real
    runs' latencies, pooled), its error in probability rather than in seconds:
    where the real latencies are sparse around a quantile, a small shift of the distribution
    moves that quantile far (NaN for other metrics, or without the latencies)."""
    others = others or {}
    rows = []
    for metric in sim:
        unit = _unit(metric)
        mean, spread_shown = _mean_spread([r[metric] for r in real], unit)
        error = _error(sim[metric], mean, unit)
        sim_spread = _mean_spread([r[metric] for r in replicates or []], unit)[1]
        row = {
            "metric": metric,
            "real_mean": mean,
            "real_spread": spread_shown,
            "simulated": sim[metric],
            "simulated_spread": sim_spread,
            "error": error,
            "unit": unit,
            "goal_met": goal_met(metric, error, spread_shown),
            "real_level": math.nan,
        }
        if real_latency_s is not None and metric in LATENCY_QUANTILES:
            row["real_level"] = real_level(real_latency_s, sim[metric])
        for name, values in others.items():
            row[f"error_{name}"] = _error(values[metric], mean, unit)
        rows.append(row)
    shares = {"same_plan_share": same_plan}
    if same_plan_thresholds is not None:
        shares["same_plan_thresholds_share"] = same_plan_thresholds
    for metric, values in shares.items():
        share = float(np.mean(values))
        spread = float(np.std(values, ddof=1)) * 100 if len(values) > 1 else float("nan")
        row = {
            "metric": metric,
            "real_mean": share,
            "real_spread": spread,
            "simulated": 1.0,
            "simulated_spread": math.nan,  # plans are compared with DIR/sim only
            "error": (share - 1.0) * 100,
            "unit": "pp",
            "goal_met": share >= SAME_PLAN_GOAL if metric == "same_plan_share" else None,
            "real_level": math.nan,
        }
        for name in others:
            row[f"error_{name}"] = math.nan  # plans are compared with DIR/sim only
        rows.append(row)
    return pd.DataFrame(rows)


def real_level(real_latency_s: np.ndarray, value_s: float) -> float:
    """The percentage of `real_latency_s` at or below `value_s` (the level at which a
    simulated quantile sits in the real latencies: 50 for a simulated p50 that is exact)."""
    if not len(real_latency_s) or value_s != value_s:
        return math.nan
    return float(np.count_nonzero(real_latency_s <= value_s) / len(real_latency_s) * 100)


def _mean_spread(values: list[float], unit: str) -> tuple[float, float]:
    """Mean and spread (sample std: percentage points for shares, else % of the mean; NaN
    for fewer than two values)."""
    array = np.array(values, dtype=np.float64)
    if not len(array):
        return math.nan, math.nan
    mean = float(array.mean())
    spread = float(array.std(ddof=1)) if len(array) > 1 else math.nan
    if unit == "pp":
        return mean, spread * 100
    return mean, (spread / abs(mean) * 100 if mean else math.nan)


def held_out_errors(simulated: dict, real: dict) -> dict[str, float]:
    """Per fidelity-table metric, the error of a simulation against one real run (a share of
    plan epochs in `simulated["same_plan"]`: its error, as in the table, share - 1 in pp)."""
    errors = {m: _error(simulated[m], real[m], _unit(m)) for m in real}
    errors["same_plan_share"] = (simulated["same_plan"] - 1.0) * 100
    return errors


def goal_met(metric: str, error: float, real_spread: float) -> bool | None:
    """Whether `error` meets the metric's goal (GOALS: |error| within the limit; a share also
    within the real runs' spread, in its unit); None for a metric without a goal."""
    goal = GOALS.get(metric)
    if goal is None:
        return None
    limit, unit = goal
    return bool(abs(error) <= limit or (unit == "pp" and abs(error) <= real_spread))


def _unit(metric: str) -> str:
    return "pp" if metric in SHARE_METRICS else "%"


def _error(simulated: float, real_mean: float, unit: str) -> float:
    """Percentage points for shares, else relative %."""
    if unit == "pp":
        return (simulated - real_mean) * 100
    if real_mean:
        return (simulated - real_mean) / real_mean * 100
    return 0.0 if not simulated else math.nan


def markdown(table: pd.DataFrame, title: str, note: str = "") -> str:
    others = [c for c in table.columns if c.startswith("error_")]
    lines = [
        f"## {title}",
        "",
        *([note, ""] if note else []),
        "| metric | real mean | real spread | simulated | simulated spread | error | goal met |"
        + "".join(f" {c.replace('_', ' ')} |" for c in others),
        "|---|---|---|---|---|---|---|" + "---|" * len(others),
    ]
    for r in table.to_dict("records"):
        met = r["goal_met"]
        met = "" if met is None or met != met else ("yes" if met else "no")
        level = r.get("real_level", math.nan)
        at = f" (real p{level:.3g})" if level == level else ""
        line = (
            f"| {r['metric']} | {r['real_mean']:.4g} | {_spread_text(r['real_spread'], r['unit'])} "
            f"| {r['simulated']:.4g}{at} | {_spread_text(r['simulated_spread'], r['unit'])} "
            f"| {r['error']:+.2f} {r['unit']} | {met} |"
        )
        for c in others:
            line += f" {r[c]:+.2f} {r['unit']} |" if r[c] == r[c] else " |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _spread_text(spread: float, unit: str) -> str:
    return f"±{round(spread, 6):.3g} {unit}" if spread == spread else ""


def plot_overlay(real_ts: list[pd.DataFrame], sim_ts: pd.DataFrame, path: Path, title: str):
    """Completions per second, SLO violation ratio per arrival second and workers per model:
    each real run (thin) and the simulated one (thick, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    workers = [c for c in sim_ts.columns if c.startswith("workers_")]
    completions = [c for c in sim_ts.columns if c.startswith("completions_")]
    for k, ts in enumerate([*real_ts, sim_ts]):
        is_sim = k == len(real_ts)
        style = {"lw": 2.0, "ls": "--", "color": "black"} if is_sim else {"lw": 0.8, "alpha": 0.7}
        label = "simulated" if is_sim else f"real {k + 1}"
        axes[0].plot(ts["second"], ts[completions].sum(axis=1), label=label, **style)
        axes[1].plot(ts["second"], ts["slo_violation_ratio"], label=label, **style)
        if is_sim or k == 0:
            for j, c in enumerate(workers):
                color = "black" if is_sim else f"C{j}"
                axes[2].step(
                    ts["second"],
                    ts[c],
                    where="post",
                    color=color,
                    ls="--" if is_sim else "-",
                    label=f"{label} {c[8:]}",
                )
    axes[0].set_ylabel("completions / s")
    axes[1].set_ylabel("SLO violation ratio")
    axes[2].set_ylabel("workers")
    axes[2].set_xlabel("second")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=6, ncol=2)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# how each service-time model draws a batch's time, in the report's words
SERVICE_TIME_TEXT = {
    "deterministic": "each batch at its p50",
    "exponential": "exponential with the p50 as its mean",
    "lognormal": "lognormal through the profile's p50 and p95",
    "shifted-lognormal": "a floor plus a lognormal through the profile's p05, p50 and p95",
    "empirical": "each batch its p50 times a draw from the shape the profile measured",
}


def run_validation(
    setup: ServeSetup,
    trace_spec: str,
    out_dir: str | Path,
    repeats: int = 3,
    port: int = 8000,
    num_cpus: int | None = None,
    log=print,
    overheads: str | dict = "measured",
    reuse_real: bool = False,
    compare_overheads: str | dict | None = None,
    compare_served_latency: str | None = None,
    sim_repeats: int = SIM_REPEATS,
    profile_rounds: str | None = None,
    progress=None,
) -> pd.DataFrame:
    """The real runs (or, with `reuse_real`, those already in `out_dir`), the simulated runs
    without and with the per-hop overheads (`overheads`: see `overheads_spec`) and the fidelity
    report in `out_dir`; with `compare_overheads` (the same kinds) and/or
    `compare_served_latency` (another validation's served_latency.csv), one more simulation
    with those hops and service times (DIR/sim-compared; the other's measured in other runs,
    it is out of sample), its errors in their own column (error_compared); where that
    served_latency.csv carries its batches' own p95 and p05, one more with them in place of the
    profile's shape (error_compared_served_tails, `service_times.served_tails`), and where a
    served_shapes.csv lies beside it, one more drawing its batches' and hops' measured shapes
    (error_compared_empirical, `serving.served_shapes`). `sim_repeats`
    simulations in all (DIR/sim and its replicates, `run_simulation(replicate=k)`) give the
    simulator's own spread (`simulated_spread`). Every simulation gives the workers the
    backend's service-time model (`ServeSetup.simulation_config`); one more simulation per
    model of `ServeSetup.compared_service_times` reports it as error_<model>_service,
    and where it gives a batch after idle the bundle's idle latency, one more without it as
    error_back_to_back_latency.
    With `profile_rounds` (the folder of the
    bundle's `profile latency` timing tables), two more simulations with DIR/sim's hops and the
    profile at the p10 and p90 of its rounds' medians (`serving.profile_rounds`):
    error_profile_fast and error_profile_slow. `progress(label)`: each real run's progress
    bar factory (`run_loadgen`)."""
    from experiments.inputs import resolve_trace
    from simulator.run import run_simulation

    # a fresh report replaces the folder whole or not at all (a run that fails or is
    # interrupted leaves the older report as it was); a re-report rewrites it in place
    folder = (
        contextlib.nullcontext(Path(out_dir))
        if reuse_real
        else atomic_folder(out_dir, marker=FIDELITY_FILE)
    )
    with folder as out:
        bundle, policy, config = setup.build()
        sim_config = setup.simulation_config(config)
        trace = resolve_trace(trace_spec, bundle, config.seed)
        # served tails: only where batch times vary (at the p50 alone they cannot matter)
        tails_vary = sim_config.service_time != "deterministic"
        empirical = dataclasses.replace(sim_config, service_time=EMPIRICAL_SERVICE)
        compared_bundle, tails_bundle, shaped_bundle = bundle, None, None
        if compare_served_latency is not None:  # checked before the real runs
            compared_bundle = compared_latency(compare_served_latency, bundle)
            if tails_vary:
                tails_bundle = compared_latency_served_tails(compare_served_latency, bundle)
                shapes = compared_shapes(compare_served_latency, bundle)
                if shapes is not None and (shapes["kind"] == "latency").any():
                    shaped_bundle = with_shapes(compared_bundle, shapes)
        rounds = {} if profile_rounds is None else rounds_bundles(profile_rounds, bundle)
        real_dirs = (
            _reused_real_runs(out, setup, trace_spec)
            if reuse_real
            else _real_runs(setup, trace_spec, out, repeats, port, num_cpus, log, progress)
        )

        simulated: list[str] = []

        def simulate(
            overheads_ms: dict,
            folder: str | None = None,
            base: Bundle = bundle,
            replicate: int = 0,
            service_config: SimConfig = sim_config,
        ):
            sim = run_simulation(
                with_overheads(base, overheads_ms),
                trace,
                setup.policy,
                service_config,
                setup.options,
                replicate=replicate,
            )
            if folder is None:
                return sim
            simulated.append(folder)
            write_run(
                out / folder,
                sim.queries,
                sim.timeseries,
                sim.summary,
                sim.config,
                sim.raw.planner_wall_s,
                extras=[planner_log_writer(sim.raw, base.model_names, config.tick_s)],
            )
            log(
                f"{folder}: p50 {_seconds(sim.summary['p50_latency_s'])}, violations "
                f"{sim.summary['slo_violation_ratio']:.3f}"
            )
            return sim

        reals = [read_real_run(d) for d in real_dirs]  # bad input: before anything is written
        batches = read_batches(real_dirs, bundle.model_names)
        # each run's arrivals and batches, for the arrival charge (`serving.arrival_charge`)
        charge_runs = [
            (q["arrival_s"].to_numpy(), b) for (q, _, _), b in zip(reals, batches or [])
        ]
        for done in (FIDELITY_FILE, REPORT_FILE):  # a re-report interrupted is not complete
            (out / done).unlink(missing_ok=True)
        base = simulate({}, "sim-no-overhead")
        per_run = [hop_overheads_ms(q) for q, _, _ in reals]
        measured = pooled_overheads_ms(per_run)
        applied = applied_overheads(overheads, bundle, measured)
        sim = simulate(applied, "sim")
        names = bundle.model_names
        replicates = [run_metrics(sim.queries, sim.summary, names)]
        for k in range(1, sim_repeats):
            other = simulate(applied, replicate=k)
            replicates.append(run_metrics(other.queries, other.summary, names))
        others = {"no_overhead": run_metrics(base.queries, base.summary, names)}
        if applied != measured:  # the in-sample comparison too
            in_sample = simulate(measured, "sim-measured-overheads")
            others["measured_overheads"] = run_metrics(in_sample.queries, in_sample.summary, names)
        compared = None
        if compare_overheads is not None or compare_served_latency is not None:
            compared = applied if compare_overheads is None else compare_overheads
            compared = applied_overheads(compared, bundle, measured)
            other = simulate(compared, "sim-compared", compared_bundle)
            others["compared"] = run_metrics(other.queries, other.summary, names)
            if tails_bundle is not None:
                other = simulate(compared, base=tails_bundle)
                others["compared_served_tails"] = run_metrics(other.queries, other.summary, names)
            if shaped_bundle is not None:  # its batches' and hops' measured shapes
                other = simulate(compared, base=shaped_bundle, service_config=empirical)
                others["compared_empirical"] = run_metrics(other.queries, other.summary, names)
        charge_fit = None
        if charge_runs:  # the arrival charge's sensitivity: DIR/sim with it
            charge_fit = arrival_charge_fit(charge_runs)
            charged = {**applied, ARRIVAL_CHARGE_FIELD: applied_charge_ms(charge_fit)}
            other = simulate(charged)
            others["arrival_charge"] = run_metrics(other.queries, other.summary, names)
        shaped = bool(bundle.latency_shape)  # the profile's measured shapes of batch times
        for model in setup.compared_service_times(config, shaped):  # the service-time models
            service = dataclasses.replace(sim_config, service_time=model)
            other = simulate(applied, service_config=service)
            others[f"{model}_service"] = run_metrics(other.queries, other.summary, names)
        if sim_config.idle_latency and bundle.has_idle_latency:  # and the idle latency's
            back_to_back = dataclasses.replace(sim_config, idle_latency=False)
            other = simulate(applied, service_config=back_to_back)
            others["back_to_back_latency"] = run_metrics(other.queries, other.summary, names)
        for end, rounds_bundle in rounds.items():
            other = simulate(applied, base=rounds_bundle)
            others[f"profile_{end}"] = run_metrics(other.queries, other.summary, names)
        pd.DataFrame([{"run": d.name, **r} for d, r in zip(real_dirs, per_run)]).to_csv(
            out / "overheads.csv", index=False, float_format="%.6g"
        )
        (out / "overheads.json").write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")
        real_metrics = [run_metrics(q, summary, names) for q, _, summary in reals]
        table = fidelity_table(
            real_metrics,
            run_metrics(sim.queries, sim.summary, names),
            [same_plan_share(ts, sim.timeseries, config.plan_interval_s) for _, ts, _ in reals],
            others,
            replicates,
            [
                same_plan_share(ts, sim.timeseries, config.plan_interval_s, True)
                for _, ts, _ in reals
            ],
            np.concatenate([completed_latency_s(q) for q, _, _ in reals]),
        )
        held_out, served_file = out / "leave_one_out.csv", out / "served_latency.csv"
        preemption_file, speed_file = out / PREEMPTION_FILE, out / SPEED_FILE
        charge_file, shapes_file = out / ARRIVAL_CHARGE_FILE, out / SERVED_SHAPES_FILE
        for stale in (held_out, served_file, preemption_file, speed_file, charge_file, shapes_file):
            stale.unlink(missing_ok=True)
        if charge_fit is not None:
            per_run_fits = [arrival_charge_fit([run]) for run in charge_runs]
            pd.DataFrame(
                [{"run": d.name, **f} for d, f in zip(real_dirs, per_run_fits)]
                + [{"run": "all", **charge_fit}]
            ).to_csv(charge_file, index=False, float_format="%.6g")
        uses_disc = policy.uses_discriminator
        fits = speeds = pd.DataFrame()
        if batches is not None:
            all_batches = pd.concat(batches, ignore_index=True)
            served = served_latency_table(bundle, all_batches, config, uses_disc)
            served.to_csv(served_file, index=False, float_format="%.6g")
            if tails_vary:
                queries = [q for q, _, _ in reals]
                shapes = served_shapes(bundle, batches, queries, config, uses_disc)
                if len(shapes):
                    shapes.to_csv(shapes_file, index=False, float_format="%.10g")
            runs = {d.name: b for d, b in zip(real_dirs, batches)}
            charges = {run: discriminator_charge_s(b, config, uses_disc) for run, b in runs.items()}
            fits = preemption_fit(all_batches, np.concatenate(list(charges.values())))
            if len(fits):
                fits.to_csv(preemption_file, index=False, float_format="%.6g")
            speeds = speed_over_time(runs, charges)
            if len(speeds):
                speeds.to_csv(speed_file, index=False, float_format="%.6g")
        if len(reals) > 1:
            rows = []
            for k, d in enumerate(real_dirs):
                hops = pooled_overheads_ms(per_run[:k] + per_run[k + 1 :])
                bundles = {"profile": bundle}
                service = dict.fromkeys(bundles, sim_config)
                if batches is not None:
                    others_served = pd.concat(batches[:k] + batches[k + 1 :])
                    for name, tails in (("served", False), ("served_tails", True)):
                        if tails_vary or not tails:
                            bundles[name] = with_served_latency(
                                bundle, others_served, config, uses_disc, tails
                            )
                    if tails_vary:  # the other runs' measured shapes of batches and hops
                        shapes = served_shapes(
                            bundle,
                            batches[:k] + batches[k + 1 :],
                            [q for j, (q, _, _) in enumerate(reals) if j != k],
                            config,
                            uses_disc,
                        )
                        if (shapes["kind"] == "latency").any():
                            bundles["served_empirical"] = with_shapes(bundles["served"], shapes)
                            service["served_empirical"] = empirical
                runs = {latency: (hops, base) for latency, base in bundles.items()}
                if charge_runs:  # the profile, the hops and the charge of the other runs
                    fit = arrival_charge_fit(charge_runs[:k] + charge_runs[k + 1 :])
                    charged = {**hops, ARRIVAL_CHARGE_FIELD: applied_charge_ms(fit)}
                    runs["profile_arrival_charge"] = (charged, bundle)
                for latency, (overheads_ms, base) in runs.items():
                    kind = service.get(latency, sim_config)
                    other = simulate(overheads_ms, base=base, service_config=kind)
                    plans = same_plan_share(reals[k][1], other.timeseries, config.plan_interval_s)
                    metrics = {
                        **run_metrics(other.queries, other.summary, names),
                        "same_plan": plans,
                    }
                    errors = held_out_errors(metrics, real_metrics[k])
                    rows.append({"run": d.name, "latency": latency, **overheads_ms, **errors})
            errors = pd.DataFrame(rows)
            errors.to_csv(held_out, index=False, float_format="%.6g")
            for latency, column in (
                ("profile", "error_leave_one_out"),
                ("served", "error_leave_one_out_served"),
                ("served_tails", "error_leave_one_out_served_tails"),
                ("served_empirical", "error_leave_one_out_served_empirical"),
                ("profile_arrival_charge", "error_leave_one_out_arrival_charge"),
            ):
                kept = errors[errors["latency"] == latency]
                if len(kept):
                    table[column] = [
                        kept[m].mean() if m in kept else math.nan for m in table["metric"]
                    ]
        title = (
            f"{setup.policy} on {setup.bundle}, trace {trace_spec}, {config.n_workers} "
            f"workers, time scale {config.time_scale:g}, {len(reals)} real runs"
        )
        source = _source(overheads)
        hashes = sorted({summary["hashes"]["bundle"][:12] for _, _, summary in reals})
        simulated_hash = bundle.content_hash()[:12]  # before the overheads are added
        parts = [f"Per-hop overheads applied to the simulation ({source}): {_hops_text(applied)}."]
        if sim_config.service_time != config.service_time:
            alternatives = ", ".join(
                f"error {m} service: {SERVICE_TIME_TEXT[m]}"
                for m in setup.compared_service_times(config, bool(bundle.latency_shape))
            )
            parts.append(
                f"Service times: {SERVICE_TIME_TEXT[sim_config.service_time]} for the "
                f"{setup.backend} backend's workers, whose batch times vary; the same simulation "
                f"with {alternatives}."
            )
        if "back_to_back_latency" in others:
            gaps = ", ".join(f"{m} {g:g} s" for m, g in zip(names, bundle.idle_gap_s) if g)
            parts.append(
                "Latency after idle: a worker's batch after t s of idle takes the p50 plus "
                f"min(t / gap, 1) x (the p50 timed after the gap ({gaps}) - the p50); error back "
                "to back latency: the same simulation with the back-to-back p50 alone."
            )
        if sim_repeats > 1:
            parts.append(
                f"Simulated spread: over {sim_repeats} simulations, DIR/sim and replicates whose "
                "worker choices, mix draws and hops come from other random streams (the same "
                "trace, seed and policy)."
            )
        if compared is not None:
            hops_source = _source(overheads if compare_overheads is None else compare_overheads)
            text = f"Compared simulation: hops ({hops_source}) {_hops_text(compared)}"
            if compare_served_latency is not None:
                text += f"; the latency profile in {compare_served_latency}"
            if "compared_served_tails" in others:
                text += (
                    "; error compared served tails: the same with its served batches' own p95 "
                    "and p05 where it has them, not the profile's shape scaled"
                )
            if "compared_empirical" in others:
                text += (
                    "; error compared empirical: the same p50s, each batch time and hop drawn "
                    f"from the shapes its runs measured ({SERVED_SHAPES_FILE} beside it)"
                )
            parts.append(text + ".")
        if rounds:
            parts.append(
                "Error profile fast and slow: DIR/sim's hops with each latency row at the p10 "
                "and the p90 of its rounds' medians (the profile's timing tables in "
                f"{profile_rounds}): the simulation at the machine's fastest and slowest while "
                "it was profiled."
            )
        per_run_text = "; ".join(
            f"{d.name} {_hops_text(r)}" for d, r in zip(real_dirs, per_run)
        )
        parts.append(
            f"Measured (mean of the real runs): {_hops_text(measured)}; per real run: "
            f"{per_run_text}."
        )
        if "error_leave_one_out" in table.columns:
            parts.append(
                "Error leave one out: each real run against a simulation with the hops measured "
                "in the other real runs (out of sample), the mean over the runs "
                "(DIR/leave_one_out.csv)."
            )
        if "error_leave_one_out_served" in table.columns:
            parts.append(
                "Error leave one out served: the same, with the service times the other runs' "
                "workers measured as the latency profile (`serving.service_times`; all runs': "
                "DIR/served_latency.csv)."
                + (
                    " Error leave one out served tails: with their own p95 and p05 too, not the "
                    "profile's shape scaled (`served_tails`)."
                    if "error_leave_one_out_served_tails" in table.columns
                    else ""
                )
                + (
                    " Error leave one out served empirical: the other runs' served p50s, each "
                    "batch time and the dispatch and arrival hops drawn from the shapes those "
                    f"runs measured (`serving.served_shapes`; all runs': DIR/{SERVED_SHAPES_FILE})."
                    if "error_leave_one_out_served_empirical" in table.columns
                    else ""
                )
            )
        if charge_fit is not None:
            parts.append(arrival_charge_text(charge_fit, "error_leave_one_out" in table.columns))
        if len(fits):
            parts.append(preemption_text(fits))
        if len(speeds):
            parts.append(speed_text(speeds))
        inputs = plan_inputs_table(
            [ts for _, ts, _ in reals], sim.timeseries, config.plan_interval_s
        )
        inputs.to_csv(out / "plan_inputs.csv", index=False, float_format="%.6g")
        if len(inputs):
            parts.append(plan_inputs_text(inputs))
        classes = query_classes_table([q for q, _, _ in reals], sim.queries)
        (out / CLASSES_FILE).unlink(missing_ok=True)
        if len(classes):
            classes.to_csv(out / CLASSES_FILE, index=False, float_format="%.6g")
            parts.append(query_classes_text(classes))
        note = " ".join(parts)
        if hashes != [simulated_hash]:
            note += (
                f" The real runs were made with bundle content hash {', '.join(hashes)}, the "
                f"simulations with {simulated_hash}."
            )
        _remove_stale_runs(out, {d.name for d in real_dirs} | set(simulated))
        plot_overlay([ts for _, ts, _ in reals], sim.timeseries, out / "timeseries.png", title)
        (out / REPORT_FILE).write_text(markdown(table, title, note))
        table.to_csv(out / FIDELITY_FILE, index=False, float_format="%.6g")  # the last
        return table


def arrival_charge_text(fit: dict, held_out: bool) -> str:
    """The report's sentence on the arrival charge's sensitivity columns."""
    measured = (
        f"{fit['charge_ms']:.2f} ms (standard error {fit['charge_se_ms']:.2f} ms)"
        if math.isfinite(fit["charge_ms"])
        else "not measurable (no batch's count of arrivals varies within its group)"
    )
    text = (
        "Error arrival charge: DIR/sim with every batch running at a query's arrival "
        f"prolonged by the arrival charge the real runs' batches give, {measured} per arrival "
        f"over {fit['batches']} batches (applied: {applied_charge_ms(fit):g} ms; "
        "`serving.arrival_charge`, per run in DIR/arrival_charge.csv)."
    )
    if held_out:
        text += (
            " Error leave one out arrival charge: each real run against the profile, the hops "
            "and the charge of the other runs (out of sample)."
        )
    return text


def preemption_text(fits: pd.DataFrame) -> str:
    """The note's sentence on `preemption_fit`'s table."""
    per_model = "; ".join(
        f"{f.model} {f.preemptions_p50:g} at the median, {f.slope_s * 1e3:.3f} ± "
        f"{f.slope_se_s * 1e3:.3f} ms of its CPU each, {f.intercept_s * 1e3:.3g} ms never "
        "preempted"
        for f in fits.itertuples()
    )
    return (
        f"Preemptions of a worker's thread per batch of one (DIR/{PREEMPTION_FILE}: its CPU "
        f"time, less the discriminator's charge, fitted on the count): {per_model}."
    )


def speed_text(speeds: pd.DataFrame) -> str:
    """The note's sentence on `speed_over_time`'s table: per model, the range of its bins'
    CPU p50 over all runs, and of their preemption rates."""
    per_model = "; ".join(
        f"{model} {rows.cpu_p50_s.min() * 1e3:.3g}–{rows.cpu_p50_s.max() * 1e3:.3g} ms "
        f"(×{rows.cpu_p50_s.max() / rows.cpu_p50_s.min():.2f} between bins), preempted "
        f"{rows.preemptions_per_ms.min():.2g}–{rows.preemptions_per_ms.max():.2g} times per ms"
        for model, rows in speeds.groupby("model", sort=True)
    )
    return (
        f"The workers' speed as the runs went (DIR/{SPEED_FILE}: batches of one in "
        f"{SPEED_BIN_S:g}-s bins of each run, the p50 CPU time less the discriminator's charge): "
        f"{per_model}."
    )


def _remove_stale_runs(out: Path, written: set[str]) -> None:
    """Remove the run folders (`real-N`, `sim*`) an earlier report left in `out` that this one
    did not write (fewer repeats, another overheads mode), so the folder holds one report."""
    for d in out.iterdir():
        stale = d.name not in written and (d.name.startswith("real-") or d.name.startswith("sim"))
        if stale and d.is_dir():
            shutil.rmtree(d)


def _source(overheads: str | dict) -> str:
    return overheads if isinstance(overheads, str) else "given"


def _seconds(value: float | None) -> str:
    return "none (no query completed)" if value is None else f"{value:.3f} s"


def _hops_text(overheads: dict) -> str:
    """'dispatch 45.1 ms (p95 120.0), escalation ...' of an `overheads` object."""
    parts = []
    for hop in HOPS:
        median = overheads.get(f"{hop}_overhead_ms", 0.0)
        p95 = overheads.get(f"{hop}_overhead_p95_ms", median)
        parts.append(f"{hop} {median:.1f} ms (p95 {p95:.1f})")
    return ", ".join(parts)


def _real_runs(
    setup, trace_spec, out: Path, repeats, port, num_cpus, log, progress=None
) -> list[Path]:
    """`repeats` replays of the trace, each on a fresh Ray and Serve (no state carries over);
    `progress(label)`, if given, is each replay's progress factory (`run_loadgen`)."""
    from serving.loadgen import run_loadgen
    from serving.server import ServeSession

    dirs = []
    for k in range(1, repeats + 1):
        with ServeSession(setup, port=port, num_cpus=num_cpus) as session:
            shown = progress and progress(f"real run {k}/{repeats}")
            summary = run_loadgen(trace_spec, session.url, out / f"real-{k}", shown)
            session.check()
        dirs.append(out / f"real-{k}")
        log(
            f"real {k}: p50 {_seconds(summary['p50_latency_s'])}, violations "
            f"{summary['slo_violation_ratio']:.3f}, failed {summary['failed']}, swaps "
            f"{summary['swap_s']}"
        )
    return dirs


def _reused_real_runs(out: Path, setup: ServeSetup, trace_spec: str) -> list[Path]:
    """The real run folders already in `out`, checked to be replays of this policy, options,
    trace, settings and serving stack (a setting a run predates at its default); `load_s` may
    differ (to simulate another swap cost: a real run's is its measured swaps, `swap_s` in its
    summary)."""
    dirs = sorted(
        (d for d in out.glob("real-*") if (d / "summary.json").is_file()),
        key=lambda d: int(d.name.split("-")[1]) if d.name.split("-")[1].isdigit() else 0,
    )
    if not dirs:
        raise InputError(f"--reuse-real: {out} holds no real-N run folder")
    wanted = json.loads(json.dumps({"options": setup.options, "sim": setup.config.to_dict()}))
    wanted["sim"].pop("load_s")
    defaults = json.loads(json.dumps(type(setup.config)().to_dict()))
    for d in dirs:
        config = read_json_object(d / "config.json", keys=("sim",))
        summary = read_json_object(d / "summary.json")
        config["sim"] = {**defaults, **config["sim"]}
        config["sim"].pop("load_s")
        same = (
            config.get("policy") == setup.policy
            and config.get("policy_options") == wanted["options"]
            and config["sim"] == wanted["sim"]
            and summary.get("trace_spec") == trace_spec
        )
        if not same:
            raise InputError(
                f"--reuse-real: {d} is not a replay of this policy, options, settings and trace"
            )
        stack = recorded_stack(config.get("serving", {}).get("stack"))
        if stack != setup.stack:
            raise InputError(
                f"--reuse-real: {d} was served by the {stack!r} Serve stack, not {setup.stack!r}"
            )
    return dirs
