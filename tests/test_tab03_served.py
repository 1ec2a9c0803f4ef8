"""tab03's row for the served-images FID (`fid_method: served`): its finite-sample error,
measured against a closed form, or "not measured" on a bundle without per-image features."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_factory import make_bundle

from experiments.figures import tab03_fid_error as tab03
from experiments.figures.context import FigureContext
from profiler.frechet import GaussianStats
from simulator.bundle import TABLE_FILES, validate_tables
from simulator.served_features import ServedFeatures


def test_sampling_error_matches_its_one_dimensional_expectation():
    """d = 1, drawn from the reference itself (exact distance 0): the distance of n draws is
    (mean - m)^2 + (s - sigma)^2, expected sigma^2/n + ~sigma^2/(2(n-1)) = 0.0800 + 0.0408."""
    reference = GaussianStats(np.array([1.0]), np.array([[4.0]]), 10**6)
    errors = tab03.frechet_sampling_error(reference, reference, 50, 4000,
                                          np.random.default_rng(1))
    assert errors.shape == (4000,) and (errors >= 0).all()
    assert errors.mean() == pytest.approx(4 / 50 + 4 / (2 * 49), rel=0.05)
    # 4x the images, a quarter of the error: finite-sample error, not a fixed offset
    more = tab03.frechet_sampling_error(reference, reference, 200, 4000,
                                        np.random.default_rng(1))
    assert more.mean() == pytest.approx(errors.mean() / 4, rel=0.1)


def featured_bundle(n_prompts: int = 100):
    """The hand-made bundle with 2 images per prompt and model in 2-D features."""
    rng = np.random.default_rng(0)
    light = rng.normal([2.0, 1.0], [0.5, 1.5], size=(n_prompts, 2, 2))
    heavy = rng.normal([0.5, -0.2], [1.1, 0.9], size=(n_prompts, 2, 2))
    features = ServedFeatures(
        features=np.stack([light, heavy], axis=1),
        models=("light", "heavy"),
        reference_mu=np.array([0.5, -0.2]),
        reference_sigma=np.array([[1.5, 0.3], [0.3, 0.8]]),
        reference_n=50,
    )
    plain = make_bundle(n_prompts=n_prompts)
    return validate_tables(plain.meta, {t: getattr(plain, t) for t in TABLE_FILES}, features)


def test_tab03_has_a_served_row_measured_on_a_featured_bundle(tmp_path):
    bundle = featured_bundle()
    data = tab03.compute(FigureContext("featured", bundle, tmp_path, quick=True))
    assert list(data.columns) == tab03.COLUMNS
    served = data[data["estimator"] == tab03.SERVED]
    assert len(served) == 1
    row = served.iloc[0]
    # this bundle's runs report fid_served: the served row is the estimator used here
    assert row["used_here"] and data["used_here"].sum() == 1
    assert row["set"] == "finite sample (200 images)"
    assert row["n"] == 2 * tab03.SERVED_DRAWS
    # 200 images in 2-D: errors of a few tenths of a FID, mostly spread rather than bias
    assert abs(row["bias_fid"]) < row["mean_abs_fid"] < 0.3 and row["max_abs_fid"] < 1.5
    assert "finite-sample error only" in row["note"] and "d = 2" in row["note"]
    again = tab03.compute(FigureContext("featured", bundle, tmp_path, quick=True))
    assert again.equals(data)  # seeded: the same measurement every time
    lines = tab03.report_lines(data)
    assert len(lines) == 1 and lines[0].startswith("- served · finite sample (200 images)")


def test_tab03_served_row_says_not_measured_without_features(tmp_path):
    bundle = make_bundle(n_prompts=100)
    data = tab03.compute(FigureContext("plain", bundle, tmp_path, quick=True))
    row = data[data["estimator"] == tab03.SERVED].iloc[0]
    assert row["n"] == 0 and np.isnan(row["mean_abs_fid"]) and not row["used_here"]
    assert row["note"].startswith("not measured: this bundle has no per-image features")
    assert tab03.report_lines(data) == [f"- served · finite sample (this bundle): {row['note']}"]
