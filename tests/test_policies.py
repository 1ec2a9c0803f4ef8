"""Every registered policy end to end, and the adaptive behaviour HADIS §5 describes."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_factory import make_bundle

import policies  # noqa: F401  (registers the adaptive policies)
from simulator.config import SimConfig
from simulator.policy import Observation, PolicyContext, make_policy, policy_names
from simulator.run import run_simulation
from simulator.workloads import phases

FOUR_MODELS = {"fast": 0.5, "turbo": 1.3, "medium": 6.0, "large": 12.0}
FOUR_FIDS = {"fast": 29.8, "turbo": 25.2, "medium": 20.6, "large": 19.9}


@pytest.fixture(scope="module")
def bundle():
    return make_bundle(FOUR_MODELS, FOUR_FIDS, batch_sizes=(1, 2, 4, 8, 16), n_prompts=300)


def observe(bundle, demand_qps, n_workers=8, slo_s=30.0):
    n = len(bundle.model_names)
    return Observation(
        now_s=0.0,
        demand_qps=demand_qps,
        arrival_rate_qps=demand_qps,
        inflight=0,
        queue_len=(0.0,) * n,
        model_arrival_qps=(0.0,) * n,
        n_workers=n_workers,
        slo_s=slo_s,
        current=None,
    )


@pytest.mark.parametrize("name", policy_names())
def test_policy_end_to_end_is_conserving_and_deterministic(bundle, name):
    trace = phases([1, 4, 1], 60, n_prompts=bundle.n_prompts, seed=0)
    config = SimConfig(n_workers=8, slo_s=30)
    a = run_simulation(bundle, trace, name, config)
    b = run_simulation(bundle, trace, name, config)
    s = a.summary
    assert s["ok"] + s["timeouts"] + s["drops"] == s["arrivals"] == len(trace)
    if name != "clipper-heavy":  # the heavy model alone cannot carry 4 qps on 8 workers
        assert s["ok"] > 0.5 * s["arrivals"], s
    assert a.queries.equals(b.queries) and a.timeseries.equals(b.timeseries)
    assert s == b.summary
    single = {"clipper-light": FOUR_FIDS["fast"], "clipper-heavy": FOUR_FIDS["large"]}
    if name in single:  # one model serves every completed query
        assert s["fid"] == pytest.approx(single[name], abs=1e-9)
    else:  # a planner that mixes quality levels, never stuck in its fallback plan
        assert FOUR_FIDS["large"] + 0.5 < s["fid"] < FOUR_FIDS["fast"] - 0.5, s["fid"]
    plans = [r.plan for r in a.raw.plans]
    assert not any(plan.infeasible for plan in plans), name
    for plan in plans:
        assert sum(plan.workers.values()) <= config.n_workers


def test_hadis_trades_quality_for_throughput_as_load_rises_and_back(bundle):
    policy = make_policy("hadis", PolicyContext(bundle, 8, 30.0))
    fids = [policy.plan(observe(bundle, d)).fid for d in (0.2, 1, 3, 6, 10, 6, 3, 1, 0.2)]
    rising, falling = fids[:5], fids[4:]
    assert all(b >= a - 1e-9 for a, b in zip(rising, rising[1:])), fids
    assert all(b <= a + 1e-9 for a, b in zip(falling, falling[1:])), fids
    assert fids[4] > fids[0] + 1  # a clearly faster, lower-quality configuration at the peak
    assert fids[0] == pytest.approx(fids[-1])


def test_hadis_over_capacity_is_flagged_and_keeps_every_worker_busy(bundle):
    policy = make_policy("hadis", PolicyContext(bundle, 8, 30.0))
    plan = policy.plan(observe(bundle, 500.0))
    assert plan.infeasible
    assert sum(plan.workers.values()) == 8


def test_ablations_use_their_mechanisms_only(bundle):
    ctx = PolicyContext(bundle, 8, 30.0)
    for demand in (0.5, 3.0, 8.0):
        ro = make_policy("router-only", ctx).plan(observe(bundle, demand))
        do = make_policy("disc-only", ctx).plan(observe(bundle, demand))
        assert ro.disc_ratio == 0 and do.router_ratio == 0
    assert not make_policy("disc-only", ctx).uses_router
    assert not make_policy("router-only", ctx).uses_discriminator


def test_diffserve_keeps_its_pair_and_lowers_threshold_under_load(bundle):
    policy = make_policy(
        "diffserve", PolicyContext(bundle, 8, 30.0, options={"light": "turbo", "heavy": "large"})
    )
    plans = [policy.plan(observe(bundle, d)) for d in (0.3, 2.0, 5.0)]
    assert {(p.light, p.heavy) for p in plans} == {("turbo", "large")}
    assert all(p.router_ratio == 0 for p in plans)
    ratios = [p.disc_ratio for p in plans]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > ratios[-1]


def test_proteus_routes_in_proportion_to_capacity(bundle):
    policy = make_policy("proteus", PolicyContext(bundle, 8, 30.0))
    plan = policy.plan(observe(bundle, 3.0))
    capacity = {
        m: plan.workers[m] * plan.batch_size[m] / bundle.batch_latency_s(m, plan.batch_size[m])
        for m in plan.workers
    }
    total = sum(capacity.values())
    assert total >= 3.0
    for m, share in plan.mix.items():
        assert share == pytest.approx(capacity[m] / total)
    low = make_policy("proteus", PolicyContext(bundle, 8, 30.0)).plan(observe(bundle, 0.1))
    assert low.fid <= plan.fid


def test_cached_planners_reuse_plans(bundle):
    trace = phases([2, 2, 2], 60, n_prompts=bundle.n_prompts, seed=1)
    for name in ("cache-d", "cache-dq"):
        out = run_simulation(bundle, trace, name, SimConfig(n_workers=8, slo_s=30))
        assert out.summary["arrivals"] == len(trace)
    policy = make_policy("cache-d", PolicyContext(bundle, 8, 30.0))
    first = policy.plan(observe(bundle, 2.1))
    again = policy.plan(observe(bundle, 3.9))  # same 2-qps bucket: a hit
    assert again is first and policy.hits == 1 and policy.misses == 1


def test_unknown_policy_option_is_an_input_error(bundle):
    from simulator.errors import InputError

    with pytest.raises(InputError, match="unknown option"):
        make_policy("hadis", PolicyContext(bundle, 8, 30.0, options={"bogus": 1}))
    with pytest.raises(InputError, match="option planner: 'magic' is not one of default, faithful"):
        make_policy("hadis", PolicyContext(bundle, 8, 30.0, options={"planner": "magic"}))


def test_random_policy_scores_are_seeded(bundle):
    a = make_policy("random", PolicyContext(bundle, 8, 30.0, seed=1))
    b = make_policy("random", PolicyContext(bundle, 8, 30.0, seed=1))
    c = make_policy("random", PolicyContext(bundle, 8, 30.0, seed=2))
    np.testing.assert_array_equal(a.router_scores, b.router_scores)
    assert not np.array_equal(a.router_scores, c.router_scores)


@pytest.mark.parametrize("demand", [0.0, 2e-10, 1e-3])
@pytest.mark.parametrize(
    "name", ["hadis", "router-only", "disc-only", "random", "diffserve", "proteus", "cache-dq"]
)
def test_vanishing_demand_still_gets_a_serving_plan(bundle, name, demand):
    plan = make_policy(name, PolicyContext(bundle, 8, 30.0)).plan(observe(bundle, demand))
    assert sum(plan.workers.values()) >= 1
    if plan.mix is not None:
        served = [m for m, share in plan.mix.items() if share > 0]
    else:
        served = [plan.light] if plan.router_ratio < 1 else []
        served += [plan.heavy] if plan.router_ratio > 0 or plan.disc_ratio > 0 else []
    assert served and all(plan.workers.get(m, 0) > 0 for m in served), plan


def test_trained_router_replaces_the_hardness_score(bundle):
    options = {"router": "hadis-published", "router_features": "hadis8"}
    policy = make_policy("hadis", PolicyContext(bundle, 8, 30.0, options=options))
    assert policy.router_scores.shape == bundle.router_score.shape
    assert not np.allclose(policy.router_scores, bundle.router_score)
    trace = phases([2], 60, n_prompts=bundle.n_prompts, seed=3)
    out = run_simulation(bundle, trace, "hadis", SimConfig(n_workers=8, slo_s=30), options)
    assert out.summary["arrivals"] == len(trace)
    from simulator.errors import InputError

    with pytest.raises(InputError, match="router 'nope'"):
        make_policy("hadis", PolicyContext(bundle, 8, 30.0, options={"router": "nope"}))


@pytest.fixture(scope="module")
def default_bundle():
    from experiments.inputs import resolve_bundle

    return resolve_bundle("default")


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_on_the_default_bundle(default_bundle, name):
    trace = phases([2, 12, 2], 40, n_prompts=default_bundle.n_prompts, seed=5)
    # free swaps: this checks each planner's reach; the bundle's load times turn the 6x demand
    # step into 9 s of loading for most workers (tests/test_swap_cost.py, fig16)
    out = run_simulation(default_bundle, trace, name, SimConfig(load_s=0.0))
    s = out.summary
    assert s["ok"] + s["timeouts"] + s["drops"] == s["arrivals"] == len(trace)
    assert set(s["plan_share"]) <= {r.plan.label for r in out.raw.plans}
    assert s["fid_method"] == "exact"
    fid_alone = dict(zip(default_bundle.model_names, default_bundle.models["fid_alone"]))
    lightest, heaviest = default_bundle.model_names[0], default_bundle.model_names[-1]
    if name in ("clipper-light", "clipper-heavy"):
        model = lightest if name == "clipper-light" else heaviest
        assert s["fid"] == pytest.approx(fid_alone[model], abs=1e-4)  # the table rounds
        return
    # 2-12 qps on 16 workers at a 60 s SLO is within every planner's reach: a planner in its
    # infeasible fallback (e.g. a failed solve) or serving one quality level only would fail here
    infeasible = np.mean([r.plan.infeasible for r in out.raw.plans])
    assert infeasible <= (0.05 if name == "proteus" else 0.0), infeasible
    assert fid_alone[heaviest] + 1 < s["fid"] < fid_alone[lightest] - 1, s["fid"]
    if name in ("hadis", "router-only", "cache-dq"):
        assert s["slo_violation_ratio"] < 0.01, s["slo_violation_ratio"]
