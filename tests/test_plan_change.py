"""Queued queries on a plan change (`SimConfig.on_plan_change`) and where an escalated query goes
(`SimConfig.escalation`), on hand-built scenarios: three models, three workers, plans applied
by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
from bundle_factory import make_bundle

import simulator.baselines  # noqa: F401  (registers static-cascade)
from simulator.cluster import Cluster
from simulator.config import ConfigError, SimConfig
from simulator.core import ACCEPT, hosted_above
from simulator.policy import Plan, PolicyContext, make_policy

MODELS = {"light": 1.0, "mid": 2.0, "heavy": 4.0}  # batch-1 latency, s
LIGHT, MID, HEAVY = 0, 1, 2
BATCH_1 = {m: 1 for m in MODELS}


def cluster_of(n_queries: int, **config) -> tuple[simpy.Environment, Cluster]:
    """Three workers, `n_queries` arriving at t = 0, JSQ dispatch (ties: the lower index)."""
    bundle = make_bundle(MODELS, {"light": 30.0, "mid": 25.0, "heavy": 20.0})
    sim = SimConfig(n_workers=3, slo_s=600.0, dispatch="jsq", router_cost_s=0.0,
                    disc_cost_s=0.0, **config)
    policy = make_policy("static-cascade", PolicyContext(bundle, 3, 600.0))
    env = simpy.Environment()
    prompts = np.arange(n_queries)
    cluster = Cluster(env, bundle, sim, policy, np.zeros(n_queries), prompts, 0)
    return env, cluster


def cascade(workers: dict[str, int], stages=("light", "heavy"), router=0.0, disc=0.0) -> Plan:
    return Plan(workers=workers, batch_size=BATCH_1, stages=stages,
                disc_ratios=(disc,) * (len(stages) - 1), router_ratio=router)


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
