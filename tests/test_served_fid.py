"""FID of the images actually served, on bundles that carry per-image features (`features.npz`,
simulator/served_features.py): closed forms, the profiler's bundles, corrupt files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from bundle_factory import make_bundle
from hostile import save_damaged_npz
from typer.testing import CliRunner

from simulator.bundle import TABLE_FILES, load_bundle, validate_tables, write_bundle
from simulator.config import SimConfig
from simulator.run import run_simulation
from simulator.served_features import FEATURES_FILE, ServedFeatures
from simulator.workloads import parse_trace_spec

REFERENCE_MU = np.array([0.5, -0.2])
REFERENCE_SIGMA = np.array([[1.5, 0.3], [0.3, 0.8]])


def served(features: np.ndarray, models=("light", "heavy"), **change) -> ServedFeatures:
    fields = {
        "features": features,
        "models": tuple(models),
        "reference_mu": REFERENCE_MU,
        "reference_sigma": REFERENCE_SIGMA,
        "reference_n": 50,
    }
    return ServedFeatures(**{**fields, **change})


def with_features(bundle, features: ServedFeatures):
    return validate_tables(bundle.meta, {t: getattr(bundle, t) for t in TABLE_FILES}, features)


def random_features(n_prompts: int, seed: int = 0) -> np.ndarray:
    """(prompts, [light, heavy], 2 images, 2-D): the heavy model's images nearer the reference."""
    rng = np.random.default_rng(seed)
    light = rng.normal([2.0, 1.0], [0.5, 1.5], size=(n_prompts, 2, 2))
    heavy = rng.normal(REFERENCE_MU, [1.1, 0.9], size=(n_prompts, 2, 2))
    return np.stack([light, heavy], axis=1)


def frechet_2d(mu1, sigma1, mu2, sigma2) -> float:
    """Closed form in two dimensions: the eigenvalues l1, l2 of S1 S2 are real and >= 0, and
    Tr((S1 S2)^{1/2}) = sqrt(l1) + sqrt(l2) = sqrt(tr(S1 S2) + 2 sqrt(det(S1 S2)))."""
    product = sigma1 @ sigma2
    cross = np.sqrt(np.trace(product) + 2.0 * np.sqrt(np.linalg.det(product)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * cross)


# ----------------------------------------------------------------------------- closed forms


def test_served_fid_counts_every_query_in_one_dimension():
    """Prompt 0 served twice (feature 0), prompt 1 once (feature 3): images {0, 0, 3}, mean 1,
    variance 3 (ddof 1); against N(1, 12): (sqrt 3 - sqrt 12)^2 = 3. Served once each, the set
    {0, 3} (mean 1.5, variance 4.5) would score 0.25 + (sqrt 4.5 - sqrt 12)^2 instead."""
    x = np.array([[[[0.0]]], [[[3.0]]]])  # (2 prompts, 1 model, 1 image, d = 1)
    one = served(x, ("m",), reference_mu=np.array([1.0]), reference_sigma=np.array([[12.0]]))
    one.check(("m",), 2)
    assert one.fid(np.array([0, 1, 0]), np.array([0, 0, 0])) == pytest.approx(3.0, rel=1e-12)
    once = 0.25 + (np.sqrt(4.5) - np.sqrt(12.0)) ** 2
    assert one.fid(np.array([0, 1]), np.array([0, 0])) == pytest.approx(once, rel=1e-12)
    assert one.fid(np.array([1]), np.array([0])) is None  # one image: no covariance


def test_run_reports_the_served_fid_of_its_queries_in_closed_form(tmp_path):
    plain = make_bundle(n_prompts=100)
    bundle = with_features(plain, served(random_features(100)))
    folder = write_bundle(bundle, tmp_path / "bundle")
    assert (folder / FEATURES_FILE).is_file()
    loaded = load_bundle(folder)
    np.testing.assert_array_equal(loaded.features.features, bundle.features.features)
    again = write_bundle(loaded, tmp_path / "again")  # fixed zip timestamps: byte-stable
    assert (again / FEATURES_FILE).read_bytes() == (folder / FEATURES_FILE).read_bytes()
    assert load_bundle(again).content_hash() == loaded.content_hash()
    assert dataclasses.replace(loaded, features=None).content_hash() != loaded.content_hash()

    trace = parse_trace_spec("poisson:rate=3,duration=60", n_prompts=100, seed=0)
    run = run_simulation(loaded, trace, "static-cascade", SimConfig(n_workers=4))
    summary, queries = run.summary, run.queries
    assert summary["fid_method"] == "served" and summary["fid_exact"] is None
    assert summary["fid"] == summary["fid_served"]
    done = queries[queries["outcome"] != "drop"]
    model = done["final_model"].map({"light": 0, "heavy": 1}).to_numpy()
    assert len(done) > 100 and 0 < model.mean() < 1  # prompts repeat; both models serve
    images = loaded.features.features[done["prompt_id"].to_numpy(), model].reshape(-1, 2)
    expected = frechet_2d(
        images.mean(axis=0), np.cov(images, rowvar=False), REFERENCE_MU, REFERENCE_SIGMA
    )
    assert summary["fid"] == pytest.approx(expected, rel=1e-9)
    # the table's estimate of the same run is another number (the factory's linear table)
    assert abs(summary["fid_table"] - summary["fid"]) > 1.0


def test_bundle_without_features_keeps_its_estimator_and_summary_keys():
    bundle = make_bundle(n_prompts=100)
    trace = parse_trace_spec("poisson:rate=2,duration=30", n_prompts=100, seed=0)
    summary = run_simulation(bundle, trace, "static-cascade", SimConfig(n_workers=4)).summary
    assert summary["fid_method"] == "table" and "fid_served" not in summary


# ----------------------------------------------------------------------------- corrupt files


def _save_raw(path, **arrays):
    np.savez(path, **arrays)


def _raw_arrays(f, **change):
    arrays = {
        "features": f.features,
        "models": np.array(f.models),
        "reference_mu": f.reference_mu,
        "reference_sigma": f.reference_sigma,
        "reference_n": np.int64(f.reference_n),
    }
    return {**arrays, **change}


CORRUPTIONS = {
    "not a zip": (
        lambda f, path: path.write_bytes(b"not an archive"),
        "features.npz: not an .npz (zip) archive",
    ),
    "NaN": (
        lambda f, path: dataclasses.replace(
            f, features=np.where(np.arange(2)[None, :, None, None] == 1, np.nan, f.features)
        ).save(path),
        "features.npz: features: NaN or infinite value (prompt 0, model 'heavy')",
    ),
    "model order": (
        lambda f, path: dataclasses.replace(f, models=("heavy", "light")).save(path),
        "features.npz: models: ['heavy', 'light'] differ from models.csv's ['light', 'heavy']",
    ),
    "prompt count": (
        lambda f, path: dataclasses.replace(f, features=f.features[:99]).save(path),
        "features.npz: features: shape (99, 2, 2, 2) does not start with (prompts, models) = "
        "(100, 2)",
    ),
    "reference dimension": (
        lambda f, path: dataclasses.replace(f, reference_mu=np.zeros(3)).save(path),
        "features.npz: reference_mu: expected a float array of shape (2,), got (3,)",
    ),
    "asymmetric covariance": (
        lambda f, path: dataclasses.replace(
            f, reference_sigma=np.array([[1.5, 0.3], [0.0, 0.8]])
        ).save(path),
        "features.npz: reference_sigma: not symmetric",
    ),
    "corrupt compressed member": (
        lambda f, path: save_damaged_npz(path, **_raw_arrays(f)),
        "features.npz: unreadable .npz (Error -3 while decompressing data",
    ),
    "huge features": (
        lambda f, path: dataclasses.replace(f, features=f.features * 1e60).save(path),
        "features.npz: features: value beyond ±1e+50 (prompt 0, model 'light')",
    ),
    "huge reference mean": (
        lambda f, path: dataclasses.replace(f, reference_mu=np.full(2, 1e200)).save(path),
        "features.npz: reference_mu: contains values beyond ±1e+50",
    ),
    "reference count past int64": (
        lambda f, path: _save_raw(path, **_raw_arrays(f, reference_n=np.uint64(2**64 - 1))),
        "features.npz: reference_n: value 18446744073709551615 is not an integer in "
        "[2, 9223372036854775807]",
    ),
    "missing array": (
        lambda f, path: _save_raw(
            path, features=f.features, models=np.array(f.models), reference_mu=f.reference_mu
        ),
        "features.npz: reference_sigma: missing array",
    ),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_features_file_is_one_line_exit_2(tmp_path, corruption):
    from experiments.cli import app

    bundle = with_features(make_bundle(n_prompts=100), served(random_features(100)))
    folder = write_bundle(bundle, tmp_path / "bundle")
    corrupt, message = CORRUPTIONS[corruption]
    corrupt(bundle.features, folder / FEATURES_FILE)
    args = ["simulate", "--bundle", str(folder), "--policy", "static-cascade", "--quiet"]
    args += ["--trace", "poisson:rate=2,duration=30", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{folder}/{message}" in lines[0], result.output
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- profiled bundle


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    """`profile all --tiny`'s steps on 8 prompts (tests/tiny_profile.py)."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    pytest.importorskip("open_clip")
    from tiny_profile import run_tiny_profile

    return run_tiny_profile(tmp_path_factory.mktemp("work"), "tiny-served")


def test_profiled_bundle_carries_features_that_reproduce_its_table(tiny_profile, tmp_path):
    from profiler.steps import build_bundle
    from simulator.cascade import hybrid_assignment

    layout, folder = tiny_profile
    bundle = load_bundle(folder)
    features = bundle.features
    assert features is not None and features.models == bundle.model_names
    assert features.features.shape == (8, 3, 2, 16)  # prompts, models, images, tiny dim
    n = np.arange(bundle.n_prompts)
    for m, fid_alone in enumerate(bundle.models["fid_alone"]):  # each model alone
        assert features.fid(n, np.full(8, m)) == pytest.approx(fid_alone, rel=1e-6)
    for row in bundle.cascades[bundle.cascades["router_ratio"] == 0.3].itertuples():
        light, heavy = bundle.model_index(row.light), bundle.model_index(row.heavy)
        bypassed, escalated = hybrid_assignment(
            bundle.router_score, bundle.disc_score[:, light], row.router_ratio, row.disc_ratio
        )
        model = np.where(bypassed | escalated, heavy, light)
        assert features.fid(n, model) == pytest.approx(row.fid, rel=1e-6)  # CSV: 10 digits
    rebuilt = write_bundle(build_bundle(layout, "tiny-served", prune_models=False), tmp_path / "b")
    assert (rebuilt / FEATURES_FILE).read_bytes() == (folder / FEATURES_FILE).read_bytes()


def test_run_on_a_profiled_bundle_reports_the_served_fid(tiny_profile):
    from scipy.linalg import sqrtm

    _, folder = tiny_profile
    bundle = load_bundle(folder)
    trace = parse_trace_spec("poisson:rate=2,duration=60", n_prompts=8, seed=0)
    # three stages: no cascade table covers them, the served images' features do
    options = {"models": ",".join(bundle.model_names)}
    run = run_simulation(bundle, trace, "static-cascade", SimConfig(n_workers=6), options)
    summary, queries = run.summary, run.queries
    assert summary["fid_method"] == "served" and summary["fid"] == summary["fid_served"]
    done = queries[queries["outcome"] != "drop"]
    model = done["final_model"].map(bundle.model_index).to_numpy()
    assert len(np.unique(model)) >= 2  # a mix of models' images
    x = bundle.features.features[done["prompt_id"].to_numpy(), model].reshape(-1, 16)
    x = x.astype(np.float64)
    mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
    ref_mu, ref_sigma = bundle.features.reference_mu, bundle.features.reference_sigma
    expected = (
        (mu - ref_mu) @ (mu - ref_mu)
        + np.trace(sigma)
        + np.trace(ref_sigma)
        - 2.0 * np.trace(sqrtm(sigma @ ref_sigma)).real
    )
    assert summary["fid"] == pytest.approx(expected, rel=1e-6)
