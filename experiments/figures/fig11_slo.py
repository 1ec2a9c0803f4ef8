"""HADIS Fig. 11: sensitivity to the latency SLO (§5.6): SLO multiplier 0.25x-1.75x of the base
SLO (60 s) x every method on the Azure trace, average FID and SLO-violation ratio.

Runs through `seeds.seed_rows` (store ``sweeps/fig11``, resumable) on the seeds of
`seeds.seeds_of`; quick mode runs the multipliers 0.5, 1.0 and 1.5 only. Data: ``kind == "seed"``
rows (method, multiplier, seed; `KEYS`) and ``kind == "average"`` rows (means over seeds and
95% CI half-widths ``<key>_ci95``; ``infeasible_plan_share``: the share of the run without a plan
that meets the SLO). Claims compare methods by paired per-seed differences at each multiplier
(rules of `verdicts`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.figures import fig07_azure as azure
from experiments.figures import seeds, style
from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "fig11"
TITLE = "SLO sensitivity: average FID and SLO violations vs SLO multiplier, all methods"
METHODS = ("clipper-light", "clipper-heavy", "proteus", "diffserve", "hadis")
MULTIPLIERS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
QUICK_MULTIPLIERS = (0.5, 1.0, 1.5)
TIGHT_MAX = 0.75  # "tight budgets" of §5.6: multipliers 0.25-0.75
LOW_VIOLATIONS = v.Band.at_most(0.05)  # what we take as the paper's "low SLO violations"
NEAR_ZERO = v.Band.proportion(0.0)  # "≈0" violations: the paper's 0 ± 3 pp
KEYS = ("fid", "slo_violation_ratio", "heavy_share", "infeasible_plan_share")
COLUMNS = [
    "kind",
    "method",
    "slo_multiplier",
    "slo_s",
    "seed",
    "n_seeds",
    *KEYS,
    *(f"{k}_ci95" for k in KEYS),
    "fid_method",
]


def compute(ctx: FigureContext) -> pd.DataFrame:
    multipliers = QUICK_MULTIPLIERS if ctx.quick else MULTIPLIERS
    per_seed = seeds.seed_rows(
        ctx,
        azure.AZURE_TRACE,
        METHODS,
        (*KEYS, "fid_method"),
        store=NAME,
        axes={"slo_multiplier": multipliers},
    )
    means = [
        seeds.mean_rows(rows, KEYS).assign(slo_multiplier=m)
        for m, rows in per_seed.groupby("slo_multiplier", sort=True)
    ]
    data = pd.concat(
        [per_seed.assign(kind="seed"), *(m.assign(kind="average") for m in means)],
        ignore_index=True,
    )
    data["slo_s"] = ctx.base.slo_s * data["slo_multiplier"]
    rank = {m: i for i, m in enumerate(METHODS)}
    order = np.lexsort(
        (
            data["seed"].fillna(-1).to_numpy(),
            data["slo_multiplier"].to_numpy(),
            data["method"].map(rank).to_numpy(),
            (data["kind"] == "average").to_numpy(),
        )
    )
    return data.iloc[order].reset_index(drop=True).reindex(columns=COLUMNS)


def averages(data: pd.DataFrame) -> pd.DataFrame:
    return data[data["kind"] == "average"]


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """Average FID (first axes) and SLO violations (second) per SLO multiplier: 1 x 2 axes."""
    fig, axes = style.figure_axes(ax, 1, 2, width_in=2 * style.COLUMN_IN, height_in=2.3)
    avg = averages(data)
    for method in style.ordered(avg["method"].unique()):
        rows = avg[avg["method"] == method]
        kw = style.method_line(method)
        axes[0, 0].plot(rows["slo_multiplier"], rows["fid"], **kw)
        axes[0, 1].plot(rows["slo_multiplier"], 100 * rows["slo_violation_ratio"], **kw)
    base_s = (data["slo_s"] / data["slo_multiplier"]).iloc[0]
    for ax in axes[0]:
        ax.set_xlabel(f"SLO multiplier (× {base_s:g} s)")
        ax.set_xticks(sorted(data["slo_multiplier"].unique()))
    axes[0, 0].set_ylabel("avg. FID ↓")
    axes[0, 1].set_ylabel("avg. SLO violations (%) ↓")
    axes[0, 1].set_ylim(-3, 103)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels))
    return fig


def at_multiplier(data: pd.DataFrame, multiplier: float) -> pd.DataFrame:
    """The seed rows of one multiplier."""
    return data[(data["kind"] == "seed") & (data["slo_multiplier"] == multiplier)]


def fid_gain_claim(data: pd.DataFrame, baseline: str, paper: float) -> Claim:
    """HADIS's largest FID reduction over `baseline` at tight SLOs vs the paper's 'up to': the
    reduction at the tight multiplier with the largest mean reduction, with its interval."""
    label = style.METHOD_LABELS[baseline]
    claim = f"HADIS FID lower than {label} under tight SLOs (≤ {TIGHT_MAX:g}×)"
    tight = sorted(m for m in averages(data)["slo_multiplier"].unique() if m <= TIGHT_MAX)
    if not tight:
        return Claim(NAME, claim, f"up to {paper:.0%}", "no tight multiplier run", v.NOT_COMPARABLE)
    gains, base_fids = {}, {}
    for m in tight:
        rows = at_multiplier(data, m)
        base_fids[m] = rows.loc[rows["method"] == baseline, "fid"].mean()
        gains[m] = seeds.paired_estimate(rows, "fid", "hadis", baseline).scaled(-1 / base_fids[m])
    at = max(gains, key=lambda m: gains[m].value)
    band = v.Band.proportion(paper)
    estimator, error = v.fid_estimator_error(data["fid_method"])
    return Claim(
        NAME,
        claim,
        f"up to {paper:.0%}",
        "; ".join(f"{m:g}×: {est.text(azure.pct)}" for m, est in gains.items()),
        v.difference_verdict(gains[at], v.HIGHER, v.FID_TIE_REL, band, error / base_fids[at]),
        f"the largest mean reduction (at {at:g}×) beyond the {v.FID_TIE_REL:.1%} tie with its "
        f"interval above 0, in {band.text()}; {v.fid_error_note(estimator, error)}; paired "
        f"over {n_seeds(data)} seeds",
    )


def n_seeds(data: pd.DataFrame) -> int:
    return int(averages(data)["n_seeds"].min())


def violations_of(data: pd.DataFrame, method: str, multiplier: float) -> v.Estimate:
    rows = at_multiplier(data, multiplier)
    return v.t_interval(rows.loc[rows["method"] == method, "slo_violation_ratio"])


def extremes(data: pd.DataFrame, multiplier: float) -> str:
    """'Clipper-Light ≈0 violations with the worst FID; Clipper-Heavy the best FID with the
    most violations' at one multiplier (every comparison paired over seeds)."""
    rows = at_multiplier(data, multiplier)
    fid = {m: rows.loc[rows["method"] == m, "fid"].mean() for m in METHODS}
    _, error = v.fid_estimator_error(rows["fid_method"])
    parts = [v.level_verdict(violations_of(data, "clipper-light", multiplier), NEAR_ZERO)]
    for other in METHODS:
        if other != "clipper-light":
            est = seeds.paired_estimate(rows, "fid", "clipper-light", other)
            parts.append(v.difference_verdict(est, v.HIGHER, v.fid_tie(fid[other]), error=error))
        if other != "clipper-heavy":
            est = seeds.paired_estimate(rows, "fid", "clipper-heavy", other)
            parts.append(v.difference_verdict(est, v.LOWER, v.fid_tie(fid[other]), error=error))
            est = seeds.paired_estimate(rows, "slo_violation_ratio", "clipper-heavy", other)
            parts.append(v.difference_verdict(est, v.HIGHER, v.RATE_TIE))
    return v.all_of(parts)


def claims(data: pd.DataFrame) -> list[Claim]:
    multipliers = sorted(averages(data)["slo_multiplier"].unique())
    seeds_note = f"[ ]: 95% interval over {n_seeds(data)} seeds"
    out = [fid_gain_claim(data, "proteus", 0.11), fid_gain_claim(data, "diffserve", 0.07)]
    hadis = {m: violations_of(data, "hadis", m) for m in multipliers}
    out.append(
        Claim(
            NAME,
            "HADIS keeps SLO violations low at every SLO multiplier",
            "low at all multipliers",
            "; ".join(f"{m:g}×: {est.text(azure.pct)}" for m, est in hadis.items()),
            v.all_of(v.level_verdict(est, LOW_VIOLATIONS) for est in hadis.values()),
            f"low: the interval {LOW_VIOLATIONS.text()} at every multiplier; {seeds_note}",
        )
    )
    claim = "DiffServe violations nearly zero at 0.25× (all workers on light models)"
    if 0.25 in multipliers:
        est = violations_of(data, "diffserve", 0.25)
        at = averages(data).set_index(["slo_multiplier", "method"]).loc[(0.25, "diffserve")]
        out.append(
            Claim(
                NAME,
                claim,
                "≈0",
                f"{est.text(azure.pct)} (heavy share {azure.pct(at['heavy_share'])}; no feasible "
                f"plan {azure.pct(at['infeasible_plan_share'])} of the time)",
                v.level_verdict(est, NEAR_ZERO),
                f"nearly zero: the interval {NEAR_ZERO.text()}; without a feasible plan the "
                f"planner is overloaded at this SLO; {seeds_note}",
            )
        )
    else:
        out.append(Claim(NAME, claim, "≈0", "0.25× not run (quick grid)", v.NOT_COMPARABLE))
    per_multiplier = {m: extremes(data, m) for m in multipliers}
    out.append(
        Claim(
            NAME,
            "Clipper-Light ≈0 violations with the worst FID; Clipper-Heavy the best FID with "
            "the most violations, at every SLO",
            "at every multiplier",
            "; ".join(f"{m:g}×: {verdict}" for m, verdict in per_multiplier.items()),
            v.all_of(per_multiplier.values()),
            f"≈0: the interval {NEAR_ZERO.text()}; worst / best / most: paired differences "
            f"with the interval beyond 0 and the estimate beyond the tie (FID "
            f"{v.FID_TIE_REL:.1%}, violations {100 * v.RATE_TIE:g} pp) against every other "
            f"method; {v.fid_error_note(*v.fid_estimator_error(data['fid_method']))}; "
            f"{seeds_note}",
        )
    )
    return out
