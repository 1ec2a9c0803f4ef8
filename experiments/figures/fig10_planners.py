"""HADIS Fig. 10: online MILP (HADIS) vs cached planners Cache-D (key: demand range) and
Cache-D+Q (key: demand and queue-length ranges), §5.5, on the Azure trace.

Data: the long format of Fig. 7 (`fig07_azure.comparison_frame`: ``kind`` timeseries rows per
method and second, and one ``average`` row per method). Quick mode is the same as full.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.figures import fig07_azure as azure
from experiments.figures import seeds, style
from experiments.figures.context import Claim, FigureContext

NAME = "fig10"
TITLE = "Resource planners: online MILP (HADIS) vs Cache-D and Cache-D+Q"
METHODS = ("cache-d", "cache-dq", "hadis")


def compute(ctx: FigureContext) -> pd.DataFrame:
    return azure.comparison_frame(ctx, METHODS)


def plot(data: pd.DataFrame, path: Path) -> None:
    azure.plot_comparison(data, path)


def dominance_verdict(per_seed: pd.DataFrame, ours: str, other: str, other_fid: float) -> str:
    """'fewer violations with comparable or better FID' (paired over seeds): reproduced if
    violations are significantly lower (beyond the tie band) and FID not significantly more
    than a tie higher; partially if one of the two holds."""
    fewer = seeds.significantly_lower(
        *seeds.paired_difference(per_seed, "slo_violation_ratio", ours, other), azure.VIOLATION_TIE
    )
    comparable = seeds.not_higher(
        *seeds.paired_difference(per_seed, "fid", ours, other), azure.FID_TIE * other_fid
    )
    if fewer and comparable:
        return "reproduced"
    return "partially reproduced" if fewer or comparable else "not reproduced"


def claims(data: pd.DataFrame) -> list[Claim]:
    avg, per_seed = azure.averages(data), azure.seed_data(data)
    significance = f"a difference counts only if its 95% CI excludes 0; {azure.seeds_note(data)}"
    note = (
        f"fewer: lower by > {100 * azure.VIOLATION_TIE:.1f} pp; comparable FID: at most "
        f"{azure.FID_TIE:.1%} higher; {significance}"
    )

    def row(method: str) -> str:
        fid = azure.pm(avg.at[method, "fid"], avg.at[method, "fid_ci95"], lambda v: f"{v:.2f}")
        return f"{style.METHOD_LABELS[method]} FID {fid}, viol. {azure.violation_pm(avg, method)}"

    out = [
        Claim(
            NAME,
            f"MILP (HADIS) beats {style.METHOD_LABELS[cached]}: fewer violations, "
            "comparable or better FID",
            "HADIS lower violations, FID ≤",
            f"{row('hadis')}; {row(cached)}",
            dominance_verdict(per_seed, "hadis", cached, avg.at[cached, "fid"]),
            note,
        )
        for cached in ("cache-d", "cache-dq")
    ]
    fid_better = seeds.significantly_lower(
        *seeds.paired_difference(per_seed, "fid", "cache-dq", "cache-d"),
        azure.FID_TIE * avg.at["cache-d", "fid"],
    )
    fewer = seeds.significantly_lower(
        *seeds.paired_difference(per_seed, "slo_violation_ratio", "cache-dq", "cache-d"),
        azure.VIOLATION_TIE,
    )
    out.append(
        Claim(
            NAME,
            "Cache-D+Q improves on Cache-D in both FID and SLO violations",
            "both better",
            f"{row('cache-dq')}; {row('cache-d')}",
            "reproduced"
            if fid_better and fewer
            else ("partially reproduced" if fid_better or fewer else "not reproduced"),
            f"better: FID lower by > {azure.FID_TIE:.1%}, violations by > "
            f"{100 * azure.VIOLATION_TIE:.1f} pp; {significance}",
        )
    )
    return out
