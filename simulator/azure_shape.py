"""Hourly demand shapes for Azure-Functions-like traces: a synthetic one and min-max scaling.

HADIS (and its artifact) replay the hourly invocation counts of the Azure Functions 2019 trace,
min-max scaled to [min, peak] QPS with one hour compressed into one second. Reading the real
counts lives in `simulator.workloads.read_azure_shape`; this module holds the pure math.

`synthetic_azure_shape` is our own function of the hour, not a copy of the data: a slow skewed
hump over the whole span (the real trace rises for ~8 days, peaks, and falls), a diurnal ripple
and AR(1) noise. Its parameters were measured on the real hourly counts
(`hadis-artifact/traces/maf/shape/original_invocations.csv`, 347 hours) after min-max scaling:
peak at hour 202 of 347; diurnal amplitude 0.0103 of the range (24-hour harmonic of the residual
after a 25-hour moving average); residual noise std 0.025 with lag-1 autocorrelation 0.89.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

AZURE_HOURS = 347
# Source of the four constants below: see the module docstring.
PEAK_FRACTION = 202 / 347
DIURNAL_AMPLITUDE = 0.0103
NOISE_STD = 0.025
NOISE_LAG1 = 0.89


def synthetic_azure_shape(n_hours: int = AZURE_HOURS, seed: int = 0) -> np.ndarray:
    """Unitless hourly load (about 0..1) with the Azure trace's hump, diurnal ripple and noise."""
    hours = np.arange(n_hours, dtype=np.float64)
    x = (hours + 0.5) / n_hours
    hump = np.sin(np.pi * x ** (np.log(0.5) / np.log(PEAK_FRACTION)))  # maximum at PEAK_FRACTION
    diurnal = DIURNAL_AMPLITUDE * np.sin(2.0 * np.pi * hours / 24.0)
    z = np.random.default_rng(seed).standard_normal(n_hours + 1)
    innovation_std = NOISE_STD * np.sqrt(1.0 - NOISE_LAG1**2)
    # stationary AR(1): start from a draw of the stationary distribution
    noise, _ = lfilter(
        [innovation_std], [1.0, -NOISE_LAG1], z[1:], zi=[NOISE_LAG1 * NOISE_STD * z[0]]
    )
    return hump + diurnal + noise


def scale_to_qps(shape: np.ndarray, min_qps: float, peak_qps: float) -> np.ndarray:
    """Min-max scale an hourly shape so its lowest hour is `min_qps` and its highest `peak_qps`."""
    lo, hi = float(np.min(shape)), float(np.max(shape))
    return min_qps + (peak_qps - min_qps) * (np.asarray(shape, dtype=np.float64) - lo) / (hi - lo)
