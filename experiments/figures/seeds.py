"""Seed replication of the figures' comparisons: every method runs on `N_SEEDS` (quick:
`N_SEEDS_QUICK`) independently drawn traces — Figs. 7, 9, 10 through the sweep store
``sweeps/azure`` (resumable, shared by the figures), Figs. 11 and 14 through their own stores,
Figs. 3 and 13 through the context's runs — and the claims compare methods by the paired
per-seed differences with a 95% Student-t interval (the rules that turn them into verdicts are
in `verdicts`).

The seeds of a context with seed s are s, s + 1000, …, s + 1000·(n − 1): the first is the
seed of the context's single runs (the timeseries panels), and the replicate contexts of
`t2isim figures --replicate-seeds` (seeds 1, 2, …) draw disjoint seed sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from experiments.figures import verdicts
from experiments.figures.context import FigureContext
from experiments.figures.verdicts import Estimate

N_SEEDS = 5
N_SEEDS_QUICK = 3
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
    """Half-width of the 95% Student-t confidence interval of the mean, for display (0 for one
    value, which has no interval: the verdict rules treat it as unbounded)."""
    values = np.asarray(values, dtype=np.float64)
    return 0.0 if len(values) < 2 else verdicts.t_half_width(values)


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


def paired_values(
    per_seed: pd.DataFrame, metric: str, ours: str, other: str
) -> tuple[np.ndarray, np.ndarray]:
    """metric of `ours` and of `other` over the seeds both ran, in seed order."""
    wide = per_seed.pivot(index="seed", columns="method", values=metric)[[ours, other]].dropna()
    return wide[ours].to_numpy(dtype=np.float64), wide[other].to_numpy(dtype=np.float64)


def paired_estimate(per_seed: pd.DataFrame, metric: str, ours: str, other: str) -> Estimate:
    """metric(ours) − metric(other) over the seeds both ran, with its 95% interval."""
    return verdicts.paired_difference(*paired_values(per_seed, metric, ours, other))


def paired_difference(
    per_seed: pd.DataFrame, metric: str, ours: str, other: str
) -> tuple[float, float]:
    """(mean, 95% CI half-width) of metric(ours) − metric(other) over the seeds both ran."""
    est = paired_estimate(per_seed, metric, ours, other)
    return est.value, est.half_width
