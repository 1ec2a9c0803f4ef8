"""Seed replication of the Azure-trace comparisons (Figs. 7, 9, 10): every method runs on
`N_SEEDS` (quick: `N_SEEDS_QUICK`) independently drawn traces, through the sweep store
``sweeps/azure`` (resumable, shared by the figures), and the claims compare methods by the
paired per-seed differences with a 95% Student-t confidence interval.

The seeds of a context with seed s are s, s + 1000, …, s + 1000·(n − 1): the first is the
seed of the context's single runs (the timeseries panels), and the replicate contexts of
`t2isim figures --replicate-seeds` (seeds 1, 2, …) draw disjoint seed sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from experiments.figures.context import FigureContext

N_SEEDS = 5
N_SEEDS_QUICK = 3
CONFIDENCE = 0.95
SEED_STRIDE = 1000
STORE = "azure"


def seeds_of(ctx: FigureContext) -> list[int]:
    n = N_SEEDS_QUICK if ctx.quick else N_SEEDS
    return [ctx.seed + SEED_STRIDE * k for k in range(n)]


def seed_rows(
    ctx: FigureContext,
    trace_spec: str,
    methods: Sequence[str],
    keys: Sequence[str],
    *,
    store: str = STORE,
    axes: Mapping[str, Sequence[object]] | None = None,
) -> pd.DataFrame:
    """One row per method, value of each further sweep axis (e.g. ``load``) and seed (columns
    method, *axes, seed, *keys): the summaries of the runs, from the sweep store `store`."""
    axes = dict(axes or {})
    spec = {
        "trace": trace_spec,
        "grid": {
            "policy": list(methods),
            **{k: list(v) for k, v in axes.items()},
            "seed": seeds_of(ctx),
        },
        "sim": {k: v for k, v in ctx.sweep_sim().items() if k != "seed"},
    }
    rows = ctx.sweep(store, spec).rename(columns={"policy": "method"})
    rank = {m: i for i, m in enumerate(methods)}
    rows = rows.assign(_rank=rows["method"].map(rank)).sort_values(["_rank", *axes, "seed"])
    return rows[["method", *axes, "seed", *keys]].reset_index(drop=True)


def ci_half_width(values: np.ndarray) -> float:
    """Half-width of the 95% Student-t confidence interval of the mean (0 for one value)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return 0.0
    t = stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1)
    return float(t * values.std(ddof=1) / np.sqrt(len(values)))


def mean_rows(per_seed: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per method (in first-appearance order): the mean of each key over seeds, its 95% CI
    half-width (`<key>_ci95`) and the number of seeds."""
    out = []
    for method, rows in per_seed.groupby("method", sort=False):
        row = {"method": method, "n_seeds": len(rows)}
        for key in keys:
            values = rows[key].to_numpy(dtype=np.float64)
            row[key] = float(values.mean())
            row[f"{key}_ci95"] = ci_half_width(values)
        out.append(row)
    return pd.DataFrame(out)


def paired_difference(
    per_seed: pd.DataFrame, metric: str, ours: str, other: str
) -> tuple[float, float]:
    """(mean, 95% CI half-width) of metric(ours) − metric(other) over the seeds both ran."""
    wide = per_seed.pivot(index="seed", columns="method", values=metric)[[ours, other]].dropna()
    diff = (wide[ours] - wide[other]).to_numpy(dtype=np.float64)
    return float(diff.mean()), ci_half_width(diff)


def lower_verdict(mean_diff: float, ci: float, tie: float) -> str:
    """'ours lower than other' from the paired difference: reproduced if lower by more than
    `tie` with the whole CI below 0; not reproduced if higher by more than `tie` with the CI
    above 0; otherwise partially (a tie, or a difference the seeds cannot resolve)."""
    if mean_diff < -tie and mean_diff + ci < 0:
        return "reproduced"
    if mean_diff > tie and mean_diff - ci > 0:
        return "not reproduced"
    return "partially reproduced"


def significantly_lower(mean_diff: float, ci: float, tie: float) -> bool:
    return lower_verdict(mean_diff, ci, tie) == "reproduced"


def not_higher(mean_diff: float, ci: float, tie: float) -> bool:
    """Not significantly higher by more than `tie` (a tie counts)."""
    return lower_verdict(mean_diff, ci, tie) != "not reproduced"
