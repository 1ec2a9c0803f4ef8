"""Routing-data loaders, split, and router checks on the real reference data."""

from __future__ import annotations

import numpy as np
import pytest

from routers.data import (
    RouterDataError,
    load_agiqa,
    load_hadis_artifact,
    load_routing_data,
    load_wide_csv,
    split_by_prompt,
)
from routers.evaluate import evaluate_router
from routers.features import MiniLMEncoder
from routers.nn import TrainConfig
from routers.registry import RouterContext, build_router


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _wide(n=12, extra_row=""):
    rows = [f"prompt {i},{i % 3},{i % 5 + 1}" for i in range(n)]
    return "prompt,edge,cloud\n" + "\n".join(rows) + "\n" + extra_row


def test_wide_csv_loads_and_picks_first_and_last_by_default(tmp_path):
    rows = [f"p{i},{i},{i + 1},{i + 3}" for i in range(10)]
    path = _write(tmp_path / "w.csv", "prompt,a,b,c\n" + "\n".join(rows) + "\n")
    data = load_wide_csv(path)
    assert data.pair_names == ("a", "c") and data.quality.shape == (10, 3)
    assert load_wide_csv(path, "a,b").pair_names == ("a", "b")
    assert load_wide_csv(path, "1,2").pair_names == ("b", "c")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("text,a,b\nx,1,2\n", "missing column 'prompt'"),
        ("prompt,a\nx,1\n", "at least two model columns"),
        (_wide(extra_row="bad,1,oops\n"), "line 14: column 'cloud' value 'oops' is not a number"),
        (_wide(extra_row="bad,,2\n"), "line 14: column 'edge' is empty"),
        (_wide(n=5), "5 prompts, need at least 10"),
        ("", "not a CSV table"),
    ],
)
def test_wide_csv_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(RouterDataError, match=message):
        load_wide_csv(_write(tmp_path / "w.csv", text))


def test_pair_errors(tmp_path):
    path = _write(tmp_path / "w.csv", _wide())
    with pytest.raises(RouterDataError, match="unknown model 'x'"):
        load_wide_csv(path, "x,cloud")
    with pytest.raises(RouterDataError, match="LIGHT must come before HEAVY"):
        load_wide_csv(path, "cloud,edge")
    with pytest.raises(RouterDataError, match="expected LIGHT,HEAVY"):
        load_wide_csv(path, "edge")
    with pytest.raises(RouterDataError, match="not found"):
        load_routing_data("agiqa-3k", tmp_path)
    with pytest.raises(RouterDataError, match="no such file"):
        load_routing_data(str(tmp_path / "none.csv"), tmp_path)


def test_split_is_disjoint_seeded_and_complete(tmp_path):
    data = load_wide_csv(_write(tmp_path / "w.csv", _wide(n=50)))
    a, b, c = split_by_prompt(data, 3), split_by_prompt(data, 3), split_by_prompt(data, 4)
    ids = [set(part.batch.prompt_ids) for part in (a.train, a.calib, a.test)]
    assert [len(i) for i in ids] == [30, 10, 10]
    assert set().union(*ids) == set(range(50)) and not (ids[0] & ids[1] or ids[1] & ids[2])
    np.testing.assert_array_equal(a.test.batch.prompt_ids, b.test.batch.prompt_ids)
    assert not np.array_equal(a.test.batch.prompt_ids, c.test.batch.prompt_ids)
    np.testing.assert_array_equal(a.test.quality, data.quality[a.test.batch.prompt_ids])
    with pytest.raises(RouterDataError, match="cannot be split"):
        split_by_prompt(data, 0, calib_frac=0.01)


@pytest.fixture(scope="module")
def hadis(hadis_artifact):
    return load_hadis_artifact(hadis_artifact)


def test_hadis_artifact_quality_is_mean_p_real_of_four_images(hadis, hadis_artifact):
    assert hadis.quality.shape == (5000, 4) and hadis.batch.features.shape == (5000, 8)
    assert hadis.pair_names == ("sdxl-lightning", "sd35-large")
    rows = np.loadtxt(
        hadis_artifact / "discriminator/confidence_scores/scores_model_3.txt", max_rows=8
    )
    assert hadis.quality[1, 3] == pytest.approx(rows[4:8, 1].mean())
    assert hadis.batch.texts[0] == "a white handkerchief with embroidered star on it"
    assert list(hadis.batch.features[0]) == [8, 2, 2, 2, 2, 2, 1, 0]


def test_agiqa_matrix_and_default_pair(shared_data):
    data = load_agiqa(shared_data / "agiqa-3k")
    assert data.pair_names == ("sd1.5_lowstep", "xl2.2_normal")
    assert len(data) == 300 and data.quality.shape == (300, 10)
    assert np.isfinite(data.quality[:, [data.light, data.heavy]]).all()
    assert set(data.metrics()) == {"quality", "alignment"}
    # the closed models miss a few prompts
    assert np.isnan(data.quality[:, data.model_names.index("DALLE2_normal")]).sum() == 10


def _result(name, data, seed=0):
    ctx = RouterContext(data, "bow+hadis8", seed, TrainConfig(epochs=10), MiniLMEncoder())
    return evaluate_router(build_router(name, ctx), split_by_prompt(data, seed), seed)


def test_on_hadis_artifact_oracle_and_rule_router_beat_random(hadis):
    random, oracle = _result("random", hadis), _result("oracle", hadis)
    rule = _result("hadis-rule", hadis)
    # measured (seed 0, 1000 test prompts): ΔP@50% random 0.547, rule 0.621, oracle 1.199
    assert oracle.summary["dp_at_50"] > 1.0 > random.summary["dp_at_50"]
    assert rule.summary["dp_at_50"] > random.summary["dp_at_50"]
    assert rule.summary["apgr"] > random.summary["apgr"]


def test_on_agiqa_oracle_beats_random(shared_data):
    data = load_agiqa(shared_data / "agiqa-3k")
    random, oracle = _result("random", data), _result("oracle", data)
    assert oracle.summary["apgr"] > random.summary["apgr"] + 0.2
