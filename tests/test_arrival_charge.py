"""The arrival charge's estimator (`serving.arrival_charge`) on batches made with a known
charge, and where it has nothing to fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from serving.arrival_charge import (
    applied_charge_ms,
    arrival_charge_fit,
    arrivals_during,
)


def charged_run(charge_s: float, seed: int, rate_qps: float = 40.0, n: int = 600):
    """Poisson arrivals and two workers' batches of one (models a and b, base 20 and 45 ms with
    a lognormal spread), each prolonged by `charge_s` per arrival while it runs."""
    rng = np.random.default_rng(seed)
    arrival_s = np.cumsum(rng.exponential(1 / rate_qps, n))
    rows = []
    for worker, (model, base_s) in enumerate((("a", 0.020), ("b", 0.045))):
        start = float(rng.uniform(0, 0.1))
        while start < arrival_s[-1] - 1.0:
            end = start + base_s * math.exp(0.1 * rng.standard_normal())
            counted = 0
            while True:  # arrivals during the batch, its extensions' too
                arrived = int(np.searchsorted(arrival_s, end) - np.searchsorted(arrival_s, start))
                if arrived == counted:
                    break
                end += (arrived - counted) * charge_s
                counted = arrived
            rows.append((worker, model, start, end - start, 1))
            start = end + float(rng.exponential(0.03))
    batches = pd.DataFrame(rows, columns=["worker", "model", "start_s", "service_s", "batch_size"])
    return arrival_s, batches


def test_a_known_charge_is_recovered_within_its_error():
    runs = [charged_run(0.003, seed) for seed in range(3)]
    fit = arrival_charge_fit(runs)
    assert fit["runs"] == 3 and fit["groups"] == 6
    assert fit["batches"] == sum(len(b) for _, b in runs) and fit["arrivals_counted"] > 300
    assert 0 < fit["charge_se_ms"] < 0.5
    assert abs(fit["charge_ms"] - 3.0) < 3 * fit["charge_se_ms"]
    none = arrival_charge_fit([charged_run(0.0, seed) for seed in range(3)])
    assert abs(none["charge_ms"]) < 3 * none["charge_se_ms"]


def test_the_window_is_the_groups_shortest_batch():
    batches = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "batch_size": [1, 1, 1],
            "start_s": [0.0, 1.0, 0.0],
            "service_s": [0.5, 0.2, 0.9],
        }
    )
    window, counts = arrivals_during(batches, np.array([0.1, 0.3, 0.6, 1.1, 1.25, np.nan]))
    np.testing.assert_allclose(window, [0.2, 0.2, 0.9])
    assert counts.tolist() == [1, 1, 3]


def test_no_spread_in_the_counts_is_no_fit_and_no_charge():
    batches = pd.DataFrame(
        {"model": "a", "batch_size": 1, "start_s": [0.0, 1.0, 2.0, 3.0], "service_s": 0.1}
    )
    fit = arrival_charge_fit([(np.array([5.0]), batches)])
    assert fit["batches"] == 4 and math.isnan(fit["charge_ms"]) and math.isnan(fit["charge_se_ms"])
    assert applied_charge_ms(fit) == 0.0
    assert arrival_charge_fit([(np.array([5.0]), batches.iloc[:2])])["batches"] == 0  # < 3
    assert applied_charge_ms({"charge_ms": -0.4}) == 0.0  # never shortens a batch
    assert applied_charge_ms({"charge_ms": 1.25}) == pytest.approx(1.25)
