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
from serving.fidelity_note import (
    PREEMPTION_FILE,
    SPEED_FILE,
    Hops,
    arrival_charge_text,
    bundle_hash_text,
    compared_text,
    hops_text,
    idle_latency_text,
    leave_one_out_text,
    measured_hops_text,
    preemption_text,
    profile_rounds_text,
    service_time_text,
    simulated_spread_text,
    speed_text,
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


@dataclasses.dataclass(frozen=True)
class _RealRuns:
    """A validation's real runs: their folders, each one's (queries, timeseries, summary), the
    batches their workers served (None: a run that did not record them), the hops measured in
    each (`hop_overheads_ms`) and its metrics (`run_metrics`)."""

    dirs: list[Path]
    runs: list[tuple[pd.DataFrame, pd.DataFrame, dict]]
    batches: list[pd.DataFrame] | None
    hops: list[dict]
    metrics: list[dict]

    @classmethod
    def read(cls, dirs: list[Path], model_names) -> _RealRuns:
        runs = [read_real_run(d) for d in dirs]  # bad input: before anything is written
        return cls(
            dirs,
            runs,
            read_batches(dirs, model_names),
            [hop_overheads_ms(q) for q, _, _ in runs],
            [run_metrics(q, summary, model_names) for q, _, summary in runs],
        )

    def without(self, k: int) -> _RealRuns:
        """The other runs than run `k` (its leave-one-out calibration)."""

        def drop(items):
            return None if items is None else items[:k] + items[k + 1 :]

        return _RealRuns(*(drop(getattr(self, f.name)) for f in dataclasses.fields(self)))

    @property
    def queries(self) -> list[pd.DataFrame]:
        return [q for q, _, _ in self.runs]

    @property
    def timeseries(self) -> list[pd.DataFrame]:
        return [ts for _, ts, _ in self.runs]

    def arrivals_and_batches(self) -> list[tuple[np.ndarray, pd.DataFrame]]:
        """Each run's arrivals and batches, for the arrival charge (`serving.arrival_charge`);
        none without batches."""
        return [(q["arrival_s"].to_numpy(), b) for q, b in zip(self.queries, self.batches or [])]


@dataclasses.dataclass
class _Simulations:
    """A validation's simulations, all of one trace, seed and policy, each with its own hops,
    bundle (`base`) and service-time model; a named one (`folder`) is written as a run folder
    in `out` and listed in `written`."""

    out: Path
    setup: ServeSetup
    trace: object
    bundle: Bundle
    config: SimConfig  # the service-time model validate judges (`simulation_config`)
    log: object
    written: list[str] = dataclasses.field(default_factory=list)

    def run(self, overheads_ms: dict, folder=None, base=None, replicate=0, service=None):
        from simulator.run import run_simulation

        base = self.bundle if base is None else base
        sim = run_simulation(
            with_overheads(base, overheads_ms),
            self.trace,
            self.setup.policy,
            self.config if service is None else service,
            self.setup.options,
            replicate=replicate,
        )
        if folder is not None:
            self.written.append(folder)
            write_run(
                self.out / folder,
                sim.queries,
                sim.timeseries,
                sim.summary,
                sim.config,
                sim.raw.planner_wall_s,
                extras=[planner_log_writer(sim.raw, base.model_names, self.config.tick_s)],
            )
            self.log(
                f"{folder}: p50 {_seconds(sim.summary['p50_latency_s'])}, violations "
                f"{sim.summary['slo_violation_ratio']:.3f}"
            )
        return sim

    def metrics(self, overheads_ms: dict, folder=None, base=None, replicate=0, service=None):
        """`run`'s metrics (`run_metrics`)."""
        sim = self.run(overheads_ms, folder, base, replicate, service)
        return run_metrics(sim.queries, sim.summary, self.bundle.model_names)


def _compared_bundles(
    served_latency: str | None, bundle: Bundle, tails_vary: bool
) -> tuple[Bundle, Bundle | None, Bundle | None]:
    """The bundle with another validation's served latency (`compared_latency`; without one,
    `bundle`), with those batches' own tails where batch times vary, and with their measured
    shapes where it has them (None where not)."""
    if served_latency is None:
        return bundle, None, None
    compared = compared_latency(served_latency, bundle)
    if not tails_vary:
        return compared, None, None
    shapes = compared_shapes(served_latency, bundle)
    shaped = None
    if shapes is not None and (shapes["kind"] == "latency").any():
        shaped = with_shapes(compared, shapes)
    return compared, compared_latency_served_tails(served_latency, bundle), shaped


def _write_batch_tables(
    out: Path, bundle: Bundle, real: _RealRuns, config: SimConfig, uses_disc: bool, tails: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From the real runs' served batches: DIR/served_latency.csv, the batches' and hops'
    measured shapes (DIR/served_shapes.csv, where batch times vary: `tails`), the preemption
    fit and the workers' speed over time; returns the last two (empty without batches)."""
    fits = speeds = pd.DataFrame()
    if real.batches is None:
        return fits, speeds
    all_batches = pd.concat(real.batches, ignore_index=True)
    served = served_latency_table(bundle, all_batches, config, uses_disc)
    served.to_csv(out / "served_latency.csv", index=False, float_format="%.6g")
    if tails:
        shapes = served_shapes(bundle, real.batches, real.queries, config, uses_disc)
        if len(shapes):
            shapes.to_csv(out / SERVED_SHAPES_FILE, index=False, float_format="%.10g")
    runs = {d.name: b for d, b in zip(real.dirs, real.batches)}
    charges = {run: discriminator_charge_s(b, config, uses_disc) for run, b in runs.items()}
    fits = preemption_fit(all_batches, np.concatenate(list(charges.values())))
    if len(fits):
        fits.to_csv(out / PREEMPTION_FILE, index=False, float_format="%.6g")
    speeds = speed_over_time(runs, charges)
    if len(speeds):
        speeds.to_csv(out / SPEED_FILE, index=False, float_format="%.6g")
    return fits, speeds


# leave_one_out.csv's `latency` (what the held-out simulation's profile and hops were) -> the
# fidelity table's column of its mean error
LEAVE_ONE_OUT_COLUMNS = {
    "profile": "error_leave_one_out",
    "served": "error_leave_one_out_served",
    "served_tails": "error_leave_one_out_served_tails",
    "served_empirical": "error_leave_one_out_served_empirical",
    "profile_arrival_charge": "error_leave_one_out_arrival_charge",
}


def _leave_one_out(
    sims: _Simulations, real: _RealRuns, config: SimConfig, uses_disc: bool, tails: bool
) -> pd.DataFrame:
    """Each real run against simulations calibrated on the other runs only: their hops with
    the profile, with their served batch times (with their own tails and with their measured
    shapes, where batch times vary: `tails`) and with their arrival charge. One row per run and
    simulation (`LEAVE_ONE_OUT_COLUMNS`' `latency`), its hops and errors."""
    bundle, judged = sims.bundle, sims.config
    empirical = dataclasses.replace(judged, service_time=EMPIRICAL_SERVICE)
    rows = []
    for k, d in enumerate(real.dirs):
        rest = real.without(k)
        hops = pooled_overheads_ms(rest.hops)
        runs = {"profile": (hops, bundle, judged)}
        if rest.batches is not None:
            served = pd.concat(rest.batches)
            for name, own_tails in (("served", False), ("served_tails", True)):
                if tails or not own_tails:
                    base = with_served_latency(bundle, served, config, uses_disc, own_tails)
                    runs[name] = (hops, base, judged)
            if tails:  # the other runs' measured shapes of batches and hops
                shapes = served_shapes(bundle, rest.batches, rest.queries, config, uses_disc)
                if (shapes["kind"] == "latency").any():
                    shaped = with_shapes(runs["served"][1], shapes)
                    runs["served_empirical"] = (hops, shaped, empirical)
            fit = arrival_charge_fit(rest.arrivals_and_batches())
            charged = {**hops, ARRIVAL_CHARGE_FIELD: applied_charge_ms(fit)}
            runs["profile_arrival_charge"] = (charged, bundle, judged)
        for latency, (overheads_ms, base, service) in runs.items():
            other = sims.run(overheads_ms, base=base, service=service)
            plans = same_plan_share(real.runs[k][1], other.timeseries, config.plan_interval_s)
            metrics = {
                **run_metrics(other.queries, other.summary, bundle.model_names),
                "same_plan": plans,
            }
            errors = held_out_errors(metrics, real.metrics[k])
            rows.append({"run": d.name, "latency": latency, **overheads_ms, **errors})
    return pd.DataFrame(rows)


def _sensitivities(
    sims: _Simulations,
    applied: dict,
    measured: dict,
    compared: dict | None,
    compared_bundles: tuple[Bundle, Bundle | None, Bundle | None],
    charge_fit: dict | None,
) -> dict[str, dict]:
    """The metrics of the simulations beside DIR/sim with one input changed, by their column
    in the fidelity table (error_<name>): the measured hops where other hops were applied
    (DIR/sim-measured-overheads), the compared hops and latency (DIR/sim-compared, with its own
    tails and its measured shapes: `_compared_bundles`), the arrival charge (`charge_fit`),
    each other service-time model (`ServeSetup.compared_service_times`) and the batches' time
    after idle left out."""
    bundle, judged, setup = sims.bundle, sims.config, sims.setup
    others = {}
    if applied != measured:  # the in-sample comparison too
        others["measured_overheads"] = sims.metrics(measured, "sim-measured-overheads")
    if compared is not None:
        compared_bundle, tails_bundle, shaped_bundle = compared_bundles
        others["compared"] = sims.metrics(compared, "sim-compared", compared_bundle)
        if tails_bundle is not None:
            others["compared_served_tails"] = sims.metrics(compared, base=tails_bundle)
        if shaped_bundle is not None:  # its batches' and hops' measured shapes
            empirical = dataclasses.replace(judged, service_time=EMPIRICAL_SERVICE)
            others["compared_empirical"] = sims.metrics(
                compared, base=shaped_bundle, service=empirical
            )
    if charge_fit is not None:  # DIR/sim with the arrival charge
        charged = {**applied, ARRIVAL_CHARGE_FIELD: applied_charge_ms(charge_fit)}
        others["arrival_charge"] = sims.metrics(charged)
    shaped = bool(bundle.latency_shape)  # the profile's measured shapes of batch times
    for model in setup.compared_service_times(setup.config, shaped):
        service = dataclasses.replace(judged, service_time=model)
        others[f"{model}_service"] = sims.metrics(applied, service=service)
    if judged.idle_latency and bundle.has_idle_latency:
        back_to_back = dataclasses.replace(judged, idle_latency=False)
        others["back_to_back_latency"] = sims.metrics(applied, service=back_to_back)
    return others


def _note_parts(
    sims: _Simulations,
    hops: Hops,
    others: dict,
    columns: set[str],
    *,
    sim_repeats: int,
    compare_served_latency: str | None,
    profile_rounds: str | None,
    charge_fit: dict | None,
) -> list[str]:
    """The note's sentences on the hops and on each simulation beside DIR/sim (`others`, the
    table's `columns`), in the report's order (`serving.fidelity_note`)."""
    setup, bundle, judged = sims.setup, sims.bundle, sims.config
    config = setup.config
    parts = [
        f"Per-hop overheads applied to the simulation ({hops.source}): {hops_text(hops.applied)}."
    ]
    if judged.service_time != config.service_time:
        alternatives = setup.compared_service_times(config, bool(bundle.latency_shape))
        parts.append(service_time_text(setup.backend, judged.service_time, alternatives))
    if "back_to_back_latency" in others:
        parts.append(idle_latency_text(bundle))
    if sim_repeats > 1:
        parts.append(simulated_spread_text(sim_repeats))
    if hops.compared is not None:
        parts.append(compared_text(hops, compare_served_latency, set(others)))
    if profile_rounds is not None:
        parts.append(profile_rounds_text(profile_rounds))
    parts.append(measured_hops_text(hops))
    parts += leave_one_out_text(columns)
    if charge_fit is not None:
        parts.append(arrival_charge_text(charge_fit, "error_leave_one_out" in columns))
    return parts


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
        # checked before the real runs
        compared_bundles = _compared_bundles(compare_served_latency, bundle, tails_vary)
        rounds = {} if profile_rounds is None else rounds_bundles(profile_rounds, bundle)
        real_dirs = (
            _reused_real_runs(out, setup, trace_spec)
            if reuse_real
            else _real_runs(setup, trace_spec, out, repeats, port, num_cpus, log, progress)
        )
        names = bundle.model_names
        real = _RealRuns.read(real_dirs, names)
        for done in (FIDELITY_FILE, REPORT_FILE):  # a re-report interrupted is not complete
            (out / done).unlink(missing_ok=True)
        sims = _Simulations(out, setup, trace, bundle, sim_config, log)
        base = sims.run({}, "sim-no-overhead")
        measured = pooled_overheads_ms(real.hops)
        applied = applied_overheads(overheads, bundle, measured)
        sim = sims.run(applied, "sim")
        replicates = [run_metrics(sim.queries, sim.summary, names)]
        replicates += [sims.metrics(applied, replicate=k) for k in range(1, sim_repeats)]
        compared = None
        if compare_overheads is not None or compare_served_latency is not None:
            compared = applied if compare_overheads is None else compare_overheads
            compared = applied_overheads(compared, bundle, measured)
        charge_runs = real.arrivals_and_batches()
        charge_fit = arrival_charge_fit(charge_runs) if charge_runs else None
        others = {
            "no_overhead": run_metrics(base.queries, base.summary, names),
            **_sensitivities(sims, applied, measured, compared, compared_bundles, charge_fit),
            **{f"profile_{end}": sims.metrics(applied, base=b) for end, b in rounds.items()},
        }
        pd.DataFrame([{"run": d.name, **r} for d, r in zip(real.dirs, real.hops)]).to_csv(
            out / "overheads.csv", index=False, float_format="%.6g"
        )
        (out / "overheads.json").write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")
        table = fidelity_table(
            real.metrics,
            run_metrics(sim.queries, sim.summary, names),
            [same_plan_share(ts, sim.timeseries, config.plan_interval_s) for ts in real.timeseries],
            others,
            replicates,
            [
                same_plan_share(ts, sim.timeseries, config.plan_interval_s, True)
                for ts in real.timeseries
            ],
            np.concatenate([completed_latency_s(q) for q in real.queries]),
        )
        held_out = out / "leave_one_out.csv"
        for stale in (
            held_out,
            out / "served_latency.csv",
            out / PREEMPTION_FILE,
            out / SPEED_FILE,
            out / ARRIVAL_CHARGE_FILE,
            out / SERVED_SHAPES_FILE,
        ):
            stale.unlink(missing_ok=True)
        if charge_fit is not None:
            per_run_fits = [arrival_charge_fit([run]) for run in charge_runs]
            pd.DataFrame(
                [{"run": d.name, **f} for d, f in zip(real.dirs, per_run_fits)]
                + [{"run": "all", **charge_fit}]
            ).to_csv(out / ARRIVAL_CHARGE_FILE, index=False, float_format="%.6g")
        uses_disc = policy.uses_discriminator
        fits, speeds = _write_batch_tables(out, bundle, real, config, uses_disc, tails_vary)
        if len(real.dirs) > 1:
            errors = _leave_one_out(sims, real, config, uses_disc, tails_vary)
            errors.to_csv(held_out, index=False, float_format="%.6g")
            for latency, column in LEAVE_ONE_OUT_COLUMNS.items():
                kept = errors[errors["latency"] == latency]
                if len(kept):
                    table[column] = [
                        kept[m].mean() if m in kept else math.nan for m in table["metric"]
                    ]
        compared_source = overheads if compare_overheads is None else compare_overheads
        hops = Hops(
            _source(overheads),
            applied,
            measured,
            {d.name: r for d, r in zip(real.dirs, real.hops)},
            _source(compared_source),
            compared,
        )
        parts = _note_parts(
            sims,
            hops,
            others,
            set(table.columns),
            sim_repeats=sim_repeats,
            compare_served_latency=compare_served_latency,
            profile_rounds=profile_rounds if rounds else None,
            charge_fit=charge_fit,
        )
        if len(fits):
            parts.append(preemption_text(fits))
        if len(speeds):
            parts.append(speed_text(speeds))
        inputs = plan_inputs_table(real.timeseries, sim.timeseries, config.plan_interval_s)
        inputs.to_csv(out / "plan_inputs.csv", index=False, float_format="%.6g")
        if len(inputs):
            parts.append(plan_inputs_text(inputs))
        classes = query_classes_table(real.queries, sim.queries)
        (out / CLASSES_FILE).unlink(missing_ok=True)
        if len(classes):
            classes.to_csv(out / CLASSES_FILE, index=False, float_format="%.6g")
            parts.append(query_classes_text(classes))
        hashes = sorted({summary["hashes"]["bundle"][:12] for _, _, summary in real.runs})
        # the simulated bundle's hash before the overheads are added
        note = " ".join(parts) + bundle_hash_text(hashes, bundle.content_hash()[:12])
        _remove_stale_runs(out, {d.name for d in real.dirs} | set(sims.written))
        title = (
            f"{setup.policy} on {setup.bundle}, trace {trace_spec}, {config.n_workers} "
            f"workers, time scale {config.time_scale:g}, {len(real.dirs)} real runs"
        )
        plot_overlay(real.timeseries, sim.timeseries, out / "timeseries.png", title)
        (out / REPORT_FILE).write_text(markdown(table, title, note))
        table.to_csv(out / FIDELITY_FILE, index=False, float_format="%.6g")  # the last
        return table


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
            f"{summary['swap_s']}; served after {session.ready_text()}"
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
