"""HADIS Fig. 10: online MILP (HADIS) vs cached planners Cache-D (key: demand range) and
Cache-D+Q (key: demand and queue-length ranges), §5.5, on the Azure trace.

Data: the long format of Fig. 7 (`fig07_azure.comparison_frame`: ``kind`` timeseries rows per
method and second, and one ``average`` row per method). Quick mode is the same as full.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.figures import fig07_azure as azure
from experiments.figures import style
from experiments.figures.context import Claim, FigureContext

NAME = "fig10"
TITLE = "Resource planners: online MILP (HADIS) vs Cache-D and Cache-D+Q"
METHODS = ("cache-d", "cache-dq", "hadis")


def compute(ctx: FigureContext) -> pd.DataFrame:
    return azure.comparison_frame(ctx, METHODS)


def plot(data: pd.DataFrame, path: Path) -> None:
    azure.plot_comparison(data, path)


def dominance_verdict(
    fid: float, violations: float, other_fid: float, other_violations: float
) -> str:
    """'fewer violations with comparable or better FID': reproduced if violations are lower
    (beyond the tie band) and FID at most a tie worse; partially if one of the two holds."""
    fewer = violations < other_violations - azure.VIOLATION_TIE
    comparable = fid <= other_fid * (1 + azure.FID_TIE)
    if fewer and comparable:
        return "reproduced"
    return "partially reproduced" if fewer or comparable else "not reproduced"


def claims(data: pd.DataFrame) -> list[Claim]:
    avg = azure.averages(data)
    note = (
        f"fewer: lower by > {100 * azure.VIOLATION_TIE:.1f} pp; comparable FID: at most "
        f"{azure.FID_TIE:.1%} higher"
    )

    def row(method: str) -> str:
        fid, v = avg.at[method, "fid"], avg.at[method, "slo_violation_ratio"]
        return f"{style.METHOD_LABELS[method]} FID {fid:.2f}, viol. {azure.pct(v)}"

    out = [
        Claim(
            NAME,
            f"MILP (HADIS) beats {style.METHOD_LABELS[cached]}: fewer violations, "
            "comparable or better FID",
            "HADIS lower violations, FID ≤",
            f"{row('hadis')}; {row(cached)}",
            dominance_verdict(
                avg.at["hadis", "fid"],
                avg.at["hadis", "slo_violation_ratio"],
                avg.at[cached, "fid"],
                avg.at[cached, "slo_violation_ratio"],
            ),
            note,
        )
        for cached in ("cache-d", "cache-dq")
    ]
    fid_better = avg.at["cache-dq", "fid"] < avg.at["cache-d", "fid"] * (1 - azure.FID_TIE)
    fewer = (
        avg.at["cache-dq", "slo_violation_ratio"]
        < avg.at["cache-d", "slo_violation_ratio"] - azure.VIOLATION_TIE
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
            f"{100 * azure.VIOLATION_TIE:.1f} pp",
        )
    )
    return out
