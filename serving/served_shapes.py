"""The shapes of what real runs measured, as a bundle's shapes.csv (`simulator.empirical_shape`):
each served batch time's and each hop's distribution over its median.

- Batch times: per model and profiled batch size, each served batch's model time
  (`served_model_s`: less the discriminator's charge) over the median of its run's batches of
  that model and size, pooled over the runs (a run with fewer than MIN_BATCHES of them adds
  none); a size with MIN_SHAPE_SAMPLES pooled gets a shape. Each run's own median: the shape is
  a run's spread around its level, not the levels' spread between runs.
- Hops: the dispatch hop's, from `hops_s` of the queries one model served and never sent again
  (`sent_once_hops`, as `serving.hops.hop_overheads_ms` measures its median), and the
  arrival hop's, from `counted_after_s`, each over its run's median the same way. The
  escalation hop is measured as a difference of medians, not per query: it keeps its lognormal.

With the served latency table (`serving.service_times`) and `service_time="empirical"`, the
simulator draws what the runs' batches and hops did: the floor, the body and the tail beyond
the p95 that a lognormal through the p50 and p95 does not have (results/validation/HISTORY.md,
session 31). `validate` writes DIR/SERVED_SHAPES_FILE and reports the simulations with them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from serving.service_times import MIN_BATCHES, served_model_s
from simulator.bundle import Bundle, BundleError, checked_shapes
from simulator.config import SimConfig
from simulator.csv_input import read_csv_table
from simulator.empirical_shape import (
    MIN_SHAPE_SAMPLES,
    SHAPE_COLUMNS,
    SHAPES_FILE,
    shape_ratios,
    shape_rows,
)
from simulator.errors import InputError

SERVED_SHAPES_FILE = "served_shapes.csv"
# the hops measured per query, and the queries' column each is measured from
MEASURED_HOPS = ("dispatch", "arrival")


def sent_once_hops(real: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A real run's `hops_s` and `visits` over its queries with a hop never sent again (resent
    or retried); empty for a run made before the serving path recorded them."""
    if "hops_s" not in real.columns:
        return np.zeros(0), np.zeros(0)
    sent_again = real["resends"].to_numpy() + real.get("retries", 0)  # retries: since s. 11
    kept = real["hops_s"].notna().to_numpy() & (sent_again == 0)
    return real["hops_s"].to_numpy(dtype=np.float64)[kept], real["visits"].to_numpy()[kept]


def _over_run_medians(samples: list[np.ndarray], min_per_run: int) -> np.ndarray:
    """Each run's positive samples over their median, pooled (runs with fewer left out)."""
    pooled = [x / np.median(x) for x in (s[s > 0] for s in samples) if len(x) >= min_per_run]
    return np.concatenate(pooled) if pooled else np.zeros(0)


def served_shapes(
    bundle: Bundle,
    batches: list[pd.DataFrame],
    queries: list[pd.DataFrame],
    config: SimConfig,
    uses_discriminator: bool,
) -> pd.DataFrame:
    """shapes.csv rows of the runs' batches (one table per run, `batches`) and hops
    (`queries`): every profiled (model, batch size) and measured hop with MIN_SHAPE_SAMPLES;
    empty (with the columns) where none has."""
    parts = []
    model_s = [served_model_s(b, config, uses_discriminator) for b in batches]
    for name in bundle.model_names:
        for size in bundle.profiled_batch_sizes(name):
            kept = [
                s[(b["model"] == name).to_numpy() & (b["batch_size"] == size).to_numpy()]
                for b, s in zip(batches, model_s)
            ]
            ratios = _over_run_medians(kept, MIN_BATCHES)
            if len(ratios) >= MIN_SHAPE_SAMPLES:
                parts.append(shape_rows("latency", name, int(size), shape_ratios(ratios)))
    measured = {
        "dispatch": [h[v == 1] for h, v in map(sent_once_hops, queries)],
        "arrival": [
            q.get("counted_after_s", pd.Series(dtype=np.float64)).dropna().to_numpy(np.float64)
            for q in queries
        ],
    }
    for hop in MEASURED_HOPS:
        ratios = _over_run_medians(measured[hop], 1)
        if len(ratios) >= MIN_SHAPE_SAMPLES:
            parts.append(shape_rows("hop", hop, 0, shape_ratios(ratios)))
    if not parts:
        return pd.DataFrame(columns=list(SHAPE_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def with_shapes(bundle: Bundle, shapes: pd.DataFrame) -> Bundle:
    """`bundle` with these shapes (checked as a bundle's shapes.csv; None when empty)."""
    checked = checked_shapes(shapes, bundle.latency) if len(shapes) else None
    return dataclasses.replace(bundle, shapes=checked)


def compared_shapes(served_latency: str | Path, bundle: Bundle) -> pd.DataFrame | None:
    """The SERVED_SHAPES_FILE beside another validation's served_latency.csv
    (`--compare-served-latency`), checked against `bundle`; None where it has none (a
    validation from before session 31, or a profile's latency.csv)."""
    path = Path(served_latency).parent / SERVED_SHAPES_FILE
    if not path.is_file():
        return None
    label = f"--compare-served-latency {str(served_latency)!r}: {SERVED_SHAPES_FILE} beside it"
    shapes = read_csv_table(path, label=label, keep_default_na=False)
    try:
        return checked_shapes(shapes, bundle.latency)
    except BundleError as exc:
        raise InputError(f"{label}: {str(exc).removeprefix(f'{SHAPES_FILE}: ')}") from None
