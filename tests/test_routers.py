"""Every router trains, calibrates and evaluates on a small synthetic split; gradients; CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from routers.base import RouterError
from routers.cli import routers_app
from routers.data import PromptBatch, RoutingData, split_by_prompt
from routers.evaluate import evaluate_router
from routers.features import MiniLMEncoder, TokenFeaturizer
from routers.hadis_rule import HadisRuleRouter
from routers.hybrid_llm import label_spread, light_good_probability
from routers.moe import MoeShape, init_moe, moe_backward, moe_forward
from routers.nn import (
    TrainConfig,
    bce_with_logits,
    init_mlp,
    mlp_backward,
    mlp_forward,
    soft_cross_entropy,
)
from routers.registry import ROUTERS, RouterContext, build_router, select_router_names
from routers.routellm import mf_loss_and_grad
from routers.zooter import distillation_targets

HARD_WORDS = ("intricate", "crowd", "reflection", "text", "hands")
EASY_WORDS = ("apple", "dog", "cup", "sky", "tree", "red", "blue", "small", "a", "the")


def synthetic_data(n: int = 240, seed: int = 0) -> RoutingData:
    """3 models; the heavy model wins clearly on prompts with a hard word (which also raise two
    of the 8 features) and loses slightly on the others."""
    rng = np.random.default_rng(seed)
    texts, hard = [], np.zeros(n, bool)
    for i in range(n):
        w = list(rng.choice(EASY_WORDS, rng.integers(3, 8)))
        if rng.random() < 0.4:
            hard[i] = True
            w.insert(int(rng.integers(0, len(w))), str(rng.choice(HARD_WORDS)))
        texts.append(" ".join(w))
    features = rng.integers(0, 4, (n, 8)).astype(float)
    features[:, 1] += 3 * hard
    features[:, 3] += 2 * hard
    base = rng.normal(0, 0.3, n)
    light = base + 0.05 - 1.0 * hard + rng.normal(0, 0.1, n)
    heavy = base + rng.normal(0, 0.1, n)
    middle = (light + heavy) / 2
    quality = np.stack([light, middle, heavy], axis=1)
    samples = quality[:, :, None] + rng.normal(0, 0.2, (n, 3, 4))
    return RoutingData(
        name="synthetic",
        batch=PromptBatch(np.arange(n), tuple(texts), features),
        model_names=("light", "middle", "heavy"),
        quality=quality,
        light=0,
        heavy=2,
        extra_metrics={"second": quality * 0.5 + 1},
        quality_samples=samples,
        latency_s=(1.0, 3.0, 9.0),
    )


@pytest.fixture(scope="module")
def split():
    return split_by_prompt(synthetic_data(), seed=0)


def context(data: RoutingData, epochs: int = 25) -> RouterContext:
    return RouterContext(data, "bow+hadis8", 0, TrainConfig(epochs=epochs), MiniLMEncoder())


@pytest.mark.parametrize("name", list(ROUTERS))
def test_every_router_trains_calibrates_and_evaluates(split, name):
    data = synthetic_data()
    result = evaluate_router(build_router(name, context(data)), split, seed=0)
    assert set(result.summary) == {
        "apgr",
        "cpt50",
        "dp_at_50",
        "saving_at_dp50",
        "light_share_at_10pct_drop",
    }
    assert np.all(result.calibration["realised_calib"] <= result.calibration["target"] + 1e-12)
    # the signal is strong: every router except random must rank well above random's 0.5
    if name == "random":
        assert 0.3 < result.summary["apgr"] < 0.7
    else:
        assert result.summary["apgr"] > 0.6, result.summary


def test_oracle_bounds_learned_routers_and_routing_is_deterministic(split):
    data = synthetic_data()
    oracle = evaluate_router(build_router("oracle", context(data)), split, 0)
    mlp_a = evaluate_router(build_router("mlp", context(data)), split, 0)
    mlp_b = evaluate_router(build_router("mlp", context(data)), split, 0)
    assert np.all(oracle.quality >= mlp_a.quality - 1e-12)
    np.testing.assert_array_equal(mlp_a.quality, mlp_b.quality)


def test_calibrate_and_route_heavy(split):
    router = build_router("hybrid-trans", context(synthetic_data(), epochs=5))
    with pytest.raises(RouterError, match="fit"):
        router.score(split.test.batch)
    router.fit(split.train)
    with pytest.raises(RouterError, match="calibrate"):
        router.route_heavy(split.test.batch)
    cal = router.calibrate(split.calib.batch, 0.3)
    assert cal.realised_heavy_share <= 0.3
    assert router.route_heavy(split.test.batch).dtype == bool
    with pytest.raises(RouterError, match="not in"):
        router.calibrate(split.calib.batch, 1.5)


def test_routet2i_budget_rule_keeps_alpha_at_most_half(split):
    router = build_router("routet2i", context(synthetic_data(), epochs=5)).fit(split.train)
    cal = router.calibrate(split.calib.batch, 1.0)
    assert cal.threshold >= 0.5  # score = 1 - PRS > threshold  <=>  PRS < α with α <= ½
    prs = router.prs(split.calib.batch)
    assert cal.realised_heavy_share == pytest.approx(np.mean(prs < 1 - cal.threshold))


def test_hadis_rule_without_features_fails_clearly(split):
    data = split.train
    bare = RoutingData(
        data.name,
        PromptBatch(data.batch.prompt_ids, data.batch.texts),
        data.model_names,
        data.quality,
        data.light,
        data.heavy,
    )
    with pytest.raises(RouterError, match="no HADIS router features"):
        HadisRuleRouter().fit(bare)
    names, skipped = select_router_names("all", has_hadis_features=False)
    assert "hadis-rule" in skipped and "hadis-rule" not in names
    with pytest.raises(ValueError, match="unknown|needs"):
        select_router_names("hadis-rule", has_hadis_features=False)
    with pytest.raises(ValueError, match="router 'nope'"):
        select_router_names("random,nope", has_hadis_features=True)


def test_hybrid_labels(split):
    train = split.train
    p = light_good_probability(train)
    assert np.all((p >= 0) & (p <= 1))
    assert label_spread(np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert label_spread(np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(2 / 3)
    relaxed = light_good_probability(train, relax=10.0)
    assert np.all(relaxed == 1.0)


def test_zooter_targets_are_distributions_over_measured_models():
    q = np.array([[1.0, 2.0, np.nan], [3.0, 0.0, 1.0]])
    t = distillation_targets(q, 0.5)
    assert np.isnan(t[0, 2])
    np.testing.assert_allclose(np.nansum(t, axis=1), 1.0)
    assert t[0, 1] > t[0, 0] and t[1, 0] > t[1, 2] > t[1, 1]


def _numeric_grad(f, params, key, eps=1e-6, n_checks=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    flat_idx = rng.choice(params[key].size, min(n_checks, params[key].size), replace=False)
    for i in flat_idx:
        idx = np.unravel_index(i, params[key].shape)
        old = params[key][idx]
        params[key][idx] = old + eps
        up = f(params)
        params[key][idx] = old - eps
        down = f(params)
        params[key][idx] = old
        out.append((idx, (up - down) / (2 * eps)))
    return out


def test_mlp_and_losses_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5))
    target = np.array([[0.2, np.nan, 0.8], [1.0, 0.0, 0.0]] * 3 + [[0.1, 0.1, 0.8]])
    params = init_mlp(5, 6, 3, rng)
    for loss in (soft_cross_entropy, lambda z, t: bce_with_logits(z, np.nan_to_num(t))):

        def value(p, loss=loss):
            return loss(mlp_forward(p, x)[0], target)[0]

        logits, hidden = mlp_forward(params, x)
        grads = mlp_backward(params, x, hidden, loss(logits, target)[1])
        for key in params:
            for idx, numeric in _numeric_grad(value, params, key):
                assert grads[key][idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_mf_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 4))
    a, b = rng.integers(0, 3, 9), rng.integers(0, 3, 9)
    won = rng.integers(0, 2, 9).astype(float)
    params = {"w": rng.normal(size=(4, 5)), "v": rng.normal(size=(3, 5)), "c": rng.normal(size=5)}
    _, grads = mf_loss_and_grad(params, x, a, b, won)
    for key in params:
        for idx, numeric in _numeric_grad(
            lambda p: mf_loss_and_grad(p, x, a, b, won)[0], params, key
        ):
            assert grads[key][idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_moe_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    shape = MoeShape(experts=3, hidden=5, out=4, keep_fraction=0.5)
    x = rng.normal(size=(4, 6, 3))
    mask = np.ones((4, 6), bool)
    mask[0, 4:] = False
    target = rng.normal(size=(4, 2))
    params = init_moe(3, 2, shape, rng)

    def value(p):
        out = moe_forward(p, x, mask, shape)[0]
        return float(np.mean((out - target) ** 2))

    out, cache = moe_forward(params, x, mask, shape)
    grads = moe_backward(params, x, mask, cache, 2 * (out - target) / out.size)
    for key in params:
        for idx, numeric in _numeric_grad(value, params, key):
            assert grads[key][idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_token_selection_keeps_top_fraction_of_valid_tokens():
    from routers.moe import token_selection

    scores = np.array([[[3.0], [1.0], [2.0], [9.0]]])
    mask = np.array([[True, True, True, False]])
    sel = token_selection(scores, mask, 0.5)
    np.testing.assert_array_equal(sel[0, :, 0], [1, 0, 1, 0])


def test_hashed_tokens_are_deterministic(split):
    tok = TokenFeaturizer("bow", MiniLMEncoder(), dim=8).fit(split.train.batch)
    x1, m1 = tok.transform(split.test.batch)
    x2, m2 = tok.transform(split.test.batch)
    np.testing.assert_array_equal(x1, x2)
    assert m1.sum() == sum(min(len(t.split()), 32) for t in split.test.batch.texts)


def write_wide_csv(path, n=120, seed=1):
    data = synthetic_data(n, seed)
    table = pd.DataFrame(data.quality, columns=["edge", "mid", "cloud"])
    table.insert(0, "prompt", data.batch.texts)
    table.to_csv(path, index=False)


def test_cli_evaluate_on_a_wide_csv(tmp_path):
    csv = tmp_path / "wide.csv"
    write_wide_csv(csv)
    runner = CliRunner()
    args = [
        "evaluate",
        "--data",
        str(csv),
        "--routers",
        "random,oracle,mlp,mf,routet2i,ecvl-quality",
    ]
    args += ["--features", "bow", "--epochs", "3"]
    first = runner.invoke(routers_app, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert "Cost saving (%) under a given performance target" in first.output
    assert "ΔP(%)" in first.output
    table = pd.read_csv(tmp_path / "a" / "routers.csv")
    assert list(table.columns) == [
        "router",
        "apgr",
        "cpt50",
        "dp_at_50",
        "saving_at_dp50",
        "light_share_at_10pct_drop",
    ]
    assert list(table["router"]) == ["random", "oracle", "mlp", "mf", "routet2i", "ecvl-quality"]
    assert (tmp_path / "a" / "quality_vs_share.png").stat().st_size > 1000
    second = runner.invoke(
        routers_app, [*args, "--out", str(tmp_path / "b"), "--pair", "edge,cloud"]
    )
    assert second.exit_code == 0, second.output
    for name in ("routers.csv", "curves.csv", "calibration.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(
        routers_app,
        [
            "evaluate",
            "--data",
            "hadis-artifact",
            "--data-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert missing.exit_code == 2
    assert "hadis-artifact" in missing.output and "not found" in missing.output
    csv = tmp_path / "wide.csv"
    write_wide_csv(csv)
    bad_pair = runner.invoke(
        routers_app,
        ["evaluate", "--data", str(csv), "--pair", "cloud,edge", "--out", str(tmp_path / "o")],
    )
    assert bad_pair.exit_code == 2 and "LIGHT must come before HEAVY" in bad_pair.output
    bad_router = runner.invoke(
        routers_app,
        ["evaluate", "--data", str(csv), "--routers", "bert", "--out", str(tmp_path / "o")],
    )
    assert bad_router.exit_code == 2 and "router 'bert'" in bad_router.output


def test_cli_simulate_edge_cloud_respects_the_budget_on_calibration(tmp_path):
    csv = tmp_path / "wide.csv"
    write_wide_csv(csv, n=200)
    runner = CliRunner()
    result = runner.invoke(
        routers_app,
        [
            "simulate-edge-cloud", "--data", str(csv), "--rho", "0.3", "--features", "bow",
            "--routers", "random,oracle,routet2i", "--epochs", "3", "--out", str(tmp_path / "e"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "e" / "edge_cloud.csv")
    assert list(table["router"]) == ["random", "oracle", "routet2i"]
    assert (table["cloud_share_calib"] <= 0.3 + 1e-12).all()
    row = table.set_index("router").loc["oracle"]
    share = row["cloud_share_test"]
    assert row["cost_per_request"] == pytest.approx((1 - share) * 0.009 + share * 0.065, rel=1e-5)
    assert row["dp"] > table.set_index("router").loc["random", "dp"]


REPEAT_ARGS = ["--routers", "random,oracle,knn", "--features", "bow"]


def test_cli_repeats_one_is_the_plain_run_and_three_average_single_seed_runs(tmp_path):
    csv = tmp_path / "wide.csv"
    write_wide_csv(csv, n=60)
    runner = CliRunner()

    def run(out, *extra):
        args = ["evaluate", "--data", str(csv), *REPEAT_ARGS, "--out", str(tmp_path / out)]
        result = runner.invoke(routers_app, [*args, *extra])
        assert result.exit_code == 0, result.output
        return result.output

    plain = run("plain", "--seed", "5")
    once = run("once", "--seed", "5", "--repeats", "1")
    assert plain.replace(str(tmp_path / "plain"), str(tmp_path / "once")) == once
    for name in ("routers.csv", "curves.csv", "calibration.csv", "quality_vs_share.png"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "once" / name).read_bytes()
    for seed in (6, 7):
        run(f"seed{seed}", "--seed", str(seed))
    printed = run("three", "--seed", "5", "--repeats", "3")
    assert "mean ± std over 3 splits, seeds 5..7" in printed

    singles = [pd.read_csv(tmp_path / d / "routers.csv") for d in ("plain", "seed6", "seed7")]
    table = pd.read_csv(tmp_path / "three" / "routers.csv")
    values = list(singles[0].columns[1:])
    assert list(table.columns) == ["router", *values, *(f"{v}_std" for v in values), "repeats"]
    assert list(table["router"]) == ["random", "oracle", "knn"] and (table["repeats"] == 3).all()
    stacked = np.stack([s[values].to_numpy() for s in singles])
    np.testing.assert_allclose(table[values].to_numpy(), stacked.mean(axis=0), rtol=1e-5)
    std = table[[f"{v}_std" for v in values]].to_numpy()
    np.testing.assert_allclose(std, stacked.std(axis=0, ddof=1), rtol=1e-4, atol=1e-6)
    assert (std >= 0).all() and std[:, 0].max() > 0  # APGR differs between the splits

    curves = pd.read_csv(tmp_path / "three" / "curves.csv")
    assert list(curves.columns) == ["repeat", "router", "heavy_share", "quality", "dp"]
    second = curves[curves["repeat"] == 1].drop(columns="repeat").reset_index(drop=True)
    pd.testing.assert_frame_equal(second, pd.read_csv(tmp_path / "seed6" / "curves.csv"))
    calibration = pd.read_csv(tmp_path / "three" / "calibration.csv")
    assert sorted(calibration["repeat"].unique()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("repeats", "message"),
    [
        ("0", "--repeats must be >= 1, got 0"),
        ("-2", "--repeats must be >= 1, got -2"),
        (  # it ran until killed
            "100000000",
            "--repeats: 1e+08 seeded splits exceeds the bound of 1000 (set T2ISIM_MAX_SPLITS "
            "to raise it)",
        ),
    ],
)
def test_cli_bad_repeats_is_one_line_with_exit_2(tmp_path, repeats, message):
    csv = tmp_path / "wide.csv"
    write_wide_csv(csv, n=60)
    result = CliRunner().invoke(
        routers_app,
        ["evaluate", "--data", str(csv), "--repeats", repeats, "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"
    assert not (tmp_path / "o").exists()
