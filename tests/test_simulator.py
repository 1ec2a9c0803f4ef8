"""The SimPy cluster against closed forms, the cascade rules, conservation and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bundle_factory import make_bundle

import simulator.baselines  # noqa: F401  (registers clipper-light/-heavy, static-cascade)
from simulator.cascade import hybrid_assignment
from simulator.config import ConfigError, SimConfig
from simulator.engine import simulate
from simulator.metrics import DROP, OK, TIMEOUT, classify, compute_metrics
from simulator.policy import POLICIES, Plan, PolicyContext, make_policy
from simulator.workloads import Trace, constant, poisson


def erlang_c_wait_s(arrival_qps: float, service_qps: float, servers: int) -> float:
    """Mean waiting time in queue of M/M/c (Erlang C)."""
    a = arrival_qps / service_qps
    rho = a / servers
    tail = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(servers)) + tail)
    return p_wait / (servers * service_qps - arrival_qps)


def test_mmc_mean_wait_matches_erlang_c():
    servers, service_qps, arrival_qps = 4, 1.0, 3.0
    bundle = make_bundle(
        base_latency_s={"only": 1 / service_qps, "other": 2.0},
        fid_alone={"only": 30.0, "other": 20.0},
        batch_sizes=(1,),
    )
    config = SimConfig(
        n_workers=servers, slo_s=1e5, dispatch="central", service_time="exponential", seed=3
    )
    trace = poisson(arrival_qps, 60_000, n_prompts=bundle.n_prompts, seed=11)
    policy = make_policy("clipper-light", PolicyContext(bundle, servers, config.slo_s))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    wait = np.nanmean(raw.start_s - raw.arrival_s)
    expected = erlang_c_wait_s(arrival_qps, service_qps, servers)
    assert wait == pytest.approx(expected, rel=0.05), (wait, expected)
    service = np.nanmean(raw.completion_s - raw.start_s)
    assert service == pytest.approx(1 / service_qps, rel=0.02)


def test_deterministic_service_is_exact_at_low_load():
    bundle = make_bundle(base_latency_s={"light": 0.5, "heavy": 3.0})
    trace = Trace(np.arange(0, 100, 5.0), np.arange(20) % bundle.n_prompts)
    config = SimConfig(n_workers=2, slo_s=60)
    policy = make_policy("clipper-heavy", PolicyContext(bundle, 2, 60))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    np.testing.assert_allclose(raw.completion_s - raw.arrival_s, 3.0)


def _timed_after_idle(bundle, gap_s: float, factor: float):
    """`bundle` with every model's batches `factor` times slower after `gap_s` idle."""
    from simulator.bundle import validate_tables

    latency = bundle.latency.assign(
        idle_gap_s=gap_s, latency_idle_p50_s=bundle.latency["latency_p50_s"] * factor
    )
    tables = {t: getattr(bundle, t) for t in ("models", "prompts", "scores", "cascades")}
    return validate_tables(bundle.meta, {**tables, "latency": latency})


@pytest.mark.parametrize("time_scale", [1.0, 0.1])
def test_a_batch_after_idle_ramps_to_the_latency_after_idle(time_scale):
    """One worker, batches of one: p50 1 s back to back, 1.5 s after 2 s idle or more, a linear
    ramp between (times scaled, the ramp too)."""
    bundle = _timed_after_idle(make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0}), 2.0, 1.5)
    # idle before each: since the start (a full 1.5), none (queued), 1 s (half), 5.25 s (full)
    arrival_s = np.array([0.0, 1.0, 3.5, 10.0]) * time_scale
    trace = Trace(arrival_s, np.arange(4) % bundle.n_prompts)
    policy = make_policy("clipper-light", PolicyContext(bundle, 1, 60))
    expected = {True: [1.5, 1.0, 1.25, 1.5], False: [1.0, 1.0, 1.0, 1.0]}
    for idle_latency, service_s in expected.items():
        config = SimConfig(n_workers=1, slo_s=60, time_scale=time_scale, idle_latency=idle_latency)
        raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
        np.testing.assert_allclose(raw.completion_s - raw.start_s, np.array(service_s) * time_scale)


class ScriptedPolicy:
    """A test policy that replays `self.plans`; no router or discriminator cost."""

    uses_router = False
    uses_discriminator = False

    def __init__(self, name: str, context: PolicyContext, plans: list[Plan]) -> None:
        self.name = name
        self.router_scores = context.bundle.router_score
        self.quality_scores = context.bundle.disc_score
        self.plans = plans
        self.calls = 0


class FixedCascade(ScriptedPolicy):
    """Cascade plans with ratios from the options, one per planner call, cycling."""

    def __init__(self, context: PolicyContext) -> None:
        plans = [
            Plan(
                workers={"light": context.n_workers // 2, "heavy": context.n_workers // 2},
                batch_size={"light": 1, "heavy": 1},
                light="light",
                heavy="heavy",
                router_ratio=r,
                disc_ratio=c,
            )
            for r, c in context.options["ratios"]
        ]
        super().__init__("test-fixed-cascade", context, plans)

    def plan(self, observation):
        plan = self.plans[self.calls % len(self.plans)]
        self.calls += 1
        return plan


@pytest.fixture
def scripted_policies():
    """`test-fixed-cascade` and `test-swapping-mix`, registered for one test only."""
    scripted = {"test-fixed-cascade": FixedCascade, "test-swapping-mix": SwappingMix}
    for name, factory in scripted.items():
        POLICIES.register(name, factory)
    yield
    for name in scripted:
        POLICIES.unregister(name)


@pytest.mark.usefixtures("scripted_policies")
def test_every_query_follows_the_hybrid_rules():
    bundle = make_bundle()
    r, c = 0.3, 0.4
    trace = constant(0.1, 6000, n_prompts=bundle.n_prompts, seed=5)  # never two in flight
    config = SimConfig(n_workers=8, slo_s=100)
    policy = make_policy(
        "test-fixed-cascade", PolicyContext(bundle, 8, 100, options={"ratios": [(r, c)]})
    )
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    bypassed, escalated = hybrid_assignment(bundle.router_score, bundle.disc_score[:, 0], r, c)
    np.testing.assert_array_equal(raw.bypassed, bypassed[trace.prompt_idx])
    np.testing.assert_array_equal(raw.escalated, escalated[trace.prompt_idx])
    light_only = ~raw.bypassed & ~raw.escalated
    assert (raw.final_model[light_only] == 0).all()
    assert (raw.final_model[~light_only] == 1).all()
    # escalated queries ran light then heavy back to back (idle cluster)
    np.testing.assert_allclose((raw.completion_s - raw.arrival_s)[raw.escalated], 1.0 + 4.0)


@pytest.mark.usefixtures("scripted_policies")
def test_threshold_switches_conserve_queries():
    bundle = make_bundle(load_s=2.0)
    trace = poisson(3.0, 400, n_prompts=bundle.n_prompts, seed=1)
    config = SimConfig(n_workers=6, slo_s=30, plan_interval_s=5)
    ratios = [(0.0, 0.0), (1.0, 0.0), (0.5, 0.5)]
    policy = make_policy(
        "test-fixed-cascade", PolicyContext(bundle, 6, 30, options={"ratios": ratios})
    )
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    queries, timeseries, summary = compute_metrics(raw, bundle, policy, config)
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == len(trace)
    assert len(raw.plans) > 10
    assert summary["plans"] == len(raw.plans)
    assert queries["outcome"].notna().all()
    assert timeseries["arrivals"].sum() == len(trace)


class SwappingMix(ScriptedPolicy):
    """Every worker on `light`, then every worker on `heavy`, alternating."""

    def __init__(self, context: PolicyContext) -> None:
        n = context.n_workers
        plans = [Plan(workers={m: n}, batch_size={m: 1}, mix={m: 1.0}) for m in ("light", "heavy")]
        super().__init__("test-swapping-mix", context, plans)

    def plan(self, observation):
        self.calls += 1
        return self.plans[(self.calls - 1) // 2 % 2]  # switch every second plan (10 s)


@pytest.mark.usefixtures("scripted_policies")
def test_model_swaps_pay_the_load_time_and_requeue():
    load_s = 2.0
    bundle = make_bundle(load_s=load_s)
    trace = poisson(1.0, 200, n_prompts=bundle.n_prompts, seed=1)
    config = SimConfig(n_workers=3, slo_s=60, plan_interval_s=5)
    policy = make_policy("test-swapping-mix", PolicyContext(bundle, 3, 60))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    queries, _, summary = compute_metrics(raw, bundle, policy, config)
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == len(trace)
    initial, *switches = [r.applied_s for r in raw.plans]
    assert initial == 0.0 and len(switches) >= 15
    assert summary["gpu_seconds"] >= 3 * load_s * len(switches)  # every worker reloads
    starts = queries.start_s.dropna().to_numpy()
    assert starts.min() < load_s  # the initial plan's models are loaded before the trace
    # every worker swaps at every switch: no batch can start while the new model loads (a
    # worker that finished a batch at the switch instant may still start one at that instant)
    for switch in switches:
        assert not ((starts > switch) & (starts < switch + load_s)).any(), switch
    # queries queued for the old model were re-dispatched to the new one, not lost
    assert (queries.first_model.astype(str) == queries.final_model.astype(str)).all()
    served = queries.first_model.astype(str).value_counts()
    assert served["light"] > 0 and served["heavy"] > 0


def test_overload_drops_and_conservation():
    bundle = make_bundle()
    trace = poisson(20.0, 120, n_prompts=bundle.n_prompts, seed=2)
    config = SimConfig(n_workers=2, slo_s=10)
    policy = make_policy("clipper-heavy", PolicyContext(bundle, 2, 10))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    outcome = classify(raw, config)
    counts = np.bincount(outcome, minlength=3)
    assert counts[DROP] > 0.5 * len(trace) and counts[OK] > 0
    latency = raw.completion_s - raw.arrival_s
    # a worker never starts a batch that would finish past drop_factor x SLO
    assert np.nanmax(latency) <= config.drop_factor * config.slo_s + 1e-9
    assert (outcome[raw.dropped] == DROP).all()
    assert (outcome[latency > config.slo_s] == TIMEOUT).all()


@pytest.mark.parametrize("dispatch", ["random", "jsq", "central"])
def test_dispatch_modes_are_deterministic(dispatch):
    bundle = make_bundle()
    trace = poisson(2.0, 200, n_prompts=bundle.n_prompts, seed=4)
    config = SimConfig(n_workers=4, slo_s=30, dispatch=dispatch, seed=9)
    runs = []
    for _ in range(2):
        policy = make_policy("static-cascade", PolicyContext(bundle, 4, 30))
        raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
        runs.append(compute_metrics(raw, bundle, policy, config))
    assert runs[0][0].equals(runs[1][0])
    assert runs[0][1].equals(runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_jsq_beats_random_on_mean_wait():
    bundle = make_bundle(
        base_latency_s={"only": 1.0, "x": 2.0}, fid_alone={"only": 1, "x": 2}, batch_sizes=(1,)
    )
    trace = poisson(3.5, 5000, n_prompts=bundle.n_prompts, seed=8)
    waits = {}
    for dispatch in ("random", "jsq"):
        config = SimConfig(n_workers=4, slo_s=1e5, dispatch=dispatch, service_time="exponential")
        policy = make_policy("clipper-light", PolicyContext(bundle, 4, 1e5))
        raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
        waits[dispatch] = np.nanmean(raw.start_s - raw.arrival_s)
    assert waits["jsq"] < 0.5 * waits["random"]


def test_jsq_weighs_a_worker_by_its_outstanding_queries_batch_in_service_included():
    """The ingress's rule (`serving.dispatch`): two heavy workers gather batches for 2 s
    (q0, q2, q4 on worker 1; q1, q3 on worker 2), then serve them; q5 at t = 3 joins the worker
    with 2 outstanding, not the one with 3 (a busy flag would count 1 and 1)."""
    import simpy

    from simulator.cluster import Cluster

    bundle = make_bundle()
    config = SimConfig(
        n_workers=3, slo_s=600.0, dispatch="jsq", max_wait_s=2.0, router_cost_s=0.0,
        disc_cost_s=0.0,
    )
    policy = make_policy("static-cascade", PolicyContext(bundle, 3, 600.0))
    env = simpy.Environment()
    arrival_s = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 3.0])
    cluster = Cluster(env, bundle, config, policy, arrival_s, np.arange(6), 0)
    cluster.apply_plan(
        Plan(workers={"light": 1, "heavy": 2}, batch_size={"light": 1, "heavy": 4},
             stages=("light", "heavy"), disc_ratios=(0.0,), router_ratio=1.0)
    )
    cluster.start()
    env.run(until=1.0)
    assert [list(w.queue) for w in cluster.workers] == [[], [0, 2, 4], [1, 3]]
    env.run(until=3.5)
    assert [w.serving for w in cluster.workers] == [0, 3, 2]
    assert [list(w.queue) for w in cluster.workers] == [[], [], [5]]


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="dispatch"):
        SimConfig(dispatch="fastest")
    with pytest.raises(ConfigError, match="slo_s"):
        SimConfig(slo_s=0)


@pytest.mark.usefixtures("scripted_policies")
@pytest.mark.parametrize("dispatch", ["random", "jsq", "central"])
def test_incremental_queue_counts_match_a_recount(dispatch):
    import simpy

    from simulator.cluster import Cluster
    from simulator.controller import Controller

    bundle = make_bundle(load_s=1.0)
    config = SimConfig(n_workers=6, slo_s=30, dispatch=dispatch)
    trace = poisson(3.0, 300, n_prompts=bundle.n_prompts, seed=1)
    options = {"ratios": [(0, 0), (1, 0), (0.5, 0.5)]}
    policy = make_policy("test-fixed-cascade", PolicyContext(bundle, 6, 30, options=options))
    env = simpy.Environment()
    cluster = Cluster(env, bundle, config, policy, trace.arrival_s, trace.prompt_idx, 1)
    controller = Controller(cluster, policy, config)
    controller.initial_plan()
    env.process(controller.process())
    cluster.start()
    for t in range(1, 400):
        env.run(until=t)
        incremental = cluster.queue_lengths()
        cluster._recount_queued()
        assert incremental == cluster.queue_lengths(), t


@pytest.mark.usefixtures("scripted_policies")
def test_plan_delay_and_inflight_estimator():
    bundle = make_bundle()
    trace = poisson(2.0, 60, n_prompts=bundle.n_prompts, seed=2)
    options = {"ratios": [(0.0, 0.0), (0.5, 0.5)]}
    config = SimConfig(n_workers=4, slo_s=30, plan_delay_s=2.0, demand_estimator="inflight")
    policy = make_policy("test-fixed-cascade", PolicyContext(bundle, 4, 30, options=options))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    later = raw.plans[1:]
    assert later and all(r.applied_s == pytest.approx(r.planned_s + 2.0) for r in later)
    # the in-flight estimator's values are pinned in tests/test_demand_estimators.py
    measured = SimConfig(n_workers=4, slo_s=30, plan_delay_measured=True)
    policy = make_policy("test-fixed-cascade", PolicyContext(bundle, 4, 30, options=options))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, measured)
    assert all(r.applied_s > r.planned_s for r in raw.plans[1:])


@pytest.mark.usefixtures("scripted_policies")
def test_a_run_plans_with_its_planner_bundle_while_its_workers_serve_by_the_bundle(monkeypatch):
    """A validation's simulation with measured service times (`planner_bundle`): the policy
    is given the profile, as the serving path's controller is; the workers take the served
    times (every query here is served alone by the light model: 2 s, not the profile's 1 s)."""
    import simulator.run as run

    profile = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0})
    served = make_bundle(base_latency_s={"light": 2.0, "heavy": 6.0})
    planned_with = []
    make = run.make_policy

    def recording(name, context):
        planned_with.append(context.bundle)
        return make(name, context)

    monkeypatch.setattr(run, "make_policy", recording)
    trace = Trace(np.array([0.0, 10.0, 20.0]), np.array([0, 1, 2]))
    options = {"ratios": [(0.0, 0.0)]}  # everything to the light model, accepted
    config = SimConfig(n_workers=2, slo_s=600)
    out = run.run_simulation(
        served, trace, "test-fixed-cascade", config, options, planner_bundle=profile
    )
    assert planned_with == [profile]
    np.testing.assert_allclose(out.queries["latency_s"], [2.0, 2.0, 2.0])
    run.run_simulation(served, trace, "test-fixed-cascade", config, options)
    assert planned_with == [profile, served]  # by default the bundle plans too


@pytest.mark.usefixtures("scripted_policies")
@pytest.mark.parametrize(
    ("plan_switch", "route_ms", "routed_after_s"),
    [
        ("together", 100.0, 2.25),
        ("routing-first", 100.0, 2.1),
        ("routing-first", 400.0, 2.25),
        ("per-swap", 100.0, 2.1),  # without a configure hop, routing-first
    ],
)
def test_the_bundles_hops_delay_each_plan_beyond_the_plan_delay(
    plan_switch, route_ms, routed_after_s
):
    """A bundle's route and plan hops (`overheads.route_overhead_ms`, `plan_overhead_ms`:
    from the tick to the ingress routing by a plan, to its workers' configuration on the
    serving path) add to `plan_delay_s`: a plan is in force (routes) after the route hop
    (`plan_switch=routing-first`; at most the plan hop) or after the plan hop (`together`);
    the initial plan is in force before the first arrival."""
    import dataclasses

    bundle = make_bundle()
    overheads = {"route_overhead_ms": route_ms, "plan_overhead_ms": 250.0}
    bundle = dataclasses.replace(bundle, meta={**bundle.meta, "overheads": overheads})
    trace = poisson(2.0, 60, n_prompts=bundle.n_prompts, seed=2)
    options = {"ratios": [(0.0, 0.0), (0.5, 0.5)]}
    config = SimConfig(n_workers=4, slo_s=30, plan_delay_s=2.0, plan_switch=plan_switch)
    policy = make_policy("test-fixed-cascade", PolicyContext(bundle, 4, 30, options=options))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, config)
    assert raw.plans[0].applied_s == 0.0
    later = raw.plans[1:]
    assert later and all(r.applied_s == pytest.approx(r.planned_s + routed_after_s) for r in later)


@pytest.mark.usefixtures("scripted_policies")
def test_routing_first_sends_queries_to_the_new_model_before_the_workers_get_it():
    """Every worker swaps light -> heavy -> light (`test-swapping-mix`). With a 50 ms route hop
    and a 500 ms plan hop, a query arriving between them at a switch to heavy is routed to
    heavy and held until its worker gets the plan (`plan_switch=routing-first`); switched
    together, it goes to light. Without hops the two are the same run."""
    import dataclasses

    bundle = make_bundle(load_s=2.0)
    trace = poisson(2.0, 200, n_prompts=bundle.n_prompts, seed=3)

    def run(plan_switch: str, overheads: dict):
        hopped = dataclasses.replace(bundle, meta={**bundle.meta, "overheads": overheads})
        config = SimConfig(n_workers=3, slo_s=60, plan_interval_s=5, plan_switch=plan_switch)
        policy = make_policy("test-swapping-mix", PolicyContext(hopped, 3, 60))
        return simulate(hopped, trace.arrival_s, trace.prompt_idx, policy, config)

    first, together, per_swap = (run(s, {}) for s in ("routing-first", "together", "per-swap"))
    for field in ("completion_s", "first_model", "final_model", "dropped"):
        np.testing.assert_array_equal(getattr(first, field), getattr(together, field))
        np.testing.assert_array_equal(getattr(first, field), getattr(per_swap, field))
    hops = {"route_overhead_ms": 50.0, "plan_overhead_ms": 500.0}
    first, together = (run(s, hops) for s in ("routing-first", "together"))
    to_heavy = [r.planned_s for r in first.plans[1:] if r.plan.mix == {"heavy": 1.0}]
    arrival = trace.arrival_s
    between = np.zeros(len(arrival), dtype=bool)
    for t in to_heavy:
        between |= (arrival > t + 0.05) & (arrival < t + 0.5)
    assert between.sum() >= 3
    assert (first.first_model[between] == 1).all()  # heavy
    assert (together.first_model[between] == 0).any()  # light, before the switch
    assert [r.applied_s - r.planned_s for r in first.plans[1:]] == pytest.approx(
        [0.05] * (len(first.plans) - 1)
    )
    # per-swap with a 200 ms configure hop: routed after the route hop as well; its three
    # workers get each plan 0.2, 0.4 and 0.6 s after that, not all at 0.5 s: another run
    per_swap = run("per-swap", {**hops, "configure_overhead_ms": 200.0})
    assert [r.applied_s for r in per_swap.plans] == [r.applied_s for r in first.plans]
    assert (per_swap.completion_s != first.completion_s).any()


@pytest.mark.parametrize(("charge_ms", "service_s"), [(0, [1.0] * 4), (100, [1.2, 1.0, 1.0, 1.0])])
def test_an_arrival_charge_prolongs_the_batches_running_then(charge_ms, service_s):
    """One worker, batches of one of 1 s, each arrival adding 0.1 s to a batch running then
    (`arrival_charge_ms`): q0's batch [0, 1) takes q1's arrival (0.5), its 0.1 s [1, 1.1) takes
    q2's (1.05), then [1.1, 1.2) none; q1 and q2 wait and run after q2 arrived; q3 alone."""
    from simulator.bundle import validate_tables

    bundle = make_bundle(base_latency_s={"light": 1.0, "heavy": 3.0}, batch_sizes=(1,))
    tables = {t: getattr(bundle, t) for t in ("models", "latency", "prompts", "scores", "cascades")}
    meta = {**bundle.meta, "overheads": {"arrival_charge_ms": charge_ms}}
    bundle = validate_tables(meta, tables)
    trace = Trace(np.array([0.0, 0.5, 1.05, 5.0]), np.arange(4) % bundle.n_prompts)
    policy = make_policy("clipper-light", PolicyContext(bundle, 1, 60))
    raw = simulate(bundle, trace.arrival_s, trace.prompt_idx, policy, SimConfig(n_workers=1))
    np.testing.assert_allclose(raw.completion_s - raw.start_s, service_s)
    np.testing.assert_allclose(raw.start_s, [0.0, sum(service_s[:1]), sum(service_s[:2]), 5.0])
