"""The cascade lookup table (HADIS §4.2) from stored per-image measurements.

For every model pair (light faster than heavy) and every (router_ratio, disc_ratio) on a grid
(default 11 x 11, 0..1 step 0.1), prompts are routed by the HADIS rules
(`simulator.cascade.hybrid_assignment`); the FID of the assembled image set is computed exactly
from the stored per-image features (not interpolated), and the expected latency from the measured
shares:

    heavy_share = share of prompts served by heavy (bypassed + escalated), measured
    latency_s   = (1 - bypass_share) * L_light + heavy_share * L_heavy   (batch-1 p50s)

The artifact tabulates the nominal share r + (1 - r) c instead; it is kept as
`nominal_heavy_share`. Rows on each pair's (latency_s, fid) Pareto front are flagged
`pareto_optimal` (the table keeps every row, as the artifact's does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from profiler.frechet import GaussianStats, MixStats
from simulator.bundle import REQUIRED_COLUMNS
from simulator.cascade import expected_latency_s, hybrid_assignment

CASCADE_COLUMNS = (
    *REQUIRED_COLUMNS["cascades"],
    "bypass_share",
    "escalate_share",
    "nominal_heavy_share",
    "pareto_optimal",
)


class TableError(ValueError):
    """Inputs of the lookup table that do not fit together (models, prompt counts, grid)."""


def ratio_grid(n_points: int = 11) -> np.ndarray:
    """0..1 in n_points steps, rounded so that 0.1 prints as 0.1."""
    if n_points < 2:
        raise TableError(f"grid of {n_points} points: need at least 2")
    return np.round(np.linspace(0.0, 1.0, n_points), 10)


def pareto_front_2d(cost: np.ndarray, fid: np.ndarray) -> np.ndarray:
    """Mask of rows not dominated when minimising both columns (first of identical rows kept)."""
    order = np.lexsort((np.arange(len(cost)), fid, cost))
    keep = np.zeros(len(cost), dtype=bool)
    best_fid = np.inf
    for i in order:
        if fid[i] < best_fid:
            keep[i] = True
            best_fid = fid[i]
    return keep


def cascade_rows(
    mix: MixStats,
    reference: GaussianStats,
    router_score: np.ndarray,
    light_score: Mapping[str, np.ndarray],
    latency_s: Mapping[str, float],
    pairs: Sequence[tuple[str, str]],
    grid: np.ndarray,
) -> pd.DataFrame:
    """One row per (pair, router_ratio, disc_ratio), in that order."""
    n = mix.n_prompts
    if router_score.shape != (n,):
        raise TableError(f"router scores: {router_score.shape[0]} prompts, features have {n}")
    rows = []
    for light, heavy in pairs:
        for model in (light, heavy):
            if model not in mix.models or model not in latency_s:
                raise TableError(f"pair ({light}, {heavy}): no features or latency for {model}")
        if np.shape(light_score.get(light)) != (n,):
            raise TableError(f"light model {light}: need one quality score per prompt ({n})")
        configs, assignments, cache = [], [], {}
        for r in grid:
            for c in grid:
                bypassed, escalated = hybrid_assignment(router_score, light_score[light], r, c)
                to_heavy = bypassed | escalated
                key = to_heavy.tobytes()
                if key not in cache:
                    cache[key] = len(assignments)
                    assignments.append(np.where(to_heavy, heavy, light))
                configs.append((r, c, bypassed.mean(), escalated.mean(), cache[key]))
        fids = mix.fids(assignments, reference)
        pair_rows = []
        for r, c, bypass, escalate, k in configs:
            share = bypass + escalate
            pair_rows.append(
                {
                    "light": light,
                    "heavy": heavy,
                    "router_ratio": r,
                    "disc_ratio": c,
                    "heavy_share": share,
                    "latency_s": expected_latency_s(
                        latency_s[light], latency_s[heavy], bypass, share
                    ),
                    "fid": fids[k],
                    "bypass_share": bypass,
                    "escalate_share": escalate,
                    "nominal_heavy_share": r + (1.0 - r) * c,
                }
            )
        table = pd.DataFrame(pair_rows)
        table["pareto_optimal"] = pareto_front_2d(
            table["latency_s"].to_numpy(), table["fid"].to_numpy()
        ).astype(np.int64)
        rows.append(table)
    if not rows:
        raise TableError("no model pairs to tabulate")
    return pd.concat(rows, ignore_index=True)[list(CASCADE_COLUMNS)]
