"""RouteT2I multi-metric quality: the formula, the config file, the score step with the tiny
CLIP, and the per-prompt means the bundle step adds to scores.csv."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from profiler.multimetric import (
    DEFAULT_METRICS_CONFIG,
    ROUTET2I_METRICS,
    MetricConfigError,
    MetricTexts,
    MultiMetricConfig,
    load_metric_config,
    metric_quality,
    quality_column_names,
)


def _unit(rng, n, d=8):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_formula_matches_the_closed_form():
    rng = np.random.default_rng(0)
    image, pos, neg = _unit(rng, 5), _unit(rng, 3), _unit(rng, 3)
    q = metric_quality(image, pos, neg, logit_scale=7.0)
    gap = image @ pos.T - image @ neg.T
    np.testing.assert_allclose(q, 1.0 / (1.0 + np.exp(-7.0 * gap)), rtol=1e-12)
    # cosine, not dot product: scaling an embedding changes nothing
    np.testing.assert_allclose(metric_quality(3 * image, pos, 0.5 * neg, 7.0), q, rtol=1e-12)
    np.testing.assert_allclose(metric_quality(image, neg, pos, 7.0), 1 - q, atol=1e-15)
    assert np.all(metric_quality(image, pos, pos, 7.0) == 0.5)
    # a larger scale pushes every value away from 1/2 (same side)
    wide = metric_quality(image, pos, neg, 70.0)
    assert np.all(np.sign(wide - 0.5) == np.sign(q - 0.5))
    assert np.all(np.abs(wide - 0.5) >= np.abs(q - 0.5))


def test_formula_rejects_mismatched_embeddings():
    rng = np.random.default_rng(1)
    with pytest.raises(MetricConfigError, match="do not match"):
        metric_quality(_unit(rng, 2, 8), _unit(rng, 3, 4), _unit(rng, 3, 4))
    with pytest.raises(MetricConfigError, match="non-zero norm"):
        metric_quality(np.zeros((2, 8)), _unit(rng, 3), _unit(rng, 3))


def test_default_config_has_the_ten_routet2i_metrics():
    config = load_metric_config()
    assert tuple(m.name for m in config.metrics) == ROUTET2I_METRICS
    assert config.columns == tuple(f"q_{m}" for m in ROUTET2I_METRICS)
    assert config.logit_scale == 100.0
    assert all(m.positive != m.negative for m in config.metrics)
    assert "RouteT2I" in config.source
    assert quality_column_names(["prompt_id", "q_detail", "clip_score", "q_"]) == ["q_detail"]


@pytest.mark.parametrize(
    ("text", "logit_scale", "message"),
    [
        ("{", 100.0, "line 1: invalid JSON"),
        ('{"metrics": []}', 100.0, "field metrics"),
        ('{"metrics": [{"name": "Sharp", "positive": "a", "negative": "b"}]}', 100.0, "name"),
        ('{"metrics": [{"name": "s", "positive": "a"}]}', 100.0, r"metrics\[0\]: field negative"),
        (
            '{"metrics": [{"name": "s", "positive": "a", "negative": "b"},'
            ' {"name": "s", "positive": "c", "negative": "d"}]}',
            100.0,
            r"metrics\[1\]: field name",
        ),
        ('{"metrics": [{"name": "s", "positive": "a", "negative": "b"}]}', 0.0, "logit scale"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, text, logit_scale, message):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(MetricConfigError, match=message):
        load_metric_config(path, logit_scale)
    with pytest.raises(MetricConfigError, match="not found"):
        load_metric_config(tmp_path / "missing.json")


# ----------------------------------------------------------------------------- tiny CLIP


@pytest.fixture(scope="module")
def tiny_clip():
    pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from profiler.openclip import TINY_CLIP, load_clip

    return load_clip(TINY_CLIP, None, "cpu", seed=0)


@pytest.fixture(scope="module")
def scored_work(tiny_clip, tmp_path_factory):
    """A work folder with 3 prompts x 2 images of one model, scored with multi-metric on."""
    import torch

    from profiler.discriminator import train_head
    from profiler.layout import WorkLayout
    from profiler.steps import score_step, write_prompts
    from profiler.workflow import write_smooth_images

    layout = WorkLayout(tmp_path_factory.mktemp("work"))
    write_prompts(layout, ["a cat", "a red car next to a river", "an old man"])
    folder = write_smooth_images(layout.images("m"), 6, 32, seed=3)
    for k, path in enumerate(sorted(folder.glob("*.png"))):
        path.rename(folder / f"{k // 2:05d}_{k % 2}.png")
    rng = np.random.default_rng(0)
    head, _ = train_head(
        rng.normal(size=(8, 16)), np.arange(8) % 2, hidden=4, epochs=1, validation_fraction=0
    )
    torch.manual_seed(0)
    config = load_metric_config(logit_scale=10.0)
    score_step(layout, tiny_clip, head, ["a dog"], ["m"], config)
    return layout, head, config


def test_tiny_clip_scores_are_probabilities_and_deterministic(tiny_clip, scored_work):
    from profiler.steps import score_step

    layout, head, config = scored_work
    table = pd.read_csv(layout.scores("m"))
    assert list(table.columns[:5]) == ["image", "prompt_id", "image_idx", "p_real", "clip_score"]
    assert tuple(table.columns[5:]) == config.columns
    q = table[list(config.columns)].to_numpy()
    # the random-init tiny CLIP has cosine gaps up to ~0.6 (real CLIP: ~0.05), hence s = 10 here
    assert np.all((q > 0) & (q < 1)) and q.std() > 0
    assert json.loads(layout.scores("m").with_suffix(".json").read_text()) == config.to_dict()
    first = layout.scores("m").read_bytes()
    score_step(layout, tiny_clip, head, ["a dog"], ["m"], config)
    assert layout.scores("m").read_bytes() == first


def test_tiny_clip_swap_and_identical_texts(tiny_clip, scored_work):
    from profiler.inception import list_images
    from profiler.multimetric import metric_text_embeddings, quality_columns
    from profiler.openclip import image_embeddings

    layout, _, config = scored_work
    image_emb = image_embeddings(tiny_clip, list_images(layout.images("m")))
    swapped = MultiMetricConfig(
        tuple(MetricTexts(m.name, m.negative, m.positive) for m in config.metrics), 10.0
    )
    same = MultiMetricConfig(
        tuple(MetricTexts(m.name, m.positive, m.positive) for m in config.metrics), 10.0
    )
    q = quality_columns(image_emb, metric_text_embeddings(tiny_clip, config), config)
    q_swap = quality_columns(image_emb, metric_text_embeddings(tiny_clip, swapped), swapped)
    q_same = quality_columns(image_emb, metric_text_embeddings(tiny_clip, same), same)
    for column in config.columns:
        np.testing.assert_allclose(q_swap[column], 1.0 - q[column], atol=1e-12)
        assert np.all(q_same[column] == 0.5)
    # at CLIP's scale (100) the tiny model saturates some metrics, but stays within [0, 1]
    q_100 = quality_columns(
        image_emb, metric_text_embeddings(tiny_clip, config), load_metric_config()
    )
    values = np.stack(list(q_100.values()))
    assert np.all((values >= 0) & (values <= 1))


# ----------------------------------------------------------------------------- bundle step


def _fake_work(layout, config, n_prompts=4, k=2):
    """Every input of build_bundle, written without models (two models, random features)."""
    from profiler.frechet import GaussianStats
    from profiler.inception import save_features
    from profiler.latency import LatencyProfile, LatencyRow, write_latency_profile
    from profiler.prompt_features import features_table
    from profiler.steps import write_prompts

    prompts = [f"prompt number {p}" for p in range(n_prompts)]
    write_prompts(layout, prompts)
    features_table(np.arange(n_prompts * 8).reshape(n_prompts, 8) % 5, prompts).to_csv(
        layout.prompt_features_csv, index=False
    )
    rng = np.random.default_rng(0)
    layout.reference_stats.parent.mkdir(parents=True)
    GaussianStats.from_features(rng.normal(size=(32, 3))).save(layout.reference_stats)
    for j, model in enumerate(["light", "heavy"]):
        row = LatencyRow(model, 1, True, 1.0 + j, 1.0 + j, 1.0 + j, 1.0, 1, 1, 1.0 + j, 1.0 + j, "")
        meta = {"steps": 1, "resolution": 32, "gpu": "none"}
        write_latency_profile(LatencyProfile(model, 0.5, (row,)), layout.latency_csv(model), meta)
        names = np.array([[f"{p:05d}_{i}.png" for i in range(k)] for p in range(n_prompts)])
        save_features(layout.features(model), rng.normal(size=(n_prompts, k, 3)), names, "fake")
        table = pd.DataFrame(
            {
                "image": names.ravel(),
                "prompt_id": np.repeat(np.arange(n_prompts), k),
                "image_idx": np.tile(np.arange(k), n_prompts),
                "p_real": rng.uniform(size=n_prompts * k),
                "clip_score": rng.uniform(size=n_prompts * k),
                **{c: rng.uniform(size=n_prompts * k) for c in config.columns},
            }
        )
        layout.scores(model).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(layout.scores(model), index=False)
        layout.scores(model).with_suffix(".json").write_text(json.dumps(config.to_dict()))


def test_bundle_scores_get_per_prompt_means(tmp_path):
    from profiler.layout import WorkLayout
    from profiler.steps import StepError, build_bundle

    config = load_metric_config(DEFAULT_METRICS_CONFIG, 50.0)
    layout = WorkLayout(tmp_path)
    _fake_work(layout, config)
    plain = build_bundle(layout, "b", prune_models=False)
    assert not any(c.startswith("q_") for c in plain.scores.columns)
    assert "multi_metric" not in plain.meta
    bundle = build_bundle(layout, "b", prune_models=False, multi_metric=True)
    assert bundle.meta["multi_metric"] == config.to_dict()
    for model in ("light", "heavy"):
        per_image = pd.read_csv(layout.scores(model))
        expected = per_image.groupby("prompt_id")[list(config.columns)].mean().to_numpy()
        got = bundle.scores[bundle.scores.model == model].sort_values("prompt_id")
        np.testing.assert_allclose(got[list(config.columns)].to_numpy(), expected, rtol=1e-12)
    # mismatched configs between models are refused
    other = load_metric_config(DEFAULT_METRICS_CONFIG, 10.0)
    layout.scores("heavy").with_suffix(".json").write_text(json.dumps(other.to_dict()))
    with pytest.raises(StepError, match="heavy.csv: multi-metric columns or config differ"):
        build_bundle(layout, "b", prune_models=False, multi_metric=True)
    layout.scores("heavy").with_suffix(".json").unlink()
    with pytest.raises(StepError, match="heavy.csv: no q_<metric> columns"):
        build_bundle(layout, "b", prune_models=False, multi_metric=True)
