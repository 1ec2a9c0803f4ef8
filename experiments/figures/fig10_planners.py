"""HADIS Fig. 10: online MILP (HADIS) vs cached planners Cache-D (key: demand range) and
Cache-D+Q (key: demand and queue-length ranges), §5.5, on the Azure trace.

Data: the long format of Fig. 7 (`fig07_azure.comparison_frame`: ``kind`` timeseries rows per
method and second, and one ``average`` row per method). Quick mode is the same as full.
"""

from __future__ import annotations

import pandas as pd

from experiments.figures import fig07_azure as azure
from experiments.figures import seeds, style
from experiments.figures import verdicts as v
from experiments.figures.context import Claim, FigureContext

NAME = "fig10"
TITLE = "Resource planners: online MILP (HADIS) vs Cache-D and Cache-D+Q"
METHODS = ("cache-d", "cache-dq", "hadis")


def compute(ctx: FigureContext) -> pd.DataFrame:
    return azure.comparison_frame(ctx, METHODS)


plot = azure.plot_comparison


def fewer_violations(per_seed: pd.DataFrame, ours: str, other: str) -> str:
    est = seeds.paired_estimate(per_seed, "slo_violation_ratio", ours, other)
    return v.difference_verdict(est, v.LOWER, v.RATE_TIE)


def dominance_verdict(
    per_seed: pd.DataFrame, ours: str, other: str, other_fid: float, error: float
) -> str:
    """'fewer violations with comparable or better FID' (paired over seeds): violations
    significantly lower beyond the tie, and FID not worse than the FID tie (non-inferiority:
    the whole interval below it; worse by less than the estimator's `error`: within it); the
    weaker of the two decides."""
    comparable = v.no_worse_verdict(
        seeds.paired_estimate(per_seed, "fid", ours, other), v.LOWER, v.fid_tie(other_fid), error
    )
    return v.all_of([fewer_violations(per_seed, ours, other), comparable])


def claims(data: pd.DataFrame) -> list[Claim]:
    avg, per_seed = azure.averages(data), azure.seed_data(data)
    estimator, error = v.fid_estimator_error(per_seed["fid_method"])
    significance = (
        f"paired differences over seeds; {v.fid_error_note(estimator, error)}; "
        f"{azure.seeds_note(data)}"
    )
    note = (
        f"fewer: lower by > {100 * v.RATE_TIE:g} pp with the interval below 0; comparable FID: "
        f"the interval of the difference below +{v.FID_TIE_REL:.1%} of the other's FID; "
        f"{significance}"
    )

    def row(method: str) -> str:
        fid = azure.pm(avg.at[method, "fid"], avg.at[method, "fid_ci95"], lambda x: f"{x:.2f}")
        return f"{style.METHOD_LABELS[method]} FID {fid}, viol. {azure.violation_pm(avg, method)}"

    out = [
        Claim(
            NAME,
            f"MILP (HADIS) beats {style.METHOD_LABELS[cached]}: fewer violations, "
            "comparable or better FID",
            "HADIS lower violations, FID ≤",
            f"{row('hadis')}; {row(cached)}",
            dominance_verdict(per_seed, "hadis", cached, avg.at[cached, "fid"], error),
            note,
        )
        for cached in ("cache-d", "cache-dq")
    ]
    fid_better = v.difference_verdict(
        seeds.paired_estimate(per_seed, "fid", "cache-dq", "cache-d"),
        v.LOWER,
        v.fid_tie(avg.at["cache-d", "fid"]),
        error=error,
    )
    out.append(
        Claim(
            NAME,
            "Cache-D+Q improves on Cache-D in both FID and SLO violations",
            "both better",
            f"{row('cache-dq')}; {row('cache-d')}",
            v.all_of([fid_better, fewer_violations(per_seed, "cache-dq", "cache-d")]),
            f"better: FID lower by > {v.FID_TIE_REL:.1%}, violations by > "
            f"{100 * v.RATE_TIE:g} pp, each with its interval below 0; {significance}",
        )
    )
    return out
