"""The serving controller: the simulator's own `Controller` (EWMA estimators, `Observation`,
`Policy.plan`) fed with live counters, each `Plan` applied to the worker slots.

`Controller` is the clock-free part: `tick(now_s, counters)` takes the time and the ingress's
counters (`Counters`) explicitly and returns the plan to put in force, if any, so it runs
without Ray and without a wall clock. `ControllerThread` drives it: a tick every `tick_s` of
wall time, the counters read from the ingress, the plans applied by `LiveCluster`.

`LiveCluster.apply_plan` puts a plan in force at the ingress (routing thresholds, the model of
each worker slot) and on the workers (`serving.workers.Worker`, one long-lived replica per
slot): which slots change model is the decision core's `place_workers` (fewest swaps); a slot
gets its model, batch size and discriminator flags by a direct `configure` call (deployed
once, with the initial plan's as Serve's `user_config`; a replica Serve restarts asks the
ingress for its slot's configuration in force), and a swap costs the model's load time
inside the running worker, as in the simulator.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass

import ray
from ray import serve

from serving.setup import INGRESS_APP, worker_app
from serving.stack import serve_stack
from serving.workers import Worker, worker_actor_options
from simulator import controller as sim_controller
from simulator.controller import PlanRecord
from simulator.core import ACCEPT, NO_MODEL, PlanState, place_workers
from simulator.errors import RunFailure
from simulator.policy import Observation, Plan

SERVE_NAMESPACE = "serve"  # Ray namespace of Serve's actors
LOAD_POLL_S = 0.1  # between looks at the initial plan's loads


@dataclass(frozen=True)
class Counters:
    """What the ingress reports at a tick (`Ingress.tick`): the replay epoch (wall time a
    replay started, 0 before any), arrivals since it, queries in flight, visits per model and
    queued queries per model."""

    epoch_s: float
    arrived: int
    inflight: int
    model_arrivals: tuple[int, ...]
    queued: tuple[int, ...]

    @classmethod
    def from_dict(cls, snap: dict) -> Counters:
        return cls(
            float(snap["epoch_s"]),
            int(snap["arrived"]),
            int(snap["inflight"]),
            tuple(snap["model_arrivals"]),
            tuple(snap["queued"]),
        )


@dataclass(frozen=True)
class TickResult:
    plan: Plan | None  # to put in force now (None: the plan in force stays)
    demand_qps: float | None  # the demand estimate at the end of the tick (None on a restart)
    restarted: bool  # a replay started: estimators and tick count begin afresh
    queue_len: tuple[float, ...] | None = None  # the queue estimate per model, likewise
    observation: Observation | None = None  # the policy's input, where it was asked


class _Clock:
    now = 0.0


class _CountersView:
    """The cluster face `simulator.controller.Controller` reads, set from each tick's
    arguments; `apply_plan` only records the plan (the caller applies it)."""

    def __init__(self, n_models: int) -> None:
        self.env = _Clock()
        self.n_models = n_models
        self.arrived = 0
        self.inflight = 0
        self.model_arrivals = [0] * n_models
        self.queued = [0] * n_models
        self.plan: Plan | None = None
        self.applied: Plan | None = None
        self.artifact_inflight = None  # the ingress counts in-flight queries itself

    def observe(self, now_s: float, counters: Counters) -> None:
        self.env.now = now_s
        self.arrived = counters.arrived
        self.inflight = counters.inflight
        self.model_arrivals = list(counters.model_arrivals)
        self.queued = list(counters.queued)

    def queue_lengths(self) -> list[int]:
        return list(self.queued)

    def apply_plan(self, plan: Plan, workers_later: bool = False) -> None:
        self.plan = self.applied = plan


class Controller:
    """The planning logic of a serving run, clock-free: `start(now_s)` gives the initial
    plan; `tick(now_s, counters)` updates the estimators over one `tick_s` and, every
    `plan_interval_s` of ticks, asks the policy (the plan is returned when it changed). A new
    replay epoch in the counters restarts everything, as a simulation starts at t = 0: fresh
    estimators, the policy as it was built (a copy kept before its first call: a policy's
    memory, such as the MILP's warm start and the swap-cost rule's plan in force, would
    otherwise carry the server's initial plan and any earlier replay into the next), no plan
    in force, a plan at once, the tick count from 0."""

    def __init__(self, policy, config, n_models: int) -> None:
        self.built = copy.deepcopy(policy)  # before any call
        self.policy = policy
        self.config = config
        self.view = _CountersView(n_models)
        self.ticks_per_plan = max(1, round(config.plan_interval_s / config.tick_s))
        self.epoch_s = 0.0
        self.ticks = 0
        self.estimators = sim_controller.Controller(self.view, policy, config)

    @property
    def plans(self) -> list[PlanRecord]:
        """The plans put in force since the last (re)start, in the controller's seconds."""
        return self.estimators.plans

    def start(self, now_s: float) -> Plan | None:
        """The initial plan (an empty observation), in force from `now_s`."""
        self.view.env.now = now_s
        return self._plan(now_s)  # fresh estimators: the plan is always new to them

    def tick(self, now_s: float, counters: Counters) -> TickResult:
        self.view.observe(now_s, counters)
        if counters.epoch_s != self.epoch_s:
            self.epoch_s, self.ticks = counters.epoch_s, 0
            self.policy = copy.deepcopy(self.built)
            self.estimators = sim_controller.Controller(self.view, self.policy, self.config)
            self.view.plan = None  # as a simulation's first call: none in force yet
            plan = self._plan(now_s)
            return TickResult(plan, None, True, observation=self.estimators.observations[-1])
        est = self.estimators
        est.update_estimates(self.config.tick_s)
        self.ticks += 1
        est._ticks = self.ticks  # first-tick flag, as simulator.controller.Controller.process
        if self.ticks % self.ticks_per_plan:
            return TickResult(None, est.demand_qps, False, tuple(est.queue_ewma))
        plan = self._plan(now_s)
        queue = tuple(est.queue_ewma)
        return TickResult(plan, est.demand_qps, False, queue, est.observations[-1])

    def _plan(self, now_s: float) -> Plan | None:
        """Ask the policy; the plan if it differs from the one the estimators last applied."""
        est = self.estimators
        self.view.applied = None
        plan, _ = est.plan_now()
        est.apply(plan, now_s, est.demand_qps)
        return self.view.applied


def observation_entry(observation: Observation, origin_s: float) -> dict:
    """The ingress's log entry of the policy's input at one of its calls
    (`serving.planner_inputs.observations_from_entries` reads it back): the wall time of the
    call (`origin_s`: the wall time of the controller's 0 s) and the estimates it saw, not the
    plan in force (plans.csv has that)."""
    return {
        "at_s": origin_s + observation.now_s,
        "demand_qps": observation.demand_qps,
        "arrival_rate_qps": observation.arrival_rate_qps,
        "inflight": observation.inflight,
        "queue_len": list(observation.queue_len),
        "model_arrival_qps": list(observation.model_arrival_qps),
    }


class WallClock:
    """Seconds since the serving run started."""

    def __init__(self) -> None:
        self.origin = time.time()

    @property
    def now(self) -> float:
        return time.time() - self.origin


class LiveCluster:
    """The live system: the ingress's counters and the worker slots of the plan in force.

    Every worker slot is its own Serve application (`worker_app`, one replica), deployed once,
    with the initial plan's configuration as its `user_config`, and kept for the run: each
    later plan reaches the running replicas whose configuration changed by a `configure`
    call, and the ingress holds every slot's configuration in force, which a replica that
    Serve restarts asks for (`Worker.reconfigure`). `slots` is the model per slot
    (`place_workers`: fewest swaps), `assigned` the plan version that put it there
    (`version` counts the plans applied)."""

    def __init__(self, setup, bundle, policy, config, ingress_app, models: list) -> None:
        self.env = WallClock()
        self.bundle = bundle
        self.policy = policy
        self.config = config
        self.ingress_app = ingress_app  # bound (`serving.ingress.ingress_app`): `deploy`s it
        self.ingress = None  # its handle, once deployed
        self.n_models = len(bundle.model_names)
        self.models = models  # spec per bundle model (`ServeSetup.models`)
        self.actor_options = serve_stack(setup.stack).replica_options(
            worker_actor_options(self.models)
        )
        self.first_arrival_s: float | None = None
        self.plan: Plan | None = None
        self.version = 0
        self.slots = [NO_MODEL] * config.n_workers  # model per worker (placement)
        self.assigned = [(0, 0.0)] * config.n_workers  # (plan version, wall time) per slot
        self.configs: list[dict | None] = [None] * config.n_workers  # in force, per slot
        # as sent: with the plan that changed it and the slot (`Worker.configure`)
        self.delivered: list[dict | None] = [None] * config.n_workers
        self.handles: dict[int, object] = {}  # worker slot -> its deployment handle
        self.pending: dict[int, tuple[int, float]] = {}  # slot -> (version, requested at)

    def refresh(self, estimates: tuple | None, until_s: float) -> Counters:
        """The ingress's counters, arrivals counted up to the tick's boundary `until_s` (wall
        clock), logging there the last tick's planner inputs, (wall time, demand qps, queue
        per model)."""
        now_s, qps, queue = estimates or (None, None, None)
        answer = self.ingress.tick.remote(now_s, qps, until_s, queue).result()
        counters = Counters.from_dict(answer)
        if self.first_arrival_s is None and counters.arrived > 0:
            self.first_arrival_s = self.env.now
        return counters

    def apply_plan(
        self,
        plan: Plan,
        planned_s: float | None = None,
        wait: bool = False,
        demand_qps: float = 0.0,
    ) -> None:
        """Put `plan` in force: routing at the ingress first (as the simulator switches its
        decision state at once), then the workers whose configuration changed (a swap: a new
        model; else batch size and discriminator flags). `planned_s`: the wall time the plan
        is due (its tick's end; None: now), logged with when it took effect at the ingress
        (the delivery delay) and the demand estimate it was made from. `wait` deploys and
        blocks until every worker runs with its model loaded (the initial plan: loaded before
        traffic, not logged as swaps). The plan in force again (a replay's first plan) changes
        routing state only."""
        if planned_s is None:
            planned_s = time.time()
        if plan == self.plan:
            self.ingress.set_plan.remote(
                plan, self.slots, self.version, planned_s, demand_qps, 0.0, self.delivered
            ).result()
            return
        index = self.bundle.model_index
        desired = [0] * self.n_models
        for name, count in plan.workers.items():
            desired[index(name)] = count
        self.version += 1
        requested = time.time()
        self.slots, changed = place_workers(self.slots, desired)
        for w in changed:
            self.assigned[w] = (self.version, requested)
            if self.slots[w] == NO_MODEL:
                self.pending.pop(w, None)
            else:
                self.pending[w] = self.assigned[w]
        load_s = sum(self.models[self.slots[w]].load_s for w in changed if self.slots[w] >= 0)
        self.plan = plan
        state = PlanState.from_plan(
            plan,
            index,
            self.policy.router_scores,
            self.policy.quality_scores,
            self.config.threshold_rule,
        )
        changed_configs = []
        for w, m in enumerate(self.slots):
            size = 1
            if m != NO_MODEL:
                name = self.bundle.model_names[m]
                size = min(int(plan.batch_size.get(name, 1)), self.bundle.max_batch_size(name))
                size = max(1, size)
            config = {
                "model": m,
                "assigned": self.assigned[w][0],
                "batch_size": size,
                "judged": m != NO_MODEL and bool(state.judged[m]),
                "scored": m != NO_MODEL and state.next_of[m] != ACCEPT,
            }
            if config == self.configs[w]:
                continue
            self.configs[w] = config
            self.delivered[w] = {**config, "plan": self.version, "slot": w}
            changed_configs.append(w)
        if wait:
            self.deploy(changed_configs)
        self.ingress.set_plan.remote(
            plan, self.slots, self.version, planned_s, demand_qps, load_s, self.delivered
        ).result()
        if wait:
            while self.pending:
                self.check_swaps(log=False)
                time.sleep(LOAD_POLL_S)
            return
        for w in changed_configs:  # straight to the running replica
            self.worker(w).configure.remote(self.delivered[w])

    def deploy(self, slots: list[int]) -> None:
        """Deploy the ingress and worker slots `slots` with their configurations
        (`user_config`) at once, and wait until they run (their replicas start side by side:
        10.0 s here for the ingress and 4 workers, against 12.6 s one after the other). Done
        once, for the initial plan: a redeploy would take each replica out of Serve's routing
        while it reconfigures (about a second on the lean stack: the queries sent to it
        meanwhile waited), so later plans are sent by `configure` calls. A worker that starts
        before the ingress has the plan keeps its `user_config` (`Worker.reconfigure`)."""
        drop_limit_s = self.config.drop_factor * self.config.slo_s
        targets = [serve.RunTarget(self.ingress_app, name=INGRESS_APP, route_prefix="/")]
        for w in slots:
            worker = Worker.options(
                num_replicas=1, user_config=self.delivered[w], ray_actor_options=self.actor_options
            )
            targets.append(
                serve.RunTarget(
                    worker.bind(self.models, drop_limit_s), name=worker_app(w), route_prefix=None
                )
            )
        handles = serve.run_many(
            targets, wait_for_ingress_deployment_creation=True, wait_for_applications_running=True
        )
        self.ingress = handles[0]

    def worker(self, w: int):
        """The handle of worker slot `w` (one per slot, kept for the run)."""
        if w not in self.handles:
            self.handles[w] = serve.get_deployment_handle("Worker", worker_app(w))
        return self.handles[w]

    def check_swaps(self, log: bool = True) -> None:
        """Log (at the ingress) each swap whose model has loaded since the last check: from
        the plan's request to the worker's model being loaded. A worker whose load failed ends
        the run (`RunFailure`)."""
        asked = {w: self.worker(w).status.remote() for w in sorted(self.pending)}
        for w, answer in asked.items():
            status = answer.result()
            if status["error"] is not None:
                raise RunFailure(f"worker {w}: {status['error']}")
            version, requested_s = self.pending.get(w, (None, 0.0))
            if status["assigned"] == version and status["loaded"]:
                if self.pending.pop(w, None) is not None and log:  # logged once
                    times = {k: status[k] for k in ("configured_s", "load_from_s", "loaded_s")}
                    name = self.bundle.model_names[self.slots[w]]
                    self.ingress.log_swap.remote(w, name, requested_s, times)


class ControllerThread:
    """`Controller` on wall time in a thread: a tick every `tick_s` (re-anchored at each replay
    epoch), its plans applied to the `LiveCluster`; optional fault injection (`chaos_kill_s`:
    kill the replica of a worker of the most hosted model that many seconds after the first
    arrival; Serve restarts it with its latest configuration, and it loads its model again)."""

    def __init__(self, cluster: LiveCluster, chaos_kill_s: float | None = None) -> None:
        self.cluster = cluster
        self.controller = Controller(cluster.policy, cluster.config, cluster.n_models)
        self.chaos_kill_s = chaos_kill_s
        self.killed: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="t2isim-controller", daemon=True)

    def start(self) -> None:
        """The initial plan, applied and running before the first query, then the loop."""
        self.cluster.apply_plan(self.controller.start(0.0), wait=True)
        self.thread.start()
        self.cluster.ingress.set_ready.remote().result()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():  # not when the initial plan failed
            self.thread.join(timeout=30)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the server's watchdog
            self.error = exc

    def _loop(self) -> None:
        c = self.cluster
        tick = c.config.tick_s
        estimates = None
        next_s = c.env.now + tick
        while not self.stop.wait(max(0.0, next_s - c.env.now)):
            tick_end_s = next_s
            counters = c.refresh(estimates, c.env.origin + tick_end_s)  # the tick ending there
            next_s += tick
            now_s = c.env.now
            result = self.controller.tick(now_s, counters)
            estimates = None
            due_s = c.env.origin + tick_end_s
            if result.restarted:  # a replay started: t = 0 of a simulation
                next_s = self.controller.epoch_s - c.env.origin + tick
                c.first_arrival_s = None
                due_s = self.controller.epoch_s
            else:  # logged at the end of the tick it estimates, as the simulator's logs
                estimates = (due_s, result.demand_qps, result.queue_len)
            if result.observation is not None:  # logged at once: a replay's last call too
                entry = observation_entry(result.observation, c.env.origin)
                c.ingress.log_observation.remote(entry).result()
            if result.plan is not None:
                c.apply_plan(result.plan, due_s, demand_qps=result.demand_qps or 0.0)
            if not result.restarted:
                c.check_swaps()
                self._maybe_kill()

    def _maybe_kill(self) -> None:
        c = self.cluster
        if self.chaos_kill_s is None or self.killed or c.first_arrival_s is None:
            return
        if c.env.now < c.first_arrival_s + self.chaos_kill_s:
            return
        hosted = [m for m in c.slots if m != NO_MODEL]
        if not hosted:
            return
        m = max(sorted(set(hosted)), key=hosted.count)  # a worker of the most hosted model
        w = c.slots.index(m)
        actor = c.worker(w).actor_name.remote().result()
        ray.kill(ray.get_actor(actor, namespace=SERVE_NAMESPACE))
        self.killed.append((c.env.now, c.bundle.model_names[m]))
