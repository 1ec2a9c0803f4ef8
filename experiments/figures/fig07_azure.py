"""HADIS Fig. 7: end-to-end comparison on the Azure-shaped trace (§5.2).

The trace is `AZURE_TRACE`, the artifact's 1 -> 24 QPS replay (347 hours, one hour per second).
Quick mode runs the same trace: the five runs take about 5 s on the default bundle, and the
runs are shared (cached in the context) with Figs. 9 and 10 and the §5.8 table.

Data (long format, also used by Fig. 10 through `comparison_frame`):

* ``kind == "timeseries"``: one row per method and trace second; ``demand_qps`` = arrivals in
  that second, ``fid`` = the realised FID of the plans in force and ``slo_violation_ratio`` =
  (timeouts + drops) / arrivals, both over a trailing `WINDOW_S`-second window;
* ``kind == "seed"``: one row per method and seed (`seeds.seeds_of`; ``second`` empty): the
  run's summary FID and SLO-violation ratio over every query of the trace;
* ``kind == "average"``: one row per method: the mean over the seeds and the half-width of its
  95% confidence interval (``fid_ci95``, ``slo_violation_ratio_ci95``);
  ``infeasible_plan_share`` is the share of the run during which the policy's planner found no
  plan meeting the SLO at the estimated demand (an overloaded method; 0/1 per second in the
  timeseries rows).

The timeseries are the runs with the context's seed (the first seed of the set).

Claims are judged by the rules of `verdicts` on the seed rows: FID reductions by paired
differences, violation-reduction factors by a bootstrap over seeds, levels by t-intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import seeds, style
from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "fig07"
TITLE = "Azure trace: demand, FID and SLO violations over time, and their averages"
AZURE_TRACE = "azure:peak=24,min=1"
METHODS = ("clipper-light", "clipper-heavy", "proteus", "diffserve", "hadis")
WINDOW_S = 10  # trailing window of the FID and violation timeseries, trace seconds
SEED_KEYS = ("fid", "slo_violation_ratio", "infeasible_plan_share")
COLUMNS = [
    "kind",
    "method",
    "seed",
    "n_seeds",
    "second",
    "demand_qps",
    "fid",
    "fid_ci95",
    "slo_violation_ratio",
    "slo_violation_ratio_ci95",
    "infeasible_plan_share",
    "infeasible_plan_share_ci95",
    "fid_method",
]
PAPER_FID_REDUCTION = (0.07, 0.23)  # HADIS's FID vs every baseline but Clipper-Heavy
PAPER_VIOLATION_FACTORS = (("diffserve", 2.7), ("proteus", 4.2), ("clipper-heavy", 45.0))
PAPER_VIOLATIONS = (("clipper-heavy", 0.77), ("proteus", 0.07), ("clipper-light", 0.0))


# ----------------------------------------------------------------------------- data


def comparison_frame(ctx: FigureContext, methods: Sequence[str]) -> pd.DataFrame:
    """Timeseries, per-seed and average rows (see the module doc) of `methods` on AZURE_TRACE."""
    frames = []
    for method in methods:
        ts = ctx.run(method, AZURE_TRACE).timeseries
        violations = (ts["timeouts"] + ts["drops"]).rolling(WINDOW_S, min_periods=1).sum()
        arrivals = ts["arrivals"].rolling(WINDOW_S, min_periods=1).sum()
        frames.append(
            pd.DataFrame(
                {
                    "kind": "timeseries",
                    "method": method,
                    "seed": ctx.seed,
                    "second": ts["second"].astype(float),
                    "demand_qps": ts["arrivals"].astype(float),
                    "fid": ts["realised_fid"].rolling(WINDOW_S, min_periods=1).mean(),
                    "slo_violation_ratio": np.where(
                        arrivals > 0, violations / arrivals.clip(lower=1), 0.0
                    ),
                    "infeasible_plan_share": ts["infeasible"].astype(float),
                }
            )
        )
    per_seed = seeds.seed_rows(ctx, AZURE_TRACE, methods, (*SEED_KEYS, "fid_method"))
    frames.append(per_seed.assign(kind="seed"))
    frames.append(seeds.mean_rows(per_seed, SEED_KEYS).assign(kind="average"))
    return pd.concat(frames, ignore_index=True).reindex(columns=COLUMNS)


def seed_data(data: pd.DataFrame) -> pd.DataFrame:
    """The ``seed`` rows (method, seed, metrics)."""
    return data[data["kind"] == "seed"]


def averages(data: pd.DataFrame) -> pd.DataFrame:
    """The ``average`` rows indexed by method."""
    return data[data["kind"] == "average"].set_index("method")


def compute(ctx: FigureContext) -> pd.DataFrame:
    return comparison_frame(ctx, METHODS)


# ----------------------------------------------------------------------------- plot


def short_number(value: float) -> str:
    """One decimal, two significant digits below 1 (so a small nonzero bar never reads 0.0)."""
    return f"{value:.2g}" if 0 < abs(value) < 1 else f"{value:.1f}"


def annotate_bars(ax, bars, values: Sequence[float]) -> None:
    for bar, value in zip(bars, values):
        ax.annotate(
            short_number(value),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 1.5),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=6,
        )


ERR_KW = {"error_kw": {"elinewidth": 0.8, "capsize": 1.5, "ecolor": "0.2"}}


def ci95(avg: pd.DataFrame, methods: Sequence[str], key: str) -> np.ndarray | None:
    """The 95% CI half-widths of `key` (error bars), None when the data has none."""
    column = f"{key}_ci95"
    if column not in avg.columns:
        return None
    return avg.loc[methods, column].fillna(0.0).to_numpy(dtype=float)


def plot_averages(ax_fid, ax_violations, avg: pd.DataFrame) -> None:
    """Bar panels of average FID and SLO-violation ratio (%) per method, values on the bars
    (95% CI error bars when `avg` has ``<key>_ci95`` columns)."""
    methods = style.ordered(avg.index)
    colors = [style.METHOD_COLORS.get(m, "0.5") for m in methods]
    x = np.arange(len(methods))
    fid = avg.loc[methods, "fid"].to_numpy(dtype=float)
    bars = ax_fid.bar(x, fid, color=colors, width=0.7, yerr=ci95(avg, methods, "fid"), **ERR_KW)
    annotate_bars(ax_fid, bars, fid)
    low = np.nanmin(fid)
    ax_fid.set_ylim(max(0.0, low - 0.25 * (np.nanmax(fid) - low) - 2), np.nanmax(fid) * 1.06)
    ax_fid.set_ylabel("avg. FID ↓")
    violations = 100 * avg.loc[methods, "slo_violation_ratio"].to_numpy(dtype=float)
    yerr = ci95(avg, methods, "slo_violation_ratio")
    bars = ax_violations.bar(
        x, violations, color=colors, width=0.7, yerr=None if yerr is None else 100 * yerr, **ERR_KW
    )
    annotate_bars(ax_violations, bars, violations)
    ax_violations.set_ylim(0, max(1.0, violations.max()) * 1.15)
    ax_violations.set_ylabel("avg. SLO viol. (%) ↓")
    for ax in (ax_fid, ax_violations):
        ax.set_xticks(x, [style.METHOD_LABELS.get(m, m) for m in methods], rotation=35, ha="right")
        ax.grid(axis="x", visible=False)


def plot_comparison(data: pd.DataFrame, ax=None) -> Figure:
    """Demand, FID and violations over time (left column) and their averages (right; the
    top right panel holds the legend): 3 x 2 axes."""
    ts = data[data["kind"] == "timeseries"]
    methods = style.ordered(ts["method"].unique())
    fig, axes = style.figure_axes(
        ax,
        3,
        2,
        width_in=2 * style.COLUMN_IN,
        height_in=4.6,
        sharex="col",
        gridspec_kw={"width_ratios": [2.4, 1]},
    )
    demand = ts[ts["method"] == methods[0]]
    axes[0, 0].plot(demand["second"], demand["demand_qps"], color="0.55", lw=0.6)
    axes[0, 0].plot(
        demand["second"],
        demand["demand_qps"].rolling(WINDOW_S, min_periods=1).mean(),
        color="k",
        lw=1.0,
    )
    axes[0, 0].set_ylabel("demand (QPS)")
    for method in methods:
        rows = ts[ts["method"] == method]
        style_kw = {
            "color": style.METHOD_COLORS.get(method, "0.5"),
            "label": style.METHOD_LABELS.get(method, method),
            "lw": 1.4 if method == "hadis" else 0.9,
            "zorder": 3 if method == "hadis" else 2,
        }
        axes[1, 0].plot(rows["second"], rows["fid"], **style_kw)
        axes[2, 0].plot(rows["second"], 100 * rows["slo_violation_ratio"], **style_kw)
    axes[1, 0].set_ylabel(f"FID ({WINDOW_S} s avg.) ↓")
    axes[2, 0].set_ylabel(f"SLO viol. (%, {WINDOW_S} s) ↓")
    axes[2, 0].set_ylim(-2, 102)
    axes[2, 0].set_xlabel("time (s; one trace hour per second)")
    for ax in axes[:, 0]:
        ax.set_xlim(0, ts["second"].max())
    handles, labels = axes[1, 0].get_legend_handles_labels()
    axes[0, 1].axis("off")
    axes[0, 1].legend(handles, labels, loc="center", ncol=1, handlelength=1.6)
    plot_averages(axes[1, 1], axes[2, 1], averages(data))
    for ax in (axes[0, 0], axes[1, 0], axes[1, 1]):
        ax.tick_params(labelbottom=False)
    return fig


plot = plot_comparison


# ----------------------------------------------------------------------------- claims


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def pm(mean: float, ci: float, fmt=pct) -> str:
    """mean ± 95% CI half-width."""
    return f"{fmt(mean)} ± {fmt(ci)}"


def violation_pm(avg: pd.DataFrame, method: str) -> str:
    return pm(avg.at[method, "slo_violation_ratio"], avg.at[method, "slo_violation_ratio_ci95"])


def overload_note(avg: pd.DataFrame, methods: Sequence[str]) -> str:
    """How long each method ran without a feasible plan (overloaded: it serves what it can)."""
    shares = ", ".join(
        f"{style.METHOD_LABELS[m]} {pct(avg.at[m, 'infeasible_plan_share'])}" for m in methods
    )
    return f"time without a feasible plan: {shares}"


def seeds_note(data: pd.DataFrame) -> str:
    n = int(averages(data)["n_seeds"].min())
    return f"[ ]: 95% interval over {n} seeds; ±: 95% CI half-width"


def method_values(per_seed: pd.DataFrame, metric: str, method: str) -> np.ndarray:
    """metric of one method per seed, in seed order."""
    rows = per_seed[per_seed["method"] == method].sort_values("seed")
    return rows[metric].to_numpy(dtype=float)


def fid_reduction_claim(data: pd.DataFrame, figure: str, baselines: Sequence[str]) -> Claim:
    """HADIS's relative FID reduction vs each of `baselines` (paired difference over seeds,
    divided by the baseline's mean FID) against the paper's 7–23% range, for every baseline."""
    avg, per_seed = averages(data), seed_data(data)
    band = v.Band.proportion(*PAPER_FID_REDUCTION)
    estimator, error = v.fid_estimator_error(per_seed["fid_method"])
    parts, shown = [], []
    for b in baselines:
        reduction = seeds.paired_estimate(per_seed, "fid", "hadis", b).scaled(-1 / avg.at[b, "fid"])
        relative_error = error / avg.at[b, "fid"]
        parts.append(v.difference_verdict(reduction, v.HIGHER, v.FID_TIE_REL, band, relative_error))
        shown.append(f"{style.METHOD_LABELS[b]} {reduction.text(pct)}")
    return Claim(
        figure,
        "HADIS FID lower than every baseline except Clipper-Heavy",
        f"{pct(PAPER_FID_REDUCTION[0])}–{pct(PAPER_FID_REDUCTION[1])} lower",
        ", ".join(shown),
        v.all_of(parts),
        f"every reduction (paired over seeds, / the baseline's mean FID) beyond the "
        f"{pct(v.FID_TIE_REL)} tie with its interval above 0, magnitude band {band.text()}; "
        f"{v.fid_error_note(estimator, error)}; FID of the completed queries (drops return no "
        f"image); "
        f"{overload_note(avg, [*baselines, 'hadis'])}; {seeds_note(data)}",
    )


def violation_factor_claim(data: pd.DataFrame, baseline: str, paper_factor: float) -> Claim:
    """'HADIS has paper_factor× fewer SLO violations than baseline': the ratio of the mean
    violation ratios with a bootstrap interval over seeds."""
    avg, per_seed = averages(data), seed_data(data)
    base, hadis = seeds.paired_values(per_seed, "slo_violation_ratio", baseline, "hadis")
    ratio = v.bootstrap_ratio(base, hadis)
    band = v.Band.factor(paper_factor)
    return Claim(
        NAME,
        f"SLO violations reduced vs {style.METHOD_LABELS[baseline]}",
        f"{paper_factor:g}×",
        f"{ratio.text(lambda x: f'{x:.2g}×')} ({violation_pm(avg, baseline)} vs HADIS "
        f"{violation_pm(avg, 'hadis')})",
        v.ratio_verdict(ratio, band, float(base.mean() - hadis.mean()), v.RATE_TIE),
        f"ratio of seed means, {v.BOOTSTRAP_RESAMPLES} bootstrap resamples of the seeds; band "
        f"{band.text(pct=False)}; an unbounded interval (a resample where HADIS has no "
        f"violations) cannot be reproduced; tie: means within {100 * v.RATE_TIE:g} pp; "
        f"{seeds_note(data)}",
    )


def violation_level_claim(data: pd.DataFrame, method: str, paper: float) -> Claim:
    """'method's average SLO violations ≈ paper': the seed mean's interval in the band."""
    est = v.t_interval(method_values(seed_data(data), "slo_violation_ratio", method))
    band = v.Band.proportion(paper)
    return Claim(
        NAME,
        f"{style.METHOD_LABELS[method]} average SLO violations",
        f"≈{pct(paper)}" if paper else "0",
        est.text(pct),
        v.level_verdict(est, band),
        f"the interval of the seed mean inside {band.text()} (± {100 * v.PROPORTION_PP:g} "
        f"pp); {seeds_note(data)}",
    )


def claims(data: pd.DataFrame) -> list[Claim]:
    return [
        fid_reduction_claim(data, NAME, ("clipper-light", "proteus", "diffserve")),
        *(violation_factor_claim(data, b, f) for b, f in PAPER_VIOLATION_FACTORS),
        *(violation_level_claim(data, m, p) for m, p in PAPER_VIOLATIONS),
    ]
