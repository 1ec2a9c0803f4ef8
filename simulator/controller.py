"""The controller (HADIS §4.1): a 1 s tick that estimates demand and queues, and a planner call
every `plan_interval_s` whose plan is applied to the cluster (optionally after a delay; its
routing first, then its workers' configuration, all at once or one by one,
`SimConfig.plan_switch`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from simulator.cluster import Cluster
from simulator.config import SimConfig
from simulator.policy import Observation, Plan, Policy


@dataclass(frozen=True)
class PlanRecord:
    """A plan put in force at `applied_s` (planned at `planned_s`, with the demand it saw)."""

    planned_s: float
    applied_s: float
    demand_qps: float
    plan: Plan


class Controller:
    """EWMA estimators and the planning loop."""

    def __init__(
        self,
        cluster: Cluster,
        policy: Policy,
        config: SimConfig,
        plan_hop_s: float = 0.0,
        route_hop_s: float = 0.0,
        configure_hop_s: float = 0.0,
    ) -> None:
        """`plan_hop_s`: the serving path's delay from a tick to its workers' configuration
        (the bundle's plan hop, `simulator.bundle.HOPS`), added to `plan_delay_s`;
        `route_hop_s`: to its ingress routing by the plan (the route hop), where it comes
        first (`plan_switch=routing-first` or `per-swap`); `configure_hop_s`: the step from
        there to each swap in turn (`per-swap`; without it, all at the plan hop)."""
        self.cluster = cluster
        self.policy = policy
        self.config = config
        self.alpha = config.ewma_alpha
        n_models = cluster.n_models
        self.arrival_rate_qps = 0.0
        self.inflight_ewma = 0.0
        self.inflight = 0  # in flight at the last tick (the artifact's count, when configured)
        self.queue_ewma = [0.0] * n_models
        self.model_arrival_qps = [0.0] * n_models
        self._last_arrived = 0
        self._last_model_arrivals = [0] * n_models
        self._ticks = 0
        self.plan_hop_s = plan_hop_s
        self.route_hop_s = plan_hop_s
        self.configure_hop_s = 0.0
        if config.plan_switch == "per-swap" and configure_hop_s > 0:
            self.route_hop_s, self.configure_hop_s = route_hop_s, configure_hop_s
        elif config.plan_switch != "together":
            self.route_hop_s = min(route_hop_s, plan_hop_s)
        self.plans: list[PlanRecord] = []
        self.planner_wall_s: list[tuple[float, float]] = []  # (sim time, wall seconds)
        self.demand_log: list[float] = []  # demand estimate at the end of each tick
        self.queue_log: list[tuple[float, ...]] = []  # queue estimate per model, likewise
        self.observations: list[Observation] = []  # what the policy saw at each call

    @property
    def demand_qps(self) -> float:
        if self.config.demand_estimator in ("inflight", "artifact-inflight"):
            return self.inflight_ewma * self.config.inflight_factor
        return self.arrival_rate_qps

    def observation(self) -> Observation:
        c = self.cluster
        return Observation(
            now_s=c.env.now,
            demand_qps=self.demand_qps,
            arrival_rate_qps=self.arrival_rate_qps,
            inflight=c.inflight if c.artifact_inflight is None else self.inflight,
            queue_len=tuple(self.queue_ewma),
            model_arrival_qps=tuple(self.model_arrival_qps),
            n_workers=self.config.n_workers,
            slo_s=self.config.slo_s,
            current=c.plan,
        )

    def plan_now(self) -> tuple[Plan, float]:
        """Ask the policy for a plan; returns it with the planner's wall time."""
        observation = self.observation()
        self.observations.append(observation)
        start = time.perf_counter()
        plan = self.policy.plan(observation)
        wall_s = time.perf_counter() - start
        self.planner_wall_s.append((self.cluster.env.now, wall_s))
        return plan, wall_s

    def apply(
        self, plan: Plan, planned_s: float, demand_qps: float, workers_later: bool = False
    ) -> bool:
        """Put `plan` in force (`Cluster.apply_plan`), unless it is the one in force: whether
        it was."""
        if self.plans and plan == self.plans[-1].plan:
            return False  # unchanged: nothing to apply, no new epoch
        self.cluster.apply_plan(plan, workers_later)
        self.plans.append(PlanRecord(planned_s, self.cluster.env.now, demand_qps, plan))
        return True

    def initial_plan(self) -> None:
        """Plan with an empty observation and apply at t = 0, before any arrival, with its
        models already loaded (`Cluster.preload`): swaps cost load time from the first re-plan."""
        plan, _ = self.plan_now()
        self.apply(plan, 0.0, self.demand_qps)
        self.cluster.preload()

    def process(self):
        env = self.cluster.env
        tick = self.config.tick_s
        ticks_per_plan = max(1, round(self.config.plan_interval_s / tick))
        while True:
            yield env.timeout(tick)
            self.update_estimates(tick)
            self.demand_log.append(self.demand_qps)
            self.queue_log.append(tuple(self.queue_ewma))
            self._ticks += 1
            if self._ticks % ticks_per_plan == 0:
                plan, wall_s = self.plan_now()
                delay_s = self.config.plan_delay_s
                if self.config.plan_delay_measured:
                    delay_s += wall_s
                configure_s = delay_s + self.plan_hop_s
                route_s, step_s = configure_s, 0.0
                if self.cluster.can_route_first(plan):
                    route_s, step_s = delay_s + self.route_hop_s, self.configure_hop_s
                if configure_s > 0 or step_s > 0:
                    env.process(
                        self._apply_later(
                            plan, env.now, self.demand_qps, route_s, configure_s, step_s
                        )
                    )
                else:
                    self.apply(plan, env.now, self.demand_qps)

    def _apply_later(
        self,
        plan: Plan,
        planned_s: float,
        demand_qps: float,
        route_s: float,
        configure_s: float,
        step_s: float,
    ):
        """Apply `plan` `route_s` after it was made; its workers' configuration at
        `configure_s` (>= route_s), or with a `step_s` one worker whose model changed at a
        time, in a random order (`Cluster.configure_order`), each `step_s` after the last
        (the others take their batch sizes with the first; with none, all `step_s` after
        `route_s`)."""
        env = self.cluster.env
        yield env.timeout(route_s)
        later = step_s > 0 or configure_s > route_s
        if not (self.apply(plan, planned_s, demand_qps, workers_later=later) and later):
            return
        if step_s <= 0:
            yield env.timeout(configure_s - route_s)
            self.cluster.configure_workers(plan)
            return
        for worker in self.cluster.configure_order() or [None]:
            yield env.timeout(step_s)
            self.cluster.configure_workers(plan, worker)

    def update_estimates(self, tick_s: float) -> None:
        c = self.cluster
        a = self.alpha
        first = self._ticks == 0
        rate = (c.arrived - self._last_arrived) / tick_s
        self._last_arrived = c.arrived
        self.arrival_rate_qps = rate if first else a * rate + (1 - a) * self.arrival_rate_qps
        # the artifact's count is read once per tick (reading expires old entries)
        counter = c.artifact_inflight
        inflight = c.inflight if counter is None else counter.tick(c.env.now)
        self.inflight = inflight
        self.inflight_ewma = inflight if first else a * inflight + (1 - a) * self.inflight_ewma
        queues = c.queue_lengths()
        for m in range(c.n_models):
            model_rate = (c.model_arrivals[m] - self._last_model_arrivals[m]) / tick_s
            self._last_model_arrivals[m] = c.model_arrivals[m]
            if first:
                self.queue_ewma[m] = float(queues[m])
                self.model_arrival_qps[m] = model_rate
            else:
                self.queue_ewma[m] = a * queues[m] + (1 - a) * self.queue_ewma[m]
                self.model_arrival_qps[m] = a * model_rate + (1 - a) * self.model_arrival_qps[m]
