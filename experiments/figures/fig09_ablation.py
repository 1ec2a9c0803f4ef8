"""HADIS Fig. 9: hybrid-routing ablation (§5.4) on the Azure trace with the same MILP allocator.

Random (random hardness and quality scores), Router-only (no discriminator re-routing),
Disc-only (no router bypass) and HADIS (hybrid), each on the seeds of `seeds.seeds_of`.
Data: ``kind == "seed"`` rows (method, seed) with the run's FID, SLO-violation ratio and where
queries went (heavy share, router bypass and escalation shares), and ``kind == "average"`` rows
per method with their means over seeds and 95% CI half-widths (``<key>_ci95``). Claims compare
HADIS with each variant by the paired per-seed differences.
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

NAME = "fig09"
TITLE = "Hybrid routing ablation: Random, Router-only, Disc-only and HADIS"
METHODS = ("random", "router-only", "disc-only", "hadis")
SUMMARY_KEYS = (
    "fid",
    "slo_violation_ratio",
    "heavy_share",
    "router_bypass_share",
    "escalation_share",
)


def compute(ctx: FigureContext) -> pd.DataFrame:
    per_seed = seeds.seed_rows(ctx, azure.AZURE_TRACE, METHODS, (*SUMMARY_KEYS, "fid_method"))
    averages = seeds.mean_rows(per_seed, SUMMARY_KEYS)
    frame = pd.concat(
        [per_seed.assign(kind="seed"), averages.assign(kind="average")], ignore_index=True
    )
    ci = [f"{k}_ci95" for k in SUMMARY_KEYS]
    return frame[["kind", "method", "seed", "n_seeds", *SUMMARY_KEYS, *ci, "fid_method"]]


def plot(data: pd.DataFrame, ax=None) -> Figure:
    """Average FID, SLO violations and heavy-model share per variant: 1 x 3 axes."""
    fig, axes = style.figure_axes(ax, 1, 3, width_in=2 * style.COLUMN_IN, height_in=2.1)
    frame = azure.averages(data)
    azure.plot_averages(axes[0, 0], axes[0, 1], frame)
    methods = style.ordered(frame.index)
    share = 100 * frame.loc[methods, "heavy_share"].to_numpy(dtype=float)
    x = np.arange(len(methods))
    bars = axes[0, 2].bar(x, share, color=[style.METHOD_COLORS[m] for m in methods], width=0.7)
    azure.annotate_bars(axes[0, 2], bars, share)
    axes[0, 2].set_ylim(0, 105)
    axes[0, 2].set_ylabel("queries on heavy model (%)")
    axes[0, 2].set_xticks(x, [style.METHOD_LABELS[m] for m in methods], rotation=35, ha="right")
    axes[0, 2].grid(axis="x", visible=False)
    return fig


def claims(data: pd.DataFrame) -> list[Claim]:
    avg, per_seed = azure.averages(data), azure.seed_data(data)
    estimator, error = v.fid_estimator_error(per_seed["fid_method"])
    fid_note = (
        f"tie: within {v.FID_TIE_REL:.1%} of the other's FID; {v.fid_error_note(estimator, error)}"
    )
    violation_note = f"tie: within {100 * v.RATE_TIE:g} percentage points"
    significance = f"lower: the paired difference's interval below 0; {azure.seeds_note(data)}"

    def tie(metric: str, other: str) -> float:
        return v.fid_tie(avg.at[other, "fid"]) if metric == "fid" else v.RATE_TIE

    def lower(metric: str, other: str) -> str:
        est = seeds.paired_estimate(per_seed, metric, "hadis", other)
        return v.difference_verdict(
            est, v.LOWER, tie(metric, other), error=error if metric == "fid" else 0.0
        )

    def shown(metric: str, method: str) -> str:
        mean, ci = avg.at[method, metric], avg.at[method, f"{metric}_ci95"]
        return azure.pm(mean, ci, (lambda x: f"{x:.2f}") if metric == "fid" else azure.pct)

    out = []
    for other, metric, paper in (
        ("router-only", "fid", "HADIS lower FID than Router-only"),
        ("random", "fid", "HADIS lower FID than Random"),
        ("disc-only", "slo_violation_ratio", "HADIS fewer SLO violations than Disc-only"),
    ):
        out.append(
            Claim(
                NAME,
                paper,
                "HADIS lower (Fig. 9)",
                f"HADIS {shown(metric, 'hadis')} vs {style.METHOD_LABELS[other]} "
                f"{shown(metric, other)}",
                lower(metric, other),
                f"{fid_note if metric == 'fid' else violation_note}; {significance}",
            )
        )
    others = [o for o in METHODS if o != "hadis"]
    parts = {m: {o: lower(m, o) for o in others} for m in ("fid", "slo_violation_ratio")}
    out.append(
        Claim(
            NAME,
            "HADIS has the lowest average FID and SLO violations of all variants",
            "lowest in both",
            "; ".join(
                f"{'FID' if m == 'fid' else 'violations'} vs "
                + ", ".join(f"{style.METHOD_LABELS[o]} {verdict}" for o, verdict in part.items())
                for m, part in parts.items()
            ),
            v.all_of(verdict for part in parts.values() for verdict in part.values()),
            f"lowest: significantly lower than every variant in both (a tie is "
            f"indistinguishable, not lowest); {fid_note}; {violation_note}; "
            f"{azure.seeds_note(data)}",
        )
    )
    return out
