"""The service-time shapes (`simulator.service_shape`) against their closed forms, and the
simulator drawing them: the shifted lognormal keeps the profile's p05, p50 and p95; without a
p05 it is the lognormal, draw for draw."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bundle_factory import make_bundle

import simulator.baselines  # noqa: F401  (registers clipper-light)
from simulator.bundle import validate_tables
from simulator.config import SimConfig
from simulator.engine import simulate
from simulator.policy import PolicyContext, make_policy
from simulator.service_shape import (
    Z95,
    ServiceShape,
    lognormal_sigma,
    service_shape,
    shifted_lognormal_floor,
)
from simulator.workloads import Trace


def test_the_floor_by_hand():
    # (p95 - a)(p05 - a) = (p50 - a)^2: (56 - a)(34 - a) = (40 - a)^2 -> 1904 - 90a = 1600 - 80a
    assert shifted_lognormal_floor(34.0, 40.0, 56.0) == pytest.approx(30.4)


@pytest.mark.parametrize(
    "p05, p50, p95", [(34.0, 40.0, 56.0), (0.016, 0.019, 0.028), (0.9, 1.0, 5.0), (1.5, 2.0, 3.5)]
)
def test_the_shifted_lognormal_keeps_all_three_quantiles(p05, p50, p95):
    shape = service_shape("shifted-lognormal", p05, p50, p95)
    assert shape.floor_ratio > 0
    assert p50 * shape.factor(-Z95) == pytest.approx(p05)
    assert p50 * shape.factor(0.0) == pytest.approx(p50)
    assert p50 * shape.factor(Z95) == pytest.approx(p95)


@pytest.mark.parametrize(
    "p05",
    [
        40.0 * 40.0 / 56.0,  # the lognormal's own p05: no floor needed
        20.0,  # a lower tail wider than a lognormal's: no floor fits
        math.nan,  # unknown
        40.0,  # at the p50: degenerate
    ],
)
def test_without_a_floor_that_fits_it_is_the_lognormal(p05):
    shifted = service_shape("shifted-lognormal", p05, 40.0, 56.0)
    assert shifted == ServiceShape(0.0, lognormal_sigma(40.0, 56.0))
    assert shifted == service_shape("lognormal", p05, 40.0, 56.0)
    assert 40.0 * shifted.factor(Z95) == pytest.approx(56.0)


def test_the_other_models_and_unknown_spreads_give_the_median():
    for model in ("deterministic", "exponential"):
        assert service_shape(model, 34.0, 40.0, 56.0) == ServiceShape()
    for p95 in (40.0, math.nan):  # no spread
        assert service_shape("shifted-lognormal", 34.0, 40.0, p95).factor(1.7) == 1.0
    assert ServiceShape().factor(-3.0) == 1.0


def _with_tails(p05_ratio: float | None, p95_ratio: float):
    """A bundle whose every latency row has its p95 (and p05 unless None) at these ratios to
    its p50."""
    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0})
    latency = bundle.latency.assign(latency_p95_s=bundle.latency["latency_p50_s"] * p95_ratio)
    if p05_ratio is not None:
        latency["latency_p05_s"] = latency["latency_p50_s"] * p05_ratio
    tables = {t: getattr(bundle, t) for t in ("models", "prompts", "scores", "cascades")}
    return validate_tables(bundle.meta, {**tables, "latency": latency})


def _service_s(bundle, service_time: str, n: int = 4000, time_scale: float = 1.0):
    """One worker's batch-of-one service times, arrivals far apart (no idle latency)."""
    arrival_s = np.arange(n) * 10.0 * time_scale
    trace = Trace(arrival_s, np.arange(n) % bundle.n_prompts)
    policy = make_policy("clipper-light", PolicyContext(bundle, 1, 1e5))
    config = SimConfig(
        n_workers=1, slo_s=1e5, service_time=service_time, time_scale=time_scale, seed=5
    )
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    return raw.completion_s - raw.start_s


@pytest.mark.parametrize("time_scale", [1.0, 0.1])
def test_the_simulator_draws_the_profiles_quantiles(time_scale):
    """Light's batch of one: p05 0.85 s, p50 1 s, p95 1.4 s (x time_scale); the lognormal
    through the p50 and p95 alone puts the p05 at 1 / 1.4 of the p50."""
    bundle = _with_tails(0.85, 1.4)
    shifted = _service_s(bundle, "shifted-lognormal", time_scale=time_scale) / time_scale
    # 4,000 draws: a quantile's standard error here is under 1%
    np.testing.assert_allclose(np.quantile(shifted, [0.05, 0.5, 0.95]), [0.85, 1.0, 1.4], rtol=0.02)
    assert shifted.min() > 0.76  # the floor: (0.85 x 1.4 - 1) / (0.85 + 1.4 - 2)
    plain = _service_s(bundle, "lognormal", time_scale=time_scale) / time_scale
    expected = [1 / 1.4, 1.0, 1.4]
    np.testing.assert_allclose(np.quantile(plain, [0.05, 0.5, 0.95]), expected, rtol=0.02)


def test_without_a_p05_the_shifted_lognormal_draws_the_lognormals_times():
    bundle = _with_tails(None, 1.4)
    shifted = _service_s(bundle, "shifted-lognormal", n=500)
    assert np.array_equal(shifted, _service_s(bundle, "lognormal", n=500))
