"""Swap cost: the default bundle's documented load times and the HADIS planner's swap-cost rule
(`policies.planning.SwapRule`), on hand-solvable plans and on the real planner."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import policies  # noqa: F401  (registers the adaptive policies)
from policies.milp import CascadeOption, ModelProfile, PlanSolution, plan_table
from policies.planning import (
    SWAP_FID_S_PER_GPU_S,
    PolicyOptionError,
    SwapRule,
    load_gpu_s,
    model_load_s,
    sustains,
)
from simulator.default_bundle import MODEL_LOAD_S, build_default_bundle
from simulator.policy import Observation, Plan, PolicyContext, make_policy

# two models, batch size 1 only: A serves 1 query/s per worker, B 0.5 (L = 1 s and 2 s)
TABLE = plan_table(
    [CascadeOption.single(0, 30.0), CascadeOption.single(1, 20.0)],
    [ModelProfile("A", (1,), (1.0,)), ModelProfile("B", (1,), (2.0,))],
)
NO_DELAY = np.zeros(2)


def only(model: str, workers: int, fid: float) -> Plan:
    return Plan(workers={model: workers}, batch_size={model: 1}, mix={model: 1.0}, fid=fid)


def solution(option_index: int, plan: Plan) -> PlanSolution:
    workers = tuple(plan.workers.get(m, 0) for m in ("A", "B"))
    return PlanSolution(option_index, workers, (1, 1), plan.fid, "optimal", 0.0, 0.0, 0.0)


def observe(demand_qps: float, current: Plan | None, n_models: int = 2, now_s: float = 0.0):
    return Observation(
        now_s=now_s,
        demand_qps=demand_qps,
        arrival_rate_qps=demand_qps,
        inflight=0,
        queue_len=(0.0,) * n_models,
        model_arrival_qps=(0.0,) * n_models,
        n_workers=16,
        slo_s=60.0,
        current=current,
    )


def test_default_bundle_carries_the_documented_load_times():
    # weights (GB) / 3.06 GB/s (16.5 GB in 5.4 s), rounded to 0.1 s
    assert MODEL_LOAD_S == {
        "SDXL-Lightning": 2.3,
        "SD3.5-Large-Turbo": 9.0,
        "SD3.5-Medium": 5.3,
        "SD3.5-Large": 9.0,
    }
    bundle = build_default_bundle(n_prompts=200)
    assert bundle.models["load_s"].tolist() == [2.3, 9.0, 5.3, 9.0]
    assert "outerport.com/blog/sd35-cold-start" in bundle.meta["load_s_source"]


def test_load_gpu_s_counts_each_worker_a_model_gains_once():
    load = {"A": 3.0, "B": 5.0}
    assert load_gpu_s({"A": 2, "B": 2}, {"A": 4}, load) == 6.0  # 2 B workers become A
    assert load_gpu_s({"A": 1}, {"A": 1, "B": 3}, load) == 15.0
    assert load_gpu_s({"A": 4}, {"A": 2}, load) == 0.0  # workers left spare load nothing


def test_sustains_checks_capacity_and_path_latency_like_the_milp():
    plan = only("A", 4, 30.0)  # 4 workers x 1 query / 1 s
    assert sustains(TABLE, 0, plan, ["A", "B"], 4.0, NO_DELAY, 60.0)
    assert not sustains(TABLE, 0, plan, ["A", "B"], 4.1, NO_DELAY, 60.0)
    assert sustains(TABLE, 0, plan, ["A", "B"], 1.0, np.array([0.4, 0.0]), 1.5)
    assert not sustains(TABLE, 0, plan, ["A", "B"], 1.0, np.array([0.6, 0.0]), 1.5)
    assert not sustains(TABLE, 1, plan, ["A", "B"], 1.0, NO_DELAY, 60.0)  # no B worker


def test_equal_objective_keeps_the_current_placement_unless_swaps_are_free():
    tied = plan_table(
        [CascadeOption.single(0, 25.0), CascadeOption.single(1, 25.0)], TABLE.profiles
    )
    in_force = only("A", 4, 25.0)
    new = only("B", 8, 25.0)  # the same FID elsewhere: 8 workers load B
    rule = SwapRule({"A": 2.0, "B": 5.0}, 1.0)
    assert rule.keeps(
        tied, (solution(0, in_force), in_force), new, in_force, observe(3.0, in_force), NO_DELAY
    )
    free = SwapRule({"A": 0.0, "B": 0.0}, 1.0)
    assert not free.keeps(
        tied, (solution(0, in_force), in_force), new, in_force, observe(3.0, in_force), NO_DELAY
    )


def test_a_load_spike_swaps_even_to_a_worse_fid():
    in_force = only("B", 2, 20.0)  # capacity 2 x 1 / 2 s = 1 query/s
    new = only("A", 4, 30.0)
    rule = SwapRule({"A": 10.0, "B": 10.0}, 1.0)
    state = (solution(1, in_force), in_force)
    assert rule.keeps(TABLE, state, new, in_force, observe(1.0, in_force), NO_DELAY)
    assert not rule.keeps(TABLE, state, new, in_force, observe(3.0, in_force), NO_DELAY)


def test_a_lasting_gain_swaps_once_its_forgone_quality_pays_for_the_loading():
    in_force = only("A", 4, 30.0)
    better, worse = only("B", 4, 20.0), only("B", 4, 35.0)
    state = (solution(0, in_force), in_force)

    def decisions(rule: SwapRule, news: list[Plan]) -> list[bool]:
        """keeps() at t = 0, 5, 10, ... s (demand 2 queries/s: the plan in force carries it)."""
        obs = [observe(2.0, in_force, now_s=5.0 * i) for i in range(len(news))]
        return [rule.keeps(TABLE, state, new, in_force, o, NO_DELAY) for new, o in zip(news, obs)]

    # gain 10 FID for 4 x 10 = 40 GPU-s of loading: the regret is 0, then 50 FID-s at t = 5
    assert decisions(SwapRule({"A": 10.0, "B": 10.0}, 1.0), [better] * 2) == [True, False]
    # a price of 1.5 x 40 = 60 FID-s: 50 at t = 5 keeps, 100 at t = 10 swaps
    assert decisions(SwapRule({"A": 10.0, "B": 10.0}, 1.5), [better] * 3) == [True, True, False]
    # a re-plan whose best plan is no better resets the regret: 50, 0, 50 keep, 100 swaps
    rule = SwapRule({"A": 10.0, "B": 10.0}, 1.5)
    assert decisions(rule, [better, better, worse, better, better]) == [True] * 4 + [False]
    assert rule.regret_fid_s == 0.0  # reset by the swap


@pytest.fixture(scope="module")
def default_bundle():
    return build_default_bundle()


def hadis(bundle, **options):
    return make_policy("hadis", PolicyContext(bundle, 16, 60.0, options=options))


def test_hadis_holds_its_plan_through_a_demand_dip_and_follows_a_spike(default_bundle):
    n = len(default_bundle.model_names)
    aware, unaware = hadis(default_bundle), hadis(default_bundle, swap_aware=False)
    busy = aware.plan(observe(20.0, None, n))
    assert unaware.plan(observe(20.0, None, n)) == busy
    lighter = unaware.plan(observe(16.0, busy, n, now_s=5.0))
    assert lighter != busy and lighter.fid < busy.fid - 0.3
    # busy -> lighter moves 3 workers to SD3.5-Large-Turbo (27 GPU-s of loading); its gain
    # (about 0.9 FID) forgone for 5 s per re-plan reaches 27 FID-s only at t = 35 s
    gain = busy.fid - lighter.fid
    cost = 27.0
    assert load_gpu_s(busy.workers, lighter.workers, MODEL_LOAD_S) == cost
    switch_s = 5.0 * int(np.ceil(cost / (5.0 * gain)))
    assert switch_s == 35.0
    for now_s in np.arange(5.0, switch_s, 5.0):
        assert aware.plan(observe(16.0, busy, n, now_s=now_s)) == busy
    assert aware.plan(observe(16.0, busy, n, now_s=switch_s)) == lighter
    spiked = hadis(default_bundle)
    spiked.plan(observe(20.0, None, n))
    spike = spiked.plan(observe(24.0, busy, n, now_s=5.0))  # busy cannot carry 24 queries/s
    assert spike != busy and spike.fid > busy.fid
    again = hadis(default_bundle, swap_fid_s_per_gpu_s=0.0)  # swaps priced at 0: as unaware
    again.plan(observe(20.0, None, n))
    assert again.plan(observe(16.0, busy, n, now_s=5.0)) == lighter


def test_swap_rule_follows_the_run_load_override_and_the_planner(default_bundle):
    context = PolicyContext(default_bundle, 16, 60.0)
    assert model_load_s(context) == MODEL_LOAD_S
    assert set(model_load_s(dataclasses.replace(context, load_s=4.0)).values()) == {4.0}
    assert hadis(default_bundle).swap_rule.fid_s_per_gpu_s == SWAP_FID_S_PER_GPU_S
    assert hadis(default_bundle, swap_aware=False).swap_rule is None
    assert make_policy("cache-dq", context).swap_rule.load_s == MODEL_LOAD_S
    assert make_policy("diffserve", context).swap_rule is None  # its own pair, no swaps to plan


def test_faithful_planner_plans_without_swap_cost(default_bundle):
    assert hadis(default_bundle, planner="faithful").swap_rule is None
    with pytest.raises(PolicyOptionError, match="swap_aware: true needs planner=default"):
        hadis(default_bundle, planner="faithful", swap_aware=True)
    with pytest.raises(PolicyOptionError, match="swap_fid_s_per_gpu_s"):
        hadis(default_bundle, swap_fid_s_per_gpu_s=-1)


def test_swap_aware_runs_are_byte_identical_and_load_less(default_bundle):
    from simulator.config import SimConfig
    from simulator.run import run_simulation
    from simulator.workloads import phases

    trace = phases([12, 8, 12, 8], 20, n_prompts=default_bundle.n_prompts, seed=3)
    first, again = (run_simulation(default_bundle, trace, "hadis", SimConfig()) for _ in range(2))
    assert first.summary == again.summary
    assert first.queries.equals(again.queries) and first.timeseries.equals(again.timeseries)
    unaware = run_simulation(default_bundle, trace, "hadis", SimConfig(), {"swap_aware": False})
    # the wobbling demand moves workers back and forth without the rule, not with it
    assert len(first.raw.plans) < len(unaware.raw.plans)
    assert first.summary["slo_violation_ratio"] < unaware.summary["slo_violation_ratio"]
