"""Measured distributions as a bundle carries them: each batch time's or hop's shape as its
quantiles over its median (`shapes.csv`), and the draw the simulator makes from one.

A parametric shape keeps two or three quantiles of what was measured (the lognormal: the p50
and p95; `simulator.service_shape`) and invents the rest. Served batches and hops on the tiny
diffusers path have a floor, a narrow body and a long upper tail, which a lognormal through the
p50 and p95 puts below the floor and inside the tail (results/validation/HISTORY.md, section
"Session 31").
A shape here is the measured inverse CDF at `SHAPE_LEVELS` (every percentile, the minimum and
the maximum included) divided by its median, so it scales with whatever median the bundle gives
the batch or hop (the latency after idle, the time scale). A draw interpolates it linearly at a
uniform u: the measured distribution, smoothed between percentiles.

`shapes.csv` (optional in a bundle): kind ("latency" or "hop"), name (a model, or one of
`simulator.bundle.HOPS`), batch_size (a profiled batch size of that model; 0 for a hop), level
(`SHAPE_LEVELS`, in order) and ratio (finite, positive, non-decreasing, 1 at level 0.5).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHAPES_FILE = "shapes.csv"
SHAPE_COLUMNS = ("kind", "name", "batch_size", "level", "ratio")
SHAPE_KINDS = ("latency", "hop")
N_STEPS = 100  # the levels 0, 0.01, ..., 1
SHAPE_LEVELS = tuple(i / N_STEPS for i in range(N_STEPS + 1))
MEDIAN_INDEX = N_STEPS // 2
# each percentile of a measured shape rests on about n/100 samples beyond it: one at least
MIN_SHAPE_SAMPLES = 100
RATIO_TOLERANCE = 1e-6  # of the ratio at level 0.5 to 1 (a shape written to 10 digits)


def shape_ratios(samples: np.ndarray) -> tuple[float, ...]:
    """The shape of `samples` (positive, finite): their quantiles at SHAPE_LEVELS (numpy's
    linear interpolation) over their median."""
    values = np.asarray(samples, dtype=np.float64)
    quantiles = np.quantile(values, SHAPE_LEVELS)
    return tuple(float(q) for q in quantiles / quantiles[MEDIAN_INDEX])


def draw_ratio(ratios: tuple[float, ...] | list[float], u: float) -> float:
    """The shape's multiple of the median at probability u in [0, 1): linear between levels."""
    x = u * N_STEPS
    i = int(x)
    low = ratios[i]
    return low + (x - i) * (ratios[i + 1] - low)


def shape_rows(kind: str, name: str, batch_size: int, ratios: tuple[float, ...]) -> pd.DataFrame:
    """One shape as `shapes.csv` rows."""
    n = len(SHAPE_LEVELS)
    return pd.DataFrame(
        {
            "kind": [kind] * n,
            "name": [name] * n,
            "batch_size": [batch_size] * n,
            "level": SHAPE_LEVELS,
            "ratio": ratios,
        }
    )


def check_shapes(
    shapes: pd.DataFrame, batch_sizes: dict[str, tuple[int, ...]], hops: tuple[str, ...]
) -> str | None:
    """The first problem of a `shapes.csv` table as (row, column, problem) text, or None.
    `batch_sizes`: each model's profiled batch sizes; `hops`: the hop names."""
    missing = [c for c in SHAPE_COLUMNS if c not in shapes.columns]
    if missing:
        return f"column {missing[0]!r}: missing (expected {', '.join(SHAPE_COLUMNS)})"
    if shapes.empty:
        return "table is empty"
    kinds = shapes["kind"].astype(str).to_numpy()
    names = shapes["name"].astype(str).to_numpy()
    sizes = pd.to_numeric(shapes["batch_size"], errors="coerce").to_numpy(np.float64)
    levels = pd.to_numeric(shapes["level"], errors="coerce").to_numpy(np.float64)
    ratios = pd.to_numeric(shapes["ratio"], errors="coerce").to_numpy(np.float64)
    for i in range(len(shapes)):
        row = f"row {i + 1}"
        size = _shown(shapes["batch_size"].iloc[i])
        if kinds[i] not in SHAPE_KINDS:
            return f"{row}, column 'kind': {kinds[i]!r} is not one of {', '.join(SHAPE_KINDS)}"
        if kinds[i] == "latency":
            if names[i] not in batch_sizes:
                return f"{row}, column 'name': unknown model {names[i]!r}"
            if sizes[i] not in batch_sizes[names[i]]:
                return f"{row}, column 'batch_size': {size!r} is not a profiled batch size"
        else:
            if names[i] not in hops:
                return f"{row}, column 'name': unknown hop {names[i]!r} (one of {', '.join(hops)})"
            if sizes[i] != 0:
                return f"{row}, column 'batch_size': a hop's is 0, got {size!r}"
        if not (np.isfinite(ratios[i]) and ratios[i] > 0):
            shown = _shown(shapes["ratio"].iloc[i])
            return f"{row}, column 'ratio': {shown!r} is not a positive number"
    keys = list(zip(kinds, names, sizes))
    rows_of = {}
    for i, key in enumerate(keys):
        rows_of.setdefault(key, []).append(i)
    for key, rows in rows_of.items():
        where = f"{key[0]} {key[1]!r}"
        if key[0] == "latency":
            where += f" batch size {int(key[2])}"
        got = levels[rows]
        if len(rows) != len(SHAPE_LEVELS) or not np.allclose(got, SHAPE_LEVELS, atol=1e-9):
            return (
                f"rows {rows[0] + 1}-{rows[-1] + 1}, column 'level': the shape of {where} must "
                f"have the {len(SHAPE_LEVELS)} levels 0, 0.01, ..., 1 in order"
            )
        shape = ratios[rows]
        if np.any(np.diff(shape) < 0):
            return f"rows {rows[0] + 1}-{rows[-1] + 1}, column 'ratio': {where} decreases"
        if abs(shape[MEDIAN_INDEX] - 1.0) > RATIO_TOLERANCE:
            return (
                f"row {rows[MEDIAN_INDEX] + 1}, column 'ratio': {where} is "
                f"{shape[MEDIAN_INDEX]!r} at level 0.5, not 1 (a shape is over its median)"
            )
    return None


def _shown(value):
    """A cell as an error message shows it (numpy scalars as Python's)."""
    return value.item() if isinstance(value, np.generic) else value


def shapes_by_key(shapes: pd.DataFrame | None) -> dict[tuple[str, str, int], tuple[float, ...]]:
    """A checked `shapes.csv` table as {(kind, name, batch_size): ratios}."""
    if shapes is None:
        return {}
    out = {}
    for (kind, name, size), rows in shapes.groupby(["kind", "name", "batch_size"], sort=True):
        out[(str(kind), str(name), int(size))] = tuple(rows["ratio"].astype(float).tolist())
    return out
