"""Cached planners (HADIS §5.5): reuse plans keyed by a discretised observation.

* `cache-d`  — key = the demand range [k·Δλ, (k+1)·Δλ) of the demand estimate;
* `cache-dq` — key = demand range × total-queue-length range [j·ΔQ, (j+1)·ΔQ).

On a hit the cached plan is the candidate; on a miss the HADIS MILP is solved for the
current observation and its plan is stored under the key. The candidate then passes HADIS's
swap-cost rule (`policies.planning.SwapRule`), which may keep the plan in force. Options:
demand_bucket_qps (2.0, in [0.001, 1e6]), queue_bucket (10.0, in [0.001, 1e9]), plus the HADIS
options (`policies.planning.HADIS_OPTIONS`).
"""

from __future__ import annotations

import math

from policies.hadis import MilpCascadePolicy, table_options
from policies.milp import PlanSolution
from policies.planning import HADIS_OPTIONS
from simulator.limits import Interval
from simulator.options import real
from simulator.policy import Observation, Plan, PolicyContext, register_policy

CACHE_OPTIONS = {
    **HADIS_OPTIONS,
    "demand_bucket_qps": real(2.0, Interval(1e-3, 1e6)),
    "queue_bucket": real(10.0, Interval(1e-3, 1e9)),
}


class CachedPlanner(MilpCascadePolicy):
    def __init__(self, name: str, context: PolicyContext, use_queue: bool) -> None:
        super().__init__(name, context, table_options(context), declared=CACHE_OPTIONS)
        self.use_queue = use_queue
        self.cache: dict[tuple[int, ...], tuple[PlanSolution, Plan]] = {}
        self.hits = 0
        self.misses = 0

    def key(self, observation: Observation) -> tuple[int, ...]:
        demand = math.floor(observation.demand_qps / self.options["demand_bucket_qps"])
        if not self.use_queue:
            return (demand,)
        queue = math.floor(sum(observation.queue_len) / self.options["queue_bucket"])
        return (demand, queue)

    def plan(self, observation: Observation) -> Plan:
        key = self.key(observation)
        cached = self.cache.get(key)
        if cached is not None:
            self.hits += 1
        else:
            self.misses += 1
            solution = self.solve(observation)
            cached = self.cache[key] = (solution, self.to_plan(solution))
        return self.hold_or_switch(observation, *cached)


@register_policy("cache-d")
def cache_d(context: PolicyContext) -> CachedPlanner:
    return CachedPlanner("cache-d", context, use_queue=False)


@register_policy("cache-dq")
def cache_dq(context: PolicyContext) -> CachedPlanner:
    return CachedPlanner("cache-dq", context, use_queue=True)
