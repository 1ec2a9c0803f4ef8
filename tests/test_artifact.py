"""HADIS artifact readers and importer: on the real artifact (skipped when absent) and on tiny
hand-made artifacts for the error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.artifact import (
    HADIS_MODELS,
    ArtifactError,
    import_hadis_artifact,
    read_disc_scores,
    read_hybrid_table,
    read_prompt_features,
    realized_heavy_share,
)
from simulator.bundle import ROUTER_FEATURES, BundleError, load_bundle, write_bundle
from simulator.synthetic_prompts import HADIS_ROUTER_WEIGHTS, feature_table, router_score


@pytest.fixture(scope="module")
def artifact_bundle(hadis_artifact: Path):
    return import_hadis_artifact(hadis_artifact)


def test_import_shapes_and_provenance(artifact_bundle) -> None:
    b = artifact_bundle
    assert b.n_prompts == 5000
    assert b.model_names == tuple(m[0] for m in HADIS_MODELS)
    assert len(b.cascades) == 726
    assert len(b.pairs()) == 6
    assert b.meta["provenance"]["source"] == "hadis-artifact (github Tung-I/diffserve-2@538dc5d)"
    assert b.meta["provenance"]["gpu"] == "NVIDIA L40S"
    assert b.meta["router"]["weights"] == list(HADIS_ROUTER_WEIGHTS)
    assert b.models["fid_alone"].tolist() == [29.76, 25.23, 20.61, 19.95]
    assert b.batch_latency_s("SD3.5-Large", 1) == 27.0
    assert b.batch_latency_s("SD3.5-Large", 4) == pytest.approx(0.9 * 4 * 27.0)
    best = b.cascades.loc[b.cascades["fid"].idxmin()]
    assert (best["light"], best["heavy"], best["router_ratio"], best["disc_ratio"]) == (
        "SD3.5-Medium",
        "SD3.5-Large",
        0.2,
        0.5,
    )
    assert best["fid"] == 19.29


def test_router_score_is_zscored_features_dot_weights(artifact_bundle, hadis_artifact) -> None:
    features = pd.read_csv(hadis_artifact / "router/prompt_features.csv")
    values = features[list(ROUTER_FEATURES)].to_numpy(dtype=float)
    z = (values - values.mean(axis=0)) / values.std(axis=0, ddof=1)
    expected = z @ np.array([0.85, 0.32, 0.72, 0.99, 0.76, 0.07, 0.78, 0.01])
    np.testing.assert_allclose(artifact_bundle.router_score, expected, rtol=0, atol=1e-9)
    assert abs(artifact_bundle.router_score.mean()) < 1e-9
    # the weights are the candidate with the best FID in the artifact's weight search
    candidates = np.loadtxt(hadis_artifact / "router/feat_weight_candidates.txt")
    fid = np.loadtxt(hadis_artifact / "router/fid/feat.txt")
    np.testing.assert_array_equal(candidates[int(np.argmin(fid))], HADIS_ROUTER_WEIGHTS)


def test_disc_score_is_mean_p_real_of_four_images(artifact_bundle, hadis_artifact) -> None:
    raw = np.loadtxt(hadis_artifact / "discriminator/confidence_scores/scores_model_2.txt")
    np.testing.assert_allclose(artifact_bundle.disc_score[:, 2], raw[:, 1].reshape(-1, 4).mean(1))
    medians = np.median(artifact_bundle.disc_score, axis=0)
    assert (medians > 1e-4).all() and (medians < 3e-3).all()


def test_hybrid_assignment_reproduces_heavy_shares(artifact_bundle) -> None:
    b = artifact_bundle
    realized = realized_heavy_share(b.prompts, b.disc_score, b.cascades)
    gap = np.abs(realized - b.cascades["heavy_share"].to_numpy())
    assert gap.max() < 0.01
    assert gap.mean() < 0.002


def test_feature_extractor_tracks_spacy_features(artifact_bundle) -> None:
    ours = feature_table(artifact_bundle.prompts["text"].tolist())
    theirs = artifact_bundle.prompts[list(ROUTER_FEATURES)]
    assert np.corrcoef(router_score(ours), router_score(theirs))[0, 1] > 0.9
    assert np.corrcoef(ours["prompt_length"], theirs["prompt_length"])[0, 1] > 0.95


def test_round_trip(artifact_bundle, tmp_path: Path) -> None:
    loaded = load_bundle(write_bundle(artifact_bundle, tmp_path / "b"))
    assert loaded.model_names == artifact_bundle.model_names
    pd.testing.assert_frame_equal(loaded.cascades, artifact_bundle.cascades)
    pd.testing.assert_frame_equal(loaded.prompts, artifact_bundle.prompts, rtol=1e-9)
    np.testing.assert_allclose(loaded.disc_score, artifact_bundle.disc_score, rtol=1e-9)
    again = load_bundle(write_bundle(loaded, tmp_path / "c"))
    assert again.content_hash() == loaded.content_hash()


# ----------------------------------------------------------------------------- error paths

PROMPTS = ["a red ball", "the sail is white"]


def _tiny_artifact(root: Path) -> Path:
    (root / "traces").mkdir(parents=True)
    (root / "router").mkdir()
    (root / "discriminator/confidence_scores").mkdir(parents=True)
    (root / "traces/text_imagenet1k_hr_5k.txt").write_text("\n".join(PROMPTS) + "\n")
    header = "prompt," + ",".join(ROUTER_FEATURES)
    rows = ["a red ball,3,0,0,1,1,0,0,0", "the sail is white,4,0,1,2,1,0,0,0"]
    (root / "router/prompt_features.csv").write_text("\n".join([header, *rows]) + "\n")
    for m in range(4):
        lines = [f"0.99 {0.001 * (m + 1) + 0.0001 * i}" for i in range(8)]
        (root / f"discriminator/confidence_scores/scores_model_{m}.txt").write_text(
            "\n".join(lines) + "\n"
        )
    hybrid = ["light_model,heavy_model,router_ratio,disc_ratio,threshold,latency,fid"]
    hybrid += ["0,1,0.0,0.0,0.0,0.5,29.75", "0,1,0.0,0.5,0.5,1.15,26.06"]
    (root / "discriminator/config_results_hybrid.csv").write_text("\n".join(hybrid) + "\n")
    return root


def test_tiny_artifact_imports(tmp_path: Path) -> None:
    bundle = import_hadis_artifact(_tiny_artifact(tmp_path))
    assert bundle.n_prompts == 2
    assert bundle.disc_score[0, 1] == pytest.approx(0.002 + 0.0001 * 1.5)


def test_missing_file_is_named(tmp_path: Path) -> None:
    root = _tiny_artifact(tmp_path)
    (root / "discriminator/config_results_hybrid.csv").unlink()
    with pytest.raises(ArtifactError, match=r"config_results_hybrid\.csv: missing artifact file"):
        import_hadis_artifact(root)
    assert issubclass(ArtifactError, BundleError)


def test_bad_score_line_is_named(tmp_path: Path) -> None:
    root = _tiny_artifact(tmp_path)
    path = root / "discriminator/confidence_scores/scores_model_3.txt"
    lines = path.read_text().splitlines()
    lines[5] = "0.99 oops"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArtifactError, match=r"scores_model_3\.txt: line 6: column 2"):
        read_disc_scores(root, 3, 2)


def test_wrong_row_counts(tmp_path: Path) -> None:
    root = _tiny_artifact(tmp_path)
    with pytest.raises(ArtifactError, match=r"8 lines, expected 12"):
        read_disc_scores(root, 0, 3)
    with pytest.raises(ArtifactError, match=r"2 data rows, expected 3"):
        read_prompt_features(root, 3)


def test_bad_feature_and_model_index_lines(tmp_path: Path) -> None:
    root = _tiny_artifact(tmp_path)
    features = root / "router/prompt_features.csv"
    features.write_text(features.read_text().replace("4,0,1,2", "4,x,1,2"))
    with pytest.raises(ArtifactError, match=r"prompt_features\.csv: line 3: column token_rarity"):
        read_prompt_features(root, 2)
    hybrid = root / "discriminator/config_results_hybrid.csv"
    hybrid.write_text(hybrid.read_text().replace("0,1,0.0,0.5", "0,7,0.0,0.5"))
    with pytest.raises(ArtifactError, match=r"line 3: column heavy_model: model index 7"):
        read_hybrid_table(root)


def test_mismatched_prompt_is_named(tmp_path: Path) -> None:
    root = _tiny_artifact(tmp_path)
    (root / "traces/text_imagenet1k_hr_5k.txt").write_text("a red ball\nthe sail is blue\n")
    with pytest.raises(ArtifactError, match=r"line 3: prompt differs from line 2"):
        import_hadis_artifact(root)


def test_import_refuses_a_count_past_the_integer_range_in_one_line(tmp_path: Path) -> None:
    """1e308 is not a count; cast to int64 it wrapped round and was called negative."""
    from hostile import assert_one_line_error, invoke

    root = _tiny_artifact(tmp_path / "artifact")
    features = root / "router/prompt_features.csv"
    features.write_text(features.read_text().replace("4,0,1,2", "4,1e308,1,2"))
    outcome = invoke("import", "hadis-artifact", root, tmp_path / "bundle")
    line = assert_one_line_error(outcome)
    assert line == (f"error: {features}: line 3: column token_rarity: 1e+308 is not an integer")
    assert not (tmp_path / "bundle").exists()
