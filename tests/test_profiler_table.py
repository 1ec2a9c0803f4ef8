"""Lookup-table builder, candidate pruning, router scores (numpy only, no torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiler.candidates import CandidateError, prune_candidates
from profiler.frechet import GaussianStats, MixStats, fid_from_features
from profiler.latency import LatencyError, bundle_latency_rows
from profiler.prompt_features import PromptFeatureError, router_scores
from profiler.table_builder import CASCADE_COLUMNS, cascade_rows, pareto_front_2d, ratio_grid
from simulator.cascade import hybrid_assignment


def test_prune_candidates_applies_the_three_rules():
    latency = {"a": 1.0, "a2": 1.05, "b": 2.0, "bad": 3.0, "mid": 5.0, "c": 9.0}
    fid = {"a": 30.0, "a2": 30.2, "b": 26.0, "bad": 27.0, "mid": 22.0, "c": 14.0}
    result = prune_candidates(latency, fid)
    assert result.kept == ("a", "b", "c")
    assert result.reasons == {
        "a2": "similar to a",
        "bad": "dominated by b",
        "mid": "collinear between b and c",
    }


def test_prune_keeps_a_model_well_below_the_segment():
    # 'mid' is much better than interpolating between its neighbours: worth a cascade stage
    result = prune_candidates({"a": 1.0, "mid": 5.0, "c": 9.0}, {"a": 30.0, "mid": 15.0, "c": 14.0})
    assert result.kept == ("a", "mid", "c") and result.reasons == {}


def test_prune_rejects_bad_candidates():
    with pytest.raises(CandidateError, match="same models"):
        prune_candidates({"a": 1.0}, {"b": 2.0})
    with pytest.raises(CandidateError, match="'a'"):
        prune_candidates({"a": 0.0}, {"a": 2.0})


def test_router_scores_zscore_with_ddof1_and_constant_features():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=(50, 8)).astype(float)
    x[:, 5] = 3.0  # constant feature contributes nothing
    w = rng.uniform(size=8)
    frame = pd.DataFrame(x)
    z = ((frame - frame.mean()) / frame.std()).fillna(0.0)  # pandas std: ddof=1
    np.testing.assert_allclose(router_scores(x, w), z.to_numpy() @ w, rtol=1e-12)
    with pytest.raises(PromptFeatureError, match="weights"):
        router_scores(x, w[:3])


def test_pareto_front_2d():
    cost = np.array([1.0, 2.0, 2.0, 3.0, 1.0])
    fid = np.array([5.0, 4.0, 6.0, 4.0, 5.0])
    # row 4 duplicates row 0 (first kept); row 2 and 3 are dominated by row 1
    assert pareto_front_2d(cost, fid).tolist() == [True, True, False, False, False]


def test_ratio_grid():
    np.testing.assert_array_equal(ratio_grid(11), np.round(np.arange(11) / 10, 10))
    assert 0.3 in ratio_grid(11)


def _setup(n_prompts=40, k=2, d=4, seed=0):
    rng = np.random.default_rng(seed)
    reference = GaussianStats.from_features(rng.normal(size=(300, d)))
    feats = {
        "light": rng.normal(0.8, 1.5, size=(n_prompts, k, d)),
        "heavy": rng.normal(0.1, 1.1, size=(n_prompts, k, d)),
    }
    router = rng.normal(size=n_prompts)
    light_score = rng.uniform(size=n_prompts)
    return feats, reference, router, light_score


def test_cascade_rows_match_brute_force_assembly():
    feats, reference, router, light_score = _setup()
    grid = ratio_grid(6)
    table = cascade_rows(
        MixStats(feats),
        reference,
        router,
        {"light": light_score},
        {"light": 1.0, "heavy": 4.0},
        [("light", "heavy")],
        grid,
    )
    assert list(table.columns) == list(CASCADE_COLUMNS)
    assert len(table) == 36
    for row in table.sample(8, random_state=0).itertuples():
        bypassed, escalated = hybrid_assignment(
            router, light_score, row.router_ratio, row.disc_ratio
        )
        heavy = bypassed | escalated
        images = np.concatenate(
            [feats["heavy"][p] if heavy[p] else feats["light"][p] for p in range(len(heavy))]
        )
        assert row.fid == pytest.approx(fid_from_features(images, reference), rel=1e-9)
        assert row.heavy_share == pytest.approx(heavy.mean())
        assert row.latency_s == pytest.approx((1 - bypassed.mean()) * 1.0 + heavy.mean() * 4.0)
    # corners: r = 1 sends everything to heavy; r = 0, c = 0 keeps everything on light
    all_heavy = table[(table.router_ratio == 1.0)]
    assert (all_heavy.heavy_share == 1.0).all() and (all_heavy.latency_s == 4.0).all()
    light_only = table[(table.router_ratio == 0.0) & (table.disc_ratio == 0.0)].iloc[0]
    assert light_only.heavy_share == 0.0 and light_only.latency_s == 1.0
    assert table.pareto_optimal.sum() >= 2


def test_bundle_latency_rows_monotone_and_feasible_only():
    table = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "batch_size": [1, 2, 4, 8],
            "feasible": [True, True, True, False],
            "latency_p50_s": [0.30, 0.25, 0.50, np.nan],
            "latency_p95_s": [0.40, 0.28, 0.55, np.nan],
        }
    )
    rows = bundle_latency_rows(table)
    assert rows["batch_size"].tolist() == [1, 2, 4]
    assert rows["latency_p50_s"].tolist() == [0.25, 0.25, 0.50]
    assert rows["latency_p95_s"].tolist() == [0.28, 0.28, 0.55]
    assert "latency_p05_s" not in rows  # a table timed before the p05 existed
    with_p05 = bundle_latency_rows(table.assign(latency_p05_s=[0.26, 0.20, 0.45, np.nan]))
    assert with_p05["latency_p05_s"].tolist() == [0.20, 0.20, 0.45]  # at most the p50 still
    with pytest.raises(LatencyError, match="no feasible"):
        bundle_latency_rows(table.assign(feasible=False))


def test_spatial_terms_match_the_artifact(hadis_artifact):
    from profiler.prompt_features import count_spatial_terms, load_lexicons

    router = hadis_artifact / "router"
    lexicons = load_lexicons(router / "concreteness.csv", router / "spatial_terms.txt")
    table = pd.read_csv(router / "prompt_features.csv", keep_default_na=False)
    got = np.array([count_spatial_terms(text, lexicons.spatial_terms) for text in table.prompt])
    assert (got == table.spatial_relations.to_numpy()).mean() == 1.0
    assert lexicons.concreteness["roadsweeper"] == pytest.approx(4.85)


def test_fallback_prompt_features_shape():
    pytest.importorskip("simulator.synthetic_prompts")
    from profiler.prompt_features import extract_prompt_features

    features = extract_prompt_features(["a red cat on a table", "two dogs running in Paris"])
    assert features.shape == (2, 8) and features.dtype == np.int64
    assert (features >= 0).all() and features[1, 0] >= 4
