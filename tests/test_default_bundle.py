"""Synthetic prompts, the feature extractor, and the calibrated default bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from simulator.artifact import import_hadis_artifact
from simulator.bundle import ROUTER_FEATURES, load_bundle, write_bundle
from simulator.default_bundle import (
    DEFAULT_PARAMS_PATH,
    FEATURE_DIMS,
    ParamsError,
    build_default_bundle,
    calibrate,
    load_params,
    routing_fid,
    sample_latents,
    save_params,
)
from simulator.synthetic_prompts import extract_features, feature_table, generate_prompts

# ----------------------------------------------------------------------------- prompts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the artifact's spaCy features of these captions (router/prompt_features.csv)
        ("a red ball sits in the grass on a green field", (11, 0, 3, 3, 2, 2, 1, 0)),
        ("the sail is white", (4, 0, 1, 2, 1, 0, 0, 0)),
        ("a white handkerchief with embroidered star on it", (8, 2, 2, 2, 2, 2, 0, 0)),
    ],
)
def test_extractor_matches_spacy_on_simple_captions(text: str, expected: tuple) -> None:
    got = extract_features(text)
    assert tuple(got[f] for f in ROUTER_FEATURES if f != "token_rarity") == tuple(
        v for f, v in zip(ROUTER_FEATURES, expected) if f != "token_rarity"
    )


def test_extractor_handles_arbitrary_text() -> None:
    assert extract_features("") == dict.fromkeys(ROUTER_FEATURES, 0)
    got = extract_features("A photo of Barack Obama shaking hands in New York, 2019!")
    assert got["named_entities"] == 2  # "Barack Obama", "New York"
    assert got["prompt_length"] == 11 and got["token_rarity"] >= 2  # ',' and '!' are rare
    assert extract_features("chiaroscuro")["token_rarity"] == 1


def test_generator_is_seeded_and_hardness_drives_features() -> None:
    texts, hardness = generate_prompts(2000, 7)
    again, hardness_again = generate_prompts(2000, 7)
    assert texts == again and np.array_equal(hardness, hardness_again)
    assert texts != generate_prompts(2000, 8)[0]
    features = feature_table(texts)
    for feature in ("prompt_length", "num_objects", "attribute_density", "action_verbs"):
        assert np.corrcoef(features[feature], hardness)[0, 1] > 0.3, feature


# ----------------------------------------------------------------------------- default bundle


@pytest.fixture(scope="module")
def default_bundle():
    return build_default_bundle()


def test_default_bundle_shape_and_determinism(default_bundle, tmp_path: Path) -> None:
    b = default_bundle
    assert b.n_prompts == 5000 and len(b.cascades) == 726
    assert b.model_names == ("SDXL-Lightning", "SD3.5-Large-Turbo", "SD3.5-Medium", "SD3.5-Large")
    assert b.meta["provenance"]["source"] == (
        "t2isim synthetic model calibrated to hadis-artifact@538dc5d"
    )
    assert build_default_bundle().content_hash() == b.content_hash()
    assert build_default_bundle(seed=1).content_hash() != b.content_hash()
    reloaded = load_bundle(write_bundle(b, tmp_path / "default"))
    np.testing.assert_allclose(reloaded.disc_score, b.disc_score, rtol=1e-9)


def test_routing_fid_single_model_and_mixing(default_bundle) -> None:
    params = load_params()
    latents = sample_latents(5000, 0, FEATURE_DIMS)
    alone = default_bundle.models["fid_alone"].to_numpy()
    for m in range(4):
        assert routing_fid(params, latents, np.full(5000, m)) == pytest.approx(alone[m], abs=1e-3)
    half = np.where(np.random.default_rng(0).random(5000) < 0.5, 2, 3)
    assert routing_fid(params, latents, half) < min(alone[2], alone[3])  # as in the artifact


def test_params_validation(tmp_path: Path) -> None:
    params = load_params()
    assert params["source"] == "hadis-artifact (github Tung-I/diffserve-2@538dc5d)"
    broken = json.loads(json.dumps(params))
    del broken["fid"]["floor"]
    with pytest.raises(ParamsError, match=r"field fid\.floor"):
        save_params(broken, tmp_path / "p.json")
    broken = json.loads(json.dumps(params))
    broken["fid"]["bias"] = [[0.0]]
    with pytest.raises(ParamsError, match=r"field fid\.bias"):
        build_default_bundle(broken, n_prompts=10)
    (tmp_path / "bad.json").write_text("{\n  oops")
    with pytest.raises(ParamsError, match=r"bad\.json: line 2"):
        load_params(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- calibration


def test_single_model_fids_match_artifact(default_bundle) -> None:
    fid_alone = default_bundle.models["fid_alone"].to_numpy()
    np.testing.assert_allclose(fid_alone, [29.76, 25.23, 20.61, 19.95], atol=0.3)


def test_cascade_table_matches_artifact(default_bundle, hadis_artifact: Path) -> None:
    keys = ["light", "heavy", "router_ratio", "disc_ratio"]
    artifact = import_hadis_artifact(hadis_artifact).cascades
    merged = artifact.merge(default_bundle.cascades, on=keys, suffixes=("_art", "_sim"))
    assert len(merged) == 726
    rmse = float(np.sqrt(np.mean((merged["fid_art"] - merged["fid_sim"]) ** 2)))
    assert rmse <= 0.5
    np.testing.assert_allclose(merged["heavy_share_sim"], merged["heavy_share_art"], atol=0.03)


def test_router_disc_spearman_matches_artifact(default_bundle, hadis_artifact: Path) -> None:
    artifact = import_hadis_artifact(hadis_artifact)
    for m in range(4):
        target = stats.spearmanr(artifact.router_score, artifact.disc_score[:, m])[0]
        got = stats.spearmanr(default_bundle.router_score, default_bundle.disc_score[:, m])[0]
        assert got == pytest.approx(target, abs=0.05)
        art_median = np.median(artifact.disc_score[:, m])
        assert np.median(default_bundle.disc_score[:, m]) == pytest.approx(art_median, rel=0.2)


@pytest.mark.slow
def test_calibrate_reproduces_committed_params(hadis_artifact: Path) -> None:
    committed = json.loads(DEFAULT_PARAMS_PATH.read_text())
    fresh = calibrate(hadis_artifact)
    for group in ("disc", "fid"):
        for key, value in committed[group].items():
            np.testing.assert_allclose(fresh[group][key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    assert fresh["source"] == committed["source"]
    assert fresh["fit"]["hybrid_rmse_fid"] <= 0.5


def test_served_fid_matches_routing_fid_and_drives_fid_exact():
    from simulator.default_bundle import (
        FEATURE_DIMS,
        generative_fid,
        load_params,
        routing_fid,
        sample_latents,
        served_fid,
    )

    params = load_params()
    latents = sample_latents(400, 3, FEATURE_DIMS)
    served_by = np.random.default_rng(0).integers(0, 4, 400)
    every_prompt_once = served_fid(params, latents, np.arange(400), served_by)
    assert every_prompt_once == pytest.approx(routing_fid(params, latents, served_by), rel=1e-12)
    bundle = build_default_bundle(n_prompts=400, seed=3)
    fid_of = generative_fid(bundle)
    assert fid_of(np.arange(400), served_by) == pytest.approx(every_prompt_once)
    light_alone = float(bundle.models.fid_alone.iloc[0])
    assert fid_of(np.arange(400), np.zeros(400, int)) == pytest.approx(light_alone, abs=1e-3)
    other = build_default_bundle(params={**params, "seed": params["seed"]}, n_prompts=400, seed=3)
    assert generative_fid(other) is not None  # same parameters: recognised


def test_routing_fid_equals_the_frechet_distance_of_the_explicit_features():
    """The sufficient-statistics algebra against the features themselves:
    x_pm = bias_m + lambda_m z_p - eta_m d_pm e_0, pooled over served images, diagonal Fréchet
    distance to N(0, I) in FID units."""
    from simulator.default_bundle import (
        FEATURE_DIMS,
        defect_and_disc_latent,
        load_params,
        routing_fid,
        sample_latents,
    )

    params = load_params()
    latents = sample_latents(2000, 4, FEATURE_DIMS)
    fid = params["fid"]
    defect, _ = defect_and_disc_latent(params["disc"], latents)
    served_by = np.where(latents["hardness"] > 0, 3, 0)  # hard prompts to the heavy model
    features = np.asarray(fid["bias"])[served_by] + (
        np.asarray(fid["content_scale"])[served_by][:, None] * latents["content"]
    )
    features[:, 0] -= np.asarray(fid["defect_coupling"])[served_by] * defect[
        np.arange(2000), served_by
    ]
    mean, sd = features.mean(axis=0), features.std(axis=0)
    explicit = fid["floor"] + fid["scale"] * ((mean**2).sum() + ((sd - 1) ** 2).sum())
    assert routing_fid(params, latents, served_by) == pytest.approx(explicit, rel=1e-10)


def test_served_fid_removes_the_prompt_sample_bias():
    """A short trace sees 150 of 2000 prompts: the corrected served FID of a prompt-dependent
    mix is centred on the population FID of that routing; the uncorrected one is biased
    upwards (measured: mean error -0.03 vs +0.22 FID, mean |error| 0.36 vs 0.67)."""
    from simulator.default_bundle import (
        FEATURE_DIMS,
        _multiset_fid,
        load_params,
        routing_fid,
        sample_latents,
        served_fid,
    )

    params = load_params()
    latents = sample_latents(2000, 4, FEATURE_DIMS)
    served_by = np.where(latents["hardness"] > 0, 3, 0)
    population = routing_fid(params, latents, served_by)
    rng = np.random.default_rng(1)
    corrected, raw = [], []
    for _ in range(100):
        few = rng.integers(0, 2000, 150)
        corrected.append(served_fid(params, latents, few, served_by[few]) - population)
        raw.append(_multiset_fid(params, latents, few, served_by[few]) - population)
    corrected, raw = np.array(corrected), np.array(raw)
    assert abs(corrected.mean()) < 0.1 < raw.mean()
    assert np.abs(corrected).mean() < 0.7 * np.abs(raw).mean()

