"""Router metrics against hand-computed cases and their defining properties."""

from __future__ import annotations

import numpy as np
import pytest

from routers.metrics import (
    EcvlWeights,
    MetricError,
    apgr,
    budget_alpha,
    budget_threshold,
    call_performance_threshold,
    cloud_call_saving,
    ecvl_outcome,
    heavy_first_order,
    light_share_at_quality_drop,
    monotone_envelope,
    pareto_relative_superiority,
    performance_gap_recovered,
    routed_quality_curve,
    value_at_share,
)


def test_routed_quality_curve_and_pgr_by_hand():
    light, heavy = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0])
    shares, quality = routed_quality_curve(light, heavy, np.array([2, 0, 1]))
    np.testing.assert_allclose(shares, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(quality, [2, 2 + 2 / 3, 3, 3])
    pgr = performance_gap_recovered(quality, light.mean(), heavy.mean())
    np.testing.assert_allclose(pgr, [0, 2 / 3, 1, 1])
    assert apgr(shares, pgr) == pytest.approx(13 / 18)


def test_pgr_undefined_when_heavy_not_better():
    with pytest.raises(MetricError, match="not above light"):
        performance_gap_recovered(np.array([1.0]), 2.0, 2.0)


def test_cpt_reads_the_monotone_envelope_of_a_non_monotone_curve():
    shares = np.array([0, 0.25, 0.5, 0.75, 1.0])
    pgr = np.array([0, 0.6, 0.4, 0.45, 1.0])
    np.testing.assert_allclose(monotone_envelope(pgr), [0, 0.6, 0.6, 0.6, 1.0])
    assert call_performance_threshold(shares, pgr, 0.5) == pytest.approx(0.25 * 0.5 / 0.6)
    assert call_performance_threshold(shares, pgr, 0.8) == pytest.approx(0.75 + 0.25 * 0.5)
    assert np.isnan(call_performance_threshold(shares, pgr, 1.1))
    assert call_performance_threshold(shares, pgr, 0.0) == 0.0
    assert cloud_call_saving(shares, pgr, 0.5) == pytest.approx(1 - (0.25 * 0.5 / 0.6) / 0.5)


def test_value_at_share_and_light_share_at_quality_drop():
    shares = np.array([0, 0.5, 1.0])
    quality = np.array([8.0, 9.2, 10.0])
    assert value_at_share(shares, quality, 0.49) == 9.2
    assert light_share_at_quality_drop(shares, quality, 10.0, 0.1) == 0.5
    assert light_share_at_quality_drop(shares, quality, 10.0, 0.25) == 1.0
    assert light_share_at_quality_drop(shares, quality, 10.0, 0.0) == 0.0


def test_random_router_recovers_its_share_and_oracle_bounds_every_router():
    rng = np.random.default_rng(1)
    n = 20000
    light = rng.normal(0, 1, n)
    heavy = light + rng.normal(0.5, 1, n)
    lm, hm = light.mean(), heavy.mean()
    shares, q_random = routed_quality_curve(light, heavy, heavy_first_order(rng.random(n), 0))
    pgr_random = performance_gap_recovered(q_random, lm, hm)
    for s in np.arange(0.1, 1.0, 0.1):
        assert value_at_share(shares, pgr_random, s) == pytest.approx(s, abs=0.03)
    assert apgr(shares, pgr_random) == pytest.approx(0.5, abs=0.02)
    _, q_oracle = routed_quality_curve(light, heavy, heavy_first_order(heavy - light, 0))
    noisy_gain = heavy - light + rng.normal(0, 1, n)
    _, q_noisy = routed_quality_curve(light, heavy, heavy_first_order(noisy_gain, 0))
    for q in (q_random, q_noisy):
        assert np.all(q_oracle >= q - 1e-9)
    assert apgr(shares, performance_gap_recovered(q_oracle, lm, hm)) > apgr(
        shares, performance_gap_recovered(q_noisy, lm, hm)
    )


def test_heavy_first_order_breaks_ties_by_seed_only():
    scores = np.array([1.0, 3.0, 1.0, 1.0, 2.0])
    order = heavy_first_order(scores, 7)
    assert list(order[:2]) == [1, 4]
    assert sorted(order[2:]) == [0, 2, 3]
    np.testing.assert_array_equal(order, heavy_first_order(scores, 7))


def test_prs_by_hand_and_half_for_identical_quality():
    prs = pareto_relative_superiority(
        np.array([[0.7]]), np.array([[0.5]]), np.array([0.6]), np.array([0.4])
    )
    assert prs[0] == pytest.approx(1 / (1 + np.exp(-1.0)))
    rng = np.random.default_rng(0)
    q = rng.random((50, 3))
    same = pareto_relative_superiority(
        q, q, rng.random(3), rng.random(3), np.array([0.2, 0.3, 0.5])
    )
    np.testing.assert_allclose(same, 0.5)
    two = pareto_relative_superiority(
        np.array([[1.0, 0.0]]),
        np.array([[0.0, 0.0]]),
        np.array([0.5, 0.0]),
        np.array([0.0, 1.0]),
        np.array([0.25, 0.75]),
        gamma=2.0,
    )
    assert two[0] == pytest.approx(0.25 / (1 + np.exp(-1.0)) + 0.75 * 0.5)
    with pytest.raises(MetricError, match="summing to 1"):
        pareto_relative_superiority(q, q, q[0], q[0], np.array([0.5, 0.5, 0.5]))


def test_budget_alpha_by_hand_and_never_above_half():
    prs = np.array([0.6, 0.1, 0.8, 0.3, 0.2])
    assert budget_alpha(prs, 0.4) == 0.3
    assert budget_alpha(prs, 0.8) == 0.5
    assert budget_alpha(prs, 1.0) == 0.5
    assert budget_alpha(prs, 0.0) == 0.1
    rng = np.random.default_rng(3)
    for _ in range(200):
        values = rng.random(rng.integers(1, 40))
        rho = rng.random()
        alpha = budget_alpha(values, rho)
        assert alpha <= 0.5
        assert np.mean(values < alpha) <= rho + 1e-12
        if alpha < 0.5:  # maximal: any larger α would exceed the budget
            assert np.mean(values < alpha + 1e-9) > rho


def test_budget_threshold_never_exceeds_the_share():
    assert budget_threshold(np.array([5.0, 4.0, 4.0, 1.0]), 0.5) == 4.0
    assert budget_threshold(np.array([5.0, 4.0]), 1.0) == float("-inf")
    rng = np.random.default_rng(4)
    for _ in range(200):
        scores = rng.integers(0, 5, rng.integers(1, 30)).astype(float)
        share = rng.random()
        assert np.mean(scores > budget_threshold(scores, share)) <= share + 1e-12


def test_ecvl_outcome_by_hand():
    out = ecvl_outcome(
        np.array([1.0, 3.0, 5.0, 2.0]),
        np.array([False, True, True, False]),
        mes=2.5,
        cost=(1.0, 10.0),
        latency_s=(1.0, 10.0),
        weights=EcvlWeights(solve=0.5, cost=0.3, latency=0.2),
    )
    assert out["heavy_share"] == 0.5
    assert out["apsp"] == 0.5
    assert out["ca"] == pytest.approx(0.45)
    assert out["ail_s"] == pytest.approx(5.5)
    assert out["rcs"] == pytest.approx(0.25 + 0.3 * 0.45 + 0.2 * 0.45)
