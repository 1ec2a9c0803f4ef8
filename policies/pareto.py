"""Pareto pruning of the cascade lookup table (HADIS §4.4 solves the MILP over Pareto rows).

Two kinds of pruning, both pure functions over arrays:

* `pareto_mask` — rows not dominated in a set of columns to minimise (e.g. the artifact's
  global (expected latency, fid) front, or one pair's (light share, heavy share, fid) front).
* `dominated_by_cover` — *exact* dominance for the planner: option k makes option k' useless
  when k's FID and heavy share are no worse and each model k serves can stand in for a distinct
  model of k' that carries at least the same share ("covers" it: at every batch size it is no
  slower, queue delay included). Any plan of k' then maps to a plan of k with no more workers,
  no more path latency and no less throughput, so dropping k' never changes the optimum.
  With `covers` = identity this is per-pair dominance in (light share, heavy share, fid).

Ties (identical rows) keep the first row, so results are deterministic.
"""

from __future__ import annotations

import numpy as np

_BLOCK_ROWS = 512


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of rows of `points` (n, d) not dominated when minimising every column.

    Row i is dominated by row j if j is <= i everywhere and < somewhere, or j equals i and
    comes first.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-d array (rows, criteria), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points contain NaN or infinite values")
    n = len(pts)
    keep = np.ones(n, dtype=bool)
    order = np.arange(n)
    for start in range(0, n, _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        # [i, j]: row j is <= row i everywhere / < somewhere (one column at a time: d is small)
        weakly_better = np.ones((len(order[rows]), n), dtype=bool)
        strictly_somewhere = np.zeros_like(weakly_better)
        for column in pts.T:
            weakly_better &= column[None, :] <= column[rows, None]
            strictly_somewhere |= column[None, :] < column[rows, None]
        earlier = order[None, :] < order[rows, None]
        keep[rows] = ~(weakly_better & (strictly_somewhere | earlier)).any(axis=1)
    return keep


def grouped_pareto_mask(points: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """`pareto_mask` applied within each group (e.g. each model pair) separately."""
    groups = np.asarray(groups)
    keep = np.zeros(len(groups), dtype=bool)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        keep[rows] = pareto_mask(np.asarray(points)[rows])
    return keep


def dominated_by_cover(
    member: np.ndarray,
    member_share: np.ndarray,
    fid: np.ndarray,
    heavy_share: np.ndarray,
    covers: np.ndarray,
) -> np.ndarray:
    """Mask of options made useless by another option (see the module docstring).

    member (K, 2) int: the models an option serves (second = -1 for a single-model option);
    member_share (K, 2): the demand share each of them gets; covers (M, M) bool: covers[i, j]
    when model i can stand in for model j.
    """
    member = np.asarray(member, dtype=np.int64)
    n_models = covers.shape[0]
    # an absent member (-1 -> index n_models) maps onto anything; nothing maps onto an absent one
    padded = np.zeros((n_models + 1, n_models + 1), dtype=bool)
    padded[:n_models, :n_models] = covers
    padded[n_models, :] = True
    slot = np.where(member < 0, n_models, member)
    share = np.where(member < 0, 0.0, member_share)

    def maps(a: int, b: int) -> np.ndarray:
        """(K, K) [k', k]: member a of k stands in for member b of k'."""
        return padded[slot[None, :, a], slot[:, None, b]] & (share[None, :, a] <= share[:, None, b])

    no_worse = (fid[None, :] <= fid[:, None]) & (heavy_share[None, :] <= heavy_share[:, None])
    dominates = no_worse & ((maps(0, 0) & maps(1, 1)) | (maps(0, 1) & maps(1, 0)))
    n = len(fid)
    np.fill_diagonal(dominates, False)
    # mutual dominance (equivalent options): the earlier one survives
    later = np.arange(n)[None, :] > np.arange(n)[:, None]
    dominates &= ~(dominates.T & later)
    return dominates.any(axis=1)
