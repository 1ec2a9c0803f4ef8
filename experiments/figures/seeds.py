"""Replication of the figures' comparisons: every method runs on `N_SEEDS` (quick:
`N_SEEDS_QUICK`) replicates — Figs. 7, 9, 10 through the sweep store ``sweeps/azure``
(resumable, shared by the figures), Figs. 11, 14 and 16 through their own stores (all by
`seed_rows`), Figs. 3 and 13 through the runs of `replicate_contexts` — and the claims compare
methods by the paired per-replicate differences with a 95% Student-t interval (the rules that
turn them into verdicts are in `verdicts`).

Replicate i of a context with seed s draws the trace with seed s_i = s + 1000·i and, by
`seed_rows` on the default bundle, runs on the default bundle's replicate r_i = s·N_SEEDS + i
(`replicates_of`; ``default:replicate=r``: the generative model's latent draw r under the
calibration's bootstrap draw r, `simulator.default_bundle.build_replicate_bundle`), so the
intervals include the three sources of uncertainty: the trace, the latent draw and the
calibrated parameters. r_0 of seed 0 is the nominal bundle; the first seed is the seed of the
context's single runs (the timeseries panels, on the context's bundle), and the replicate
contexts of `t2isim figures --replicate-seeds` (seeds 1, 2, …) draw disjoint seed and
replicate sets. Any other bundle (a profiled or imported one, such as the HADIS artifact) has
no generative model to redraw: its replicates vary the trace seed only. Figures that run their
own simulations (`FigureContext.run`: Figs. 3 and 13) take one context per replicate from
`replicate_contexts`, which pairs seeds and bundle replicates as `seed_rows` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from experiments.figures import verdicts
from experiments.figures.context import FigureContext
from experiments.figures.verdicts import Estimate

N_SEEDS = 5
N_SEEDS_QUICK = 3
SEED_STRIDE = 1000
STORE = "azure"
REPLICATED_BUNDLE = "default"  # the bundle spec whose replicates redraw the model


def seeds_of(ctx: FigureContext) -> list[int]:
    n = N_SEEDS_QUICK if ctx.quick else N_SEEDS
    return [ctx.seed + SEED_STRIDE * k for k in range(n)]


def replicates_of(ctx: FigureContext) -> list[int] | None:
    """The default bundle's replicate of each seed of `seeds_of` (seed s, replicate i:
    s·N_SEEDS + i), or None when the context's bundle is not `default` (trace seeds only)."""
    if ctx.bundle_spec != REPLICATED_BUNDLE:
        return None
    return [ctx.seed * N_SEEDS + k for k in range(len(seeds_of(ctx)))]


def replicate_contexts(ctx: FigureContext) -> list[FigureContext]:
    """One context per seed of `seeds_of`, for figures that run `FigureContext.run` themselves:
    seed s_i on the default bundle's replicate r_i (`replicates_of`; bundle spec
    ``default:replicate=r_i``), or on the context's bundle where it has no replicates. The
    context itself stands for its own seed on its own bundle (its cached runs are reused)."""
    from experiments.inputs import replicate_spec, resolve_bundle

    replicates = replicates_of(ctx)
    out = []
    for i, seed in enumerate(seeds_of(ctx)):
        replicate = None if replicates is None else replicates[i]
        if seed == ctx.seed and replicate in (None, 0):
            out.append(ctx)
        elif replicate is None:
            out.append(replace(ctx, seed=seed, _runs={}, _traces={}))
        else:
            spec = replicate_spec(replicate)
            bundle = resolve_bundle(spec)
            out.append(
                replace(ctx, bundle_spec=spec, bundle=bundle, seed=seed, _runs={}, _traces={})
            )
    return out


def replicate_of(ctx: FigureContext) -> int | None:
    """The default bundle's replicate a context runs on (0 for `default`), None for any other
    bundle: the ``replicate`` column of a figure's per-seed rows."""
    from experiments.inputs import parse_replicate

    return parse_replicate(ctx.bundle_spec)


def uncertainty_note(ctx: FigureContext) -> str:
    """One line for the report: what the replicates behind the intervals vary."""
    if replicates_of(ctx) is None:
        return (
            "Replicates: each redraws the trace (seed) only; this bundle has no generative "
            "model, so its latent draw and calibration stay fixed."
        )
    return (
        "Replicates (every figure's: `seeds.seed_rows`, `seeds.replicate_contexts`): each "
        "redraws the trace (seed), the default bundle's latent draw and its calibrated "
        "parameters (a bootstrap draw of the fit, `default:replicate=K`), so their intervals "
        "include all three sources. tab03's rows are measurements, not replicated runs."
    )


def seed_rows(
    ctx: FigureContext,
    trace_spec: str,
    methods: Sequence[str],
    keys: Sequence[str],
    *,
    store: str = STORE,
    axes: Mapping[str, Sequence[object]] | None = None,
    sim: Mapping[str, object] | None = None,
    policy_options: Mapping[str, Mapping[str, object]] | None = None,
    n_seeds: int | None = None,
) -> pd.DataFrame:
    """One row per method, value of each further sweep axis (e.g. ``load``) and seed (columns
    method, *axes, seed, *keys): the summaries of the runs, from the sweep store `store`; seed
    s_i runs on bundle replicate r_i (`replicates_of`; on the default bundle only).
    `sim` overrides SimConfig fields of the context's base, `policy_options` are per policy;
    `n_seeds` keeps the first that many seeds (None: all of `seeds_of`)."""
    axes = dict(axes or {})
    seeds = seeds_of(ctx)[:n_seeds]
    replicates = replicates_of(ctx)
    pairs = zip(seeds, replicates) if replicates is not None else ((s, None) for s in seeds)
    specs = [
        {
            "trace": trace_spec,
            "grid": {
                "policy": list(methods),
                **{k: list(v) for k, v in axes.items()},
                **({} if replicate is None else {"replicate": [replicate]}),
                "seed": [seed],
            },
            "sim": {**{k: v for k, v in ctx.sweep_sim().items() if k != "seed"}, **(sim or {})},
            "policy_options": {k: dict(v) for k, v in (policy_options or {}).items()},
        }
        for seed, replicate in pairs
    ]
    rows = ctx.sweep(store, specs).rename(columns={"policy": "method"})
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
