"""Model uncertainty in the replicates: the calibration's bootstrap draws, the default bundle's
replicates (`default:replicate=K`), the sweep's `replicate` axis and the figures' seeds."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from experiments.cli import app
from experiments.figures import seeds
from experiments.figures.context import FigureContext
from experiments.inputs import replicate_spec, resolve_bundle
from experiments.sweep import SweepSpecError, parse_spec, plan_runs, read_store
from simulator import default_bundle as gen
from simulator.bundle import BundleError
from simulator.results import sha256_json

TINY_TRACE = "poisson:rate=1,duration=20"


@pytest.fixture(scope="module")
def nominal():
    return resolve_bundle("default")


@pytest.fixture(scope="module")
def replicate_3():
    return gen.build_replicate_bundle(3)


def test_replicate_zero_is_the_nominal_bundle(nominal):
    assert resolve_bundle("default:replicate=0") is nominal  # one cached build
    assert gen.build_replicate_bundle(0).content_hash() == gen.build_default_bundle().content_hash()
    assert gen.replicate_params(0) == gen.load_params()


def test_replicate_redraws_latents_and_calibration_deterministically(nominal, replicate_3):
    again = gen.build_replicate_bundle(3)
    assert again.content_hash() == replicate_3.content_hash() != nominal.content_hash()
    generator = replicate_3.meta["generator"]
    assert generator["seed"] == 3
    params = gen.replicate_params(3)
    assert generator["params_sha256"] == sha256_json(params) != sha256_json(gen.load_params())
    assert params["fid"] == gen.load_draws()["draws"][2]["fid"]  # calibration draw 3
    # another latent draw: other prompts' scores, and the cascade FIDs move
    assert not np.allclose(replicate_3.disc_score, nominal.disc_score)
    moved = np.abs(replicate_3.cascades["fid"].to_numpy() - nominal.cascades["fid"].to_numpy())
    assert 0.001 < moved.mean() < 1.0  # a perturbation, not another model
    # a replicate is scored by the same (exact) FID estimator as the nominal bundle
    assert gen.generative_model(replicate_3) is not None
    assert gen.generative_model(nominal) is not None


def test_calibration_draws_cycle_beyond_the_committed_ones():
    n_draws = len(gen.load_draws()["draws"])
    assert n_draws == gen.N_CALIBRATION_DRAWS
    assert gen.replicate_params(1)["fid"] == gen.replicate_params(1 + n_draws)["fid"]
    assert gen.replicate_params(1)["fid"] != gen.replicate_params(2)["fid"]


def test_committed_draws_spread_around_the_nominal_fit():
    nominal = gen.load_params()
    draws = gen.load_draws()["draws"]
    floors = np.array([d["fid"]["floor"] for d in draws])
    loadings = np.array([d["disc"]["content_loading"] for d in draws])
    assert floors.std() > 1e-3 and (loadings.std(axis=0) > 1e-3).all()  # they do vary
    # ... around the nominal fit, within a few bootstrap standard deviations
    assert abs(floors.mean() - nominal["fid"]["floor"]) < 3 * floors.std()
    spread = np.abs(loadings.mean(axis=0) - nominal["disc"]["content_loading"])
    assert (spread < 3 * loadings.std(axis=0) + 1e-3).all()


def leaves(tree, path: str = "") -> dict:
    """A nested dict/list of numbers as {path: value}."""
    if isinstance(tree, dict):
        return {k: v for key in tree for k, v in leaves(tree[key], f"{path}.{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, x in enumerate(tree) for k, v in leaves(x, f"{path}[{i}]").items()}
    return {path: tree}


def test_calibration_draws_regenerate_from_the_artifact(hadis_artifact):
    """The same draw, up to the last of the 6 digits kept: OpenBLAS picks its kernels by
    CPU (DYNAMIC_ARCH), and the fits' optimiser moves by ~1e-6 from one CPU to another."""
    record = gen.calibration_draws(hadis_artifact, n_draws=1)
    committed = gen.load_draws()
    assert record["params_sha256"] == committed["params_sha256"]
    got, want = leaves(record["draws"][0]), leaves(committed["draws"][0])
    assert got.keys() == want.keys()
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize(
    "spec", ["default:replicate=x", "default:replicate=-1", "default:seed=3", "default:"]
)
def test_bad_replicate_spec_is_an_input_error(spec):
    with pytest.raises(BundleError, match="default:replicate=K with K an integer"):
        resolve_bundle(spec)


def test_bad_replicate_spec_on_the_cli_is_one_line_exit_2(tmp_path):
    args = ["simulate", "--bundle", "default:replicate=abc", "--policy", "clipper-light",
            "--trace", TINY_TRACE, "--out", str(tmp_path / "run"), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'default:replicate=abc'" in lines[0], result.output


def sweep_spec(**changes) -> dict:
    spec = {
        "bundle": "default",
        "trace": TINY_TRACE,
        "grid": {"policy": ["clipper-light"], "replicate": [0, 3], "seed": [0]},
        "sim": {"n_workers": 4, "slo_s": 20},
    }
    spec.update(changes)
    return spec


def test_sweep_replicate_axis_keys_runs_on_their_bundle(nominal, replicate_3):
    runs = plan_runs(parse_spec(sweep_spec(), "r.yaml"), nominal, nominal.content_hash())
    assert [run.point.replicate for run in runs] == [0, 3]
    assert [run.hashes["bundle"] for run in runs] == [
        nominal.content_hash(),
        replicate_3.content_hash(),
    ]
    assert runs[1].bundle_spec == replicate_spec(3) == "default:replicate=3"
    assert runs[0].point.coordinates()["replicate"] == 0
    assert "replicate=3" in runs[1].point.label()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bundle": "some/folder"}, "grid.replicate: needs bundle 'default'"),
        ({"grid": {"policy": ["clipper-light"], "replicate": [1.5]}}, "grid.replicate: 1.5"),
        ({"grid": {"policy": ["clipper-light"], "replicate": [-1]}}, "grid.replicate: -1"),
    ],
)
def test_bad_replicate_axis(change, message):
    with pytest.raises(SweepSpecError, match=message):
        parse_spec(sweep_spec(**change), "bad.yaml")


def test_seed_rows_pair_each_seed_with_its_own_bundle_replicate(nominal, tmp_path):
    ctx = FigureContext("default", nominal, tmp_path, quick=True)
    assert seeds.replicates_of(ctx) == [0, 1, 2]
    rows = seeds.seed_rows(ctx, TINY_TRACE, ["clipper-light"], ["fid", "fid_method"])
    assert list(rows["seed"]) == seeds.seeds_of(ctx)
    assert set(rows["fid_method"]) == {"exact"}
    store = read_store(tmp_path / "sweeps" / seeds.STORE)
    by_seed = store.set_index("seed")
    assert list(by_seed.loc[seeds.seeds_of(ctx), "replicate"]) == [0, 1, 2]
    hashes = list(by_seed.loc[seeds.seeds_of(ctx), "hash.bundle"])
    assert hashes[0] == nominal.content_hash() and len(set(hashes)) == 3
    assert hashes[1] == resolve_bundle("default:replicate=1").content_hash()
    # the next context seed takes the next, disjoint, replicates
    assert seeds.replicates_of(FigureContext("default", nominal, tmp_path, seed=1)) == [
        5, 6, 7, 8, 9
    ]


def test_other_bundles_replicate_the_trace_only(nominal, tmp_path):
    ctx = FigureContext("some/bundle", nominal, tmp_path, quick=True)
    assert seeds.replicates_of(ctx) is None
    assert "trace (seed) only" in seeds.uncertainty_note(ctx)
    default_ctx = FigureContext("default", nominal, tmp_path)
    assert "all three sources" in seeds.uncertainty_note(default_ctx)
