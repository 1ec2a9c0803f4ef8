"""The fidelity table of a validation (`serving.validate`): each compared metric of the real
runs (mean and run-to-run spread) against a simulation's, the error in the metric's unit
(relative % for latencies, throughput and completions; percentage points for shares), where a
simulated latency quantile sits among the real latencies, and whether the error meets the
issue's goal (issue 14: |p50| <= 5%, |p99| <= 10%, violation ratio within 1 pp or the real
spread, the same plan in >= 90% of plan epochs; the tiny diffusers backend |p50| <= 10%)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import InputError, one_line
from simulator.json_input import read_json_object

SHARE_METRICS = ("slo_violation_ratio", "heavy_share")

GOALS = {  # metric -> (limit, unit) of |error|
    "p50_latency_s": (5.0, "%"),
    "p99_latency_s": (10.0, "%"),
    "slo_violation_ratio": (1.0, "pp"),
}

SAME_PLAN_GOAL = 0.9

EXPECTATION_FILE = "expectation.csv"  # validate: the comparison on expectations by replicates
EXPECTATION_LADDER = (5, 10, 25)  # and all of them (`expectation_ladder`)

TINY_P50_GOAL_PCT = 10.0  # the tiny diffusers backend's goal: |p50 error| <= 10%

LATENCY_QUANTILES = {f"p{q}_latency_s": q for q in (50, 90, 99)}  # metric -> percentile

REAL_RUN_NEEDS = {  # file -> {column the comparison reads: whether it must be numeric}
    "queries.parquet": {
        "arrival_s": True,
        "completion_s": True,
        "latency_s": True,
        "outcome": False,
    },
    "timeseries.csv": {"second": True, "plan": False, "slo_violation_ratio": True},
}


def real_run_dirs(folder: Path) -> list[Path]:
    """A validation folder's real run folders (real-N with a summary.json), in run order."""
    runs = [d for d in folder.glob("real-*") if (d / "summary.json").is_file()]
    return sorted(runs, key=lambda d: int(d.name[5:]) if d.name[5:].isdigit() else 0)


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
    the cluster's randomness from other streams; NaN without), and the comparison on
    expectations (`expectation_columns`: the replicates' mean against the real runs' mean,
    each with its standard error, and the error's); and the error of each of
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
        sim_values = [r[metric] for r in replicates or []]
        sim_spread = _mean_spread(sim_values, unit)[1]
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
            **expectation_columns(metric, [r[metric] for r in real], sim_values),
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
            **expectation_columns(metric, [], []),  # plans are compared with DIR/sim only
        }
        for name in others:
            row[f"error_{name}"] = math.nan  # plans are compared with DIR/sim only
        rows.append(row)
    return pd.DataFrame(rows)


def expectation_columns(metric: str, real: list[float], simulated: list[float]) -> dict:
    """A metric compared on expectations: the mean of the `simulated` replicates and its
    standard error, the real runs' standard error, the error of the mean against the real
    mean (`expected_error`, the metric's unit) and the error's standard error (relative:
    by the delta method, both means uncertain), and whether it meets the goal (the real
    spread as `goal_met` reads it; None for a metric without a goal). NaN without replicates
    (or without real runs)."""
    unit = _unit(metric)
    real_mean, real_se = mean_se(real)
    sim_mean, sim_se = mean_se(simulated)
    error = _error(sim_mean, real_mean, unit)
    if unit == "pp":
        error_se = math.hypot(sim_se, real_se) * 100
    elif real_mean:
        error_se = math.hypot(sim_se / real_mean, sim_mean * real_se / real_mean**2) * 100
    else:
        error_se = math.nan
    met = None
    if metric in GOALS and error == error:
        met = goal_met(metric, error, _mean_spread(real, unit)[1])
    return {
        "simulated_mean": sim_mean,
        "simulated_se": sim_se,
        "real_se": real_se,
        "expected_error": error,
        "expected_error_se": error_se,
        "expected_goal_met": met,
    }


def expectation_ladder(real: list[dict], replicates: list[dict], redraws: str) -> pd.DataFrame:
    """The comparison on expectations of each goal metric over the first k replicates, k in
    EXPECTATION_LADDER up to all of them (the last row): how far the simulated mean moves
    with the number of simulations averaged (validate's EXPECTATION_FILE); `redraws`: what
    the replicates redrew (`SimConfig.replicate_redraws`), a column of its own."""
    counts = sorted({k for k in EXPECTATION_LADDER if k < len(replicates)} | {len(replicates)})
    return pd.DataFrame(
        [
            {
                "redraws": redraws,
                "metric": metric,
                "replicates": k,
                **expectation_columns(
                    metric, [r[metric] for r in real], [r[metric] for r in replicates[:k]]
                ),
            }
            for metric in GOALS
            for k in counts
        ]
    )


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN without values; the error NaN for one)."""
    array = np.asarray(values, dtype=np.float64)
    if not len(array):
        return math.nan, math.nan
    se = float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else math.nan
    return float(array.mean()), se


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
        "| metric | real mean | real spread | simulated | simulated spread | error | goal met "
        "| simulated mean | error on expectations | goal met on expectations |"
        + "".join(f" {c.replace('_', ' ')} |" for c in others),
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(others),
    ]
    for r in table.to_dict("records"):
        met = r["goal_met"]
        level = r.get("real_level", math.nan)
        at = f" (real p{level:.3g})" if level == level else ""
        line = (
            f"| {r['metric']} | {r['real_mean']:.4g} | {_spread_text(r['real_spread'], r['unit'])} "
            f"| {r['simulated']:.4g}{at} | {_spread_text(r['simulated_spread'], r['unit'])} "
            f"| {r['error']:+.2f} {r['unit']} | {_verdict_text(met)} "
            f"| {value_se_text(r, 'simulated_mean', '.4g', '')} "
            f"| {value_se_text(r, 'expected_error', '+.2f', r['unit'])} "
            f"| {_verdict_text(r.get('expected_goal_met'))} |"
        )
        for c in others:
            line += f" {r[c]:+.2f} {r['unit']} |" if r[c] == r[c] else " |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _verdict_text(met) -> str:
    """yes/no; empty for no verdict (None, or NaN as a table read back gives it)."""
    return "" if met is None or met != met else ("yes" if met else "no")


def value_se_text(row: dict, column: str, form: str, unit: str) -> str:
    """`value ±se unit` of a table row's column and its standard error (COLUMN_se, or for
    simulated_mean simulated_se); empty where the value is missing or NaN (a table written
    before the comparison on expectations)."""
    se_column = "simulated_se" if column == "simulated_mean" else f"{column}_se"
    value, se = row.get(column, math.nan), row.get(se_column, math.nan)
    if value != value:
        return ""
    shown = f"{value:{form}}" + (f" ±{round(se, 6):.2g}" if se == se else "")
    return f"{shown} {unit}".rstrip()


def _spread_text(spread: float, unit: str) -> str:
    return f"±{round(spread, 6):.3g} {unit}" if spread == spread else ""
