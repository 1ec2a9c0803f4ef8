"""The simulated GPU cluster: SimPy worker processes, dispatch, cascade decisions.

One long-lived SimPy process per worker (never one per query). Per-query state lives in flat
lists indexed by query id so every event costs O(1): no pandas, no dict rebuilds.

This module is the SimPy driver of the decision core (`simulator.core`): it owns simulated
time, queues and per-query bookkeeping, and asks the core (or the policy's hooks,
`simulator.hooks`, resolved once per run) where each query goes. Query flow under a cascade
plan (HADIS §4.1): arrival (+ router cost) -> admission -> route (bypass to the last stage, or
the first) -> after each stage accept, or escalate to the next stage. Under a mix plan each
query goes to one model drawn by the plan's shares.
"""

from __future__ import annotations

import math
import random

import numpy as np
import simpy

from simulator.artifact_inflight import ArtifactInflight
from simulator.bundle import Bundle, nearest_batch_size
from simulator.config import SimConfig
from simulator.core import (
    ACCEPT,
    NO_MODEL,
    PlanState,
    bypasses,
    escalates,
    hosted_above,
    place_workers,
)
from simulator.empirical_shape import draw_ratio
from simulator.errors import InputError
from simulator.hooks import PolicyHooks
from simulator.policy import Plan, Policy
from simulator.queues import queue_factory
from simulator.service_shape import EMPIRICAL_SERVICE, lognormal_sigma, service_shape

STAGE_OPEN = 0  # routed, not escalated: re-routed after a plan change, may escalate
STAGE_ESCALATED = 1  # escalated to a middle stage: may escalate again
STAGE_FINAL = 2  # bypassed, or escalated to the last stage: its next image is returned


class Worker:
    """A GPU worker: the model it hosts, its max batch size, its queue; under a plan with
    per-worker loads (`Plan.loaded`) also the router threshold θ and quality threshold τ it was
    loaded with, and its accept-or-escalate table per prompt when τ is not the plan's. Between
    a plan's routing and its workers' configuration (`SimConfig.plan_switch`), `routed` is the
    model the plan routes here and `held` the queries sent for it, waiting for the worker's
    configuration (the serving path's worker holds them)."""

    __slots__ = (
        "index",
        "model",
        "target",
        "routed",
        "held",
        "batch",
        "queue",
        "idle",
        "serving",
        "incoming",
        "wake",
        "busy_s",
        "free_s",
        "theta",
        "tau",
        "next_of",
    )

    def __init__(self, index: int, queue) -> None:
        self.index = index
        self.model = NO_MODEL  # model loaded now
        self.target = NO_MODEL  # model the plan wants here (the worker's configuration)
        self.routed = NO_MODEL  # model the plan in force routes here
        self.held: list[int] = []  # queries sent for `routed` before its configuration
        self.batch = 1
        self.queue = queue  # deque-like (simulator.queues)
        self.idle = False
        self.serving = 0  # queries in the batch being served
        self.incoming = 0  # queries sent here, still in their dispatch or escalation hop
        self.wake: simpy.Event | None = None
        self.busy_s = 0.0
        self.free_s = -math.inf  # when it last finished a batch or a load (idle since)
        self.theta = math.inf
        self.tau = -math.inf
        self.next_of: list[int] | None = None  # None: the plan's table of its model


class Cluster:
    """State and processes of one simulation run."""

    def __init__(
        self,
        env: simpy.Environment,
        bundle: Bundle,
        config: SimConfig,
        policy: Policy,
        arrival_s: np.ndarray,
        prompt_idx: np.ndarray,
        rng_seed: int,
        timing_seed: int | None = None,
    ) -> None:
        """`rng_seed`: the cluster's draws (mix, worker choice); `timing_seed` (default the
        same): its timing's (hops, the order of a re-plan's swaps, batch-time noise)."""
        timing = rng_seed if timing_seed is None else timing_seed
        self.env = env
        self.config = config
        self.bundle = bundle
        self.n_models = len(bundle.model_names)
        n = len(arrival_s)
        self.n_queries = n
        self.arrival_s = arrival_s.tolist()
        self.prompt = prompt_idx.tolist()
        nan = math.nan
        self.start_s = [nan] * n
        self.first_done_s = [nan] * n
        self.completion_s = [nan] * n
        self.first_model = [NO_MODEL] * n
        self.final_model = [NO_MODEL] * n
        self.bypassed = [False] * n
        self.escalated = [False] * n
        self.dropped = [False] * n
        self.stage = [STAGE_OPEN] * n

        self.router_scores_np = np.asarray(policy.router_scores, dtype=np.float64)
        self.quality_np = np.asarray(policy.quality_scores, dtype=np.float64)
        self.router_scores = self.router_scores_np.tolist()
        self.quality = [self.quality_np[:, m].tolist() for m in range(self.n_models)]
        self.router_shift_s = (
            config.router_cost_s * config.time_scale if policy.uses_router else 0.0
        )
        # the bundle's per-hop overheads (median, lognormal sigma, measured shape or None): the
        # serving stack's wall clock, not scaled; drawn from their own stream, so they never
        # move another draw
        self.dispatch_hop = _hop(bundle, "dispatch")
        self.escalation_hop = _hop(bundle, "escalation")
        self.hop_rng = random.Random(f"{timing}/hops")
        # the arrival hop delays only the controller's arrival count (from the trace time; the
        # router's cost has passed when it is drawn), on a stream of its own so that it never
        # moves the other hops' draws
        self.arrival_hop = _hop(bundle, "arrival")
        # route_at=ingress: a new query is routed once its arrival hop has passed
        self.route_at_ingress = config.route_at == "ingress" and self.arrival_hop[0] > 0
        self.arrival_hop_rng = random.Random(f"{timing}/arrival-hops")
        # the order a re-plan's swaps reach their workers (`plan_switch=per-swap`), likewise
        self.configure_rng = random.Random(f"{timing}/configure-order")
        # the bundle's arrival charge: each query's arrival at the stack prolongs every batch
        # running then (wall clock, not scaled); `arrivals_charged` counts the arrivals so far,
        # so a batch reads its charge as a difference of counts (O(1) per event)
        self.arrival_charge_s = bundle.arrival_charge_s
        self.arrivals_charged = 0
        # the discriminator's cost: per judged image, or per batch of any model (disc_cost_per)
        disc_s = config.disc_cost_s * config.time_scale if policy.uses_discriminator else 0.0
        per_batch = config.disc_cost_per == "batch"
        self.disc_cost_s = 0.0 if per_batch else disc_s
        self.disc_batch_s = disc_s if per_batch else 0.0
        scale = config.time_scale
        self.latency_s = [(row * scale).tolist() for row in bundle.latency_table_s]
        # the service-time model's shape per (model, batch size): a batch takes its median
        # times floor + (1 - floor) exp(sigma Z) (`simulator.service_shape`), or with
        # "empirical" times a draw from the bundle's measured shape (`service_ratios`; None
        # where the model has none: the lognormal)
        parametric = config.service_time
        if parametric == EMPIRICAL_SERVICE:
            parametric = "lognormal"
        shapes = [
            [service_shape(parametric, *q) for q in zip(p05row, p50row, p95row)]
            for p05row, p50row, p95row in zip(
                (bundle.latency_p05_table_s * scale).tolist(),
                self.latency_s,
                (bundle.latency_p95_table_s * scale).tolist(),
            )
        ]
        self.service_floor = [[s.floor_ratio for s in row] for row in shapes]
        self.service_sigma = [[s.sigma for s in row] for row in shapes]
        self.service_ratios = [[None] * len(row) for row in self.latency_s]
        if config.service_time == EMPIRICAL_SERVICE:
            if not bundle.latency_shape:
                raise InputError(
                    "service_time 'empirical': the bundle has no measured batch-time shapes "
                    "(shapes.csv; `t2isim bundle served-latency --served-shapes` writes them)"
                )
            self.service_ratios = [
                [_nearest_shape(bundle, name, b) for b in range(len(row))]
                for name, row in zip(bundle.model_names, self.latency_s)
            ]
        # idle_latency: per model its idle gap and the extra seconds of a batch after it
        # (None: the p50 whatever the idle; scaled as the latencies are)
        self.idle_gap_s: list[float] | None = None
        if config.idle_latency and bundle.has_idle_latency:
            self.idle_gap_s = [g * scale for g in bundle.idle_gap_s]
            extra = (bundle.idle_latency_table_s - bundle.latency_table_s) * scale
            self.idle_extra_s = np.nan_to_num(extra).tolist()
        if config.batch_latency == "artifact":
            self.latency_s = [
                artifact_batch_times_s(row, bundle.max_batch_size(name))
                for row, name in zip(self.latency_s, bundle.model_names)
            ]
        self.threshold_rule = config.threshold_rule
        self.bypass_arrivals_at_first = config.bypass_arrivals_at_first
        loads = bundle.models["load_s"].to_numpy(dtype=np.float64)
        self.load_s = [config.load_s if config.load_s is not None else float(x) for x in loads]
        self.drop_limit_s = config.drop_factor * config.slo_s

        self.rng = random.Random(rng_seed)
        self.draw = self.rng.random  # uniform draws for the core's mix choice
        # batch-time noise: the draws' own stream where the seeds agree (so no draw moves),
        # its own where only the timing is redrawn (`SimConfig.replicate_redraws`)
        self.service_rng = self.rng if timing == rng_seed else random.Random(f"{timing}/service")
        self.hooks = hooks = PolicyHooks.of(policy)
        self.form_batch = hooks.batch_former
        priority = None
        if hooks.queue_priority is not None:
            arrival, prompt, score = self.arrival_s, self.prompt, self.router_scores
            priority = lambda q: hooks.queue_priority(arrival[q], score[prompt[q]])  # noqa: E731
        new_queue = queue_factory(config.queue, self.arrival_s, priority)
        self.workers = [Worker(i, new_queue()) for i in range(config.n_workers)]
        self.workers_of: list[list[Worker]] = [[] for _ in range(self.n_models)]
        self.central = config.dispatch == "central"
        self.jsq = config.dispatch == "jsq"
        self.model_queue = [new_queue() for _ in range(self.n_models)]
        self.incoming_of = [0] * self.n_models  # central: queries sent, still in their hop
        self.idle_of: list[list[Worker]] = [[] for _ in range(self.n_models)]
        self.orphans: list[int] = []  # queries whose model has no worker (until the next plan)
        self.keep_queues = config.on_plan_change == "keep"
        self.reroute_by_arrival = config.reroute_order == "arrival"
        # escalation=next-hosted: per model, the model an escalated image goes to (None: the
        # plan's next stage); set by apply_plan from the models the workers host
        self.next_hosted = config.escalation == "next-hosted"
        self.hosted_above: list[int] | None = None
        # a plan with per-worker loads (Plan.loaded): the workers of the lowest model hosted,
        # where new queries enter and each is routed by its worker's θ (None: the plan's route)
        self.entry: list[Worker] | None = None
        # a plan routed, its workers yet to be configured (`apply_plan`): the workers whose
        # model it changes, and the plan
        self.configuring: list[int] | None = None
        self.configuring_plan: Plan | None = None

        # the plan in force and its decision state
        self.plan: Plan | None = None
        self.state = PlanState(self.n_models)
        self._tabulate()

        # counters read by the controller
        self.inflight = 0
        self.arrived = 0
        self.finished = 0
        self.model_arrivals = [0] * self.n_models
        self.queued = [0] * self.n_models  # queries waiting per model (kept incrementally)
        self.load_busy_s = 0.0
        # every batch served: (worker, model, start_s, service_s, size, judged), in the order
        # they ended (`engine.RawRun.batches`)
        self.batch_log: list[tuple[int, int, float, float, int, bool]] = []
        # the artifact controller's in-flight bookkeeping (simulator.artifact_inflight)
        self.artifact_inflight = (
            ArtifactInflight(self.arrival_s, config.late_factor * config.slo_s)
            if config.demand_estimator == "artifact-inflight"
            else None
        )

    # ------------------------------------------------------------------ processes

    def start(self) -> None:
        self.env.process(self.arrival_process())
        if self.arrival_charge_s:
            self.env.process(self.charge_process())
        for worker in self.workers:
            self.env.process(self.worker_process(worker))

    def arrival_process(self):
        env = self.env
        shift = self.router_shift_s
        for q, t in enumerate(self.arrival_s):
            due = t + shift
            if due > env.now:
                yield env.timeout(due - env.now)
            self.inflight += 1
            if self.artifact_inflight is not None:
                self.artifact_inflight.arrive()
            if self.route_at_ingress:
                self.at_ingress_later(q, shift)
                continue
            if self.arrival_hop[0]:
                self.count_arrival_later(shift)
            else:
                self.arrived += 1
            self.admit_and_enter(q)

    def admit_and_enter(self, q: int, elapsed_s: float = 0.0) -> None:
        """Drop a new query the policy's `admit` refuses, else route it (`enter`) through the
        dispatch hop, `elapsed_s` of which have passed (its arrival hop, `route_at=ingress`)."""
        admit = self.hooks.admit
        if admit is not None and not admit(
            self.env.now, self.router_scores[self.prompt[q]], self.inflight
        ):
            self.drop(q)
            return
        self.enter(q, self.dispatch_hop if self.dispatch_hop[0] else None, elapsed_s)

    def at_ingress_later(self, q: int, elapsed_s: float) -> None:
        """`route_at=ingress`: count, admit and route a new query once an arrival hop from its
        trace time has passed (`elapsed_s` of it already have: the router's cost, which the
        dispatch hop does not include, so the hop's rest is what the arrival hop adds to it)."""
        left_s = self.arrival_hop_left_s(elapsed_s)
        if left_s <= 0.0:
            self._at_ingress(q, 0.0)
            return
        self.env.timeout(left_s).callbacks.append(lambda _: self._at_ingress(q, left_s))

    def _at_ingress(self, q: int, elapsed_s: float) -> None:
        self.arrived += 1
        self.admit_and_enter(q, elapsed_s)

    def charge_process(self):
        """Count each query's arrival at its time in the trace (before the router's cost):
        from then on it charges the batches running (`worker_process`)."""
        env = self.env
        for t in self.arrival_s:
            if t > env.now:
                yield env.timeout(t - env.now)
            self.arrivals_charged += 1

    def worker_process(self, w: Worker):
        """Swap, wait, form a batch (the core's rule or the hook), serve it; then accept or
        escalate each image by the core's decision tabulated per prompt, or the hook."""
        env = self.env
        arrival = self.arrival_s
        start_s = self.start_s
        first_model = self.first_model
        prompt = self.prompt
        stage = self.stage
        latency = self.latency_s
        form_batch = self.form_batch
        hook = self.hooks.accept_or_escalate
        final, accept = STAGE_FINAL, ACCEPT  # locals: read per image
        service = self.config.service_time
        max_wait = self.config.max_wait_s
        drop_limit = self.drop_limit_s
        disc_batch = self.disc_batch_s  # disc_cost_per=batch: per batch of any model
        idle_gap = self.idle_gap_s
        charge = self.arrival_charge_s
        while True:
            if w.target != w.model:
                w.model = w.target
                if w.model != NO_MODEL and self.load_s[w.model] > 0:
                    load = self.load_s[w.model]
                    self.load_busy_s += load
                    yield env.timeout(load)
                    w.free_s = env.now
                    continue
            m = w.model
            queue = self.model_queue[m] if (self.central and m != NO_MODEL) else w.queue
            if not queue or m == NO_MODEL:
                w.idle = True
                if self.central and m != NO_MODEL:
                    self.idle_of[m].append(w)
                w.wake = env.event()
                yield w.wake
                continue
            if max_wait > 0 and len(queue) < w.batch:
                yield env.timeout(max_wait)
                if w.target != w.model or not queue:
                    continue
            table = latency[m]
            now = env.now
            batch, dropped = form_batch(queue, arrival, now, w.batch, table, drop_limit)
            for q in dropped:
                self.drop(q)
            self.queued[m] -= len(batch) + len(dropped)
            if not batch:
                continue
            n = len(batch)
            exec_s = table[n]
            if idle_gap is not None and idle_gap[m]:
                ramp = min(1.0, (now - w.free_s) / idle_gap[m])
                exec_s += self.idle_extra_s[m][n] * ramp
            if service == "exponential":
                exec_s = self.service_rng.expovariate(1.0 / exec_s)
            elif service != "deterministic":
                ratios = self.service_ratios[m][n]
                if ratios is not None:
                    exec_s *= draw_ratio(ratios, self.service_rng.random())
                else:
                    floor = self.service_floor[m][n]
                    spread = math.exp(self.service_sigma[m][n] * self.service_rng.gauss(0.0, 1.0))
                    exec_s *= floor + (1.0 - floor) * spread
            judged = self.state.judged[m]  # by the plan in force when the batch starts
            if self.disc_cost_s and judged:
                exec_s += self.disc_cost_s * n
            if disc_batch:
                exec_s += disc_batch
            for q in batch:
                if start_s[q] != start_s[q]:  # NaN: first service
                    start_s[q] = now
            w.busy_s += exec_s
            w.serving = n
            charged = self.arrivals_charged
            yield env.timeout(exec_s)
            while charge and self.arrivals_charged != charged:  # arrivals while it ran
                extra_s = (self.arrivals_charged - charged) * charge
                charged = self.arrivals_charged
                w.busy_s += extra_s
                yield env.timeout(extra_s)
            w.serving = 0
            done = w.free_s = env.now
            self.batch_log.append((w.index, m, now, done - now, n, judged))
            next_of = w.next_of or self.next_of_prompt[m]  # the plan in force now
            above = self.hosted_above  # escalation=next-hosted: the target per model
            for q in batch:
                if first_model[q] == NO_MODEL:
                    first_model[q] = m
                    self.first_done_s[q] = done
                if stage[q] != final:
                    p = prompt[q]
                    if hook is None:
                        nxt = next_of[p]
                    else:
                        nxt = hook(self.state, m, self.quality[m][p], done)
                    if nxt != accept and above is not None:
                        nxt = above[m]
                    if nxt != accept:
                        self.escalate(q, nxt)
                        continue
                self.complete(q, m, done)

    # ------------------------------------------------------------------ per-query decisions

    def escalate(self, q: int, m: int) -> None:
        self.escalated[q] = True
        self.stage[q] = STAGE_FINAL if m == self.state.last else STAGE_ESCALATED
        self.send(q, m, hop=self.escalation_hop if self.escalation_hop[0] else None)

    def after_hop(self, hop: Hop, action, *args, elapsed_s: float = 0.0) -> None:
        """`action(*args)` once a hop's overhead (`_draw_hop`) has passed, `elapsed_s` of it
        already (at once where that is all of it)."""
        delay_s = max(_draw_hop(hop, self.hop_rng) - elapsed_s, 0.0)
        self.env.timeout(delay_s).callbacks.append(lambda _: action(*args))

    def count_arrival_later(self, elapsed_s: float) -> None:
        """Count an arrival for the demand estimate once an arrival hop from its trace time
        has passed (`elapsed_s` of it already have: the router's cost)."""
        left_s = self.arrival_hop_left_s(elapsed_s)
        if left_s <= 0.0:
            self.arrived += 1
            return
        self.env.timeout(left_s).callbacks.append(self._count_arrival)

    def _count_arrival(self, _event) -> None:
        self.arrived += 1

    def arrival_hop_left_s(self, elapsed_s: float) -> float:
        """What is left of a new query's arrival hop, drawn on its own stream, once
        `elapsed_s` of it have passed (none where <= 0)."""
        return _draw_hop(self.arrival_hop, self.arrival_hop_rng) - elapsed_s

    def enter(self, q: int, hop: Hop | None = None, elapsed_s: float = 0.0) -> None:
        """Route a query that has not been served yet under the plan in force: the core's
        decision tabulated per prompt, else the policy's route hook, else a mix draw; sent
        to its worker through `hop`, `elapsed_s` of which have passed (`send`)."""
        p = self.prompt[q]
        if self.entry is not None:
            self._enter_at_lowest(q, p, hop, elapsed_s)
            return
        table = self.route_of_prompt
        if table is not None:
            m = table[p]
        elif self.hooks.route is not None:
            m = self.hooks.route(self.state, self.router_scores[p], self.env.now, self.queued)
        else:
            m = self.state.draw_mix(self.draw)
        if m == NO_MODEL:
            self.orphans.append(q)
            return
        if m == self.state.last:  # a cascade's last stage: bypassed
            self._bypass(q, self.state.first)
        self.send(q, m, hop=hop, elapsed_s=elapsed_s)

    def _enter_at_lowest(self, q: int, p: int, hop: Hop | None, elapsed_s: float) -> None:
        """The HADIS artifact's client and router (`Plan.loaded`): a worker of the lowest model
        hosted receives the query; its router, at that worker's θ, bypasses it to the plan's
        last stage, or the worker keeps it."""
        w = self._dispatch(self.entry)
        m = w.routed
        if m == self.state.last:
            self.stage[q] = STAGE_FINAL
        elif bypasses(self.router_scores[p], w.theta):
            self._bypass(q, m)
            self.send(q, self.state.last, hop=hop, elapsed_s=elapsed_s)
            return
        self.send(q, m, w, hop, elapsed_s)

    def _bypass(self, q: int, router_model: int) -> None:
        """Mark a query bypassed by the router of a worker of `router_model`."""
        self.bypassed[q] = True
        self.stage[q] = STAGE_FINAL
        if self.bypass_arrivals_at_first and self.workers_of[router_model]:
            self.model_arrivals[router_model] += 1  # registered by the router's worker
        if self.artifact_inflight is not None:  # the router's worker received it
            self.artifact_inflight.receive(q, self.env.now)

    def send(
        self,
        q: int,
        m: int,
        w: Worker | None = None,
        hop: Hop | None = None,
        elapsed_s: float = 0.0,
    ) -> None:
        """Queue a query at worker `w`, else at one hosting model m by the dispatch rule. With
        a `hop` (`elapsed_s` of it passed already) it is counted queued there at once and joins
        the queue once the hop has passed, as the serving path's ingress counts a query from
        the moment it sends it (`serving.ingress`: `sent`)."""
        workers = self.workers_of[m]
        if not workers:
            self.orphans.append(q)
            return
        self.model_arrivals[m] += 1
        self.queued[m] += 1
        if self.artifact_inflight is not None:
            self.artifact_inflight.receive(q, self.env.now)
        if self.central:
            if hop is not None:
                self.incoming_of[m] += 1
                self.after_hop(hop, self._arrive_central, q, m, elapsed_s=elapsed_s)
                return
            self._queue_central(q, m)
            return
        if w is None:
            w = self._dispatch(workers)
        if hop is not None:
            w.incoming += 1
            self.after_hop(hop, self._arrive_at, q, m, w, elapsed_s=elapsed_s)
            return
        self._queue_or_hold(q, m, w)  # w hosts m, or the plan routes m there

    def _queue_at(self, q: int, w: Worker) -> None:
        w.queue.append(q)
        if w.idle:
            w.idle = False
            w.wake.succeed()

    def _queue_central(self, q: int, m: int) -> None:
        self.model_queue[m].append(q)
        idle = self.idle_of[m]
        if idle:
            w = idle.pop()
            w.idle = False
            w.wake.succeed()

    def _queue_or_hold(self, q: int, m: int, w: Worker) -> bool:
        """Queue query q for model m at worker `w` if it serves m, else hold it there where
        the plan in force routes m there but the worker is yet to get it (`apply_plan`); False
        where neither (its model changed on the way)."""
        if w.target == m:
            self._queue_at(q, w)
            return True
        if w.routed == m:
            w.held.append(q)
            return True
        return False

    def _arrive_at(self, q: int, m: int, w: Worker) -> None:
        """A query sent to worker `w` for model m reaches it: queued or held there
        (`_queue_or_hold`), else (its model changed on the way) answered `resend`: routed
        again under the plan in force, with `on_plan_change=keep` queued for the worker's new
        model."""
        w.incoming -= 1
        if self._queue_or_hold(q, m, w):
            return
        if w.target == NO_MODEL:  # not counted by the plan change's recount
            self._reroute(q)
            return
        if self.keep_queues:
            self._restage((q,), w.target)
            self._queue_at(q, w)
            return
        self.queued[w.target] -= 1  # counted there by the plan change's recount
        self._reroute(q)

    def _arrive_central(self, q: int, m: int) -> None:
        """A query sent to model m's central queue reaches it, or is routed again where the
        model lost its workers on the way."""
        self.incoming_of[m] -= 1
        if self.workers_of[m]:
            self._queue_central(q, m)
            return
        self.queued[m] -= 1
        self._reroute(q)

    def _reroute(self, q: int) -> None:
        """Route a query again under the plan in force (its worker's model changed): one not
        yet served enters again, one past its first stage goes to the plan's `requeue`
        model."""
        if self.stage[q] == STAGE_OPEN:
            self.enter(q)
            return
        state = self.state
        m = state.requeue(self.draw)
        if m == NO_MODEL:
            self.orphans.append(q)
            return
        if m == state.last:
            self.stage[q] = STAGE_FINAL
        self.send(q, m)

    def _dispatch(self, workers: list[Worker]) -> Worker:
        """The worker a query goes to among `workers` (`SimConfig.dispatch`: jsq or random)."""
        if self.jsq:
            return min(workers, key=_backlog)
        return workers[int(self.rng.random() * len(workers))]

    def complete(self, q: int, m: int, now: float) -> None:
        self.final_model[q] = m
        self.completion_s[q] = now
        self.inflight -= 1
        self.finished += 1
        if self.artifact_inflight is not None:
            self.artifact_inflight.complete(q)

    def drop(self, q: int) -> None:
        self.dropped[q] = True
        self.inflight -= 1
        self.finished += 1

    # ------------------------------------------------------------------ controller side

    def queue_lengths(self) -> list[int]:
        """Queued (not in service) queries per model, orphans excluded."""
        return list(self.queued)

    def _recount_queued(self) -> None:
        if self.central:
            self.queued = [len(queue) + n for queue, n in zip(self.model_queue, self.incoming_of)]
            return
        self.queued = [0] * self.n_models
        for w in self.workers:
            if w.target != NO_MODEL:
                self.queued[w.target] += len(w.queue) + w.incoming
            if w.held:  # sent for the model it is yet to get
                self.queued[w.routed] += len(w.held)

    def preload(self) -> None:
        """Load every worker's target model at no cost: the initial plan's models are in place
        before the first arrival, as a serving system starts its replicas before traffic."""
        for w in self.workers:
            w.model = w.target

    def can_route_first(self, plan: Plan) -> bool:
        """Whether `plan` can be routed before its workers are configured (`apply_plan`'s
        `workers_later`): per-worker dispatch and no per-worker loads, the serving path's
        protocol (central dispatch and `Plan.loaded` have no serving path and switch at once)."""
        return not self.central and plan.loaded is None

    def apply_plan(self, plan: Plan, workers_later: bool = False) -> None:
        """Put a plan in force: the core's decision state and placement (fewest swaps, or the
        workers `plan.loaded` names, the others kept as they are), per-worker thresholds,
        escalation targets (`escalation=next-hosted`); then its workers' configuration
        (`configure_workers`), or with `workers_later` only routing, as the serving path's
        ingress routes by a plan before its workers get it (`SimConfig.plan_switch`): queries
        sent to a worker for the model it is yet to load are held there until
        `configure_workers`. The queries waiting for a plan are routed again either way."""
        if self.configuring is not None:  # the previous plan's workers first
            self.configure_workers(self.configuring_plan)
        bundle = self.bundle
        index = bundle.model_index
        self.plan = plan
        state = PlanState.from_plan(
            plan, index, self.router_scores_np, self.quality_np, self.threshold_rule
        )
        self.state = state
        self._tabulate()
        desired = [0] * self.n_models
        for name, count in plan.workers.items():
            desired[index(name)] = count
        loaded = plan.loaded
        if loaded is None:
            routed, changed = place_workers([w.routed for w in self.workers], desired)
        else:
            routed, changed = self._loaded_targets(loaded, desired)
        self.workers_of = [[] for _ in range(self.n_models)]
        for w, m in zip(self.workers, routed):
            w.routed = m
            if m != NO_MODEL:
                self.workers_of[m].append(w)
        self.configuring, self.configuring_plan = changed, plan
        n_loaded = len(self.workers) if loaded is None else len(loaded)
        self._load_thresholds(n_loaded, loaded is not None)
        if self.next_hosted:
            self.hosted_above = hosted_above([bool(ws) for ws in self.workers_of])
        if not workers_later:
            self.configure_workers(plan)
            return
        waiting, self.orphans = self.orphans, []
        for q in waiting:
            self._reroute(q)

    def configure_order(self) -> list[int]:
        """The workers whose model the plan being configured changes, in a random order (the
        order its `configure` calls reach them on the serving path: `plan_switch=per-swap`)."""
        order = list(self.configuring or ())
        self.configure_rng.shuffle(order)
        return order

    def configure_workers(self, plan: Plan, worker: int | None = None) -> None:
        """The workers get plan `plan`'s configuration (unless a later plan's came first):
        the workers whose model changed (only `worker`, where given, of those yet to) take it,
        their queues routed again (`on_plan_change=reroute`, in `reroute_order`) or kept for
        the new model (`keep`), the queries held for it queued; every worker not waiting for
        its own takes its batch size."""
        if plan is not self.configuring_plan:
            return
        changed = self.configuring
        if worker is not None:
            changed = [worker]
            self.configuring = [i for i in self.configuring if i != worker]
        if worker is None or not self.configuring:
            self.configuring, self.configuring_plan = None, None
        bundle = self.bundle
        # (query, the worker that answers it `resend`: it counts there until then; None)
        redispatch: list[tuple[int, Worker | None]] = [(q, None) for q in self.orphans]
        self.orphans = []
        for i in changed:
            w = self.workers[i]
            w.target = w.routed
            if not (self.keep_queues and w.target != NO_MODEL):
                redispatch.extend((q, w) for q in w.queue)
                w.incoming += len(w.queue)
                w.queue.clear()
            if w.held:
                w.queue.extend(w.held)
                w.held.clear()
            if w.idle:
                w.idle = False
                w.wake.succeed()
        if self.keep_queues:  # each worker's model serves its queue, judged by the new plan
            for w in self.workers:
                if w.target != NO_MODEL:
                    self._restage(w.queue, w.target)
        self.idle_of = [[] for _ in range(self.n_models)]
        n_loaded = len(self.workers) if plan.loaded is None else len(plan.loaded)
        for w in self.workers[:n_loaded]:  # the others are not reloaded: keep their batch size
            if w.target != NO_MODEL and w.target == w.routed:
                name = bundle.model_names[w.target]
                size = plan.batch_size.get(name, 1)
                w.batch = max(1, min(int(size), bundle.max_batch_size(name)))
        if self.central:
            for m, workers in enumerate(self.workers_of):
                if not workers and self.model_queue[m]:
                    redispatch.extend((q, None) for q in self.model_queue[m])
                    self.model_queue[m].clear()
        # reroute_order=serving: the serving path's order (`serving.ingress`), the queries
        # waiting for a plan first (woken as the ingress gets it), then each changed worker's
        # queue, in worker order and queue order (as the workers answer `resend`). A query
        # leaves its worker's count as it is routed again, as the ingress's `sent[w]`: until
        # then jsq counts it at the worker that still holds it
        if self.reroute_by_arrival:
            redispatch.sort(key=_query_id)
        self._recount_queued()
        queued = self.queued
        for q, w in redispatch:
            if w is not None:
                w.incoming -= 1
                if w.target != NO_MODEL:
                    queued[w.target] -= 1
            self._reroute(q)

    def _loaded_targets(
        self, loaded: tuple[str, ...], desired: list[int]
    ) -> tuple[list[int], list[int]]:
        """(model per worker, workers whose model changed) under the artifact's placement: the
        first len(loaded) workers load `loaded`, the others keep their model."""
        if self.central:
            raise InputError(
                "dispatch: 'central' cannot carry a plan with per-worker loads (spare=keep: each "
                "worker routes by its own thresholds); use random or jsq"
            )
        index = self.bundle.model_index
        workers = self.workers
        targets = [index(name) for name in loaded] + [w.routed for w in workers[len(loaded) :]]
        counts = [0] * self.n_models
        for m in targets:
            if m != NO_MODEL:
                counts[m] += 1
        if counts != desired:
            raise ValueError(
                f"plan counts {desired} workers per model, its loaded and kept ones are {counts}"
            )
        return targets, [w.index for w, m in zip(workers, targets) if m != w.routed]

    def _load_thresholds(self, n_loaded: int, per_worker: bool) -> None:
        """Per-worker θ and τ: the first `n_loaded` workers take the plan's. With per-worker
        loads (`Plan.loaded`) the others keep theirs and, where their τ is not the plan's, judge
        by a table of their own, and new queries enter at the workers of the lowest model
        hosted; without, every worker follows the plan."""
        state = self.state
        tables: dict[tuple[int, float], list[int]] = {}
        for w in self.workers:
            m = w.routed
            if w.index < n_loaded and m != NO_MODEL:
                w.theta, w.tau = state.theta, state.tau_of[m]
            if not per_worker or m == NO_MODEL or w.tau == state.tau_of[m]:
                w.next_of = None
                continue
            key = (m, w.tau)
            if key not in tables:
                escalated = escalates(self.quality_np[:, m], w.tau)
                tables[key] = np.where(escalated, state.next_of[m], ACCEPT).tolist()
            w.next_of = tables[key]
        hosted = [ws for ws in self.workers_of if ws]
        usable = per_worker and state.is_cascade and self.hooks.route is None
        self.entry = hosted[0] if usable and hosted else None

    def _restage(self, queue, m: int) -> None:
        """Queued queries that model m will serve, staged as if sent to it under the plan in
        force: the plan's last stage returns their image, any other model judges it."""
        last = self.state.last
        stage, escalated = self.stage, self.escalated
        for q in queue:
            if m == last:
                stage[q] = STAGE_FINAL
            elif stage[q] == STAGE_FINAL:
                stage[q] = STAGE_ESCALATED if escalated[q] else STAGE_OPEN

    def _tabulate(self) -> None:
        """The plan's decisions per prompt: the prompts' scores are known before the run."""
        state = self.state
        by_hook = self.hooks.route is not None
        self.route_of_prompt = None if by_hook else state.route_table(self.router_scores_np)
        self.next_of_prompt = [
            state.escalation_table(m, self.quality_np[:, m]) for m in range(self.n_models)
        ]


# src/worker/model.py LoadedModel.__init__ (pipeline 'multi'): the profiled batch sizes, and
# the sizes it fills in as the average of two (in this order: 7 averages the filled-in 6)
ARTIFACT_PROFILED_BATCHES = (1, 2, 4, 8, 16, 32)
ARTIFACT_AVERAGED_BATCHES = ((3, 2, 4), (5, 2, 8), (6, 4, 8), (7, 6, 8))
ARTIFACT_OTHER_BATCH = 4  # executeBatch: a size outside 1-8, 16, 32 runs for the batch-4 time


def artifact_batch_times_s(row_s: list[float], max_batch: int) -> list[float]:
    """A model's batch execution times (index = batch size) as the HADIS artifact's workers
    look them up (`executeBatch`, `serviceQueue`): `row_s`'s times at the profiled sizes, in
    ms to 0.1 ms (`round(..., 1)`), sizes 3, 5, 6, 7 as averages, sizes above 8 but 16 and 32
    the batch-4 time. A size up to 8 whose average needs a size above `max_batch` keeps
    `row_s`'s time (the artifact profiles every model to 32)."""
    ms = {b: round(row_s[b] * 1000.0, 1) for b in ARTIFACT_PROFILED_BATCHES if b <= max_batch}
    for b, lo, hi in ARTIFACT_AVERAGED_BATCHES:
        if hi <= max_batch:
            ms[b] = (ms[lo] + ms[hi]) / 2
    times = [math.nan] * len(row_s)
    for b in range(1, max_batch + 1):
        if b in ms:
            times[b] = ms[b] / 1000.0
        elif b <= 8:
            times[b] = round(row_s[b] * 1000.0, 1) / 1000.0
        else:
            times[b] = ms[ARTIFACT_OTHER_BATCH] / 1000.0
    return times


def _query_id(entry: tuple[int, Worker | None]) -> int:
    return entry[0]


def _backlog(w: Worker) -> int:
    """The queries outstanding at a worker, jsq's measure: queued (on their way there too, or
    held for its next model) plus the batch in service (what an ingress knows for free,
    `serving.dispatch`); a loading worker serves none."""
    return len(w.queue) + len(w.held) + w.serving + w.incoming


# a hop's median seconds, lognormal sigma and measured shape (None: the lognormal)
Hop = tuple[float, float, tuple[float, ...] | None]


def _hop(bundle: Bundle, name: str) -> Hop:
    median_s, p95_s = bundle.overhead_s(name)
    return median_s, lognormal_sigma(median_s, p95_s), bundle.hop_shape.get(name)


def _draw_hop(hop: Hop, rng: random.Random) -> float:
    """One hop's seconds: its median times a draw from its measured shape where the bundle
    has one, else lognormal with its (median, sigma); the median when sigma is 0."""
    median_s, sigma, ratios = hop
    if ratios is not None:
        return median_s * draw_ratio(ratios, rng.random())
    return median_s * math.exp(sigma * rng.gauss(0.0, 1.0)) if sigma else median_s


def _nearest_shape(bundle: Bundle, model: str, batch_size: int) -> tuple[float, ...] | None:
    """The measured shape of `model`'s batches nearest `batch_size` in size (the smaller on a
    tie); None when the model has none."""
    sizes = [b for (name, b) in bundle.latency_shape if name == model]
    if not sizes:
        return None
    return bundle.latency_shape[(model, nearest_batch_size(sizes, batch_size))]
