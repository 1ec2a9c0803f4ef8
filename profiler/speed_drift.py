"""How steady this machine's speed is: one fixed call timed back to back for a while, with the
median per time bin. On a shared VM a single-thread workload's speed can drift between bins by
far more than the CPU share the hypervisor reports stolen, and a latency profile (a few timed
repeats) is a snapshot of that speed: the simulator replays it for the whole run.

`time_in_bins` measures; `drift_ratio` summarises (slowest bin's median / fastest bin's)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from profiler.provenance import cpu_ticks, steal_share

DRIFT_COLUMNS = ("bin", "start_s", "calls", "median_ms", "p90_ms", "steal_share")


class DriftError(ValueError):
    """A drift measurement that cannot be made as asked."""


def time_in_bins(
    call: Callable[[], object],
    seconds: float,
    bin_s: float,
    clock: Callable[[], float] = time.perf_counter,
) -> pd.DataFrame:
    """Call `call` back to back for `seconds`, in bins of `bin_s` (a call that starts in a bin
    counts in it; the last bin may run over by one call). One row per bin: DRIFT_COLUMNS
    (`start_s` from the first call, the bin's median and p90 call time, the stolen CPU share
    over the bin, NaN where /proc/stat is unreadable)."""
    if not (math.isfinite(bin_s) and bin_s > 0 and math.isfinite(seconds)):
        raise DriftError(f"bin {bin_s} s over {seconds} s: expected finite numbers, bin > 0")
    n_bins = int(seconds // bin_s)
    if n_bins < 1:
        raise DriftError(f"{seconds} s: shorter than one {bin_s} s bin")
    origin = clock()
    rows = []
    for k in range(n_bins):
        ticks, times_s = cpu_ticks(), []
        while not times_s or clock() - origin < (k + 1) * bin_s:
            t0 = clock()
            call()
            times_s.append(clock() - t0)
        ms = np.asarray(times_s) * 1e3
        rows.append(
            (
                k,
                k * bin_s,
                len(ms),
                float(np.median(ms)),
                float(np.percentile(ms, 90)),
                steal_share(ticks, cpu_ticks()),
            )
        )
    return pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))


def drift_ratio(bins: pd.DataFrame) -> float:
    """The slowest bin's median call time over the fastest's (1 = perfectly steady)."""
    if bins.empty:
        raise DriftError("no bins")
    return float(bins["median_ms"].max() / bins["median_ms"].min())
