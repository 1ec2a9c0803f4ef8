"""The timeseries' per-epoch FID is scored by the run's own estimator (`fid_method`: exact on
the default bundle, served on a bundle with per-image features, table otherwise), checked
against independent computations on each epoch's completed queries; byte-stable; NaN without
warnings for epochs without images."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from bundle_factory import make_bundle
from test_served_fid import REFERENCE_MU, REFERENCE_SIGMA, frechet_2d, random_features, served
from test_served_fid import with_features as features_bundle

import policies  # noqa: F401  (registers the adaptive policies)
from simulator.bundle import load_bundle, write_bundle
from simulator.config import SimConfig
from simulator.default_bundle import build_default_bundle, generative_model, served_fid
from simulator.results import write_run
from simulator.run import run_simulation
from simulator.served_features import ServedFeatures
from simulator.workloads import Trace, parse_trace_spec

# demand that steps up and down: HADIS re-plans, so a run has several plan epochs
STEPS = "phases:rates=2/12/4/14/3,phase_s=40"


def epoch_queries(run) -> dict[int, pd.DataFrame]:
    """Completed queries per plan epoch (the plan in force when they arrived), from the run's
    query table and plan log alone."""
    applied = [record.applied_s for record in run.raw.plans]
    done = run.queries[run.queries["outcome"] != "drop"]
    epoch = np.maximum(np.searchsorted(applied, done["arrival_s"], side="right") - 1, 0)
    return {int(k): rows for k, rows in done.groupby(epoch)}


def timeseries_by_epoch(run) -> dict[int, pd.DataFrame]:
    """Timeseries rows per epoch: second s shows the last plan applied at or before s."""
    applied = [record.applied_s for record in run.raw.plans]
    ts = run.timeseries
    epoch = np.maximum(np.searchsorted(applied, ts["second"], side="right") - 1, 0)
    return {int(k): rows for k, rows in ts.groupby(epoch)}


def checked_epochs(run, expected_fid) -> int:
    """Assert realised_fid == expected_fid(completed queries of the epoch) on every second of
    every epoch shown in the timeseries; returns how many epochs had images."""
    queries = epoch_queries(run)
    checked = 0
    for k, rows in timeseries_by_epoch(run).items():
        values = rows["realised_fid"].to_numpy()
        if k not in queries:
            assert np.isnan(values).all()
            continue
        assert values == pytest.approx(np.full(len(values), expected_fid(queries[k])), rel=1e-9)
        checked += 1
    return checked


@pytest.fixture(scope="module")
def default_bundle():
    return build_default_bundle()


@pytest.fixture(scope="module")
def default_run(default_bundle):
    bundle = default_bundle
    trace = parse_trace_spec(STEPS, n_prompts=bundle.n_prompts, seed=0)
    return bundle, run_simulation(bundle, trace, "hadis", SimConfig(seed=0))


def test_default_bundle_timeseries_is_the_exact_fid_of_each_epochs_images(default_run):
    bundle, run = default_run
    assert run.summary["fid_method"] == "exact"
    assert set(run.timeseries["fid_method"]) == {"exact"}
    params, latents = generative_model(bundle)

    def exact(rows: pd.DataFrame) -> float:
        model = rows["final_model"].map(bundle.model_index).to_numpy()
        return served_fid(params, latents, rows["prompt_id"].to_numpy(), model)

    assert len(run.raw.plans) >= 4 and checked_epochs(run, exact) >= 4
    # the whole run's image set scores the summary's FID (not an average of the epochs')
    done = run.queries[run.queries["outcome"] != "drop"]
    assert run.summary["fid"] == pytest.approx(exact(done), abs=1e-8)
    # the table's estimate stays beside it, and is another number
    ts = run.timeseries
    assert (ts["realised_fid"] - ts["realised_fid_table"]).abs().max() > 0.1


def test_table_column_is_the_summarys_fid_table_per_epoch(default_run):
    """fid_table is the completed-query-weighted mean of the epochs' table values."""
    _, run = default_run
    queries = epoch_queries(run)
    shown = timeseries_by_epoch(run)
    assert set(queries) <= set(shown)  # every epoch with images lasts past a whole second
    table = {k: shown[k]["realised_fid_table"].iloc[0] for k in queries}
    weight = {k: len(rows) for k, rows in queries.items()}
    mean = sum(table[k] * weight[k] for k in queries) / sum(weight.values())
    assert run.summary["fid_table"] == pytest.approx(mean, abs=1e-8)


def served_by_sqrtm(features: ServedFeatures, prompt_idx, model_idx) -> float:
    """FID of the served pairs' images through scipy's sqrtm (another route than the module's)."""
    from scipy.linalg import sqrtm

    d = features.features.shape[-1]
    x = features.features[prompt_idx, model_idx].reshape(-1, d).astype(np.float64)
    mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False).reshape(d, d)
    ref_mu, ref_sigma = features.reference_mu, features.reference_sigma
    return float(
        (mu - ref_mu) @ (mu - ref_mu)
        + np.trace(sigma)
        + np.trace(ref_sigma)
        - 2.0 * np.trace(sqrtm(sigma @ ref_sigma)).real
    )


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    """`profile all --tiny`'s bundle on 8 prompts (tests/tiny_profile.py)."""
    for module in ("torch", "diffusers", "open_clip"):
        pytest.importorskip(module)
    from tiny_profile import run_tiny_profile

    return run_tiny_profile(tmp_path_factory.mktemp("work"), "tiny-timeseries")[1]


def test_profiled_bundle_timeseries_is_the_served_fid_of_each_epochs_images(tiny_profile):
    bundle = load_bundle(tiny_profile)
    trace = parse_trace_spec("phases:rates=1/4/1/5,phase_s=40", n_prompts=8, seed=0)
    # random scores make the plans change, when the profiled latencies (wall-clock
    # measurements, other on every build) leave the planner a choice: one epoch or several
    run = run_simulation(bundle, trace, "random", SimConfig(n_workers=6, load_s=0.0))
    assert run.summary["fid_method"] == "served"

    def expected(rows: pd.DataFrame) -> float:
        model = rows["final_model"].map(bundle.model_index).to_numpy()
        if len(rows) * bundle.features.images_per_prompt < 2:
            return np.nan
        return served_by_sqrtm(bundle.features, rows["prompt_id"].to_numpy(), model)

    checked = 0
    queries = epoch_queries(run)
    for k, rows in timeseries_by_epoch(run).items():
        want = expected(queries[k]) if k in queries else np.nan
        got = rows["realised_fid"].to_numpy()
        assert got == pytest.approx(np.full(len(got), want), rel=1e-6, nan_ok=True)
        checked += k in queries
    assert checked >= 1


def test_features_bundle_timeseries_is_the_served_fid_of_each_epochs_images(tmp_path):
    """Two-dimensional features (written to and read from features.npz): each epoch's FID in
    closed form from its images."""
    made = features_bundle(make_bundle(n_prompts=100), served(random_features(100)))
    bundle = load_bundle(write_bundle(made, tmp_path / "bundle"))
    trace = parse_trace_spec(STEPS.replace("12", "6").replace("14", "7"), n_prompts=100, seed=0)
    run = run_simulation(bundle, trace, "hadis", SimConfig(n_workers=4))
    assert run.summary["fid_method"] == "served"
    assert set(run.timeseries["fid_method"]) == {"served"}

    def closed_form(rows: pd.DataFrame) -> float:
        model = rows["final_model"].map(bundle.model_index).to_numpy()
        images = bundle.features.features[rows["prompt_id"].to_numpy(), model].reshape(-1, 2)
        mu, sigma = images.mean(axis=0), np.cov(images, rowvar=False)
        return frechet_2d(mu, sigma, REFERENCE_MU, REFERENCE_SIGMA)

    assert len(run.raw.plans) >= 3 and checked_epochs(run, closed_form) >= 3
    ts = run.timeseries
    assert (ts["realised_fid"] - ts["realised_fid_table"]).abs().max() > 1.0


def test_table_bundle_keeps_one_column_of_table_fids():
    bundle = make_bundle(n_prompts=100)
    trace = parse_trace_spec(STEPS.replace("12", "6").replace("14", "7"), n_prompts=100, seed=0)
    run = run_simulation(bundle, trace, "hadis", SimConfig(n_workers=4))
    ts = run.timeseries
    assert run.summary["fid_method"] == "table" and set(ts["fid_method"]) == {"table"}
    pd.testing.assert_series_equal(ts["realised_fid"], ts["realised_fid_table"], check_names=False)


def test_epochs_without_images_are_nan_without_warnings(default_bundle):
    """A 60 s gap in the trace: HADIS re-plans as its demand estimate decays, so some epochs
    see no arrival; their FID is NaN, and nothing warns (no mean of an empty slice)."""
    bundle = default_bundle
    burst = np.arange(0.0, 20.0, 0.25)
    arrival_s = np.concatenate([burst, burst + 80.0])
    trace = Trace(arrival_s, np.arange(len(arrival_s)) % bundle.n_prompts, name="gap")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = run_simulation(bundle, trace, "hadis", SimConfig(seed=0))
    assert len(epoch_queries(run)) < len(run.raw.plans)  # an epoch without arrivals
    gap = run.timeseries[(run.timeseries["second"] > 45) & (run.timeseries["second"] < 75)]
    assert gap["realised_fid"].isna().any()
    assert gap["realised_fid"].isna().tolist() == gap["realised_fid_table"].isna().tolist()


def write(run, folder) -> bytes:
    out = write_run(folder, run.queries, run.timeseries, run.summary, run.config, [])
    return (out / "timeseries.csv").read_bytes()


def test_same_seed_gives_a_byte_identical_timeseries(default_run, tmp_path):
    bundle, first = default_run
    trace = parse_trace_spec(STEPS, n_prompts=bundle.n_prompts, seed=0)
    other = parse_trace_spec(STEPS, n_prompts=bundle.n_prompts, seed=1)
    run_simulation(bundle, other, "proteus", SimConfig(seed=1))  # another run in between
    again = run_simulation(bundle, trace, "hadis", SimConfig(seed=0))
    text = write(first, tmp_path / "a")
    assert write(again, tmp_path / "b") == text
    header = text.decode().splitlines()[0].split(",")
    assert {"realised_fid", "realised_fid_table", "fid_method"} <= set(header)


@pytest.mark.parametrize("n_images", [3, 17, 40])
def test_few_images_fid_equals_the_full_covariance_fid(n_images):
    """Fewer distinct images than dimensions (an epoch's set at Inception's d): the n x n Gram
    route gives the d x d covariance's Fréchet distance."""
    from scipy.linalg import sqrtm

    d, rng = 48, np.random.default_rng(n_images)
    x = rng.normal(size=(n_images, 1, 1, d)) * rng.uniform(0.5, 2.0, d)
    root = rng.normal(size=(d, d)) / np.sqrt(d)
    reference_sigma = root @ root.T + 0.1 * np.eye(d)
    reference_mu = rng.normal(size=d)
    features = ServedFeatures(x, ("m",), reference_mu, reference_sigma, 100)
    prompts = np.concatenate([np.arange(n_images), [0, 0, 1]])  # repeats weigh twice/thrice
    images = x[prompts, 0, 0]
    mu, sigma = images.mean(axis=0), np.cov(images, rowvar=False)
    expected = (
        (mu - reference_mu) @ (mu - reference_mu)
        + np.trace(sigma)
        + np.trace(reference_sigma)
        - 2.0 * np.trace(sqrtm(sigma @ reference_sigma)).real
    )
    # rel 1e-7: sqrtm of the rank-deficient product carries round-off of about 1e-9
    assert features.fid(prompts, np.zeros(len(prompts), np.int64)) == pytest.approx(
        expected, rel=1e-7
    )


def test_grouped_exact_fid_is_each_groups_own_exact_fid(default_bundle):
    """Every group scored alone, across the chunks of `served_fid_groups` (65 groups per chunk
    boundary crossed), empty groups NaN."""
    from simulator.default_bundle import GROUP_CHUNK, served_fid_groups

    params, latents = generative_model(default_bundle)
    rng = np.random.default_rng(3)
    n_groups = 2 * GROUP_CHUNK + 3
    prompt_idx = rng.integers(0, default_bundle.n_prompts, 3000)
    model_idx = rng.integers(0, len(default_bundle.model_names), 3000)
    group = rng.integers(0, n_groups, 3000)
    group[group == GROUP_CHUNK + 1] = 0  # one empty group inside a chunk
    fid = served_fid_groups(params, latents, prompt_idx, model_idx, group, n_groups + 1)
    for k in range(n_groups + 1):
        mine = group == k
        if not mine.any():
            assert np.isnan(fid[k])
            continue
        alone = served_fid(params, latents, prompt_idx[mine], model_idx[mine])
        assert fid[k] == pytest.approx(alone, rel=1e-12)
    assert np.isnan(fid[[GROUP_CHUNK + 1, n_groups]]).all()


def test_a_paired_fid_without_images_is_undefined_without_warnings():
    """At 0.25x SLO Clipper-Heavy completes no query (FID NaN on every seed): fig11's paired
    FID comparisons with it are undefined, not a numpy 'Mean of empty slice' warning."""
    from experiments.figures import seeds, verdicts

    per_seed = pd.DataFrame(
        {
            "seed": [0, 1, 2, 0, 1, 2],
            "method": ["clipper-light"] * 3 + ["clipper-heavy"] * 3,
            "fid": [30.0, 30.5, 29.8, np.nan, np.nan, np.nan],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = seeds.paired_estimate(per_seed, "fid", "clipper-light", "clipper-heavy")
        verdict = verdicts.difference_verdict(est, verdicts.HIGHER, 0.3)
    assert not est.defined and verdict == verdicts.INDISTINGUISHABLE
