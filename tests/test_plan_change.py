"""Queued queries on a plan change (`SimConfig.on_plan_change`) and where an escalated query goes
(`SimConfig.escalation`), on hand-built scenarios: three models, three workers, plans applied
by hand."""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
import simpy
from bundle_factory import make_bundle

import simulator.baselines  # noqa: F401  (registers static-cascade)
from simulator.cluster import Cluster
from simulator.config import ConfigError, SimConfig
from simulator.controller import Controller
from simulator.core import ACCEPT, NO_MODEL, hosted_above
from simulator.errors import InputError
from simulator.policy import Plan, PolicyContext, make_policy

MODELS = {"light": 1.0, "mid": 2.0, "heavy": 4.0}  # batch-1 latency, s
LIGHT, MID, HEAVY = 0, 1, 2
BATCH_1 = {m: 1 for m in MODELS}


def cluster_of(
    n_queries: int, n_workers: int = 3, arrival_s=None, **config
) -> tuple[simpy.Environment, Cluster]:
    """Three workers, `n_queries` arriving at t = 0 (or at `arrival_s`), JSQ dispatch (ties:
    the lower index)."""
    bundle = make_bundle(MODELS, {"light": 30.0, "mid": 25.0, "heavy": 20.0})
    sim = SimConfig(n_workers=n_workers, slo_s=600.0, dispatch=config.pop("dispatch", "jsq"),
                    router_cost_s=0.0,
                    disc_cost_s=0.0, **config)
    policy = make_policy("static-cascade", PolicyContext(bundle, n_workers, 600.0))
    env = simpy.Environment()
    prompts = np.arange(n_queries)
    arrivals = np.zeros(n_queries) if arrival_s is None else np.asarray(arrival_s, float)
    cluster = Cluster(env, bundle, sim, policy, arrivals, prompts, 0)
    return env, cluster


def cascade(workers: dict[str, int], stages=("light", "heavy"), router=0.0, disc=0.0,
            batch=BATCH_1, loaded=None) -> Plan:
    return Plan(workers=workers, batch_size=batch, stages=stages,
                disc_ratios=(disc,) * (len(stages) - 1), router_ratio=router, loaded=loaded)


def run_swap_scenario(mode: str) -> Cluster:
    """Plan 1 bypasses every query to the two heavy workers (JSQ: q0, q2 on worker 1; q1, q3 on
    worker 2); at t = 0.5 plan 2 turns worker 2 into a mid worker, with q3 queued on it."""
    env, cluster = cluster_of(4, on_plan_change=mode)
    cluster.apply_plan(cascade({"light": 1, "heavy": 2}, router=1.0))
    cluster.start()
    env.run(until=0.5)
    assert [list(w.queue) for w in cluster.workers] == [[], [2], [3]]
    cluster.apply_plan(cascade({"light": 1, "mid": 1, "heavy": 1}, router=1.0))
    assert [w.target for w in cluster.workers] == [LIGHT, HEAVY, MID]
    env.run()
    return cluster


def test_keep_serves_the_queue_with_the_workers_new_model():
    cluster = run_swap_scenario("keep")
    # q3 stayed on worker 2 and its new model (mid, outside the cascade: judged as the first
    # stage, disc ratio 0 returns it) served it once worker 2 finished q1 with heavy
    assert cluster.final_model == [HEAVY, HEAVY, HEAVY, MID]
    assert cluster.completion_s == [4.0, 4.0, 8.0, 6.0]
    assert cluster.workers[2].busy_s == pytest.approx(4.0 + 2.0)
    assert cluster.bypassed == [True] * 4 and not any(cluster.escalated)


def test_reroute_moves_the_queue_to_a_worker_of_its_stages_model():
    cluster = run_swap_scenario("reroute")
    # q3 (bypassed: its stage is the heavy one) was routed again to the remaining heavy worker
    assert cluster.final_model == [HEAVY] * 4
    assert cluster.completion_s == [4.0, 4.0, 8.0, 12.0]
    assert cluster.workers[2].busy_s == pytest.approx(4.0)  # q1 only


def test_reroute_counts_a_query_at_its_worker_until_the_worker_answers_resend():
    """Both heavy workers turn mid: their queues ([2, 4] and [3, 5]) are routed again worker
    by worker, in queue order, as the real workers answer `resend`, each query counted at the
    worker that holds it until then (the ingress's `sent[w]`): JSQ sends each worker's queue
    back to it. Cleared all at once, the counts would tie and give [2, 3] and [4, 5]."""
    env, cluster = cluster_of(6)
    cluster.apply_plan(cascade({"light": 1, "heavy": 2}, router=1.0))
    cluster.start()
    env.run(until=0.5)
    assert [list(w.queue) for w in cluster.workers] == [[], [2, 4], [3, 5]]
    cluster.apply_plan(cascade({"light": 1, "mid": 2}, stages=("light", "mid"), router=1.0))
    assert [w.target for w in cluster.workers] == [LIGHT, MID, MID]
    assert [list(w.queue) for w in cluster.workers] == [[], [2, 4], [3, 5]]
    assert [w.incoming for w in cluster.workers] == [0, 0, 0]
    assert cluster.queue_lengths() == [0, 4, 0]


@pytest.mark.parametrize(
    ("order", "heavy_queues"),
    [("serving", [[4, 8, 6, 7], [5, 9, 10, 11]]), ("arrival", [[4, 8, 6, 10], [5, 9, 7, 11]])],
)
def test_reroute_order_sends_the_changed_workers_queues_in_worker_or_arrival_order(
    order, heavy_queues
):
    """Four heavy workers, two of them turning mid: their queues ([6, 10] and [7, 11]) go to
    the two heavy workers left, worker by worker (serving) or by arrival."""
    env, cluster = cluster_of(12, n_workers=5, reroute_order=order)
    cluster.apply_plan(cascade({"light": 1, "heavy": 4}, router=1.0))
    cluster.start()
    env.run(until=0.5)
    assert [list(w.queue) for w in cluster.workers[1:]] == [[4, 8], [5, 9], [6, 10], [7, 11]]
    cluster.apply_plan(cascade({"light": 1, "heavy": 2, "mid": 2}, router=1.0))
    assert [w.target for w in cluster.workers] == [LIGHT, HEAVY, HEAVY, MID, MID]
    assert [list(w.queue) for w in cluster.workers[1:3]] == heavy_queues


@pytest.mark.parametrize("mode", ["keep", "reroute"])
def test_every_query_ends_in_exactly_one_outcome(mode):
    cluster = run_swap_scenario(mode)
    done = [not math.isnan(t) for t in cluster.completion_s]
    assert [a != b for a, b in zip(done, cluster.dropped)] == [True] * 4
    assert cluster.inflight == 0 and cluster.finished == 4
    assert cluster.queue_lengths() == [0, 0, 0]


def test_keep_restages_a_kept_query_for_the_new_models_stage():
    """A bypassed query kept on a worker whose new model is a first stage is judged there
    (disc ratio 1 escalates every image) and goes on to the plan's last stage."""
    env, cluster = cluster_of(4, on_plan_change="keep")
    cluster.apply_plan(cascade({"light": 1, "heavy": 2}, router=1.0))
    cluster.start()
    env.run(until=0.5)
    # plan 2: mid -> heavy; worker 0 keeps light, worker 2 turns from heavy to mid
    cluster.apply_plan(
        cascade({"mid": 1, "heavy": 1, "light": 1}, stages=("mid", "heavy"), disc=1.0)
    )
    assert cluster.workers[2].target == MID and list(cluster.workers[2].queue) == [3]
    env.run()
    assert cluster.escalated[3] and cluster.final_model[3] == HEAVY
    assert cluster.first_model[3] == MID


@pytest.mark.parametrize(
    ("mode", "finals"), [("keep", [MID, HEAVY, HEAVY]), ("reroute", [MID] * 3)]
)
def test_keep_judges_a_kept_query_when_its_workers_model_turns_first_stage(mode, finals):
    """The mid worker keeps its model while mid turns from the last stage (bypassed queries
    queued on it) into the first (every image escalated): kept, its queue is judged as the
    artifact's worker judges it with its new thresholds; q0, in service, is returned."""
    env, cluster = cluster_of(3, on_plan_change=mode)
    workers = {"light": 1, "mid": 1, "heavy": 1}
    cluster.apply_plan(cascade(workers, stages=("light", "mid"), router=1.0))
    cluster.start()
    env.run(until=0.5)
    assert list(cluster.workers[MID].queue) == [1, 2]
    cluster.apply_plan(cascade(workers, stages=("mid", "heavy"), disc=1.0))
    env.run()
    assert cluster.final_model == finals


def test_hosted_above_is_the_next_hosted_model():
    assert hosted_above([True, False, True, False]) == [2, 2, ACCEPT, ACCEPT]
    assert hosted_above([True, True, True]) == [1, 2, ACCEPT]
    assert hosted_above([False, False]) == [ACCEPT, ACCEPT]


@pytest.mark.parametrize(
    ("escalation", "served_by_mid"), [("next-stage", False), ("next-hosted", True)]
)
def test_next_hosted_escalates_through_every_hosted_model(escalation, served_by_mid):
    """light -> heavy with every light image escalated, one worker per model: the plan's next
    stage is heavy; the artifact's load balancer sends to the next hosted model, mid, whose
    image (judged as the first stage: escalated) goes on to heavy."""
    env, cluster = cluster_of(2, escalation=escalation)
    cluster.apply_plan(cascade({"light": 1, "mid": 1, "heavy": 1}, disc=1.0))
    cluster.start()
    env.run()
    assert cluster.final_model == [HEAVY, HEAVY] and all(cluster.escalated)
    assert (cluster.workers[MID].busy_s > 0) is served_by_mid
    # light at 1, 2 s; mid (next-hosted) at 3, 5 s; heavy from there
    expected = [7.0, 11.0] if served_by_mid else [5.0, 9.0]
    assert cluster.completion_s == expected


def test_next_hosted_returns_the_image_when_nothing_is_hosted_above():
    """mid -> heavy with no heavy worker: next-stage leaves the escalated queries orphaned,
    next-hosted returns mid's images (the artifact sends them to the sink)."""
    finals = {}
    for escalation in ("next-stage", "next-hosted"):
        env, cluster = cluster_of(2, escalation=escalation)
        cluster.apply_plan(cascade({"light": 1, "mid": 1}, stages=("mid", "heavy"), disc=1.0))
        cluster.start()
        env.run()
        finals[escalation] = (cluster.final_model, sorted(cluster.orphans))
    assert finals["next-stage"] == ([-1, -1], [0, 1])
    assert finals["next-hosted"] == ([MID, MID], [])


def test_the_knobs_refuse_unknown_values():
    with pytest.raises(ConfigError, match=r"on_plan_change .*'drop'.*reroute.*keep"):
        SimConfig(on_plan_change="drop")
    with pytest.raises(ConfigError, match=r"escalation .*'any'.*next-stage.*next-hosted"):
        SimConfig(escalation="any")


# ------------------------------------------- per-worker loads (Plan.loaded, spare=keep, #7, #12)


def test_a_kept_worker_runs_the_batch_size_it_was_loaded_with():
    """Plan 1 loads heavy on worker 1 at batch 2; plan 2 (heavy at batch 1) reloads only worker
    0, so worker 1 keeps batch 2: both bypassed queries run as one batch (4 s x 2 x 0.9)."""
    env, cluster = cluster_of(2, n_workers=2)
    workers = {"light": 1, "heavy": 1}
    cluster.apply_plan(cascade(workers, router=1.0, batch={"light": 1, "heavy": 2},
                               loaded=("light", "heavy")))
    cluster.apply_plan(cascade(workers, router=1.0, loaded=("light",)))
    assert [w.batch for w in cluster.workers] == [1, 2]
    cluster.start()
    env.run()
    assert cluster.final_model == [HEAVY, HEAVY] and all(cluster.bypassed)
    assert cluster.completion_s == [pytest.approx(7.2)] * 2  # one batch of 2, not 4 s then 8 s


def test_a_reloaded_worker_takes_the_new_plans_batch_size():
    env, cluster = cluster_of(2, n_workers=2)
    workers = {"light": 1, "heavy": 1}
    cluster.apply_plan(cascade(workers, router=1.0, batch={"light": 1, "heavy": 2},
                               loaded=("light", "heavy")))
    cluster.apply_plan(cascade(workers, router=1.0, loaded=("light", "heavy")))
    cluster.start()
    env.run()
    assert cluster.completion_s == [4.0, 8.0]


def test_a_kept_worker_judges_with_the_confidence_threshold_it_was_loaded_with():
    """Plan 1 loads light on workers 0 and 2 with disc ratio 1 (every image escalates); plan 2
    (disc ratio 0: none) reloads workers 0-1 only: q0 on worker 0 is returned, q1 on the kept
    worker 2 escalates to heavy."""
    env, cluster = cluster_of(2)
    workers = {"light": 2, "heavy": 1}
    cluster.apply_plan(cascade(workers, disc=1.0, loaded=("light", "heavy", "light")))
    cluster.apply_plan(cascade(workers, disc=0.0, loaded=("light", "heavy")))
    assert [w.target for w in cluster.workers] == [LIGHT, HEAVY, LIGHT]
    cluster.start()
    env.run()
    assert cluster.escalated == [False, True]
    assert cluster.final_model == [LIGHT, HEAVY]
    assert cluster.completion_s == [1.0, 5.0]


def test_a_kept_worker_routes_with_the_router_threshold_it_was_loaded_with():
    """Plan 1 loads light on workers 0 and 2 with router ratio 1 (every query bypasses); plan 2
    (router ratio 0) reloads workers 0-1: q1, received by the kept worker 2, is bypassed."""
    env, cluster = cluster_of(2)
    workers = {"light": 2, "heavy": 1}
    cluster.apply_plan(cascade(workers, router=1.0, loaded=("light", "heavy", "light")))
    cluster.apply_plan(cascade(workers, router=0.0, loaded=("light", "heavy")))
    cluster.start()
    env.run()
    assert cluster.bypassed == [False, True]
    assert cluster.final_model == [LIGHT, HEAVY]


@pytest.mark.parametrize(("escalation", "final"), [("next-hosted", MID), ("next-stage", HEAVY)])
def test_new_queries_enter_at_a_kept_worker_below_the_plans_first_stage(escalation, final):
    """Plan 2 is mid -> heavy (disc ratio 0: mid returns every image) on workers 0-1; worker 2
    keeps light with plan 1's disc ratio 1. The artifact's clients send the query to the lowest
    model hosted, light, whose worker escalates it by its own threshold: to the next model
    hosted, mid (1 s + 2 s), or under next-stage to the plan's last stage, heavy (1 s + 4 s)."""
    env, cluster = cluster_of(1, escalation=escalation)
    workers = {"light": 1, "mid": 1, "heavy": 1}
    cluster.apply_plan(cascade(workers, disc=1.0, loaded=("mid", "heavy", "light")))
    cluster.apply_plan(cascade(workers, stages=("mid", "heavy"), loaded=("mid", "heavy")))
    assert [w.target for w in cluster.workers] == [MID, HEAVY, LIGHT]
    cluster.start()
    env.run()
    assert cluster.first_model == [LIGHT] and cluster.escalated == [True]
    assert cluster.final_model == [final]
    assert cluster.completion_s == [3.0 if final == MID else 5.0]


def test_a_plan_without_loads_puts_every_worker_back_on_the_plans_thresholds():
    env, cluster = cluster_of(2)
    workers = {"light": 2, "heavy": 1}
    cluster.apply_plan(cascade(workers, disc=1.0, loaded=("light", "heavy", "light")))
    cluster.apply_plan(cascade(workers, disc=0.0, loaded=("light", "heavy")))
    cluster.apply_plan(cascade(workers, disc=0.0))
    assert cluster.entry is None and all(w.next_of is None for w in cluster.workers)
    cluster.start()
    env.run()
    assert cluster.escalated == [False, False]


def test_loads_that_contradict_the_plans_counts_are_refused():
    env, cluster = cluster_of(1)
    with pytest.raises(ValueError, match=r"plan counts \[1, 0, 1\] .* are \[1, 0, 0\]"):
        cluster.apply_plan(cascade({"light": 1, "heavy": 1}, loaded=("light",)))
    assert [w.target for w in cluster.workers] == [NO_MODEL] * 3
    with pytest.raises(ValueError, match="loaded: heavy on more workers"):
        cascade({"light": 1, "heavy": 1}, loaded=("heavy", "heavy"))
    assert cascade({"light": 1, "heavy": 1}, loaded=["light"]).loaded == ("light",)  # from JSON


def test_central_dispatch_refuses_per_worker_loads_in_one_line():
    env, cluster = cluster_of(1, dispatch="central")
    with pytest.raises(InputError, match="dispatch: 'central' cannot carry"):
        cluster.apply_plan(cascade({"light": 1, "heavy": 2}, loaded=("light", "heavy", "heavy")))


def test_a_query_on_its_way_to_a_worker_whose_model_changes_is_routed_again_on_arrival():
    """A 1 s dispatch hop: q0 and q1 (bypassed to heavy) are sent at t = 0 to heavy workers 1
    and 2 (jsq counts each on its way) and count as queued at heavy; at t = 0.5 worker 2 turns
    mid, so q1 then counts at mid, where its worker is now; it reaches worker 2 at t = 1,
    which answers `resend` as the serving path's does, and it is routed again to heavy
    (worker 1, behind q0)."""
    bundle = make_bundle(MODELS, {"light": 30.0, "mid": 25.0, "heavy": 20.0})
    bundle = dataclasses.replace(
        bundle, meta={**bundle.meta, "overheads": {"dispatch_overhead_ms": 1000.0}}
    )
    sim = SimConfig(n_workers=3, slo_s=600.0, dispatch="jsq", router_cost_s=0.0, disc_cost_s=0.0)
    policy = make_policy("static-cascade", PolicyContext(bundle, 3, 600.0))
    env = simpy.Environment()
    cluster = Cluster(env, bundle, sim, policy, np.zeros(2), np.arange(2), 0)
    cluster.apply_plan(cascade({"light": 1, "heavy": 2}, router=1.0))
    cluster.start()
    env.run(until=0.5)
    assert cluster.queue_lengths() == [0, 0, 2]
    assert [w.incoming for w in cluster.workers] == [0, 1, 1]
    cluster.apply_plan(cascade({"light": 1, "mid": 1, "heavy": 1}, router=1.0))
    assert cluster.queue_lengths() == [0, 1, 1]
    env.run()
    assert cluster.final_model == [HEAVY, HEAVY]
    assert cluster.completion_s == [5.0, 9.0]
    assert [w.incoming for w in cluster.workers] == [0, 0, 0]
    assert cluster.queue_lengths() == [0, 0, 0]


def run_plan_switch(routing_first: bool) -> Cluster:
    """Plan 1 bypasses q0-q3 (t = 0) to the two heavy workers (q0, q2 on worker 1; q1, q3 on
    worker 2); plan 2 (mid, then heavy; no bypass, mid accepts all) turns worker 2 mid; q4
    arrives at t = 0.6; the workers get plan 2 at t = 1, routing by it begins at t = 0.5
    (`routing_first`) or then too."""
    env, cluster = cluster_of(5, arrival_s=[0, 0, 0, 0, 0.6])
    cluster.apply_plan(cascade({"light": 1, "heavy": 2}, router=1.0))
    cluster.start()
    plan = cascade({"light": 1, "mid": 1, "heavy": 1}, stages=("mid", "heavy"))
    worker = cluster.workers[2]
    if routing_first:
        env.run(until=0.5)
        cluster.apply_plan(plan, workers_later=True)
        assert (worker.target, worker.routed, list(worker.queue)) == (HEAVY, MID, [3])
        env.run(until=1.0)
        assert worker.held == [4] and cluster.final_model[4] == NO_MODEL
        cluster.configure_workers(plan)
        assert (worker.target, list(worker.queue), worker.held) == (MID, [4], [])
    else:
        env.run(until=1.0)
        cluster.apply_plan(plan)
    env.run()
    assert [w.held for w in cluster.workers] == [[], [], []]
    assert cluster.queue_lengths() == [0, 0, 0]
    return cluster


def test_routing_first_holds_a_query_for_a_workers_next_model_until_its_configuration():
    """Routed by plan 2 at t = 0.6, q4 goes to mid at worker 2, held there (not queued) until
    the worker gets plan 2 at t = 1; then worker 2's queue (q3, bypassed to heavy) is routed
    again, to worker 1, and worker 2 serves q4 with mid once its heavy batch (q1) ends at 4 s.
    Both at t = 1 (`together`), plan 1 routes q4: bypassed to heavy, behind q2 at worker 1
    (jsq's tie: the lower index), and q3 after it."""
    first = run_plan_switch(routing_first=True)
    assert first.final_model == [HEAVY, HEAVY, HEAVY, HEAVY, MID]
    assert first.completion_s == [4.0, 4.0, 8.0, 12.0, 6.0]
    together = run_plan_switch(routing_first=False)
    assert together.final_model == [HEAVY] * 5
    assert together.completion_s == [4.0, 4.0, 8.0, 16.0, 12.0]


def two_mid_workers_holding() -> tuple[simpy.Environment, Cluster, Plan]:
    """Plan 1 bypasses q0-q3 to three heavy workers; plan 2 (mid, then heavy), routed at 0.5 s
    before its workers get it, turns workers 2 and 3 mid: q4 (0.6 s) and q5 (0.7 s) are held
    there at 0.8 s, one each (jsq counts a held query at its worker, as the ingress counts it
    sent there)."""
    env, cluster = cluster_of(6, n_workers=4, arrival_s=[0, 0, 0, 0, 0.6, 0.7])
    cluster.apply_plan(cascade({"light": 1, "heavy": 3}, router=1.0))
    cluster.start()
    env.run(until=0.5)
    assert [len(w.queue) + w.serving for w in cluster.workers] == [0, 2, 1, 1]
    plan = cascade({"light": 1, "mid": 2, "heavy": 1}, stages=("mid", "heavy"))
    cluster.apply_plan(plan, workers_later=True)
    assert [w.routed for w in cluster.workers] == [LIGHT, HEAVY, MID, MID]
    env.run(until=0.8)
    assert [w.held for w in cluster.workers] == [[], [], [4], [5]]
    return env, cluster, plan


def test_routing_first_counts_held_queries_in_the_workers_backlog():
    """Two mid workers-to-be, the first holding q4, so q5 goes to the second; both serve
    them with mid once configured."""
    env, cluster, plan = two_mid_workers_holding()
    cluster.configure_workers(plan)
    env.run()
    assert cluster.final_model[4:] == [MID, MID]
    assert cluster.completion_s[4:] == [6.0, 6.0]


def test_a_plan_routed_before_the_last_ones_workers_got_it_configures_them_first():
    """Plan 2 routed (worker 2 to turn mid, holding q4), then plan 3 routed before plan 2's
    configuration: worker 2 gets plan 2 first (q4 queued there for mid), then plan 3 turns it
    back to heavy and its queue is routed again (q4, bypassed now, back to worker 2: the heavy
    worker with fewer outstanding); plan 2's late configuration changes nothing."""
    env, cluster = cluster_of(5, arrival_s=[0, 0, 0, 0, 0.6])
    cluster.apply_plan(cascade({"light": 1, "heavy": 2}, router=1.0))
    cluster.start()
    env.run(until=0.5)
    plan2 = cascade({"light": 1, "mid": 1, "heavy": 1}, stages=("mid", "heavy"))
    cluster.apply_plan(plan2, workers_later=True)
    env.run(until=0.7)
    plan3 = cascade({"light": 1, "heavy": 2}, router=1.0)
    cluster.apply_plan(plan3, workers_later=True)
    worker = cluster.workers[2]
    assert (worker.target, worker.routed, worker.held, list(worker.queue)) == (MID, HEAVY, [], [4])
    cluster.configure_workers(plan2)
    assert (worker.target, worker.routed, list(worker.queue)) == (MID, HEAVY, [4])
    cluster.configure_workers(plan3)
    assert worker.target == HEAVY and list(worker.queue) == [4]
    env.run()
    assert cluster.final_model == [HEAVY] * 5
    assert sum(cluster.dropped) == 0


def test_per_swap_configures_a_plans_workers_one_by_one_in_a_seeded_random_order():
    """`plan_switch=per-swap`: plan 2 (routed 50 ms after its tick) turns two heavy workers
    mid and doubles heavy's batch; its swaps reach their workers 100 and 200 ms after the
    routing, in the order the cluster's own stream draws (`Cluster.configure_order`), each
    holding its mid queries until then; the heavy worker left takes its batch size with the
    first swap. The order is the seed's, not the workers' (both occur over ten seeds)."""
    plan = cascade(
        {"light": 1, "mid": 2, "heavy": 1},
        stages=("mid", "heavy"),
        batch={"light": 1, "mid": 1, "heavy": 2},
    )

    def switch(seed: int) -> list[int]:
        env, cluster = cluster_of(1, n_workers=4, arrival_s=[9.0])
        cluster.configure_rng.seed(f"{seed}/configure-order")
        cluster.apply_plan(cascade({"light": 1, "heavy": 3}, router=1.0))
        cluster.start()
        controller = Controller(cluster, None, cluster.config, 0.5, 0.05, 0.1)
        env.process(controller._apply_later(plan, 0.0, 0.0, 0.05, 0.55, 0.1))
        env.run(until=0.149)
        changed = [w.index for w in cluster.workers if w.routed != w.target]
        assert len(changed) == 2 and all(cluster.workers[i].routed == MID for i in changed)
        assert [w.batch for w in cluster.workers] == [1, 1, 1, 1]
        order = []
        for until in (0.151, 0.251):
            env.run(until=until)
            order += [i for i in changed if cluster.workers[i].target == MID and i not in order]
            assert len(order) == round((until - 0.05) / 0.1)
            heavy = [w for w in cluster.workers if w.target == HEAVY and w.routed == HEAVY]
            assert [w.batch for w in heavy] == [2]
        assert cluster.configuring is None and cluster.configuring_plan is None
        return order

    expected = switch(0)
    random_order = sorted(expected)
    random.Random("0/configure-order").shuffle(random_order)
    assert expected == random_order
    assert switch(0) == expected  # the same seed, the same order
    assert len({tuple(switch(seed)) for seed in range(10)}) == 2


def test_per_swap_a_plan_routed_before_the_last_swap_configures_the_rest_first():
    """Plan 2's second swap is due at 0.25 s; plan 3, routed at 0.2 s, configures it first (as
    `apply_plan` does any plan's unfinished configuration); the step due later changes
    nothing."""
    env, cluster = cluster_of(1, n_workers=4, arrival_s=[9.0])
    cluster.apply_plan(cascade({"light": 1, "heavy": 3}, router=1.0))
    cluster.start()
    controller = Controller(cluster, None, cluster.config, 0.5, 0.05, 0.1)
    plan2 = cascade({"light": 1, "mid": 2, "heavy": 1}, stages=("mid", "heavy"))
    env.process(controller._apply_later(plan2, 0.0, 0.0, 0.05, 0.55, 0.1))
    env.run(until=0.2)
    assert sorted(w.target for w in cluster.workers) == [LIGHT, MID, HEAVY, HEAVY]
    plan3 = cascade({"light": 2, "heavy": 2}, router=1.0)
    cluster.apply_plan(plan3, workers_later=True)
    assert sorted(w.target for w in cluster.workers) == [LIGHT, MID, MID, HEAVY]
    env.run(until=0.3)
    assert cluster.configuring_plan is plan3
    assert sorted(w.target for w in cluster.workers) == [LIGHT, MID, MID, HEAVY]


def test_per_swap_recount_counts_a_later_swaps_held_queries_at_its_next_model():
    """Plan 2 turns workers 2 and 3 mid, routed first: q4 and q5 are held there. Worker 2's
    swap alone (per-swap) queues q4 and recounts the queues: q5, still held at worker 3 for
    mid, counts as queued at mid (the ingress counts it sent there), not at worker 3's heavy;
    worker 3's swap then queues it, and both are served by mid."""
    env, cluster, plan = two_mid_workers_holding()
    assert cluster.queue_lengths() == [0, 2, 1]  # q4, q5 sent for mid; q3 queued for heavy
    cluster.configure_workers(plan, worker=2)
    late = cluster.workers[3]
    assert (late.target, late.routed, late.held) == (HEAVY, MID, [5])
    assert list(cluster.workers[2].queue) == [4]
    assert cluster.queue_lengths() == [0, 2, 1]
    cluster.configure_workers(plan, worker=3)
    assert (late.target, list(late.queue), late.held) == (MID, [5], [])
    assert cluster.queue_lengths() == [0, 2, 1]
    env.run()
    assert cluster.final_model[4:] == [MID, MID]
    assert cluster.queue_lengths() == [0, 0, 0]
