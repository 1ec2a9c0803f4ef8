"""The serving controller: the simulator's own `Controller` (EWMA estimators, `Observation`,
`Policy.plan`) fed with live counters, each `Plan` applied to the deployments.

`Controller` is the clock-free part: `tick(now_s, counters)` takes the time and the ingress's
counters (`Counters`) explicitly and returns the plan to put in force, if any, so it runs
without Ray and without a wall clock. `ControllerThread` drives it: a tick every `tick_s` of
wall time, the counters read from the ingress, the plans applied by `LiveCluster`.

`LiveCluster.apply_plan` puts a plan in force at the ingress (routing thresholds) and on the
deployments: one Serve application per model with `num_replicas` = its workers, `user_config`
= its batch size and discriminator flags (no restart) and the ingress's dispatch among its
replicas (`serving.dispatch`); a model with no workers is deleted. Which workers change model
is the decision core's `place_workers` (fewest swaps); each swap is a replica start, paying
the model's load time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import ray
from ray import serve
from ray.serve.config import RequestRouterConfig

from serving.replicas import ModelReplica
from serving.router import ROUTER_CLASS
from serving.setup import model_app
from simulator import controller as sim_controller
from simulator.controller import PlanRecord
from simulator.core import ACCEPT, NO_MODEL, PlanState, place_workers
from simulator.engine import SEED_STREAM_DISPATCH, stream_seed
from simulator.policy import Plan

SERVE_NAMESPACE = "serve"  # Ray namespace of Serve's actors


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

    def apply_plan(self, plan: Plan) -> None:
        self.plan = self.applied = plan


class Controller:
    """The planning logic of a serving run, clock-free: `start(now_s)` gives the initial
    plan; `tick(now_s, counters)` updates the estimators over one `tick_s` and, every
    `plan_interval_s` of ticks, asks the policy (the plan is returned when it changed). A new
    replay epoch in the counters restarts everything, as a simulation starts at t = 0: fresh
    estimators, a plan at once, the tick count from 0."""

    def __init__(self, policy, config, n_models: int) -> None:
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
            self.estimators = sim_controller.Controller(self.view, self.policy, self.config)
            return TickResult(self._plan(now_s), None, True)
        est = self.estimators
        est.update_estimates(self.config.tick_s)
        self.ticks += 1
        est._ticks = self.ticks  # first-tick flag, as simulator.controller.Controller.process
        plan = self._plan(now_s) if self.ticks % self.ticks_per_plan == 0 else None
        return TickResult(plan, est.demand_qps, False)

    def _plan(self, now_s: float) -> Plan | None:
        """Ask the policy; the plan if it differs from the one the estimators last applied."""
        est = self.estimators
        self.view.applied = None
        plan, _ = est.plan_now()
        est.apply(plan, now_s, est.demand_qps)
        return self.view.applied


class WallClock:
    """Seconds since the serving run started."""

    def __init__(self) -> None:
        self.origin = time.time()

    @property
    def now(self) -> float:
        return time.time() - self.origin


class LiveCluster:
    """The live system: the ingress's counters and the deployments of the plan in force."""

    def __init__(self, setup, bundle, policy, config, ingress) -> None:
        self.env = WallClock()
        self.bundle = bundle
        self.policy = policy
        self.config = config
        self.ingress = ingress
        self.n_models = len(bundle.model_names)
        self.models = setup.models(bundle, policy, config)
        self.dispatch = setup.dispatch
        self.first_arrival_s: float | None = None
        self.plan: Plan | None = None
        self.slots = [NO_MODEL] * config.n_workers  # model per worker (placement)
        self.swaps = 0
        self.deployed: set[int] = set()
        self.replicas: dict[int, int] = {}
        self.swap_started = [0.0] * self.n_models  # wall time of each model's latest scale-up
        self.pending: dict[int, tuple[float, int]] = {}  # model -> (requested at, replicas)

    def refresh(self, demand: tuple[float, float] | None) -> Counters:
        """The ingress's counters (logging there the last tick's demand estimate, (wall time,
        qps))."""
        now_s, qps = demand or (None, None)
        counters = Counters.from_dict(self.ingress.tick.remote(now_s, qps).result())
        if self.first_arrival_s is None and counters.arrived > 0:
            self.first_arrival_s = self.env.now
        return counters

    def apply_plan(self, plan: Plan, wait: bool = False) -> None:
        """Routing at the ingress first (as the simulator switches its decision state at
        once), then the deployments; `wait` blocks until every replica runs. The plan in
        force again (a replay's first plan) leaves the deployments alone: redeploying makes
        them briefly unavailable."""
        if plan == self.plan:  # a replay's first plan, as in force: routing state only
            self.ingress.set_plan.remote(plan, self.env.origin + self.env.now, 0.0).result()
            return
        index = self.bundle.model_index
        desired = [0] * self.n_models
        for name, count in plan.workers.items():
            desired[index(name)] = count
        self.slots, changed = place_workers(self.slots, desired)
        started = [w for w in changed if self.slots[w] != NO_MODEL]
        self.swaps += len(started)
        load_s = sum(self.models[self.slots[w]].load_s for w in started)
        self.plan = plan
        self.ingress.set_plan.remote(plan, self.env.origin + self.env.now, load_s).result()
        state = PlanState.from_plan(
            plan, index, self.policy.router_scores, self.policy.quality_scores
        )
        now = time.time()
        for m, count in enumerate(desired):
            if count > self.replicas.get(m, 0):  # replicas to start: swaps
                self.pending[m] = (now, count)
                self.swap_started[m] = now
            elif m in self.pending:
                self.pending[m] = (self.pending[m][0], count)
                if count == 0:
                    del self.pending[m]
        self.replicas = dict(enumerate(desired))
        drop_limit_s = self.config.drop_factor * self.config.slo_s
        targets = []
        for m, count in enumerate(desired):
            if count == 0:
                continue
            name = self.bundle.model_names[m]
            size = max(1, min(int(plan.batch_size.get(name, 1)), self.bundle.max_batch_size(name)))
            config = {
                "batch_size": size,
                "judged": state.judged[m],
                "scored": state.next_of[m] != ACCEPT,
                "swap_started_s": self.swap_started[m],
            }
            replica = ModelReplica.options(
                num_replicas=count,
                user_config=config,
                ray_actor_options=self.models[m].actor_options,
                request_router_config=self.router_config(m),
            )
            targets.append(
                serve.RunTarget(
                    replica.bind(self.models[m], drop_limit_s),
                    name=model_app(m, name),
                    route_prefix=None,
                )
            )
        if targets:
            serve.run_many(
                targets,
                wait_for_ingress_deployment_creation=wait,
                wait_for_applications_running=wait,
            )
        for m in sorted(self.deployed - {m for m, c in enumerate(desired) if c}):
            serve.delete(model_app(m, self.bundle.model_names[m]), _blocking=False)
        self.deployed = {m for m, c in enumerate(desired) if c}

    def router_config(self, m: int) -> RequestRouterConfig:
        """The ingress's dispatch among model m's replicas, seeded from the run's dispatch
        stream (a sub-stream of its own per model, apart from the ingress's mix draws)."""
        stream = stream_seed(self.config.seed, SEED_STREAM_DISPATCH)
        return RequestRouterConfig(
            request_router_class=ROUTER_CLASS,
            request_router_kwargs={"mode": self.dispatch, "seed": f"{stream}/replica/{m}"},
        )

    def check_swaps(self) -> None:
        """Log (at the ingress) each deployment that reached its planned replicas since the
        last check: the real cost of a swap, replica start included."""
        if not self.pending:
            return
        apps = serve.status().applications
        for m in sorted(self.pending):
            requested, count = self.pending[m]
            app = apps.get(model_app(m, self.bundle.model_names[m]))
            deployment = app.deployments.get("ModelReplica") if app is not None else None
            if deployment is not None and deployment.replica_states.get("RUNNING", 0) >= count:
                del self.pending[m]
                self.ingress.log_swap.remote(self.bundle.model_names[m], requested, time.time())


class ControllerThread:
    """`Controller` on wall time in a thread: a tick every `tick_s` (re-anchored at each replay
    epoch), its plans applied to the `LiveCluster`; optional fault injection (`chaos_kill_s`:
    kill a replica that many seconds after the first arrival)."""

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
        self.cluster.check_swaps()
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
        demand = None
        next_s = c.env.now + tick
        while not self.stop.wait(max(0.0, next_s - c.env.now)):
            next_s += tick
            counters = c.refresh(demand)
            now_s = c.env.now
            result = self.controller.tick(now_s, counters)
            demand = None
            if result.restarted:  # a replay started: t = 0 of a simulation
                next_s = self.controller.epoch_s - c.env.origin + tick
                c.first_arrival_s = None
            else:
                demand = (c.env.origin + now_s, result.demand_qps)
            if result.plan is not None:
                c.apply_plan(result.plan)
            if not result.restarted:
                c.check_swaps()
                self._maybe_kill()

    def _maybe_kill(self) -> None:
        c = self.cluster
        if self.chaos_kill_s is None or self.killed or c.first_arrival_s is None:
            return
        if c.env.now < c.first_arrival_s + self.chaos_kill_s or not c.deployed:
            return
        workers = [c.slots.count(m) for m in range(c.n_models)]
        m = max(sorted(c.deployed), key=lambda k: workers[k])
        name = c.bundle.model_names[m]
        handle = serve.get_deployment_handle("ModelReplica", model_app(m, name))
        actor = handle.actor_name.remote().result()  # one replica, whichever answers
        ray.kill(ray.get_actor(actor, namespace=SERVE_NAMESPACE))
        self.killed.append((c.env.now, name))
