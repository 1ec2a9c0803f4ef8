"""The FID estimators' out-of-sample error (simulator/fid_error.py), the table that reports it
(tab03) and which estimator a run's FID comes from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bundle_factory import make_bundle

from simulator import default_bundle as gen
from simulator import fid_error as fe
from simulator.artifact import ArtifactError
from simulator.bundle import write_bundle
from simulator.config import SimConfig
from simulator.run import run_simulation
from simulator.workloads import parse_trace_spec

ARTIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hadis-artifact"
needs_artifact = pytest.mark.skipif(
    not ARTIFACT.is_dir(), reason=f"reference data absent: {ARTIFACT} (see ../shared/data)"
)


def grid_table(fid_of, pairs=(("a", "b"), ("a", "c"))) -> pd.DataFrame:
    ratios = np.round(np.arange(0, 1.01, 0.1), 10)
    return pd.DataFrame(
        [
            (light, heavy, r, c, fid_of(r, c))
            for light, heavy in pairs
            for r in ratios
            for c in ratios
        ],
        columns=["light", "heavy", "router_ratio", "disc_ratio", "fid"],
    )


# ----------------------------------------------------------------------------- folds, estimators


def test_folds_hold_out_whole_configurations_and_keep_single_model_rows():
    table = grid_table(lambda r, c: 20.0)
    twin = table[table["router_ratio"] == 0].assign(fid=21.0)  # a second row per config
    rows = fe.with_folds(pd.concat([table, twin]), ("light", "heavy"), k=5, seed=0)
    r, c = rows["router_ratio"], rows["disc_ratio"]
    alone = ((r == 0) & (c == 0)) | (r == 1) | (c == 1)
    assert (rows["alone"] == alone).all() and (rows.loc[alone, "fold"] == -1).all()
    # 2 pairs x (10 x 10 - 1) mixing configurations, 5 folds of 39 or 40 each
    mixing = rows[~rows["alone"]].drop_duplicates(["light", "heavy", "router_ratio", "disc_ratio"])
    assert len(mixing) == 198 and sorted(mixing["fold"].value_counts()) == [39, 39, 40, 40, 40]
    # a configuration's rows share a fold
    assert (rows[~rows["alone"]].groupby(["light", "heavy", "router_ratio", "disc_ratio"])
            ["fold"].nunique() == 1).all()  # fmt: skip
    again = fe.with_folds(pd.concat([table, twin]), ("light", "heavy"), k=5, seed=0)
    assert (again["fold"] == rows["fold"]).all()
    other = fe.with_folds(pd.concat([table, twin]), ("light", "heavy"), k=5, seed=1)
    assert (other["fold"] != rows["fold"]).any()
    with pytest.raises(fe.EstimatorError, match="k = 1; allowed: an integer >= 2"):
        fe.with_folds(table, ("light", "heavy"), k=1)


def test_linear_interpolation_is_exact_on_a_plane_and_undefined_outside():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    values = 2 * points[:, 0] + 3 * points[:, 1] + 1
    query = np.array([[0.25, 0.5], [0.9, 0.1], [1.5, 0.5]])
    got = fe._linear(points, values, query)
    assert got[:2] == pytest.approx([3.0, 3.1]) and np.isnan(got[2])
    assert np.isnan(fe._linear(points[:2], values[:2], query)).all()  # no triangle


def test_table_kfold_errs_only_where_the_surface_bends():
    plane = fe.bundle_table_kfold(grid_table(lambda r, c: 30 - 4 * r - 6 * c))
    assert len(plane) == 198 and np.abs(plane["error_fid"]).max() < 1e-9
    # a curved surface (FID convex in the heavy share): held-out rows are over-predicted
    curved = fe.bundle_table_kfold(grid_table(lambda r, c: 20 + 10 * (1 - r - c + r * c) ** 2))
    assert curved["error_fid"].mean() > 0 and np.abs(curved["error_fid"]).max() > 0.01


def test_random_mix_predictions():
    shares = np.array([0.0, 0.5, 1.0])
    # the linear blend of SD3.5-Large-Turbo (25.23) and SD3.5-Large (19.95)
    assert fe.table_random_mix(shares) == pytest.approx([19.95, 22.59, 25.23])
    params = gen.load_params()
    latents = gen._cached_latents(int(params["n_prompts"]), int(params["seed"]))
    exact = fe.exact_random_mix(shares, params, latents)
    n = len(latents["content"])
    alone = [gen.routing_fid(params, latents, np.full(n, m)) for m in (fe.MIX_HEAVY, fe.MIX_LIGHT)]
    assert exact[[0, 2]] == pytest.approx(alone, abs=1e-9)
    assert exact[1] < fe.table_random_mix(np.array([0.5]))[0] - 0.5  # mixing lowers FID


def test_random_mix_files_are_read_with_line_numbered_errors(tmp_path):
    folder = tmp_path / "router" / "fid"
    folder.mkdir(parents=True)
    for k in range(1, 10):
        (folder / f"random_eval_{k}.txt").write_text(f"{20 + k / 10}\n{20 + k / 10 + 0.2}\n")
    (folder / "random.txt").write_text("21.0\n21.5\n22.0\n")
    mixes = fe.read_random_mixes(tmp_path)
    assert list(mixes["light_share"]) == pytest.approx([k / 10 for k in range(1, 10)] + [0.5])
    assert list(mixes["n_draws"]) == [2] * 9 + [3]
    assert mixes["fid"].iloc[0] == pytest.approx(20.2) and mixes["fid"].iloc[-1] == 21.5
    assert mixes["fid_sd"].iloc[-1] == pytest.approx(0.5)
    (folder / "random_eval_3.txt").write_text("20.1\nnan\n")
    with pytest.raises(ArtifactError, match=r"random_eval_3.txt: line 2: 'nan' is not"):
        fe.read_random_mixes(tmp_path)
    (folder / "random_eval_3.txt").unlink()
    with pytest.raises(ArtifactError, match="random_eval_3.txt: missing artifact file"):
        fe.read_random_mixes(tmp_path)


# ----------------------------------------------------------------------------- the measurement


def test_committed_measurement_and_estimator_error():
    record = json.loads(fe.ESTIMATOR_ERROR_PATH.read_text())
    assert record["source"].startswith("hadis-artifact") and record["k_folds"] == fe.K_FOLDS
    summary = fe.committed_summary().set_index(["estimator", "set"])
    assert summary.loc[("exact", "cascade k-fold"), "n"] == 648  # 594 configs + 54 twins
    assert summary.loc[("table", "random mix"), "n"] == 10
    # the worse set's mean absolute error: random mixes for both
    assert fe.estimator_error("exact") == summary.loc[("exact", "random mix"), "mean_abs_fid"]
    assert fe.estimator_error("table") == summary.loc[("table", "random mix"), "mean_abs_fid"]
    assert fe.estimator_error("exact") < 0.2 < 1.0 < fe.estimator_error("table")
    with pytest.raises(fe.EstimatorError, match="'planned'; known: exact, table"):
        fe.estimator_error("planned")


@needs_artifact
def test_artifact_held_out_sets():
    mixes = fe.read_random_mixes(ARTIFACT)
    assert list(mixes["n_draws"]) == [30] * 9 + [400]
    assert mixes["fid"].is_monotonic_increasing is False  # 400 draws at 0.5 after k = 9
    assert (np.diff(mixes["fid"].to_numpy()[:9]) > 0).all()  # more light images, worse FID
    targets = fe.cascade_targets(ARTIFACT)
    assert len(targets) == 792 and (~targets["alone"]).sum() == 648
    assert set(targets["fold"]) == {-1, 0, 1, 2, 3, 4}


@pytest.mark.slow
@needs_artifact
def test_measurement_reproduces_the_committed_record():
    summary = fe.summarise(fe.measure(ARTIFACT))
    assert fe.record_text(fe.error_record(summary)) == fe.ESTIMATOR_ERROR_PATH.read_text()


# ----------------------------------------------------------------------------- which estimator


def test_fid_of_a_bundle_without_features_or_a_generative_model_is_the_table_one(tmp_path):
    """A bundle with neither per-image features (`features.npz`, the profiler writes it:
    tests/test_served_fid.py) nor a generative model, such as the imported artifact or a
    hand-made one, is scored by `fid_table`: the table read at the realised ratios."""
    bundle = make_bundle(n_prompts=100)
    folder = write_bundle(bundle, tmp_path / "bundle")
    assert sorted(p.name for p in folder.iterdir()) == [
        "bundle.json",
        "cascades.csv",
        "latency.csv",
        "models.csv",
        "prompts.csv",
        "scores.csv",
    ]
    trace = parse_trace_spec("poisson:rate=2,duration=60", n_prompts=100, seed=0)
    assert gen.generative_fid(bundle) is None and bundle.features is None
    summary = run_simulation(bundle, trace, "static-cascade", SimConfig(n_workers=4)).summary
    assert summary["fid_method"] == "table" and summary["fid_exact"] is None
    assert summary["fid"] == summary["fid_table"] and "fid_served" not in summary
    # a cascade of light and heavy: between the two models' FIDs alone (30 and 20)
    assert 20.0 < summary["fid"] < 30.0
    # the served images' own features carry no estimator error
    assert fe.estimator_error("served") == 0.0


def test_tab03_reports_the_committed_errors_and_this_bundles_table(tmp_path):
    import matplotlib.pyplot as plt
    from bundle_factory import small_figure_context

    from experiments.figures import style, tab03_fid_error

    ctx = small_figure_context(tmp_path)
    data = tab03_fid_error.compute(ctx)
    assert list(data.columns) == tab03_fid_error.COLUMNS
    artifact = data[data["source"] == tab03_fid_error.ARTIFACT]
    committed = fe.committed_summary()
    assert artifact["mean_abs_fid"].tolist() == committed["mean_abs_fid"].tolist()
    # a hand-made bundle has no generative model: its comparisons are scored by fid_table
    assert (data["used_here"] == (data["estimator"] == "table")).all()
    own = data[data["source"] == tab03_fid_error.THIS_BUNDLE].iloc[0]
    assert own["estimator"] == "table" and own["n"] > 0 and own["max_abs_fid"] >= 0
    _, ax = plt.subplots()
    assert tab03_fid_error.plot(data, ax) is ax.figure and ax.has_data()
    plt.close("all")
    assert style.save(tab03_fid_error.plot(data), tmp_path / "tab03.png").stat().st_size > 5000
    assert tab03_fid_error.claims(data) == []


def test_cli_fid_error_rejects_bad_input_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["bundle", "fid-error", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "config_results_hybrid.csv: missing artifact file" in result.output
    assert len(result.output.strip().splitlines()) == 1
    if ARTIFACT.is_dir():
        result = runner.invoke(app, ["bundle", "fid-error", str(ARTIFACT), "--folds", "1"])
        assert result.exit_code == 2 and "k = 1; allowed: an integer >= 2" in result.output


def test_a_run_that_completes_nothing_keeps_its_bundles_estimator():
    """The estimator is the bundle's, not the run's: a default-bundle run with no completed
    query reports fid_method "exact" (and no FID), so one comparison never mixes estimators."""
    bundle = gen.build_default_bundle(n_prompts=200)
    trace = parse_trace_spec("constant:rate=1,duration=10", bundle.n_prompts, seed=0)
    config = SimConfig(n_workers=1, slo_s=1.0)
    summary = run_simulation(bundle, trace, "clipper-heavy", config).summary
    assert summary["ok"] + summary["timeouts"] == 0
    assert summary["fid_method"] == "exact" and summary["fid"] is None
