"""The decision core (clock-free rules), its agreement with the SimPy driver query by query,
the per-query policy hooks, N-stage cascades, queue disciplines and the registry."""

from __future__ import annotations

import json
import math
from collections import deque

import numpy as np
import pytest
import simpy
from bundle_factory import make_bundle
from typer.testing import CliRunner

import simulator.baselines  # noqa: F401  (registers static-cascade, clipper-light)
from simulator.cluster import Cluster, artifact_batch_times_s
from simulator.config import ConfigError, SimConfig
from simulator.core import (
    ACCEPT,
    NO_MODEL,
    PlanState,
    form_batch,
    place_workers,
    quality_threshold,
    router_threshold,
    threshold_above,
)
from simulator.engine import simulate
from simulator.errors import InputError
from simulator.metrics import compute_metrics
from simulator.policy import POLICIES, Plan, PolicyContext, make_policy
from simulator.queues import PriorityQueue, queue_factory
from simulator.registry import Registry
from simulator.workloads import Trace, poisson

THREE = {"a": 1.0, "b": 2.0, "c": 4.0}
THREE_FID = {"a": 30.0, "b": 25.0, "c": 20.0}


# ----------------------------------------------------------------------------- the rules


def test_route_and_accept_follow_the_quantile_thresholds():
    router = np.arange(10.0)  # θ at r = 0.3: the 0.7-quantile = 6.3
    quality = np.column_stack([np.arange(10.0), np.arange(10.0) * 2, np.zeros(10)])
    plan = Plan(
        workers={"a": 1, "b": 1, "c": 1},
        batch_size={},
        stages=("a", "b", "c"),
        router_ratio=0.3,
        disc_ratios=(0.2, 0.5),
    )
    state = PlanState.from_plan(plan, "abc".index, router, quality)
    assert state.theta == pytest.approx(6.3)
    assert state.route(6.3, draw=None) == 2 and state.route(6.29, draw=None) == 0
    # τ_a = 0.2-quantile of 0..9 = 1.8; τ_b = 0.5-quantile of 0,2,..,18 = 9
    assert state.accept_or_escalate(0, 1.79) == 1 and state.accept_or_escalate(0, 1.8) == ACCEPT
    assert state.accept_or_escalate(1, 8.99) == 2 and state.accept_or_escalate(1, 9.0) == ACCEPT
    assert state.accept_or_escalate(2, -1e9) == ACCEPT  # the last stage always returns
    assert state.judged == [True, True, False]


def test_a_model_outside_the_cascade_is_judged_as_its_first_stage():
    quality = np.column_stack([np.arange(10.0), np.arange(10.0), np.arange(10.0) + 100])
    plan = Plan(workers={}, batch_size={}, light="a", heavy="b", disc_ratio=0.5)
    state = PlanState.from_plan(plan, "abc".index, np.zeros(10), quality)
    # a query served by c when the plan changed: τ_c at the first stage's ratio, then to heavy
    assert state.tau_of[2] == pytest.approx(104.5)
    assert state.accept_or_escalate(2, 104.0) == 1 and state.accept_or_escalate(2, 105) == ACCEPT
    assert state.requeue(draw=None) == 1


def test_mix_routing_draws_only_when_there_is_a_choice():
    draws = iter([0.1, 0.7])
    state = PlanState(3, mix={0: 1.0, 2: 3.0})
    assert [state.route(0.0, lambda: next(draws)) for _ in range(2)] == [0, 2]
    assert PlanState(3, mix={1: 1.0}).route(0.0, draw=None) == 1
    assert PlanState(3).route(0.0, draw=None) == NO_MODEL
    assert PlanState(3, mix={0: 1.0}).accept_or_escalate(0, -math.inf) == ACCEPT


def test_threshold_edges():
    scores = np.array([1.0, 2.0, 3.0])
    assert router_threshold(scores, 0.0) == math.inf and router_threshold(scores, 1.0) == 1.0
    assert quality_threshold(scores, 1.0) == math.inf and quality_threshold(scores, 0.0) == 1.0
    assert threshold_above(-math.inf) == -math.inf
    assert threshold_above(0.5) > 0.5 and np.nextafter(threshold_above(0.5), 0) == 0.5


def test_place_workers_keeps_models_and_reports_changes_in_order():
    # workers host a, a, b, -, c; the plan wants b x2, c x1, a x1
    new, changed = place_workers([0, 0, 1, NO_MODEL, 2], [1, 2, 1])
    assert new == [0, 1, 1, NO_MODEL, 2]
    assert changed == [1]  # worker 1 swaps a -> b; worker 3 stays spare
    new, changed = place_workers([0, 1, 2], [0, 0, 1])
    assert new == [NO_MODEL, NO_MODEL, 2] and changed == [0, 1]
    with pytest.raises(ValueError, match="plan uses 4 workers"):
        place_workers([0, 0], [4])


def test_form_batch_drops_what_would_finish_too_late():
    arrival_s = [0.0, 5.0, 9.0, 9.5, 10.0]
    queue = deque([0, 1, 2, 3, 4])
    latency_s = [0.0, 1.0, 2.0, 3.0]  # batch of 3 planned: finishes at 10 + 3 = 13
    batch, dropped = form_batch(queue, arrival_s, 10.0, 3, latency_s, drop_limit_s=5.0)
    assert dropped == [0, 1] and batch == [2, 3, 4] and not queue
    queue = deque([2, 3])
    assert form_batch(queue, arrival_s, 10.0, 1, latency_s, 5.0) == ([2], []) and list(queue) == [3]


def test_priority_queue_serves_lowest_key_first_ties_by_id():
    key = {0: 3.0, 1: 1.0, 2: 1.0, 3: 0.5}.__getitem__
    queue = PriorityQueue(key)
    for q in (0, 2, 1, 3):
        queue.append(q)
    assert list(queue) == [3, 1, 2, 0] and len(queue) == 4
    assert [queue.popleft() for _ in range(4)] == [3, 1, 2, 0] and not queue
    assert queue_factory("fifo", [])() == deque()
    with pytest.raises(ValueError, match="queue discipline 'lifo'"):
        queue_factory("lifo", [])


# ----------------------------------------------------------------------------- agreement


def replay_through_core(raw, policy, plan, model_index):
    """(first, final, bypassed, escalated) per query from its score values alone."""
    router = np.asarray(policy.router_scores, dtype=np.float64)
    quality = np.asarray(policy.quality_scores, dtype=np.float64)
    state = PlanState.from_plan(plan, model_index, router, quality)
    first, final, bypassed, escalated = [], [], [], []
    for p in raw.prompt_idx:
        model = state.route(float(router[p]), draw=None)
        first.append(model)
        bypassed.append(model == state.last)
        hops = 0
        while model != state.last:
            nxt = state.accept_or_escalate(model, float(quality[p, model]))
            if nxt == ACCEPT:
                break
            model, hops = nxt, hops + 1
        final.append(model)
        escalated.append(hops > 0)
    return np.array(first), np.array(final), np.array(bypassed), np.array(escalated)


@pytest.mark.parametrize(
    ("latency", "options"),
    [
        ({"light": 1.0, "heavy": 4.0}, {"router_ratio": 0.25, "disc_ratio": 0.4}),
        (THREE, {"models": "a,b,c", "router_ratio": 0.1, "disc_ratios": "0.5/0.4"}),
    ],
)
def test_simulator_and_core_agree_query_by_query(latency, options):
    bundle = make_bundle(base_latency_s=latency, fid_alone=dict(zip(latency, (30, 25, 20))))
    trace = poisson(1.0, 600, n_prompts=bundle.n_prompts, seed=4)
    config = SimConfig(n_workers=8, slo_s=120)
    policy = make_policy("static-cascade", PolicyContext(bundle, 8, 120, options=options))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    assert not raw.dropped.any() and np.isfinite(raw.completion_s).all()
    plan = raw.plans[0].plan
    first, final, bypassed, escalated = replay_through_core(raw, policy, plan, bundle.model_index)
    np.testing.assert_array_equal(raw.first_model, first)
    np.testing.assert_array_equal(raw.final_model, final)
    np.testing.assert_array_equal(raw.bypassed, bypassed)
    np.testing.assert_array_equal(raw.escalated, escalated)
    # every stage of the cascade returns some images and the router bypasses some
    assert set(final) == set(range(len(latency))) and bypassed.any() and escalated.any()


# ----------------------------------------------------------------------------- N stages


def test_three_stage_static_cascade_end_to_end():
    bundle = make_bundle(base_latency_s=THREE, fid_alone=THREE_FID)
    options = {"models": "a,b,c", "router_ratio": 0.2, "disc_ratio": 0.3}
    policy = make_policy("static-cascade", PolicyContext(bundle, 9, 60, options=options))
    plan = policy.plan(None)
    assert plan.stages == ("a", "b", "c") and plan.disc_ratios == (0.3, 0.3)
    assert (plan.light, plan.heavy, plan.label) == ("a", "c", "a->b->c")
    assert sum(plan.workers.values()) == 9 and min(plan.workers.values()) >= 1
    trace = poisson(1.5, 300, n_prompts=bundle.n_prompts, seed=1)
    config = SimConfig(n_workers=9, slo_s=60)
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    queries, _, summary = compute_metrics(raw, bundle, policy, config)
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == len(trace)
    assert summary["plan_share"] == {"a->b->c": 1.0}
    # a query escalated twice ran a, b and c back to back on an idle cluster: 1 + 2 + 4 s
    twice = (raw.first_model == 0) & (raw.final_model == 2)
    latency = (raw.completion_s - raw.arrival_s)[twice]
    assert twice.any() and latency.min() == pytest.approx(7.0 + 2 * config.disc_cost_s, abs=0.01)
    # planned FID: the nominal shares returned by each stage weight the single-model FIDs
    returned = [0.8 * 0.7, 0.8 * 0.3 * 0.7, 0.2 + 0.8 * 0.3 * 0.3]
    expected = sum(s * f for s, f in zip(returned, THREE_FID.values()))
    assert summary["fid_planned"] == pytest.approx(expected, abs=1e-6)


def test_two_stage_plans_written_either_way_are_equal():
    common = {"workers": {"a": 1, "c": 1}, "batch_size": {}, "router_ratio": 0.1}
    by_pair = Plan(**common, light="a", heavy="c", disc_ratio=0.4)
    by_stages = Plan(**common, stages=("a", "c"), disc_ratios=(0.4,))
    assert by_pair == by_stages and by_pair.models == ("a", "c")
    with pytest.raises(ValueError, match="3 stages need 2 disc ratios"):
        Plan(**common, stages=("a", "b", "c"), disc_ratios=(0.4,))
    with pytest.raises(ValueError, match="distinct stages"):
        Plan(**common, stages=("a", "a"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"router_ratio": "abc"}, "option router_ratio: 'abc' is not"),
        ({"router_ratio": 2}, "option router_ratio: 2 is not"),
        ({"disc_ratio": -0.5}, "option disc_ratio: -0.5 is not"),
        ({"light_workers": "abc"}, "option light_workers: 'abc' is not"),
        ({"light_workers": [1, 2]}, "option light_workers: [1, 2] is not"),
        ({"light_workers": 4}, "option light_workers: 4 leaves no worker for the other 1"),
        ({"bogus": 1}, "unknown option(s) bogus"),
        ({"models": "a,zz"}, "option models: unknown model 'zz'"),
        ({"models": "a,a"}, "two or more different models"),
        ({"models": "a,b", "light": "a"}, "models, or light and heavy"),
        ({"models": "a,b,c", "disc_ratios": "0.1"}, "option disc_ratios: '0.1' has 1 value"),
        ({"models": "a,b,c", "disc_ratios": "0.1/x"}, "option disc_ratios: 'x' is not"),
    ],
)
def test_static_cascade_options_are_checked(options, message):
    bundle = make_bundle(base_latency_s=THREE, fid_alone=THREE_FID)
    with pytest.raises(InputError) as info:
        make_policy("static-cascade", PolicyContext(bundle, 4, 60, options=options))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_clipper_rejects_any_option():
    with pytest.raises(InputError, match=r"clipper-light: unknown option\(s\) light"):
        make_policy("clipper-light", PolicyContext(make_bundle(), 4, 60, options={"light": "x"}))


# ----------------------------------------------------------------------------- hooks


class HookedCascade(simulator.baselines.StaticCascadePolicy):
    """The static cascade plus whichever hooks a test sets on the instance."""

    def __init__(self, context: PolicyContext, **hooks) -> None:
        super().__init__(context)
        self.name = "hooked"
        for name, hook in hooks.items():
            setattr(self, name, hook)


def run_hooked(n_workers=4, rate=1.0, config=None, **hooks):
    bundle = make_bundle()
    policy = HookedCascade(PolicyContext(bundle, n_workers, 60), **hooks)
    trace = poisson(rate, 200, n_prompts=bundle.n_prompts, seed=3)
    config = config or SimConfig(n_workers=n_workers, slo_s=60)
    return simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config), policy


def test_a_policy_without_hooks_keeps_the_fast_path():
    bundle = make_bundle()
    policy = make_policy("static-cascade", PolicyContext(bundle, 4, 60))
    trace = poisson(1.0, 10, n_prompts=bundle.n_prompts, seed=0)
    cluster = Cluster(
        simpy.Environment(),
        bundle,
        SimConfig(n_workers=4),
        policy,
        trace.arrival_s,
        trace.prompt_idx,
        0,
    )
    cluster.apply_plan(policy.plan(None))
    # routes and escalations are tabulated per prompt by the core: list lookups per query
    state = cluster.state
    assert cluster.route_of_prompt == state.route_table(bundle.router_score)
    assert cluster.next_of_prompt[0] == state.escalation_table(0, bundle.disc_score[:, 0])
    assert cluster.form_batch is form_batch
    assert all(type(w.queue) is deque for w in cluster.workers)
    policy.route = lambda state, score, now_s, queued: state.first
    hooked = Cluster(
        simpy.Environment(),
        bundle,
        SimConfig(n_workers=4),
        policy,
        trace.arrival_s,
        trace.prompt_idx,
        0,
    )
    hooked.apply_plan(policy.plan(None))
    assert hooked.route_of_prompt is None  # the hook decides each query


def test_admission_route_and_accept_hooks_decide_per_query():
    raw, _ = run_hooked(admit=lambda now_s, score, inflight: score < 0.5)
    scores = make_bundle().router_score[raw.prompt_idx]
    np.testing.assert_array_equal(raw.dropped, scores >= 0.5)
    assert np.isnan(raw.start_s[raw.dropped]).all()

    seen = []

    def route(state, score, now_s, queued):
        seen.append((now_s, len(queued)))
        return state.last  # everything to the heavy model: all bypassed

    raw, _ = run_hooked(route=route)
    assert raw.bypassed.all() and (raw.final_model == 1).all() and len(seen) == len(raw.bypassed)
    assert seen[0][0] > 0 and seen[0][1] == 2

    raw, _ = run_hooked(accept_or_escalate=lambda state, m, quality, now_s: state.last)
    served_light = raw.first_model == 0
    done = np.isfinite(raw.completion_s)
    assert (raw.escalated == served_light).all() and (raw.final_model[done] == 1).all()


def test_batch_hook_replaces_the_core_batch_formation():
    def one_at_a_time(queue, arrival_s, now_s, max_batch, latency_s, drop_limit_s):
        return form_batch(queue, arrival_s, now_s, 1, latency_s, drop_limit_s)

    bundle = make_bundle()
    trace = Trace(np.zeros(4), np.arange(4))  # four at once on one light worker
    config = SimConfig(n_workers=2, slo_s=600)
    for hook, starts in ((None, [0.0] * 4), (one_at_a_time, [0.0, 1.0, 2.0, 3.0])):
        policy = HookedCascade(
            PolicyContext(bundle, 2, 600, options={"router_ratio": 0, "disc_ratio": 0})
        )
        policy.form_batch = hook
        raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
        np.testing.assert_allclose(np.sort(raw.start_s), starts, atol=0.05)


def test_edf_serves_escalated_queries_before_newer_ones():
    """Heavy worker busy; an escalated query (arrived first) and a bypassed one (arrived
    later) wait for it: FIFO serves the bypassed one first (it queued first), EDF the
    escalated one (earlier deadline)."""
    bundle = make_bundle()  # light 1 s, heavy 4 s
    order = np.argsort(bundle.router_score)
    easy, hard = int(order[0]), int(order[-1])
    # t=0 hard (bypass, heavy busy 0-4 s); t=0.1 easy (light 0.1-1.1 s, escalated);
    # t=0.5 hard (bypassed, queued at heavy before the escalation)
    trace = Trace(np.array([0.0, 0.1, 0.5]), np.array([hard, easy, hard]))
    options = {"router_ratio": 0.5, "disc_ratio": 1.0, "light_workers": 1}
    first_done = {}
    for queue in ("fifo", "edf"):  # SLO 10 s: the heavy model's batch size is 1
        policy = make_policy("static-cascade", PolicyContext(bundle, 2, 10, options=options))
        config = SimConfig(n_workers=2, slo_s=10, queue=queue, router_cost_s=0)
        raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
        assert raw.escalated.tolist() == [False, True, False]
        first_done[queue] = int(np.argmin(np.where([0, 1, 1], raw.completion_s, np.inf)))
    assert first_done == {"fifo": 2, "edf": 1}


def test_queue_priority_hook_orders_every_queue():
    bundle = make_bundle()
    prompts = np.array([3, 1, 2, 0])
    trace = Trace(np.zeros(4), prompts)  # four at once at one light worker, batch size 1
    options = {"router_ratio": 0, "disc_ratio": 0}
    config = SimConfig(n_workers=2, slo_s=3)
    starts = {}
    for name, hook in (("fifo", None), ("hardest first", lambda arrival_s, score: -score)):
        policy = HookedCascade(PolicyContext(bundle, 2, 3, options=options))
        policy.queue_priority = hook
        raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
        starts[name] = np.argsort(raw.start_s).tolist()
    assert starts["fifo"] == [0, 1, 2, 3]
    assert starts["hardest first"] == np.argsort(-bundle.router_score[prompts]).tolist()
    assert starts["hardest first"] != starts["fifo"]


def test_config_queue_is_checked():
    with pytest.raises(ConfigError, match=r"queue \(--queue\): 'lifo' is not one of fifo, edf"):
        SimConfig(queue="lifo")


def test_cli_runs_three_stages_and_edf(tmp_path):
    from experiments.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--policy",
            "static-cascade",
            "--option",
            "models=SDXL-Lightning,SD3.5-Medium,SD3.5-Large",
            "--trace",
            "poisson:rate=2,duration=60",
            "--queue",
            "edf",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["sim"]["queue"] == "edf"
    assert summary["plan_share"] == {"SDXL-Lightning->SD3.5-Medium->SD3.5-Large": 1.0}
    bad = CliRunner().invoke(
        app,
        [
            "simulate",
            "--policy",
            "static-cascade",
            "--option",
            "router_ratio=abc",
            "--out",
            str(tmp_path / "bad"),
        ],
    )
    assert bad.exit_code == 2 and "option router_ratio: 'abc'" in bad.output


# ----------------------------------------------------------------------------- registry


def test_registry_register_unregister_and_errors():
    registry = Registry("thing", InputError)

    @registry.register("b")
    def b():
        return "b"

    registry.register("a", len)
    assert registry.names() == ["b", "a"] and "a" in registry and len(registry) == 2
    assert registry.get("b") is b
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a", print)
    registry.register("a", len)  # the same factory again is harmless
    registry.unregister("a")
    with pytest.raises(InputError, match="unknown thing 'a'; known: b$"):
        registry.get("a")


def test_test_policies_are_not_left_registered():
    """Collection imports every test module first: one registering at import fails here."""
    assert not [name for name in POLICIES.names() if name.startswith("test-")]


# ----------------------------------------------------------------------------- routers


def test_router_budget_calibration_routes_by_the_core_rule():
    from routers.base import Router, heavy_mask
    from routers.metrics import budget_threshold

    class Fixed(Router):
        name = "fixed"

        def score(self, batch):
            return batch

    calib = np.array([0.9, 0.5, 0.5, 0.5, 0.1], dtype=np.float32)  # ties at the cut
    router = Fixed()
    for share in (0.0, 0.2, 0.4, 0.8, 1.0):
        cut = budget_threshold(calib, share)
        cal = router.calibrate_scores(calib, share)
        # the same prompts as the budget's strict cut, in float32 too, never over budget
        np.testing.assert_array_equal(router.route_heavy(calib), calib > cut)
        assert cal.realised_heavy_share == float(np.mean(calib > cut)) <= share
    assert router.calibrate_scores(calib, 0.4).realised_heavy_share == 0.2  # ties stay light
    assert heavy_mask(np.float32([0.5]), threshold_above(0.5)).tolist() == [False]


def test_policy_module_imports_no_policy_definitions():
    """No import cycle: the contract module registers nothing; importers of the definitions do."""
    import subprocess
    import sys

    code = (
        "import sys, simulator.policy as p; "
        "assert 'simulator.baselines' not in sys.modules and p.policy_names() == []; "
        "import simulator.run; print(p.policy_names())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['clipper-heavy', 'clipper-light', 'static-cascade']"


# ----------------------------------------------------------------------------- artifact rules


def test_order_statistic_thresholds_are_the_artifacts_hand_computed():
    scores = np.array([5.0, 1.0, 4.0, 2.0, 3.0])  # sorted 1, 2, 3, 4, 5; N = 5
    rule = "order-statistic"
    # θ = sorted[max(int(5 (1 - r)) - 1, 0)]: r = 0.4 -> index 2 -> 3 (3 prompts >= 3 bypass,
    # where the 0.6-quantile 3.4 bypasses 2); r = 0 -> index 4 -> 5 (the top one bypasses)
    assert router_threshold(scores, 0.4, rule) == 3.0 and router_threshold(scores, 0.4) == 3.4
    assert router_threshold(scores, 0.0, rule) == 5.0 and router_threshold(scores, 0.0) == math.inf
    assert router_threshold(scores, 1.0, rule) == 1.0
    # τ = sorted[max(int(5 c) - 1, 0)]: c = 0.4 -> index 1 -> 2 (1 prompt < 2 escalates, where
    # the 0.4-quantile 2.6 escalates 2); c = 1 -> 5 (the top one stays); c = 0 -> 1 (none)
    assert quality_threshold(scores, 0.4, rule) == 2.0 and quality_threshold(scores, 0.4) == 2.6
    assert quality_threshold(scores, 1.0, rule) == 5.0
    assert quality_threshold(scores, 0.0, rule) == 1.0
    # `int` truncates the float the artifact computes: 10 (1 - 0.9) = 0.999... -> index 0
    assert router_threshold(np.arange(10.0), 0.9, rule) == 0.0


def cluster_of(bundle, plan, config, arrival_s, policy_options=None):
    """A Cluster running `plan` from t = 0 (no controller) over `arrival_s`, prompts 0, 1, ..."""
    policy = make_policy("static-cascade", PolicyContext(bundle, config.n_workers, config.slo_s))
    env = simpy.Environment()
    arrival = np.asarray(arrival_s, dtype=np.float64)
    prompts = np.arange(len(arrival)) % bundle.n_prompts
    cluster = Cluster(env, bundle, config, policy, arrival, prompts, 0)
    cluster.apply_plan(plan)
    cluster.preload()
    cluster.start()
    return env, cluster


def two_stage(router_ratio, disc_ratio, batch=1, workers=(1, 1)):
    return Plan(
        workers={"light": workers[0], "heavy": workers[1]},
        batch_size={"light": batch, "heavy": batch},
        stages=("light", "heavy"),
        router_ratio=router_ratio,
        disc_ratios=(disc_ratio,),
    )


def test_threshold_rule_reaches_the_cluster():
    bundle = make_bundle()
    top = int(np.argmax(bundle.router_score))
    for rule, top_route in (("quantile", 0), ("order-statistic", 1)):
        config = SimConfig(n_workers=2, threshold_rule=rule)
        _, cluster = cluster_of(bundle, two_stage(0.0, 0.3), config, [])
        assert cluster.route_of_prompt[top] == top_route  # r = 0 bypasses the top prompt or not
        light = bundle.disc_score[:, 0]
        assert cluster.state.tau_of[0] == quality_threshold(light, 0.3, rule)


def test_bypassed_queries_count_at_the_first_model_when_asked():
    bundle = make_bundle()
    arrivals = np.arange(200) * 0.5
    counts = {}
    for at_first in (False, True):
        config = SimConfig(n_workers=8, slo_s=600, bypass_arrivals_at_first=at_first)
        env, cluster = cluster_of(bundle, two_stage(0.4, 0.0, workers=(4, 4)), config, arrivals)
        env.run(until=2000)
        bypassed = sum(cluster.bypassed)
        assert 40 < bypassed < 160 and cluster.finished == 200
        counts[at_first] = (cluster.model_arrivals, bypassed)
    (plain, bypassed), (artifact, _) = counts[False], counts[True]
    assert plain[0] == 200 - bypassed and artifact[0] == 200  # the router's worker registers all
    assert plain[1] == artifact[1] == bypassed  # c = 0 escalates none


def test_disc_cost_per_batch_is_charged_once_per_batch_of_any_model():
    bundle = make_bundle()  # light 1 s, heavy 4 s, batch b: base * b * 0.9
    done = {}
    for per in ("judged-image", "batch"):
        for r, model in ((0.0, "light"), (1.0, "heavy")):  # r = 1: every query bypasses
            config = SimConfig(n_workers=2, router_cost_s=0.0, disc_cost_s=0.5, disc_cost_per=per)
            env, cluster = cluster_of(bundle, two_stage(r, 0.0, batch=4), config, [0.0] * 4)
            env.run(until=100)
            done[per, model] = set(cluster.completion_s)
    assert done["judged-image", "light"] == {3.6 + 4 * 0.5}  # 4 judged images
    assert done["batch", "light"] == {3.6 + 0.5}
    assert done["judged-image", "heavy"] == {14.4}  # the last stage is not judged
    assert done["batch", "heavy"] == {14.4 + 0.5}  # the artifact's workers all sleep 10 ms


def test_artifact_batch_lookup_runs_odd_sizes_for_the_batch_4_time():
    row = [math.nan] + [0.013 * b * 0.9 if b > 1 else 0.013 for b in range(1, 33)]
    ms = [round(t * 1000, 6) for t in artifact_batch_times_s(row, 32)[1:]]
    # 13 ms base: 1, 2, 4, 8 -> 13, 23.4, 46.8, 93.6 ms; 3, 5, 6, 7 averages (7 of 6 and 8)
    assert ms[:8] == [13.0, 23.4, 35.1, 46.8, 58.5, 70.2, 81.9, 93.6]
    assert ms[8:15] == [46.8] * 7 and ms[15] == 187.2 and ms[16:31] == [46.8] * 15
    assert ms[31] == 374.4
    assert artifact_batch_times_s([math.nan, 0.5, 0.8, 1.1], 3)[1:] == [0.5, 0.8, 1.1]
    bundle = make_bundle(batch_sizes=(1, 2, 4, 8, 16))
    done = {}
    for model in ("bundle", "artifact"):
        config = SimConfig(n_workers=2, router_cost_s=0.0, disc_cost_s=0.0, batch_latency=model)
        env, cluster = cluster_of(bundle, two_stage(0.0, 0.0, batch=16), config, [0.0] * 12)
        env.run(until=100)
        done[model] = {round(t, 9) for t in cluster.completion_s}
    assert done == {"bundle": {10.8}, "artifact": {3.6}}  # a batch of 12: 12 x 0.9 s, or 4 x
