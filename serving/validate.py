"""Simulator vs real serving on the same inputs and seed (the way Vidur, Frontier and
LLMServingSim validate): `repeats` real runs (serve + load generator, a fresh Serve instance
each) and one simulated run, then a fidelity table with each error beside the real runs' own
run-to-run spread, and a PNG overlaying their timeseries.

DIR/real-1 ... real-N and DIR/sim are ordinary run folders; DIR/fidelity.csv holds one row per
metric: real mean, real spread (sample std; for shares in percentage points), simulated value,
error (relative % for latencies, throughput and completions; percentage points for shares) and
whether it meets the goal (issue 14: |p50| <= 5%, |p99| <= 10%, violation ratio within 1 pp or
the real spread, the same plan in >= 90% of plan epochs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from serving.setup import ServeSetup
from simulator.atomic import check_output_folder
from simulator.results import write_run

SHARE_METRICS = ("slo_violation_ratio", "heavy_share")
GOALS = {  # metric -> (limit, unit) of |error|
    "p50_latency_s": (5.0, "%"),
    "p99_latency_s": (10.0, "%"),
    "slo_violation_ratio": (1.0, "pp"),
}
SAME_PLAN_GOAL = 0.9


def run_metrics(queries: pd.DataFrame, summary: dict, model_names) -> dict:
    """The compared metrics of one run folder's tables."""
    done = queries["outcome"].astype(str) != "drop"
    latency = queries.loc[done, "latency_s"].to_numpy()
    span = queries.loc[done, "completion_s"].max() - queries["arrival_s"].min()
    row = {
        f"p{q}_latency_s": float(np.percentile(latency, q)) if latency.size else np.nan
        for q in (50, 90, 99)
    }
    row["slo_violation_ratio"] = summary["slo_violation_ratio"]
    row["throughput_qps"] = float(done.sum() / span) if done.any() and span > 0 else 0.0
    row["heavy_share"] = summary["heavy_share"]
    final = queries.loc[done, "final_model"].astype(str)
    for name in model_names:
        row[f"completions_{name}"] = int((final == name).sum())
    return row


def same_plan_share(real_ts: pd.DataFrame, sim_ts: pd.DataFrame, plan_interval_s: float) -> float:
    """Share of plan epochs (every plan interval) in which both runs had the same plan in
    force: the same flow (label) and the same workers per model."""
    columns = ["plan"] + [c for c in sim_ts.columns if c.startswith("workers_")]
    n = min(len(real_ts), len(sim_ts))
    epochs = np.arange(0, n, max(1, int(round(plan_interval_s))))
    if not len(epochs):
        return float("nan")
    a = real_ts[columns].iloc[epochs].reset_index(drop=True)
    b = sim_ts[columns].iloc[epochs].reset_index(drop=True)
    return float((a.astype(str) == b.astype(str)).all(axis=1).mean())


def fidelity_table(real: list[dict], sim: dict, same_plan: list[float]) -> pd.DataFrame:
    """One row per metric: real mean and spread, simulated value, error, goal met."""
    rows = []
    for metric in sim:
        values = np.array([r[metric] for r in real], dtype=np.float64)
        mean = float(values.mean())
        spread = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        if metric in SHARE_METRICS:
            error, spread_shown, unit = (sim[metric] - mean) * 100, spread * 100, "pp"
        else:
            error = (
                (sim[metric] - mean) / mean * 100
                if mean
                else (0.0 if not sim[metric] else float("nan"))
            )
            spread_shown, unit = (spread / mean * 100 if mean else float("nan")), "%"
        goal = GOALS.get(metric)
        met = None
        if goal is not None:
            met = bool(abs(error) <= goal[0] or (unit == "pp" and abs(error) <= spread_shown))
        rows.append(
            {
                "metric": metric,
                "real_mean": mean,
                "real_spread": spread_shown,
                "simulated": sim[metric],
                "error": error,
                "unit": unit,
                "goal_met": met,
            }
        )
    share = float(np.mean(same_plan))
    spread = float(np.std(same_plan, ddof=1)) * 100 if len(same_plan) > 1 else float("nan")
    rows.append(
        {
            "metric": "same_plan_share",
            "real_mean": share,
            "real_spread": spread,
            "simulated": 1.0,
            "error": (share - 1.0) * 100,
            "unit": "pp",
            "goal_met": share >= SAME_PLAN_GOAL,
        }
    )
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, title: str) -> str:
    lines = [
        f"## {title}",
        "",
        "| metric | real mean | real spread | simulated | error | goal met |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        met = (
            ""
            if r.goal_met is None or r.goal_met != r.goal_met
            else ("yes" if r.goal_met else "no")
        )
        lines.append(
            f"| {r.metric} | {r.real_mean:.4g} | ±{round(r.real_spread, 6):.3g} {r.unit} | "
            f"{r.simulated:.4g} | {r.error:+.2f} {r.unit} | {met} |"
        )
    return "\n".join(lines) + "\n"


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
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_validation(
    setup: ServeSetup,
    trace_spec: str,
    out_dir: str | Path,
    repeats: int = 3,
    port: int = 8000,
    num_cpus: int | None = None,
    log=print,
) -> pd.DataFrame:
    """The real runs, the simulated run and the fidelity report in `out_dir`."""
    from experiments.inputs import resolve_trace
    from serving.loadgen import run_loadgen
    from serving.server import ServeSession
    from simulator.run import run_simulation

    out = check_output_folder(out_dir, marker="fidelity.csv")
    bundle, _, config = setup.build()
    trace = resolve_trace(trace_spec, bundle, config.seed)
    sim = run_simulation(bundle, trace, setup.policy, config, setup.options)
    write_run(
        out / "sim", sim.queries, sim.timeseries, sim.summary, sim.config, sim.raw.planner_wall_s
    )
    log(
        f"simulated: p50 {sim.summary['p50_latency_s']:.3f} s, violations "
        f"{sim.summary['slo_violation_ratio']:.3f}"
    )
    real_rows, real_ts, same = [], [], []
    for k in range(1, repeats + 1):  # a fresh Ray and Serve each: no state carries over
        with ServeSession(setup, port=port, num_cpus=num_cpus) as session:
            summary = run_loadgen(trace_spec, session.url, out / f"real-{k}")
            session.check()
        queries = pd.read_parquet(out / f"real-{k}" / "queries.parquet")
        ts = pd.read_csv(out / f"real-{k}" / "timeseries.csv")
        real_rows.append(run_metrics(queries, summary, bundle.model_names))
        real_ts.append(ts)
        same.append(same_plan_share(ts, sim.timeseries, config.plan_interval_s))
        log(
            f"real {k}: p50 {summary['p50_latency_s']:.3f} s, violations "
            f"{summary['slo_violation_ratio']:.3f}, failed {summary['failed']}, swaps "
            f"{summary['swap_s']}"
        )
    table = fidelity_table(
        real_rows, run_metrics(sim.queries, sim.summary, bundle.model_names), same
    )
    title = (
        f"{setup.policy} on {setup.bundle}, trace {trace_spec}, {config.n_workers} "
        f"workers, time scale {config.time_scale:g}, {repeats} real runs"
    )
    table.to_csv(out / "fidelity.csv", index=False, float_format="%.6g")
    (out / "fidelity.md").write_text(markdown(table, title))
    plot_overlay(real_ts, sim.timeseries, out / "timeseries.png", title)
    return table
