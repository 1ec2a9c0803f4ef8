"""Fréchet distance against closed forms, and exact FID of per-prompt model mixes (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from profiler.frechet import (
    FeatureError,
    GaussianStats,
    MixStats,
    fid_from_features,
    fid_of_mix,
    frechet_distance,
)


def _random_spd(rng: np.random.Generator, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


def test_one_dimensional_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) = (m1 - m2)^2 + (s1 - s2)^2
    for m1, s1, m2, s2 in [(0.0, 1.0, 3.0, 2.0), (1.5, 0.2, -0.5, 4.0), (2.0, 3.0, 2.0, 3.0)]:
        got = frechet_distance([m1], [[s1**2]], [m2], [[s2**2]])
        assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, abs=1e-12)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    v1, v2 = rng.uniform(0.1, 3.0, size=5), rng.uniform(0.1, 3.0, size=5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(
        expected, rel=1e-12
    )


def test_identical_gaussians_give_zero():
    rng = np.random.default_rng(1)
    sigma, mu = _random_spd(rng, 32), rng.normal(size=32)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_matches_scipy_sqrtm_on_full_rank():
    rng = np.random.default_rng(2)
    s1, s2 = _random_spd(rng, 20), _random_spd(rng, 20)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_rank_deficient_covariances_stay_finite_and_symmetric():
    rng = np.random.default_rng(3)
    s1, s2 = _random_spd(rng, 64, rank=5), _random_spd(rng, 64, rank=3)
    mu = np.zeros(64)
    d12 = frechet_distance(mu, s1, mu, s2)
    assert np.isfinite(d12) and d12 > 0
    assert d12 == pytest.approx(frechet_distance(mu, s2, mu, s1), rel=1e-8)
    # sample covariance from fewer images than dimensions (the small-sample FID case)
    x = rng.normal(size=(10, 64))
    assert fid_from_features(x, GaussianStats.from_features(x)) == pytest.approx(0.0, abs=1e-9)


def test_shape_mismatch_raises():
    with pytest.raises(FeatureError, match="covariance shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(FeatureError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([0.0, np.nan]), np.eye(2))


def _features(seed: int, n_prompts=12, k=3, d=6, offset=0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=offset, size=(n_prompts, k, d))


def test_fid_of_mix_equals_fid_of_assembled_images():
    feats = {"light": _features(10, offset=5.0), "heavy": _features(11, offset=5.3)}
    reference = GaussianStats.from_features(np.random.default_rng(12).normal(5.1, size=(200, 6)))
    assignment = np.array(["light", "heavy"] * 6)
    assignment[:5] = "heavy"  # mask larger than half for one model: complement path
    assembled = np.concatenate([feats[m][p] for p, m in enumerate(assignment)])
    expected = fid_from_features(assembled, reference)
    assert fid_of_mix(feats, assignment, reference) == pytest.approx(expected, rel=1e-10)
    mix = MixStats(feats)
    for model, features in feats.items():  # all prompts to one model == that model alone
        alone = fid_from_features(features.reshape(-1, 6), reference)
        assert mix.fid(np.full(12, model), reference) == pytest.approx(alone, rel=1e-10)


def test_fid_of_mix_rejects_bad_input():
    feats = {"a": _features(0), "b": _features(1, n_prompts=11)}
    with pytest.raises(FeatureError, match="differs"):
        MixStats(feats)
    mix = MixStats({"a": _features(0)})
    with pytest.raises(FeatureError, match="unknown model 'z'"):
        mix.stats(np.array(["z"] * 12))
    with pytest.raises(FeatureError, match="one model per prompt"):
        mix.stats(np.array(["a"] * 3))


def test_stats_roundtrip(tmp_path):
    stats = GaussianStats.from_features(np.random.default_rng(4).normal(size=(30, 4)))
    loaded = GaussianStats.load(stats.save(tmp_path / "ref.npz"))
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.n == 30
