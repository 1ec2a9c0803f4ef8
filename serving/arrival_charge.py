"""The arrival charge measured from real runs: how much each query's arrival at the serving
stack prolongs a batch that runs at that moment (`simulator.bundle.ARRIVAL_CHARGE_FIELD`).

Where the stack and CPU replicas share a host's cores, a query's per-query work (the ingress,
Serve's handles, Ray's transport, the answer) competes with the batches computing then
(session 29's poke probe: a call anywhere on a 2-core host added about 3 ms to a batch).

The estimator: each served batch is timed (`batches.csv`), and the arrivals the load
generator sent are in `queries.parquet`. A batch's count is the arrivals in a window from its
start as long as its group's shortest batch (a group: one run, model and batch size), so every
arrival counted lands while the batch runs, and the window does not grow with the batch's own
length (an open-loop trace's arrivals do not depend on it). The charge is the slope of the
batches' wall time on that count, with a fixed effect per group, by least squares, with its
standard error. `t2isim bundle arrival-charge` writes the bundle real runs served with the
charge their batches give (`arrival_charge_bundle`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from serving.service_times import read_batches, served_runs
from simulator.bundle import ARRIVAL_CHARGE_FIELD, Bundle, check_overheads
from simulator.errors import InputError, one_line

MIN_GROUP_BATCHES = 3  # a group with fewer batches is left out (no within-group spread)
ARRIVAL_CHARGE_FILE = "arrival_charge.csv"
ARRIVAL_CHARGE_COLUMNS = [
    "runs",
    "batches",
    "groups",
    "arrivals_counted",
    "charge_ms",
    "charge_se_ms",
]


def arrivals_during(batches: pd.DataFrame, arrival_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per batch of one run, its group's window (its shortest batch's seconds) and the number
    of `arrival_s` in [start, start + window)."""
    arrival_s = np.sort(np.asarray(arrival_s, dtype=np.float64))
    arrival_s = arrival_s[np.isfinite(arrival_s)]
    window = batches.groupby(["model", "batch_size"])["service_s"].transform("min").to_numpy()
    start = batches["start_s"].to_numpy(dtype=np.float64)
    counts = np.searchsorted(arrival_s, start + window) - np.searchsorted(arrival_s, start)
    return window, counts


def arrival_charge_fit(runs: Sequence[tuple[np.ndarray, pd.DataFrame]]) -> dict[str, float]:
    """The arrival charge over `runs` (each: the arrival times of its queries, its batches as
    `serving.service_times.read_batches_file` gives them): one row of `ARRIVAL_CHARGE_COLUMNS`;
    charge_ms and charge_se_ms NaN where no group's counts vary (nothing to fit)."""
    ys, xs, groups = [], [], []
    for k, (arrival_s, batches) in enumerate(runs):
        _, counts = arrivals_during(batches, arrival_s)
        key = batches["model"].astype(str) + "/" + batches["batch_size"].astype(str)
        ys.append(batches["service_s"].to_numpy(dtype=np.float64))
        xs.append(counts.astype(np.float64))
        groups.append(f"{k}/" + key.to_numpy(dtype=object))
    y = np.concatenate(ys) if ys else np.empty(0)
    x = np.concatenate(xs) if xs else np.empty(0)
    group = pd.Series(np.concatenate(groups) if groups else np.empty(0, dtype=object))
    sizes = group.map(group.value_counts()).to_numpy() if len(group) else np.empty(0)
    kept = sizes >= MIN_GROUP_BATCHES
    y, x, group = y[kept], x[kept], group[kept].reset_index(drop=True)
    n_groups = group.nunique()
    row = {
        "runs": len(runs),
        "batches": int(len(y)),
        "groups": int(n_groups),
        "arrivals_counted": int(x.sum()),
        "charge_ms": math.nan,
        "charge_se_ms": math.nan,
    }
    x_within = x - pd.Series(x).groupby(group).transform("mean").to_numpy()
    y_within = y - pd.Series(y).groupby(group).transform("mean").to_numpy()
    spread = float(x_within @ x_within)
    dof = len(y) - n_groups - 1
    if spread <= 1e-12 or dof < 1:
        return row
    slope = float(x_within @ y_within) / spread
    residual = y_within - slope * x_within
    se = math.sqrt(float(residual @ residual) / dof / spread)
    return {**row, "charge_ms": slope * 1000.0, "charge_se_ms": se * 1000.0}


def applied_charge_ms(fit: dict[str, float]) -> float:
    """The charge a simulation applies from a fit: its estimate, 0 where there is none or it
    is below 0 (a batch is never shortened by an arrival)."""
    charge = fit["charge_ms"]
    return max(0.0, charge) if math.isfinite(charge) else 0.0


def run_arrivals_s(run_dir: Path) -> np.ndarray:
    """The arrival times of a real run's queries (`queries.parquet`); InputError if unreadable."""
    path = run_dir / "queries.parquet"
    try:
        arrival_s = pd.read_parquet(path, columns=["arrival_s"])["arrival_s"]
    except (OSError, ValueError, KeyError) as exc:  # pyarrow's are ValueErrors
        raise InputError(f"{path}: cannot read its arrival_s ({one_line(str(exc))})") from None
    if not pd.api.types.is_numeric_dtype(arrival_s):
        raise InputError(f"{path}: column arrival_s: not numeric")
    return arrival_s.to_numpy(dtype=np.float64)


def arrival_charge_bundle(
    run_dirs: list[Path], bundle_spec: str | None = None
) -> tuple[Bundle, dict[str, float]]:
    """The bundle real runs served (`serving.service_times.served_runs`) with the arrival
    charge their batches give in its overheads (the other overheads kept), and the fit; its
    meta gains `arrival_charge` (the runs and the fit). InputError where the batches give none
    (no group's counts vary) or the fit is below 0 (nothing to apply)."""
    bundle, _ = served_runs(run_dirs, bundle_spec)
    batches = read_batches(run_dirs, bundle.model_names)
    fit = arrival_charge_fit([(run_arrivals_s(d), b) for d, b in zip(run_dirs, batches)])
    if not math.isfinite(fit["charge_ms"]):
        raise InputError(
            "the runs' batches give no arrival charge: no batch's count of arrivals varies "
            "within its model and batch size"
        )
    if fit["charge_ms"] < 0:
        raise InputError(
            f"the runs' batches give an arrival charge below 0 ({fit['charge_ms']:.3g} ms, "
            f"standard error {fit['charge_se_ms']:.2g} ms): nothing to apply"
        )
    overheads = {
        **bundle.meta.get("overheads", {}),
        ARRIVAL_CHARGE_FIELD: round(fit["charge_ms"], 6),
    }
    check_overheads(overheads)
    meta = {
        **bundle.meta,
        "overheads": overheads,
        "arrival_charge": {"run_folders": [str(d) for d in run_dirs], **fit},
    }
    return dataclasses.replace(bundle, meta=meta), fit
