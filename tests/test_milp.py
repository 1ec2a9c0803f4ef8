"""The HADIS MILP planner: hand-solved optima, brute-force cross-checks, plan invariants,
monotonicity in demand, infeasible demand, determinism, Pareto pruning. (The artifact's
controller, `planner=faithful`: tests/test_artifact_controller.py.)"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from bundle_factory import make_bundle

from policies.milp import (
    CascadeOption,
    ModelProfile,
    PlanInputError,
    PlanSolution,
    options_from_bundle,
    plan_table,
    profiles_from_bundle,
    solve_plan,
)
from policies.pareto import dominated_by_cover, grouped_pareto_mask, pareto_mask

# ----------------------------------------------------------------------------- hand instance
# Model A (light): batch 1 -> 1.0 s (μ = 1.0 qps/worker), batch 2 -> 1.6 s (μ = 1.25).
# Model B (heavy): batch 1 -> 4.0 s (μ = 0.25),          batch 2 -> 6.0 s (μ = 1/3).
# Options: 0 = A alone (FID 30); 1 = A->B with r = 0, c = 0.5: A gets 1.0, B 0.5 (FID 22);
# 2 = B alone (FID 20). SLO 8 s, 3 workers, no queue delay.
HAND_PROFILES = (ModelProfile("A", (1, 2), (1.0, 1.6)), ModelProfile("B", (1, 2), (4.0, 6.0)))
HAND_OPTIONS = (
    CascadeOption.single(0, 30.0),
    CascadeOption(0, 1, 0.0, 0.5, 0.5, 22.0),
    CascadeOption.single(1, 20.0),
)
NO_DELAY = (0.0, 0.0)


@pytest.fixture(scope="module")
def hand_table():
    return plan_table(HAND_OPTIONS, HAND_PROFILES)


@pytest.mark.parametrize(
    ("demand_qps", "option", "workers", "batch_sizes"),
    [
        # B alone: batch 1 needs ceil(0.6 / 0.25) = 3 workers, batch 2 ceil(0.6 / (1/3)) = 2
        (0.6, 2, (0, 2), (0, 2)),
        # B alone: batch 1 needs 4 > 3 workers; batch 2 needs ceil(2.7) = 3 (latency 6 <= 8)
        (0.9, 2, (0, 3), (0, 2)),
        # B alone needs 4 at best; A->B: A at batch 2 needs ceil(1.2 / 1.25) = 1, B gets
        # 0.6 qps -> 2 workers at batch 2; path 1.6 + 6.0 = 7.6 <= 8; 3 workers in all
        (1.2, 1, (1, 2), (2, 2)),
        # A->B needs 2 + 3 = 5 > 3; A alone: batch 1 needs 3, batch 2 ceil(1.76) = 2
        (2.2, 0, (2, 0), (2, 0)),
    ],
)
def test_hand_instance_optimum(hand_table, demand_qps, option, workers, batch_sizes):
    plan = solve_plan(hand_table, demand_qps, NO_DELAY, 8.0, 3)
    assert plan.status == "optimal"
    assert (plan.option_index, plan.workers, plan.batch_sizes) == (option, workers, batch_sizes)
    assert plan.fid == HAND_OPTIONS[option].fid


def test_hand_instance_queue_delay_forbids_a_batch_size(hand_table):
    # D_B = 3 s: B's batch 2 costs 6 + 3 = 9 > 8 s, batch 1 costs 7 s -> 3 workers at batch 1
    plan = solve_plan(hand_table, 0.6, (0.0, 3.0), 8.0, 3)
    assert (plan.option_index, plan.workers, plan.batch_sizes) == (2, (0, 3), (0, 1))
    assert plan.path_latency_s == pytest.approx(7.0)


def test_hand_instance_above_capacity_falls_back_to_the_fastest_cascade(hand_table):
    # most demand served with 3 workers: A alone 3 * 1.25 = 3.75 qps; A->B 1.25 (A 1, B 2
    # workers); B alone 1.0 -> A alone, all 3 workers at batch 2
    plan = solve_plan(hand_table, 4.0, NO_DELAY, 8.0, 3)
    assert plan.status == "infeasible_fallback"
    assert (plan.option_index, plan.workers, plan.batch_sizes) == (0, (3, 0), (2, 0))
    assert plan.capacity_qps == pytest.approx(3.75)


def test_hand_instance_zero_demand_keeps_one_worker_per_served_model(hand_table):
    plan = solve_plan(hand_table, 0.0, NO_DELAY, 8.0, 3)
    assert (plan.status, plan.option_index, plan.workers) == ("optimal", 2, (0, 1))


def test_slo_below_every_batch_latency_still_plans_all_workers(hand_table):
    plan = solve_plan(hand_table, 1.0, NO_DELAY, 0.5, 3)
    assert plan.status == "infeasible_fallback"
    assert plan.n_gpus == 3
    assert plan.capacity_qps > 0


# ----------------------------------------------------------------------------- random instances


def random_instance(rng: np.random.Generator, n_models: int, max_workers: int):
    """Models fast to slow with random monotone batch latencies; pairs plus singles."""
    profiles = []
    for i in range(n_models):
        base = float(rng.uniform(0.5, 3.0) * (i + 1))
        sizes = tuple(
            int(b) for b in sorted(rng.choice([1, 2, 4], size=rng.integers(1, 4), replace=False))
        )
        growth = rng.uniform(0.6, 1.0, size=len(sizes))
        latency = tuple(float(base * max(1.0, b * g)) for b, g in zip(sizes, growth))
        latency = tuple(np.maximum.accumulate(latency))
        profiles.append(ModelProfile(f"m{i}", sizes, latency))
    options = []
    for light, heavy in itertools.combinations(range(n_models), 2):
        for _ in range(int(rng.integers(1, 4))):
            r, c = (float(v) for v in rng.choice(np.round(np.linspace(0, 1, 6), 1), size=2))
            options.append(
                CascadeOption(
                    light, heavy, r, c, r + (1 - r) * c, float(np.round(rng.uniform(18, 30), 1))
                )
            )
    for i in range(n_models):
        if rng.random() < 0.7:
            options.append(CascadeOption.single(i, float(np.round(rng.uniform(18, 30), 1))))
    call = {
        "demand_qps": float(rng.uniform(0.0, 3.0)),
        "queue_delay_s": tuple(
            float(v) for v in rng.uniform(0, 2, size=n_models) * (rng.random(n_models) < 0.5)
        ),
        "slo_s": float(rng.uniform(3.0, 20.0)),
        "n_workers": int(rng.integers(1, max_workers + 1)),
    }
    return options, profiles, call


def served_shares(option: CascadeOption) -> dict[int, float]:
    shares = {option.light: 1.0 - option.router_ratio if option.heavy is not None else 1.0}
    if option.heavy is not None:
        shares[option.heavy] = option.heavy_share
    return {model: share for model, share in shares.items() if share > 0}


def brute_force(options, profiles, call):
    """Enumerate option × batch per served model × workers per served model (>= 1 each).
    Returns the lexicographic minimum (fid, gpus, heavy_share), or None when infeasible."""
    best = None
    for option in options:
        shares = served_shares(option)
        models = sorted(shares)
        batch_choices = [range(len(profiles[m].batch_sizes)) for m in models]
        for batches in itertools.product(*batch_choices):
            latency = sum(
                profiles[m].batch_latency_s[j] + call["queue_delay_s"][m]
                for m, j in zip(models, batches)
            )
            if latency > call["slo_s"] + 1e-9:
                continue
            for workers in itertools.product(range(1, call["n_workers"] + 1), repeat=len(models)):
                if sum(workers) > call["n_workers"]:
                    continue
                if all(
                    x * profiles[m].batch_sizes[j] / profiles[m].batch_latency_s[j]
                    >= call["demand_qps"] * shares[m] - 1e-9
                    for m, j, x in zip(models, batches, workers)
                ):
                    key = (option.fid, sum(workers), option.heavy_share)
                    best = key if best is None or key < best else best
    return best


def check_plan(plan: PlanSolution, options, profiles, call):
    """Every plan satisfies its own constraints."""
    option = options[plan.option_index]
    shares = served_shares(option)
    bounded = sorted(shares)
    assert plan.fid == option.fid
    assert all(w >= 0 for w in plan.workers)
    assert plan.n_gpus <= call["n_workers"]
    for m in range(len(profiles)):
        if m not in (option.light, option.heavy):
            assert plan.workers[m] == 0 and plan.batch_sizes[m] == 0
    for m in bounded:
        assert plan.batch_sizes[m] in profiles[m].batch_sizes
    latency = sum(
        profiles[m].batch_latency_s[profiles[m].batch_sizes.index(plan.batch_sizes[m])]
        + call["queue_delay_s"][m]
        for m in bounded
    )
    assert latency == pytest.approx(plan.path_latency_s)
    capacity = min(
        plan.workers[m]
        * plan.batch_sizes[m]
        / profiles[m].batch_latency_s[profiles[m].batch_sizes.index(plan.batch_sizes[m])]
        / share
        for m, share in shares.items()
    )
    assert capacity == pytest.approx(plan.capacity_qps)
    if plan.status == "optimal":
        assert all(plan.workers[m] >= 1 for m in shares)  # demand > 0 or default's minimum
        assert capacity >= call["demand_qps"] - 1e-6
        assert latency <= call["slo_s"] + 1e-9
    else:
        assert plan.status == "infeasible_fallback"
        assert plan.n_gpus == call["n_workers"]  # never an idle cluster


@pytest.mark.parametrize("seed", range(40))
def test_milp_matches_brute_force_on_tiny_instances(seed):
    rng = np.random.default_rng(seed)
    options, profiles, call = random_instance(rng, int(rng.integers(2, 4)), max_workers=4)
    plan = solve_plan(plan_table(options, profiles), **call)
    check_plan(plan, options, profiles, call)
    best = brute_force(options, profiles, call)
    if best is None:
        assert plan.status == "infeasible_fallback"
    else:
        assert plan.status == "optimal"
        option = options[plan.option_index]
        assert (plan.fid, plan.n_gpus, option.heavy_share) == pytest.approx(best)


@pytest.mark.parametrize("seed", range(15))
def test_plans_satisfy_their_constraints_on_larger_instances(seed):
    rng = np.random.default_rng(1000 + seed)
    options, profiles, call = random_instance(rng, int(rng.integers(3, 6)), max_workers=24)
    call["demand_qps"] *= 4
    check_plan(solve_plan(plan_table(options, profiles), **call), options, profiles, call)


# ----------------------------------------------------------------------------- demand curve


def hadis_like_table():
    """4 models with HADIS §5.1 batch-1 latencies (0.5, 1.3, 13, 27 s; base·b·0.9 for b > 1,
    shared/data/README.md) and a smooth synthetic FID over the 6 pairs × 11 × 11 grid."""
    sizes = (1, 2, 4, 8, 16, 32)
    base = (0.5, 1.3, 13.0, 27.0)
    alone = (29.76, 25.23, 20.61, 19.95)
    profiles = [
        ModelProfile(f"m{i}", sizes, tuple(b0 if b == 1 else b0 * b * 0.9 for b in sizes))
        for i, b0 in enumerate(base)
    ]
    grid = np.round(np.linspace(0, 1, 11), 1)
    options = []
    for light, heavy in itertools.combinations(range(4), 2):
        for r, c in itertools.product(grid, grid):
            share = r + (1 - r) * c
            fid = alone[heavy] + (alone[light] - alone[heavy]) * (1 - share) ** 1.5
            fid -= 0.06 * (alone[light] - alone[heavy]) * share * (1 - share)
            options.append(CascadeOption(light, heavy, float(r), float(c), share, round(fid, 2)))
    return plan_table(options, profiles)


DEMANDS_QPS = np.round(np.concatenate([np.linspace(0.1, 30.0, 24), [45.0]]), 3)


def test_fid_is_non_decreasing_in_demand():
    """Higher demand only shrinks the feasible set, so the optimum's FID cannot improve; the
    fallback (most demand served) is no better than the last feasible plan either."""
    table = hadis_like_table()
    plans, previous = [], None
    for demand in DEMANDS_QPS:
        previous = solve_plan(table, demand, np.zeros(4), 60.0, 16, previous=previous)
        plans.append(previous)
    assert plans[-1].status == "infeasible_fallback"
    fids = [p.fid for p in plans]
    assert np.all(np.diff(fids) >= 0), fids
    assert fids[0] < fids[-1]


def test_warm_start_does_not_change_the_optimum_and_calls_are_deterministic():
    table = hadis_like_table()
    previous = None
    for demand in DEMANDS_QPS[::3]:
        cold = solve_plan(table, demand, np.zeros(4), 60.0, 16)
        again = solve_plan(table, demand, np.zeros(4), 60.0, 16)
        warm = solve_plan(table, demand, np.zeros(4), 60.0, 16, previous=previous)
        assert replace(cold, solve_time_s=0.0) == replace(again, solve_time_s=0.0)
        assert (warm.fid, warm.n_gpus, warm.status) == (cold.fid, cold.n_gpus, cold.status)
        previous = warm


def test_artifact_table(hadis_artifact):
    """The artifact's 726-row table: the best row at low demand, FID monotone in demand."""
    rows = pd.read_csv(hadis_artifact / "discriminator" / "config_results_hybrid.csv")
    options = [
        CascadeOption(
            int(r.light_model), int(r.heavy_model), r.router_ratio, r.disc_ratio, r.threshold, r.fid
        )
        for r in rows.itertuples()
    ]
    table = plan_table(options, hadis_like_table().profiles)
    assert len(options) == 726
    low = solve_plan(table, 0.1, np.zeros(4), 60.0, 16)
    assert (low.fid, options[low.option_index].light, options[low.option_index].heavy) == (
        19.29,
        2,
        3,
    )  # the table's best row (pair (2, 3), r = 0.2, c = 0.5)
    fids = [solve_plan(table, d, np.zeros(4), 60.0, 16).fid for d in DEMANDS_QPS[::4]]
    assert np.all(np.diff(fids) >= 0), fids
    assert fids[0] == 19.29 < fids[-1]


# ----------------------------------------------------------------------------- inputs


def test_bundle_adapters_round_trip():
    bundle = make_bundle(batch_sizes=(1, 2, 4, 8))
    profiles = profiles_from_bundle(bundle)
    assert [p.batch_sizes for p in profiles] == [(1, 2, 4, 8)] * 2
    assert profiles[1].batch_latency_s[0] == bundle.batch_latency_s("heavy", 1)
    options = options_from_bundle(bundle, single_models=True)
    assert len(options) == len(bundle.cascades) + 2
    assert options[-1] == CascadeOption.single(1, float(bundle.models["fid_alone"].iloc[1]))
    plan = solve_plan(plan_table(options, profiles), 0.5, (0.0, 0.0), 30.0, 4)
    assert plan.status == "optimal"


@pytest.mark.parametrize(
    ("options", "profiles", "message"),
    [
        ((CascadeOption(0, 1, 0.0, 0.0, 1.5, 20.0),), HAND_PROFILES, "heavy_share"),
        ((CascadeOption(0, 0, 0.0, 0.0, 0.5, 20.0),), HAND_PROFILES, "equals light"),
        ((CascadeOption(0, 5, 0.0, 0.0, 0.5, 20.0),), HAND_PROFILES, "heavy model index"),
        ((CascadeOption.single(0, math.nan),), HAND_PROFILES, "fid"),
        (HAND_OPTIONS, (ModelProfile("A", (2, 1), (1.0, 2.0)), HAND_PROFILES[1]), "increasing"),
        (HAND_OPTIONS, (ModelProfile("A", (1,), (0.0,)), HAND_PROFILES[1]), "> 0"),
        ((), HAND_PROFILES, "empty"),
    ],
)
def test_bad_table_raises(options, profiles, message):
    with pytest.raises(PlanInputError, match=message):
        plan_table(options, profiles)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"demand_qps": -1.0}, "demand_qps"),
        ({"queue_delay_s": (0.0,)}, "queue_delay_s"),
        ({"slo_s": 0.0}, "slo_s"),
        ({"n_workers": 0}, "n_workers"),
        ({"time_limit_s": 0.0}, "time_limit_s"),
    ],
)
def test_bad_call_raises(hand_table, kwargs, message):
    call = {"demand_qps": 1.0, "queue_delay_s": NO_DELAY, "slo_s": 8.0, "n_workers": 3, **kwargs}
    with pytest.raises(PlanInputError, match=message):
        solve_plan(hand_table, **call)


# ----------------------------------------------------------------------------- pareto


def test_pareto_mask_keeps_the_front_and_the_first_duplicate():
    points = np.array([[1, 5], [2, 2], [3, 3], [2, 2], [5, 1], [1, 6]])
    assert pareto_mask(points).tolist() == [True, True, False, False, True, False]
    groups = np.array([0, 0, 1, 1, 1, 1])
    assert grouped_pareto_mask(points, groups).tolist() == [True, True, False, True, True, True]


def test_cover_dominance_lets_a_faster_model_stand_in():
    # options: 0 = (0 -> 2), 1 = (1 -> 2) same shares, worse FID; model 0 covers model 1
    member = np.array([[0, 2], [1, 2], [1, -1]])
    share = np.array([[0.8, 0.3], [0.8, 0.3], [1.0, 0.0]])
    fid = np.array([22.0, 23.0, 21.0])
    heavy_share = np.array([0.3, 0.3, 0.0])
    covers = np.eye(3, dtype=bool)
    assert dominated_by_cover(member, share, fid, heavy_share, covers).tolist() == [
        False,
        False,
        False,
    ]
    covers[0, 1] = True
    assert dominated_by_cover(member, share, fid, heavy_share, covers).tolist() == [
        False,
        True,
        False,
    ]
