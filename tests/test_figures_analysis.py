"""Analysis figures (HADIS Figs. 2, 3, 4/5, 8, 12): the §3 formulas against hand computations,
three-model routing, and each module's compute/plot/claims in quick mode on a small bundle."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from experiments.figures import (
    fig02_frontier,
    fig03_best_pair,
    fig04_feasibility,
    fig08_phases,
    fig12_hardness,
    style,
)
from experiments.figures import verdicts as v
from experiments.figures.context import VERDICTS, FigureContext
from experiments.figures.fig04_feasibility import (
    AnalysisInputError,
    binormal_roc,
    do_quality_cost,
    hy_quality_cost,
    hy_vs_do_bounds,
    hy_vs_ro_bounds,
    region_area,
    ro_quality_cost,
    roc_auc,
    union_boundary,
)
from simulator.default_bundle import generative_model
from tests.bundle_factory import make_bundle, small_figure_context

Q, ALPHA = 0.5, 0.1

# ----------------------------------------------------------------------------- §3 formulas


def test_quality_and_cost_match_hand_computation():
    # RO: r0 = .5*.8 + .5*.4 = .6; Q = 1 - .5*.4; C = .1*.6 + .4
    assert np.allclose(ro_quality_cost(Q, ALPHA, 0.8, 0.4), (0.8, 0.46))
    # HY: pi = .5*.8*.1 + .5*.4*.8 = .2; C = .06 + .4 + .2; Q = 1 - .5*.4*.2
    assert np.allclose(hy_quality_cost(Q, ALPHA, 0.8, 0.4, 0.9, 0.2), (0.96, 0.66))
    # DO: pi = .5*.1 + .5*.8 = .45; C = .1 + .45; Q = 1 - .5*.2
    assert np.allclose(do_quality_cost(Q, ALPHA, 0.9, 0.2), (0.9, 0.55))


def test_equation_bounds_match_hand_computation():
    # eq. 1: extra = .5*.3 + .5*.2 = .25; d_tp >= (.1*.25 + .5*.5) / (.5*.8); d_fp <= .2/.4
    assert np.allclose(hy_vs_ro_bounds(Q, ALPHA, 0.8, 0.4, 0.5, 0.2), (0.6875, 0.5))
    # eq. 2: r_tp >= (.1*.5*.3 + .5*.8 - .1) / (.5*(.9 - .1)); r_fp <= .2/.4
    assert np.allclose(hy_vs_do_bounds(Q, ALPHA, 0.9, 0.4, 0.8, 0.2, 0.3), (0.7875, 0.5))


def test_eq1_separates_better_from_worse_hy_at_equal_cost():
    r_tp_h, r_fp_h, r_tp_r, r_fp_r = 0.9, 0.6, 0.6, 0.3
    q_ro, c_ro = ro_quality_cost(Q, ALPHA, r_tp_r, r_fp_r)
    d_tp_min, d_fp_max = hy_vs_ro_bounds(Q, ALPHA, r_tp_h, r_fp_h, r_tp_r, r_fp_r)
    r0 = Q * r_tp_h + (1 - Q) * r_fp_h
    outcomes = set()
    for d_fp in np.linspace(0.05, 0.95, 19):
        # the d_tp that gives HY the RO cost (C_HY is linear in d_tp)
        d_tp = (r0 - (c_ro - (ALPHA * r0 + 1 - r0)) - (1 - Q) * r_fp_h * d_fp) / (Q * r_tp_h)
        if not 0 <= d_tp <= 1:
            continue
        q_hy, c_hy = hy_quality_cost(Q, ALPHA, r_tp_h, r_fp_h, d_tp, d_fp)
        assert c_hy == pytest.approx(c_ro)
        assert (q_hy >= q_ro - 1e-12) == (d_fp <= d_fp_max + 1e-12) == (d_tp >= d_tp_min - 1e-12)
        outcomes.add(bool(q_hy >= q_ro))
    assert outcomes == {True, False}  # the sweep crosses the boundary


def test_eq2_separates_better_from_worse_hy_at_equal_cost():
    d_tp_h, d_fp_h, d_tp_d, d_fp_d = 0.95, 0.6, 0.8, 0.4
    q_do, c_do = do_quality_cost(Q, ALPHA, d_tp_d, d_fp_d)
    outcomes = set()
    for r_fp in np.linspace(0.05, 0.95, 19):
        # C_HY = 1 + a(Q r_tp + (1-Q) r_fp) - Q r_tp d_tp - (1-Q) r_fp d_fp, solved for r_tp
        r_tp = (c_do - 1 - ALPHA * (1 - Q) * r_fp + (1 - Q) * r_fp * d_fp_h) / (
            Q * (ALPHA - d_tp_h)
        )
        if not 0 <= r_tp <= 1:
            continue
        q_hy, c_hy = hy_quality_cost(Q, ALPHA, r_tp, r_fp, d_tp_h, d_fp_h)
        assert c_hy == pytest.approx(c_do)
        r_tp_min, r_fp_max = hy_vs_do_bounds(Q, ALPHA, d_tp_h, d_fp_h, d_tp_d, d_fp_d, r_fp)
        assert (q_hy >= q_do - 1e-12) == (r_fp <= r_fp_max + 1e-12)
        assert (r_fp <= r_fp_max + 1e-12) == (r_tp >= r_tp_min - 1e-12)
        outcomes.add(bool(q_hy >= q_do))
    assert outcomes == {True, False}


@pytest.mark.parametrize(
    "call",
    [
        lambda: ro_quality_cost(1.0, ALPHA, 0.5, 0.5),
        lambda: ro_quality_cost(Q, 0.0, 0.5, 0.5),
        lambda: hy_quality_cost(Q, ALPHA, 0.5, 1.2, 0.5, 0.5),
        lambda: hy_vs_ro_bounds(Q, ALPHA, 0.5, 0.0, 0.2, 0.0),
        lambda: hy_vs_do_bounds(Q, ALPHA, 0.05, 0.3, 0.9, 0.4, 0.2),
    ],
)
def test_bad_analysis_input_raises(call):
    with pytest.raises(AnalysisInputError):
        call()


def test_union_boundary_and_area_by_hand():
    grid = np.array([0.0, 0.5, 1.0])
    boundary = union_boundary(grid, np.array([0.5, 1.0]), np.array([0.2, 0.6]))
    assert np.allclose(boundary, [0.2, 0.2, 0.6])
    # heights 0.8, 0.8, 0.4 -> 0.5 * 0.8 + 0.5 * 0.6
    assert region_area(grid, boundary) == pytest.approx(0.7)
    assert np.isinf(union_boundary(grid, np.array([0.4]), np.array([0.1]))[1:]).all()


def test_binormal_roc_has_its_auc():
    assert roc_auc(*binormal_roc(0.5, 101)) == pytest.approx(0.5)
    assert roc_auc(*binormal_roc(0.9, 2001)) == pytest.approx(0.9, abs=1e-3)


def test_hy_vs_ro_region_shrinks_and_hy_vs_do_grows_with_alpha():
    grid = np.linspace(0, 1, 101)
    r_tp, r_fp = binormal_roc(0.75, 41)
    d_tp, d_fp = binormal_roc(0.9, 41)
    ro = [
        region_area(grid, fig04_feasibility.ro_region(Q, a, r_tp, r_fp, grid)) for a in (0.1, 0.2)
    ]
    do = [
        region_area(grid, fig04_feasibility.do_region(Q, a, d_tp, d_fp, grid)) for a in (0.1, 0.2)
    ]
    assert ro[1] < ro[0] and do[1] > do[0]


# ----------------------------------------------------------------------------- three-model routing


def test_three_model_routing_by_hand():
    router = np.array([0.0, 1.0, 2.0, 3.0])
    disc = np.array([[0.1, 0.9, 0.5], [0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.8, 0.2, 0.5]])
    # r = .25: prompt 3 bypasses to C; c1 = .5: A-scores below the median (0.45) -> prompts 0, 2
    # go to B; c2 = .5: B-scores below B's median (0.5) -> none of 0 (0.9), 2 (0.8) go on to C
    served, on_first, on_second = fig02_frontier.three_model_served_by(
        router, disc, (0, 1, 2), 0.25, 0.5, 0.5
    )
    assert served.tolist() == [1, 0, 1, 2] and (on_first, on_second) == (0.75, 0.5)
    served, *_ = fig02_frontier.three_model_served_by(router, disc, (0, 1, 2), 0.0, 0.5, 1.0)
    assert served.tolist() == [2, 0, 2, 0]


def test_three_model_fid_of_the_default_bundle_matches_single_models():
    from experiments.inputs import resolve_bundle

    bundle = resolve_bundle("default")
    model = generative_model(bundle)
    assert model is not None
    table = fig02_frontier.three_model_table(bundle, *model, step=1.0)
    fid_alone = dict(zip(bundle.models["model"], bundle.models["fid_alone"]))
    # r = c1 = 0: everything on A; r = 1: everything on C
    first = table[(table.router_ratio == 0) & (table.disc_ratio == 0)]
    for row in first.itertuples():
        assert row.fid == pytest.approx(fid_alone[row.cascade.split(" → ")[0]], abs=1e-3)
    assert generative_model(make_bundle()) is None


# ----------------------------------------------------------------------------- modules


@pytest.fixture(scope="module")
def small_context(tmp_path_factory) -> FigureContext:
    return small_figure_context(tmp_path_factory.mktemp("figs"))


MODULES = {
    "fig02": (fig02_frontier, {"kind", "cascade", "latency_s", "fid", "frontier"}),
    "fig03": (fig03_best_pair, {"kind", "pair", "load_fraction", "fid", "slo_violation_ratio"}),
    "fig04": (fig04_feasibility, {"kind", "curve", "roc_source", "alpha", "fp", "tp", "area"}),
    "fig08": (fig08_phases, {"second", "phase", "level_qps", "realised_fid", "heavy_ratio"}),
    "fig12": (fig12_hardness, {"second", "phase", "bypass_ratio", "heavy_intake", "heavy_workers"}),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_module_quick_compute_plot_claims(name, small_context):
    module, columns = MODULES[name]
    assert module.NAME == name and module.TITLE
    data = module.compute(small_context)
    assert isinstance(data, pd.DataFrame) and len(data) > 0
    assert columns <= set(data.columns)
    again = module.compute(replace(small_context, _runs={}, _traces={}))
    pd.testing.assert_frame_equal(data, again)
    path = style.save(module.plot(data), small_context.out_dir / f"{name}.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    found = module.claims(data)
    assert found and all(c.verdict in VERDICTS and c.figure == name for c in found)


def test_bundle_without_generative_model_is_not_comparable(small_context):
    data = fig02_frontier.compute(small_context)
    assert not (data["kind"] == "three-model").any()
    # no three-model FIDs; the small bundle's models are not the paper's
    assert [c.verdict for c in fig02_frontier.claims(data)] == [v.NOT_COMPARABLE] * 2
    feasibility = fig04_feasibility.compute(small_context)
    assert set(feasibility["roc_source"]) == {"binormal"}
    assert not (feasibility["kind"] == "check").any()
    # binormal ROC curves: the region areas are exact numbers, the ROC and check untestable
    assert [c.verdict for c in fig04_feasibility.claims(feasibility)] == [
        v.REPRODUCED,
        v.REPRODUCED,
        v.NOT_COMPARABLE,
        v.NOT_COMPARABLE,
    ]


def test_fig02_claims_on_a_known_frontier():
    def frame(three_fid: float) -> pd.DataFrame:
        rows = [
            ("model", name, 1.0, 20.0, True)
            for name in {m for p in fig02_frontier.PAPER_REGIMES for m in p}
        ]
        rows += [
            ("two-model", f"{a} → {b}", 1.0 + k, 25.0 - k, True)
            for k, (a, b) in enumerate(fig02_frontier.PAPER_REGIMES)
        ]
        rows += [("three-model", "x → y → z", 1.0 + k, three_fid - k, True) for k in range(3)]
        return pd.DataFrame(rows, columns=["kind", "cascade", "latency_s", "fid", "frontier"])

    same, better = fig02_frontier.claims(frame(25.0)), fig02_frontier.claims(frame(24.0))
    assert same[0].verdict == v.REPRODUCED  # gain 0: at most 1%
    assert better[0].verdict == v.NOT_REPRODUCED  # three models 4-8% better
    assert same[1].verdict == v.BY_CONSTRUCTION and "the paper's pairs, in order" in same[1].ours


def phase_frame(levels, fids, drops) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "second": s,
                "phase_index": k,
                "phase": f"P{k}",
                "level_qps": level,
                "realised_fid": fid,
                "fid_method": "exact",
                "arrivals": 10,
                "timeouts": 0,
                "drops": drops,
                "heavy_ratio": 0.5,
            }
            for k, (level, fid) in enumerate(zip(levels, fids))
            for s in range(3 * k, 3 * k + 3)
        ]
    )


def test_phase_claims_follow_the_data():
    levels = [4, 8, 12, 8, 4]
    good = phase_frame(levels, [20.0, 22.0, 24.0, 22.2, 20.1], drops=0)
    # FID moves +2, +2, +1.8, +2.1 with demand; no violations
    assert [c.verdict for c in fig08_phases.claims(good)] == [v.REPRODUCED, v.REPRODUCED]
    bad = phase_frame(levels, [20.0, 18.0, 16.0, 18.0, 20.0], drops=3)  # 30% violations
    assert [c.verdict for c in fig08_phases.claims(bad)] == [v.NOT_REPRODUCED] * 2
    # two steps cannot resolve the direction (t with 1 df): indistinguishable
    short = phase_frame([4, 8, 4], [20.0, 22.0, 21.0], drops=0)
    assert fig08_phases.claims(short)[0].verdict == v.INDISTINGUISHABLE


def test_hardness_claim_is_true_by_construction():
    frame = pd.DataFrame(
        {
            "phase_index": [0, 1, 2, 3],
            "phase": ["easy", "hard", "easy", "hard"],
            "bypass_ratio": [0.1, 0.5, 0.1, 0.5],
            "heavy_intake": [0.2, 0.6, 0.2, 0.6],
            "heavy_workers": [4, 8, 4, 8],
        }
    )
    claim = fig12_hardness.claims(frame)[0]
    assert claim.verdict == v.BY_CONSTRUCTION and "router score" in claim.note
    assert "heavy_intake 3/3, heavy_workers 3/3" in claim.ours
    flat = fig12_hardness.claims(frame.assign(heavy_workers=6))[0]
    assert flat.verdict == v.BY_CONSTRUCTION and "heavy_workers 0/3" in flat.ours


def best_pair_frame(high_violations_bc: float, high_fid_bc: float) -> pd.DataFrame:
    """Two pairs at the low and high load over 3 seeds (FIDs shifted alike per seed)."""
    rows = [
        {
            "kind": "simulated",
            "pair": pair,
            "load_fraction": load,
            "seed": seed,
            "demand_qps": load * 40,
            "fid": fid + 0.1 * seed,
            "fid_method": "exact",
            "slo_violation_ratio": violations + 0.01 * seed if violations else 0.0,
        }
        for pair, load, fid, violations in (
            ("a → b", 0.01, 25.0, 0.0),
            ("b → c", 0.01, 21.0, 0.01),
            ("a → b", 0.6, 26.0, 0.0),
            ("b → c", 0.6, high_fid_bc, high_violations_bc),
        )
        for seed in range(3)
    ]
    return pd.DataFrame(rows)


def test_fig03_best_pair_picks_lowest_fid_within_tolerance():
    data = best_pair_frame(0.5, 22.0)
    best = fig03_best_pair.best_pairs(data).set_index(["load_fraction", "tolerance"])["pair"]
    assert best[(0.01, 0.05)] == "b → c" and best[(0.6, 0.05)] == "a → b"
    assert best[(0.6, 0.01)] == "a → b"
    # b → c is over the tolerance at high load in every seed; a → b loses by 4 FID at low load
    assert fig03_best_pair.claims(data)[0].verdict == v.REPRODUCED
    # b → c within the tolerance at high load and 0.02 FID worse than a → b's: a tie
    assert fig03_best_pair.claims(best_pair_frame(0.01, 26.02))[0].verdict == v.INDISTINGUISHABLE
    # b → c within the tolerance and better at high load too: one pair best at both
    assert fig03_best_pair.claims(best_pair_frame(0.01, 22.0))[0].verdict == v.NOT_REPRODUCED
    # ... but only 0.02 FID better at high load: a tie there, not established
    assert fig03_best_pair.claims(best_pair_frame(0.01, 25.98))[0].verdict == v.INDISTINGUISHABLE
