"""Fig. 2's three-model cascades run in the simulator (not a paper figure): the table-based
three-model frontier of fig02 next to the same configurations served as static three-stage
cascades.

Configurations: the points of fig02's three-model frontier (its grid, `fig02_frontier`) on
which the third stage is reached through the second (both discriminator ratios strictly
between 0 and 1, every stage the final model of some prompts), `N_CONFIGS` of them (quick:
`N_CONFIGS_QUICK`) evenly spread in latency order. Each runs as `static-cascade`
(`models=A,B,C`, `router_ratio`, `disc_ratios=c1/c2`; the policy's own worker split and batch
sizes) on a Poisson trace of `QUERIES` queries (quick: `QUERIES_QUICK`) at `LOAD` × the batch-1
capacity of its busiest stage (a load the cluster serves), on the replicates of
`seeds.replicate_contexts` (seed s_i on the default bundle's replicate r_i, paired as
`seeds.seed_rows` pairs them). The runs go through `FigureContext.run`, not a sweep store: the
per-stage shares need each run's queries, which a store row does not keep. The table values are
recomputed on each replicate's bundle, so the paired per-replicate difference (simulated −
table) holds what the simulator adds, not the model's uncertainty.

Per configuration, table / simulated: the share of queries that run on each stage (table: of
all the bundle's prompts; simulated: of the completed queries), FID (table: the generative
model's FID of the routing, `routing_fid`; simulated: the run's `fid`, the bundle's estimator)
and latency (table: fig02's expected latency at batch 1; simulated: mean end-to-end latency,
and p99); each difference with its 95% Student-t interval over replicates.

Agreement rule (fixed before the runs): the simulated frontier agrees with the table's when,
for every configuration, the 95% interval of the FID difference lies within ± the FID
estimator's out-of-sample error (exact: 0.095 FID, `simulator/data/fid_estimator_error.json`)
and the simulated configurations stay mutually non-dominated in (mean latency, FID); it differs
when an interval lies wholly outside that band or a configuration is dominated; otherwise it is
undecided (`fid_agreement` per configuration, `verdicts.level_verdict`'s rule). By
construction: the simulator routes with the same scores through the same rules
(`simulator/core.py`, which fig02's `hybrid_assignment` and `quality_threshold` also use) and
scores FID with the same generative model, so stage shares and FID can differ only through the
trace's prompt sample and dropped queries; their agreement checks that the simulator runs the
third stage, not the tables. The latencies are the simulator's own (queues, batching, router
and discriminator costs).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import fig02_frontier as frontier
from experiments.figures import seeds, style
from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext
from simulator.bundle import Bundle
from simulator.default_bundle import generative_model
from simulator.run import build_policy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "fig02b"
TITLE = "Three-model cascades of Fig. 2: table-based frontier vs the simulated three-stage cascade"
POLICY = "static-cascade"
N_CONFIGS, N_CONFIGS_QUICK = 6, 3
QUERIES, QUERIES_QUICK = 10_000, 2000
LOAD = 0.3  # arrival rate / batch-1 capacity of the configuration's busiest stage
MIN_RATE_QPS = 0.001  # the rate is rounded to 3 decimals (a plain decimal in the trace spec)
AGREE, DIFFER, UNDECIDED = "agree", "differ", "undecided"  # the agreement rule's outcomes
STAGES = ("stage1_share", "stage2_share", "stage3_share")
METRICS = (*STAGES, "fid", "latency_s")  # table and simulated, with their paired difference
CONFIG_COLUMNS = ("config", "cascade", "router_ratio", "disc_ratio", "disc_ratio_2")
COLUMNS = [
    *CONFIG_COLUMNS,
    "rate_qps",
    "arrivals",
    "n_seeds",
    "fid_method",
    *(f"{m}_{part}" for m in METRICS for part in ("table", "sim", "diff", "diff_ci95")),
    "p99_latency_s_sim",
    "p99_latency_s_sim_ci95",
    "slo_violation_ratio_sim",
    "fid_agreement",
]
NOT_COMPARABLE_NOTE = (
    "no three-model configuration to simulate: three-model FIDs need the default bundle's "
    "generative model"
)


def frontier_configurations(ctx: FigureContext, model: tuple[dict, dict]) -> pd.DataFrame:
    """fig02's three-model frontier points whose third stage is reached through the second
    (see the module docstring), evenly spread in latency order; `config` numbers them."""
    table = frontier.three_model_table(ctx.bundle, *model, frontier.RATIO_STEP[ctx.quick])
    table = table[frontier.frontier_mask(table["latency_s"].to_numpy(), table["fid"].to_numpy())]
    judged = table[["disc_ratio", "disc_ratio_2"]]
    table = table[((judged > 0) & (judged < 1)).all(axis=1)].sort_values("latency_s")
    table = table[[_every_stage_serves(ctx.bundle, model, row) for row in table.itertuples()]]
    n = min(N_CONFIGS_QUICK if ctx.quick else N_CONFIGS, len(table))
    picked = table.iloc[np.unique(np.round(np.linspace(0, len(table) - 1, n)).astype(int))]
    return picked.assign(config=np.arange(1, len(picked) + 1)).reset_index(drop=True)


def _every_stage_serves(bundle: Bundle, model: tuple[dict, dict], row) -> bool:
    """Whether each stage is the final model of some prompts and some reach the third stage
    from the second (not only by the router's bypass)."""
    s1, s2, s3 = (_table_point(bundle, model, row)[s] for s in STAGES)
    from_second = s3 - (1.0 - s1)  # the third stage's share less the bypassed prompts
    return s1 - s2 > 0 and s2 - from_second > 0 and from_second > 0


def _stage_indices(bundle: Bundle, cascade: str) -> tuple[int, int, int]:
    names = list(bundle.model_names)
    return tuple(names.index(m) for m in cascade.split(" → "))


def _table_point(bundle: Bundle, model: tuple[dict, dict], row) -> dict[str, float]:
    ratios = (row.router_ratio, row.disc_ratio, row.disc_ratio_2)
    return frontier.three_model_point(bundle, *model, _stage_indices(bundle, row.cascade), ratios)


def policy_options(row) -> dict[str, object]:
    """The `static-cascade` options of a configuration."""
    return {
        "models": ",".join(row.cascade.split(" → ")),
        "router_ratio": float(row.router_ratio),
        "disc_ratios": f"{row.disc_ratio:g}/{row.disc_ratio_2:g}",
    }


def arrival_rate_qps(ctx: FigureContext, row, shares: dict[str, float]) -> float:
    """`LOAD` × the batch-1 capacity of the busiest stage: the policy's workers on a stage over
    the GPU-seconds per query it serves there (share of queries × batch-1 latency)."""
    config = replace(ctx.base, seed=ctx.seed)
    policy = build_policy(ctx.bundle, "static-cascade", config, policy_options(row))
    workers = policy.plan(None).workers  # a static plan: no observation
    latency = frontier.batch1_latency_s(ctx.bundle)
    capacity = [
        workers[ctx.bundle.model_names[m]] / (shares[stage] * latency[m])
        for stage, m in zip(STAGES, _stage_indices(ctx.bundle, row.cascade))
        if shares[stage] > 0
    ]
    return max(round(LOAD * min(capacity), 3), MIN_RATE_QPS)


def simulated_point(at: FigureContext, row, trace_spec: str) -> dict[str, object]:
    """The realised stage shares (of completed queries), FID, latencies and violations of one
    configuration run as a static three-stage cascade."""
    out = at.run(POLICY, trace_spec, policy_options(row))
    queries = out.queries[out.queries["outcome"] != "drop"]
    first, _, last = row.cascade.split(" → ")
    on_first = (queries["first_model"] == first).to_numpy()
    summary = out.summary
    return {
        "stage1_share": float(on_first.mean()),
        "stage2_share": float((on_first & queries["escalated"].to_numpy()).mean()),
        "stage3_share": float((queries["final_model"] == last).mean()),
        "fid": summary["fid"],
        "latency_s": summary["mean_latency_s"],
        "p99_latency_s": summary["p99_latency_s"],
        "slo_violation_ratio": summary["slo_violation_ratio"],
        "arrivals": summary["arrivals"],
        "fid_method": summary["fid_method"],
    }


def compute(ctx: FigureContext) -> pd.DataFrame:
    model = generative_model(ctx.bundle)
    if model is None:
        return pd.DataFrame(columns=COLUMNS)
    configs = frontier_configurations(ctx, model)
    replicas = seeds.replicate_contexts(ctx)
    models = [generative_model(at.bundle) for at in replicas]
    rows = []
    for row in configs.itertuples():
        nominal = _table_point(ctx.bundle, model, row)
        rate = arrival_rate_qps(ctx, row, nominal)
        queries = QUERIES_QUICK if ctx.quick else QUERIES
        trace_spec = f"poisson:rate={rate:g},duration={math.ceil(queries / rate)}"
        table, sim = [], []
        for at, at_model in zip(replicas, models):
            table.append(_table_point(at.bundle, at_model, row))
            sim.append(simulated_point(at, row, trace_spec))
        rows.append(_configuration_row(row, rate, table, sim))
    return pd.DataFrame(rows, columns=COLUMNS)


def _configuration_row(row, rate: float, table: list[dict], sim: list[dict]) -> dict:
    """Means over replicates and the paired differences (simulated − table) with their 95%
    interval half-widths; `fid_agreement` by the module's rule."""
    out = {c: getattr(row, c) for c in CONFIG_COLUMNS}
    estimator, error = v.fid_estimator_error(s["fid_method"] for s in sim)
    out.update(
        rate_qps=rate,
        arrivals=float(np.mean([s["arrivals"] for s in sim])),
        n_seeds=len(sim),
        fid_method=estimator,
    )
    for metric in METRICS:
        t = np.array([p[metric] for p in table], dtype=np.float64)
        s = np.array([p[metric] for p in sim], dtype=np.float64)
        diff = v.paired_difference(s, t)
        out.update(
            {
                f"{metric}_table": float(t.mean()),
                f"{metric}_sim": float(s.mean()),
                f"{metric}_diff": diff.value,
                f"{metric}_diff_ci95": diff.half_width,
            }
        )
    p99 = np.array([s["p99_latency_s"] for s in sim], dtype=np.float64)
    out.update(
        p99_latency_s_sim=float(p99.mean()),
        p99_latency_s_sim_ci95=seeds.ci_half_width(p99),
        slo_violation_ratio_sim=float(np.mean([s["slo_violation_ratio"] for s in sim])),
        fid_agreement=fid_agreement(out["fid_diff"], out["fid_diff_ci95"], error),
    )
    return out


def fid_agreement(diff: float, half_width: float, error: float) -> str:
    """The rule per configuration, `verdicts.level_verdict` with the band ± `error`: the FID
    difference's 95% interval inside the band: AGREE; wholly outside it: DIFFER; across an edge
    (or unbounded, undefined): UNDECIDED."""
    est = v.Estimate(diff, diff - half_width, diff + half_width)
    verdict = v.level_verdict(est, v.Band(-error, error))
    return {v.REPRODUCED: AGREE, v.NOT_REPRODUCED: DIFFER}.get(verdict, UNDECIDED)


def frontier_agreement(data: pd.DataFrame) -> tuple[str, str]:
    """(AGREE, DIFFER or UNDECIDED, why) for the simulated frontier against the table's: DIFFER
    when a configuration's FID differs or a simulated configuration is dominated, AGREE when
    every FID agrees, else UNDECIDED."""
    front = frontier.frontier_mask(
        data["latency_s_sim"].to_numpy(dtype=float), data["fid_sim"].to_numpy(dtype=float)
    )
    by = data.groupby("fid_agreement", sort=False)["config"]
    configs = {k: ", ".join(str(c) for c in rows) for k, rows in by}
    reasons = []
    if DIFFER in configs:
        reasons.append(
            f"FID differs beyond the estimator's error at configuration(s) {configs[DIFFER]}"
        )
    if not front.all():
        dominated = ", ".join(str(c) for c in data.loc[~front, "config"])
        reasons.append(f"dominated in simulation: configuration(s) {dominated}")
    if reasons:
        return DIFFER, "; ".join(reasons)
    if UNDECIDED in configs:
        return UNDECIDED, (
            f"the FID difference's interval reaches past the estimator's error at "
            f"configuration(s) {configs[UNDECIDED]}: these replicates cannot resolve it; no "
            "simulated configuration dominates another"
        )
    return AGREE, (
        "every FID difference's interval lies within the estimator's error and no simulated "
        "configuration dominates another"
    )


def claims(data: pd.DataFrame) -> list[Claim]:
    return []  # a check of the simulator against fig02's tables, not a paper claim


def report_lines(data: pd.DataFrame) -> list[str]:
    """The table vs simulated values per configuration and the agreement statement."""
    if data.empty:
        return [f"Not comparable: {NOT_COMPARABLE_NOTE}."]
    _, error = v.fid_estimator_error(data["fid_method"])

    def shares(row, part: str) -> str:
        return " / ".join(f"{getattr(row, f'{s}_{part}'):.3f}" for s in STAGES)

    def diff(row, metric: str, fmt: str) -> str:
        value, half = getattr(row, f"{metric}_diff"), getattr(row, f"{metric}_diff_ci95")
        return f"{value:+{fmt}} ± {half:{fmt}}"

    lines = [
        "| # | cascade (r, c1, c2) | rate (q/s) | stage shares: table → simulated | "
        "FID table → simulated | Δ FID | expected latency (s) → mean, p99 (s) | "
        "Δ max stage share | violations | FID |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in data.itertuples():
        worst = max(abs(getattr(row, f"{s}_diff")) for s in STAGES)
        lines.append(
            f"| {row.config} | {row.cascade} ({row.router_ratio:g}, {row.disc_ratio:g}, "
            f"{row.disc_ratio_2:g}) | {row.rate_qps:g} | {shares(row, 'table')} → "
            f"{shares(row, 'sim')} | {row.fid_table:.3f} → {row.fid_sim:.3f} | "
            f"{diff(row, 'fid', '.3f')} | {row.latency_s_table:.2f} → {row.latency_s_sim:.2f}, "
            f"{row.p99_latency_s_sim:.1f} | {worst:.3f} | {row.slo_violation_ratio_sim:.2%} | "
            f"{row.fid_agreement} |"
        )
    agreement, why = frontier_agreement(data)
    n_seeds = int(data["n_seeds"].min())
    lines += [
        "",
        f"Means over {n_seeds} replicates; Δ = simulated − table, ± its 95% interval over the "
        "replicates (paired: the table recomputed on each replicate's bundle). Stage shares: "
        "queries that run on stage 1 / 2 / 3.",
        "",
        f"**Table-based vs simulated three-model frontier: {agreement}** ({why}). Rule, fixed "
        f"before the runs: agree when every configuration's FID difference interval lies "
        f"within ± {error:.3f} FID (the {data['fid_method'].iloc[0]} estimator's out-of-sample "
        "error, simulator/data/fid_estimator_error.json) and the simulated configurations stay "
        "mutually non-dominated in (mean latency, FID); differ when an interval lies wholly "
        "outside that band or a configuration is dominated; undecided otherwise (an interval "
        "across the band's edge: more replicates or longer traces needed).",
        "",
        "True by construction: the simulator routes with the same scores through the same "
        "rules (simulator/core.py) and scores FID with the same generative model as the "
        "table, so stage shares and FID can differ only through the trace's prompt sample "
        "and dropped queries; their agreement shows the simulator runs the third stage, not "
        "that the tables are right. The latencies are the simulator's own: the table's "
        "expected batch-1 latency leaves out queueing, batching and the router and "
        "discriminator costs.",
    ]
    return lines


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """Frontier in (latency, FID), FID difference and stage-share differences per
    configuration: 1 x 3 axes."""
    fig, axes = style.figure_axes(ax, 1, 3, width_in=2 * style.COLUMN_IN, height_in=2.3)
    front, fid_ax, share_ax = axes[0]
    if data.empty:
        for panel in axes[0]:
            panel.text(
                0.5,
                0.5,
                NOT_COMPARABLE_NOTE,
                ha="center",
                va="center",
                fontsize=6,
                wrap=True,
                transform=panel.transAxes,
            )
        return fig
    rows = data.sort_values("latency_s_table")
    front.plot(
        rows["latency_s_table"],
        rows["fid_table"],
        "o-",
        color="tab:blue",
        mfc="none",
        label="table (expected, batch 1)",
    )
    front.plot(
        rows["latency_s_sim"],
        rows["fid_sim"],
        "s-",
        color="tab:red",
        ms=3,
        label="simulated (mean)",
    )
    front.plot(
        rows["p99_latency_s_sim"],
        rows["fid_sim"],
        "x",
        color="tab:red",
        alpha=0.5,
        label="simulated p99",
    )
    for row in rows.itertuples():
        front.annotate(
            str(row.config),
            (row.latency_s_table, row.fid_table),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    front.set(xlabel="latency (s)", ylabel="FID", title="three-model frontier")
    front.legend(loc="center right")
    _, error = v.fid_estimator_error(data["fid_method"])
    x = data["config"].to_numpy()
    fid_ax.axhspan(-error, error, color="0.9", label=f"± estimator error {error:.3f}")
    fid_ax.errorbar(
        x, data["fid_diff"], yerr=data["fid_diff_ci95"], fmt="o", color="tab:red", capsize=2
    )
    fid_ax.axhline(0.0, color="0.4", lw=0.6)
    fid_ax.set(xticks=x, xlabel="configuration", ylabel="Δ FID (simulated − table)", title="FID")
    fid_ax.legend(loc="upper right")
    for k, (stage, color) in enumerate(zip(STAGES, ("tab:green", "tab:orange", "tab:purple"))):
        share_ax.errorbar(
            x + (k - 1) * 0.15,
            data[f"{stage}_diff"],
            yerr=data[f"{stage}_diff_ci95"],
            fmt="o",
            ms=3,
            capsize=1.5,
            color=color,
            label=f"stage {k + 1}",
        )
    share_ax.axhline(0.0, color="0.4", lw=0.6)
    share_ax.set(
        xticks=x, xlabel="configuration", ylabel="Δ share (simulated − table)", title="stage shares"
    )
    low, high = share_ax.get_ylim()
    share_ax.set_ylim(low - 0.35 * (high - low), high)  # room for the legend below the data
    share_ax.legend(loc="lower center", ncols=3, handletextpad=0.2, columnspacing=0.8)
    return fig
