"""The serving controller: the simulator's own `Controller` (EWMA estimators, `Observation`,
`Policy.plan`) driven by wall time over live counters, each `Plan` applied to the deployments.

`LiveCluster` is the cluster face the controller reads (`simulator.controller.Controller` needs
`env.now`, `arrived`, `inflight`, `model_arrivals`, `queue_lengths()`, `plan`, `apply_plan`):
the counters come from the ingress every tick, and `apply_plan` puts the plan in force at the
ingress (routing thresholds) and on the deployments: one Serve application per model with
`num_replicas` = its workers and `user_config` = its batch size (no restart); a model with no
workers is deleted. Which workers change model is the decision core's `place_workers` (fewest
swaps); each swap is a replica start, paying the model's load time.
"""

from __future__ import annotations

import threading
import time

import ray
from ray import serve

from serving.replicas import ModelReplica, emulated_model
from serving.setup import model_app
from simulator.controller import Controller, PlanRecord
from simulator.core import NO_MODEL, PlanState, place_workers
from simulator.policy import Plan

SERVE_NAMESPACE = "serve"  # Ray namespace of Serve's actors


class WallClock:
    """`env.now` of the controller: seconds since the serving run started."""

    def __init__(self) -> None:
        self.origin = time.time()

    @property
    def now(self) -> float:
        return time.time() - self.origin


class LiveCluster:
    """The live system as `simulator.controller.Controller` sees a cluster."""

    def __init__(self, bundle, policy, config, ingress) -> None:
        self.env = WallClock()
        self.bundle = bundle
        self.policy = policy
        self.config = config
        self.ingress = ingress
        self.n_models = len(bundle.model_names)
        self.models = [emulated_model(bundle, policy, config, m) for m in bundle.model_names]
        self.arrived = 0
        self.inflight = 0
        self.model_arrivals = [0] * self.n_models
        self.queued = [0] * self.n_models
        self.first_arrival_s: float | None = None
        self.epoch_s = 0.0  # wall time a replay started (0: none)
        self.plan: Plan | None = None
        self.slots = [NO_MODEL] * config.n_workers  # model per worker (placement)
        self.swaps = 0
        self.pending_demand: tuple[float, float] | None = None
        self.deployed: set[int] = set()
        self.replicas: dict[int, int] = {}
        self.swap_started = [0.0] * self.n_models  # wall time of each model's latest scale-up
        self.pending: dict[int, tuple[float, int]] = {}  # model -> (requested at, replicas)

    def refresh(self) -> None:
        """Read the ingress's counters (logging the last tick's demand estimate)."""
        now_s, demand = self.pending_demand or (None, None)
        snap = self.ingress.tick.remote(now_s, demand).result()
        self.pending_demand = None
        self.arrived = snap["arrived"]
        self.inflight = snap["inflight"]
        self.model_arrivals = snap["model_arrivals"]
        self.queued = snap["queued"]
        self.epoch_s = snap["epoch_s"]
        if self.first_arrival_s is None and self.arrived > 0:
            self.first_arrival_s = self.env.now

    def queue_lengths(self) -> list[int]:
        return list(self.queued)

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
        targets = []
        for m, count in enumerate(desired):
            if count == 0:
                continue
            name = self.bundle.model_names[m]
            size = max(1, min(int(plan.batch_size.get(name, 1)), self.bundle.max_batch_size(name)))
            config = {
                "batch_size": size,
                "judged": state.judged[m],
                "swap_started_s": self.swap_started[m],
            }
            replica = ModelReplica.options(num_replicas=count, user_config=config)
            drop_limit_s = self.config.drop_factor * self.config.slo_s
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


class ServingController:
    """The planning loop in a thread: a tick every `tick_s` of wall time, a plan every
    `plan_interval_s`; optional fault injection (`chaos`: kill a replica at that many seconds
    after the first arrival)."""

    def __init__(self, cluster: LiveCluster, chaos_kill_s: float | None = None) -> None:
        self.cluster = cluster
        self.controller = Controller(cluster, cluster.policy, cluster.config)
        self.chaos_kill_s = chaos_kill_s
        self.killed: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="t2isim-controller", daemon=True)

    def start(self) -> None:
        """The initial plan, applied and running before the first query, then the loop."""
        plan, _ = self.controller.plan_now()
        self.cluster.apply_plan(plan, wait=True)
        self.cluster.check_swaps()
        self.controller.plans.append(PlanRecord(0.0, 0.0, self.controller.demand_qps, plan))
        self.thread.start()
        self.cluster.ingress.set_ready.remote().result()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced by the server's watchdog
            self.error = exc

    def _loop(self) -> None:
        c = self.cluster
        tick = c.config.tick_s
        ticks_per_plan = max(1, round(c.config.plan_interval_s / tick))
        ticks, epoch = 0, 0.0
        next_s = c.env.now + tick
        while not self.stop.wait(max(0.0, next_s - c.env.now)):
            next_s += tick
            c.refresh()
            if c.epoch_s != epoch:  # a replay started: t = 0 of a simulation
                epoch, ticks = c.epoch_s, 0
                next_s = epoch - c.env.origin + tick
                c.first_arrival_s = None
                self.controller = Controller(c, c.policy, c.config)
                plan, _ = self.controller.plan_now()
                self.controller.apply(plan, c.env.now, self.controller.demand_qps)
                continue
            ctrl = self.controller
            ctrl.update_estimates(tick)
            ctrl._ticks = ticks = ticks + 1  # first-tick flag, as Controller.process
            c.pending_demand = (c.env.origin + c.env.now, ctrl.demand_qps)
            if ticks % ticks_per_plan == 0:
                plan, _ = ctrl.plan_now()
                ctrl.apply(plan, c.env.now, ctrl.demand_qps)
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
