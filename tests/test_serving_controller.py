"""The serving controller's clock-free tick (`serving.controller.Controller`): time and the
ingress's counters are arguments, so the planning loop is checked without Ray or a wall
clock: the simulator's EWMA estimators, a plan every plan interval (only when it changes),
the observation the policy sees, and a replay epoch restarting everything."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect

import pytest

pytest.importorskip("ray.serve")

from serving.controller import Controller, Counters, observation_entry  # noqa: E402
from serving.planner_inputs import observations_from_entries  # noqa: E402
from simulator.config import SimConfig  # noqa: E402
from simulator.policy import Plan  # noqa: E402

MODELS = ("light", "heavy")
CONFIG = SimConfig(n_workers=4, slo_s=10.0, tick_s=1.0, plan_interval_s=3.0)
ALPHA = CONFIG.ewma_alpha  # 1 / 3.1


class DemandPolicy:
    """Heavy workers = demand rounded to tens (at most 3): a plan that follows the demand;
    records every observation it was given."""

    def __init__(self) -> None:
        self.seen = []

    def plan(self, obs) -> Plan:
        self.seen.append(obs)
        heavy = min(3, int(obs.demand_qps // 10))
        workers = {"light": CONFIG.n_workers - heavy, "heavy": heavy}
        workers = {m: c for m, c in workers.items() if c}
        return Plan(workers=workers, batch_size={"light": 1}, mix={m: 1.0 for m in workers})


def counters(arrived: int, epoch_s: float = 0.0, queued=(0, 0)) -> Counters:
    return Counters(
        epoch_s, arrived, inflight=arrived // 2, model_arrivals=(arrived, 0), queued=queued
    )


def test_tick_estimates_demand_and_plans_every_interval_with_the_given_time():
    policy = DemandPolicy()
    ctrl = Controller(policy, CONFIG, len(MODELS))
    first = ctrl.start(500.0)
    assert first == Plan(workers={"light": 4}, batch_size={"light": 1}, mix={"light": 1.0})
    assert policy.seen[0].now_s == 500.0 and policy.seen[0].demand_qps == 0.0

    # arrivals per tick: 10, 40, 40, 40, 40, 40 (cumulative counters, as the ingress reports)
    arrived = [10, 50, 90, 130, 170, 210]
    results = [ctrl.tick(500.0 + k + 1, counters(a, queued=(k, 0))) for k, a in enumerate(arrived)]
    rate, expected = 0.0, []
    for k, a in enumerate(arrived):
        step = a - (arrived[k - 1] if k else 0)
        rate = step if k == 0 else ALPHA * step + (1 - ALPHA) * rate
        expected.append(rate)
    assert [r.demand_qps for r in results] == pytest.approx(expected, rel=1e-12)
    assert not any(r.restarted for r in results)
    # the policy is asked at ticks 3 and 6 only, with the time it was given
    assert [o.now_s for o in policy.seen[1:]] == [503.0, 506.0]
    assert policy.seen[1].demand_qps == pytest.approx(expected[2], rel=1e-12)
    assert policy.seen[1].queue_len == pytest.approx((ALPHA * 2 + (1 - ALPHA) * ALPHA * 1, 0))
    assert policy.seen[1].current == first  # the plan in force, as the simulator passes it
    # demand 26.2 by tick 3: 2 heavy workers; 35.7 by tick 6: 3
    plans = [r.plan for r in results]
    assert plans[:2] == [None, None] and plans[3:5] == [None, None]
    assert plans[2].workers == {"light": 2, "heavy": 2}
    assert plans[5].workers == {"light": 1, "heavy": 3}
    assert [(p.applied_s, p.plan.workers.get("heavy", 0)) for p in ctrl.plans] == [
        (500.0, 0),
        (503.0, 2),
        (506.0, 3),
    ]


def test_an_unchanged_plan_is_not_returned_again():
    ctrl = Controller(DemandPolicy(), CONFIG, len(MODELS))
    ctrl.start(0.0)
    results = [ctrl.tick(k + 1.0, counters(0)) for k in range(6)]
    assert [r.plan for r in results] == [None] * 6  # planned twice, same plan: nothing to apply
    assert len(ctrl.plans) == 1


def test_a_replay_epoch_restarts_estimators_ticks_and_plans_at_once():
    policy = DemandPolicy()
    ctrl = Controller(policy, CONFIG, len(MODELS))
    ctrl.start(0.0)
    for k in range(2):  # two ticks of 50 qps before the replay
        ctrl.tick(k + 1.0, counters(50 * (k + 1)))
    restart = ctrl.tick(3.0, counters(0, epoch_s=1234.5))
    assert restart.restarted and restart.demand_qps is None
    assert ctrl.epoch_s == 1234.5
    # planned at once from empty estimators (demand 0): the plan in force is returned so that
    # the caller re-applies its routing state, as a simulation starts with its initial plan
    # by the policy as it was built (none of its earlier calls remembered), no plan in force
    assert ctrl.policy is not policy and len(policy.seen) == 1  # the initial plan's call
    assert [(o.now_s, o.demand_qps, o.current) for o in ctrl.policy.seen] == [(3.0, 0.0, None)]
    assert restart.plan == Plan(workers={"light": 4}, batch_size={"light": 1}, mix={"light": 1.0})
    # the first tick after the restart takes the raw rate (no EWMA with the old estimate)
    after = [ctrl.tick(4.0 + k, counters(20 * (k + 1), epoch_s=1234.5)) for k in range(3)]
    assert after[0].demand_qps == 20.0
    assert [r.plan is None for r in after] == [True, True, False]  # 3 ticks after the restart
    assert after[2].plan.workers == {"light": 2, "heavy": 2}


class CountingPolicy:
    """A policy with memory: the light plan at its first call, the heavy one after."""

    def __init__(self) -> None:
        self.calls = 0

    def plan(self, obs) -> Plan:
        self.calls += 1
        model = "light" if self.calls == 1 else "heavy"
        return Plan(workers={model: 4}, batch_size={model: 1}, mix={model: 1.0})


def test_each_replay_is_planned_by_the_policy_as_built_whatever_came_before():
    ctrl = Controller(CountingPolicy(), CONFIG, len(MODELS))
    ctrl.start(0.0)
    plans = []
    for epoch_s in (100.0, 200.0):  # two replays against one server
        restart = ctrl.tick(epoch_s, counters(0, epoch_s=epoch_s))
        ticks = [ctrl.tick(epoch_s + k + 1, counters(0, epoch_s=epoch_s)) for k in range(3)]
        plans.append([restart.plan.workers, ticks[2].plan.workers])
    # as a simulation's: its first call light, the next heavy (not heavy from the start)
    assert plans == [[{"light": 4}, {"heavy": 4}]] * 2


def test_a_tick_that_plans_returns_the_policys_input_and_its_log_entry_gives_it_back():
    policy = DemandPolicy()
    ctrl = Controller(policy, CONFIG, len(MODELS))
    ctrl.start(0.0)
    before = policy.seen[-1]  # the server's initial plan, before any replay
    restart = ctrl.tick(1.0, counters(0, epoch_s=1000.0))
    assert restart.observation is ctrl.policy.seen[-1]
    ticks = [ctrl.tick(2.0 + k, counters(10 * (k + 1), 1000.0, (k, 1))) for k in range(3)]
    assert [r.observation is None for r in ticks] == [True, True, False]  # asked at the third
    asked = ticks[2].observation
    assert asked is ctrl.policy.seen[-1] and asked.queue_len[1] > 0 and asked.inflight == 15
    # the controller's 0 s at wall time 999: the calls at 1000 and 1003, the initial one at 999
    entries = [observation_entry(o, 999.0) for o in (before, restart.observation, asked)]
    # from the replay's epoch on (the initial plan's input dropped), in the replay's seconds
    back = observations_from_entries(entries, 1000.0, CONFIG.n_workers, CONFIG.slo_s)
    assert [o.now_s for o in back] == [0.0, 3.0]
    assert back[1] == dataclasses.replace(asked, now_s=3.0, current=None)


def test_the_ingress_counts_a_ticks_arrivals_by_their_time_stamps():
    """However late the controller thread reads them, a tick counts the arrivals and visits
    before its boundary (as the simulator's tick), not those that came since."""
    from serving.ingress import Ingress

    ing = Ingress.func_or_class.__new__(Ingress.func_or_class)  # the counters only
    ing.epoch_s, ing.inflight, ing.estimates, ing.n_models = 1000.0, 3, [], 2
    ing.arrival_s = [1000.2, 1000.9, 1001.0, 1001.4, 1002.1]
    ing.visit_s = [[1000.3, 1001.05], [1001.5]]
    # worker slots 0 and 1 host model 0 (batch size 2), slot 2 model 1; outstanding per slot
    # and, of those, in service (the workers' answers): 3 and 2 at model 0's, 1 at model 1's
    ing.workers_of, ing.sent, ing.serving = [[0, 1], [2]], [3, 2, 1], [2, 1, 1]
    first = asyncio.run(ing.tick(1001.3, 11.5, until_s=1001.0, queue_len=(0.5, 0.0)))  # +0.3 s
    assert first["arrived"] == 2 and first["model_arrivals"] == [1, 0]
    assert ing.estimates == [(1001.3, 11.5, [0.5, 0.0])]
    # queued as the simulator counts, beyond each worker's batch in service: 1 + 1 at model 0
    # (outstanding beyond workers x batch size, 5 - 2 x 2, would say 1)
    assert Counters.from_dict(first).queued == (2, 0)
    assert asyncio.run(ing.tick(1002.0, None, until_s=1002.0))["arrived"] == 4
    assert asyncio.run(ing.tick(1002.5, None))["arrived"] == 5  # no boundary: every arrival


@pytest.mark.parametrize(
    "method",
    [
        "set_plan",
        "worker_config",
        "mark_epoch",
        "set_ready",
        "log_swap",
        "log_observation",
        "batch_started",
        "tick",
    ],
)
def test_the_ingress_methods_called_by_handle_run_on_its_event_loop(method):
    """Serve runs a deployment's plain methods in a thread pool (RAY_SERVE_RUN_SYNC_IN_THREADPOOL,
    on by default): those the controller and the workers call must be coroutines, run on the
    loop that owns the queries' counters and the plan-change event."""
    from serving.ingress import Ingress

    assert inspect.iscoroutinefunction(getattr(Ingress.func_or_class, method))
