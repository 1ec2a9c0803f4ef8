"""The simulated GPU cluster: SimPy worker processes, dispatch, cascade decisions.

One long-lived SimPy process per worker (never one per query). Per-query state lives in flat
lists indexed by query id so every event costs O(1): no pandas, no dict rebuilds.

Query flow under a cascade plan (HADIS §4.1): arrival (+ router cost) -> router bypass to the
heavy model if hardness >= θ, else the light model -> the discriminator accepts the light image
if its quality >= τ, else the query is escalated to the heavy model. Under a mix plan each query
goes to one model drawn by the plan's shares.
"""

from __future__ import annotations

import math
import random
from collections import deque

import numpy as np
import simpy

from simulator.bundle import Bundle
from simulator.cascade import quality_threshold, router_threshold
from simulator.config import SimConfig
from simulator.policy import Plan, Policy

STAGE_FIRST = 0  # not yet served by any model
STAGE_HEAVY = 1  # bypassed or escalated: waiting for the heavy model
NO_MODEL = -1
Z95 = 1.6448536269514722  # standard normal 95th percentile


class Worker:
    """A GPU worker: the model it hosts, its max batch size, its FIFO queue."""

    __slots__ = ("index", "model", "target", "batch", "queue", "idle", "wake", "busy_s")

    def __init__(self, index: int) -> None:
        self.index = index
        self.model = NO_MODEL  # model loaded now
        self.target = NO_MODEL  # model the plan wants here
        self.batch = 1
        self.queue: deque[int] = deque()
        self.idle = False
        self.wake: simpy.Event | None = None
        self.busy_s = 0.0


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
    ) -> None:
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
        self.stage = [STAGE_FIRST] * n

        self.router_scores_np = np.asarray(policy.router_scores, dtype=np.float64)
        self.quality_np = np.asarray(policy.quality_scores, dtype=np.float64)
        self.router_scores = self.router_scores_np.tolist()
        self.quality = [self.quality_np[:, m].tolist() for m in range(self.n_models)]
        self.router_shift_s = (
            config.router_cost_s * config.time_scale if policy.uses_router else 0.0
        )
        self.disc_cost_s = (
            config.disc_cost_s * config.time_scale if policy.uses_discriminator else 0.0
        )
        scale = config.time_scale
        self.latency_s = [(row * scale).tolist() for row in bundle.latency_table_s]
        p95 = bundle.latency_p95_table_s * scale
        self.lognormal_sigma = [
            [_lognormal_sigma(a, b) for a, b in zip(p50row, p95row)]
            for p50row, p95row in zip(self.latency_s, p95.tolist())
        ]
        loads = bundle.models["load_s"].to_numpy(dtype=np.float64)
        self.load_s = [config.load_s if config.load_s is not None else float(x) for x in loads]
        self.drop_limit_s = config.drop_factor * config.slo_s

        self.rng = random.Random(rng_seed)
        self.workers = [Worker(i) for i in range(config.n_workers)]
        self.workers_of: list[list[Worker]] = [[] for _ in range(self.n_models)]
        self.central = config.dispatch == "central"
        self.jsq = config.dispatch == "jsq"
        self.model_queue: list[deque[int]] = [deque() for _ in range(self.n_models)]
        self.idle_of: list[list[Worker]] = [[] for _ in range(self.n_models)]
        self.orphans: list[int] = []  # queries whose model has no worker (until the next plan)

        # the plan in force
        self.plan: Plan | None = None
        self.cascade = False
        self.light = NO_MODEL
        self.heavy = NO_MODEL
        self.theta = math.inf
        self.tau_of = [math.inf] * self.n_models
        self.mix_models: list[int] = []
        self.mix_cum: list[float] = []

        # counters read by the controller
        self.inflight = 0
        self.arrived = 0
        self.finished = 0
        self.model_arrivals = [0] * self.n_models
        self.queued = [0] * self.n_models  # queries waiting per model (kept incrementally)
        self.load_busy_s = 0.0

    # ------------------------------------------------------------------ processes

    def start(self) -> None:
        self.env.process(self.arrival_process())
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
            self.arrived += 1
            self.enter(q)

    def worker_process(self, w: Worker):
        env = self.env
        quality = self.quality
        arrival = self.arrival_s
        start_s = self.start_s
        stage = self.stage
        latency = self.latency_s
        service = self.config.service_time
        max_wait = self.config.max_wait_s
        drop_limit = self.drop_limit_s
        while True:
            if w.target != w.model:
                w.model = w.target
                if w.model != NO_MODEL and self.load_s[w.model] > 0:
                    load = self.load_s[w.model]
                    self.load_busy_s += load
                    yield env.timeout(load)
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
            planned = min(w.batch, len(queue))
            now = env.now
            finish_by = now + table[planned]
            batch = []
            before = len(queue)
            while queue and len(batch) < w.batch:
                q = queue.popleft()
                if finish_by - arrival[q] > drop_limit:
                    self.drop(q)
                else:
                    batch.append(q)
            self.queued[m] -= before - len(queue)
            if not batch:
                continue
            n = len(batch)
            exec_s = table[n]
            if service == "exponential":
                exec_s = self.rng.expovariate(1.0 / exec_s)
            elif service == "lognormal":
                exec_s *= math.exp(self.lognormal_sigma[m][n] * self.rng.gauss(0.0, 1.0))
            if self.disc_cost_s and self.cascade and m == self.light:
                exec_s += self.disc_cost_s * n
            for q in batch:
                if start_s[q] != start_s[q]:  # NaN: first service
                    start_s[q] = now
            w.busy_s += exec_s
            yield env.timeout(exec_s)
            done = env.now
            for q in batch:
                if self.first_model[q] == NO_MODEL:
                    self.first_model[q] = m
                    self.first_done_s[q] = done
                if (
                    stage[q] == STAGE_FIRST
                    and self.cascade
                    and m != self.heavy
                    and quality[m][self.prompt[q]] < self.tau_of[m]
                ):
                    self.escalated[q] = True
                    stage[q] = STAGE_HEAVY
                    self.send(q, self.heavy)
                else:
                    self.complete(q, m, done)

    # ------------------------------------------------------------------ per-query decisions

    def enter(self, q: int) -> None:
        """Route a query that has not been served yet under the plan in force."""
        if self.cascade:
            if self.router_scores[self.prompt[q]] >= self.theta:
                self.bypassed[q] = True
                self.stage[q] = STAGE_HEAVY
                self.send(q, self.heavy)
            else:
                self.send(q, self.light)
        elif self.mix_models:
            self.send(q, self.pick_mix())
        else:
            self.orphans.append(q)

    def pick_mix(self) -> int:
        models = self.mix_models
        if len(models) == 1:
            return models[0]
        u = self.rng.random()
        for m, edge in zip(models, self.mix_cum):
            if u < edge:
                return m
        return models[-1]

    def send(self, q: int, m: int) -> None:
        """Queue a query at a worker hosting model m."""
        workers = self.workers_of[m]
        if not workers:
            self.orphans.append(q)
            return
        self.model_arrivals[m] += 1
        self.queued[m] += 1
        if self.central:
            self.model_queue[m].append(q)
            idle = self.idle_of[m]
            if idle:
                w = idle.pop()
                w.idle = False
                w.wake.succeed()
            return
        if self.jsq:
            w = min(workers, key=_backlog)
        else:
            w = workers[int(self.rng.random() * len(workers))]
        w.queue.append(q)
        if w.idle:
            w.idle = False
            w.wake.succeed()

    def complete(self, q: int, m: int, now: float) -> None:
        self.final_model[q] = m
        self.completion_s[q] = now
        self.inflight -= 1
        self.finished += 1

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
            self.queued = [len(queue) for queue in self.model_queue]
            return
        self.queued = [0] * self.n_models
        for w in self.workers:
            if w.target != NO_MODEL:
                self.queued[w.target] += len(w.queue)

    def apply_plan(self, plan: Plan) -> None:
        """Put a plan in force: thresholds, placement (fewest swaps), batch sizes, re-dispatch."""
        bundle = self.bundle
        index = bundle.model_index
        self.plan = plan
        self.cascade = plan.light is not None
        if self.cascade:
            self.light, self.heavy = index(plan.light), index(plan.heavy)
            self.theta = router_threshold(self.router_scores_np, plan.router_ratio)
            self.tau_of = [
                quality_threshold(self.quality_np[:, m], plan.disc_ratio)
                for m in range(self.n_models)
            ]
            self.mix_models, self.mix_cum = [], []
        else:
            self.light = self.heavy = NO_MODEL
            shares = [(index(m), s) for m, s in plan.mix.items() if s > 0]
            total = sum(s for _, s in shares)
            self.mix_models = [m for m, _ in shares]
            self.mix_cum = list(np.cumsum([s / total for _, s in shares]))

        desired = [0] * self.n_models
        for name, count in plan.workers.items():
            desired[index(name)] = count
        if sum(desired) > len(self.workers):
            raise ValueError(
                f"plan uses {sum(desired)} workers, the cluster has {len(self.workers)}"
            )
        kept = [0] * self.n_models
        free: list[Worker] = []
        for w in self.workers:
            if w.target != NO_MODEL and kept[w.target] < desired[w.target]:
                kept[w.target] += 1
            else:
                free.append(w)
        redispatch: list[int] = []
        changed: list[Worker] = []
        for m in range(self.n_models):
            for _ in range(desired[m] - kept[m]):
                w = free.pop(0)
                if w.target != m:
                    changed.append(w)
                w.target = m
        for w in free:  # left without a model
            if w.target != NO_MODEL:
                changed.append(w)
            w.target = NO_MODEL
        for w in changed:
            redispatch.extend(w.queue)
            w.queue.clear()
            if w.idle:
                w.idle = False
                w.wake.succeed()
        self.workers_of = [[] for _ in range(self.n_models)]
        self.idle_of = [[] for _ in range(self.n_models)]
        for w in self.workers:
            if w.target != NO_MODEL:
                self.workers_of[w.target].append(w)
                size = plan.batch_size.get(bundle.model_names[w.target], 1)
                w.batch = max(
                    1, min(int(size), bundle.max_batch_size(bundle.model_names[w.target]))
                )
        if self.central:
            for m in range(self.n_models):
                if desired[m] == 0 and self.model_queue[m]:
                    redispatch.extend(self.model_queue[m])
                    self.model_queue[m].clear()
        redispatch.extend(self.orphans)
        self.orphans = []
        self._recount_queued()
        for q in sorted(redispatch):
            if self.stage[q] == STAGE_FIRST:
                self.enter(q)
            elif self.cascade:
                self.send(q, self.heavy)
            else:
                self.send(q, self.pick_mix())


def _backlog(w: Worker) -> int:
    return len(w.queue) + (0 if w.idle else 1)


def _lognormal_sigma(p50: float, p95: float) -> float:
    """σ of a lognormal with median p50 and 95th percentile p95 (0 when either is unknown)."""
    if not (p50 > 0 and p95 > p50):
        return 0.0
    return math.log(p95 / p50) / Z95
