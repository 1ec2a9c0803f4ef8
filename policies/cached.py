"""Cached planners (HADIS §5.5): reuse plans keyed by a discretised observation.

* `cache-d`  — key = the demand range [k·Δλ, (k+1)·Δλ) of the demand estimate;
* `cache-dq` — key = demand range × total-queue-length range [j·ΔQ, (j+1)·ΔQ).

On a hit the cached plan is applied as it is; on a miss the HADIS MILP is solved for the
current observation and its plan is stored under the key. Options: demand_bucket_qps (2.0,
in [0.001, 1e6]), queue_bucket (10.0, in [0.001, 1e9]), plus the HADIS planner options.
"""

from __future__ import annotations

import math

from policies.hadis import MilpCascadePolicy, table_options
from policies.planning import PLANNER_OPTIONS
from simulator.limits import Interval
from simulator.options import real
from simulator.policy import Observation, Plan, PolicyContext, register_policy

CACHE_OPTIONS = {
    **PLANNER_OPTIONS,
    "demand_bucket_qps": real(2.0, Interval(1e-3, 1e6)),
    "queue_bucket": real(10.0, Interval(1e-3, 1e9)),
}


class CachedPlanner(MilpCascadePolicy):
    def __init__(self, name: str, context: PolicyContext, use_queue: bool) -> None:
        super().__init__(name, context, table_options(context), declared=CACHE_OPTIONS)
        self.use_queue = use_queue
        self.cache: dict[tuple[int, ...], Plan] = {}
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
            return cached
        self.misses += 1
        plan = self.to_plan(self.solve(observation))
        self.cache[key] = plan
        return plan


@register_policy("cache-d")
def cache_d(context: PolicyContext) -> CachedPlanner:
    return CachedPlanner("cache-d", context, use_queue=False)


@register_policy("cache-dq")
def cache_dq(context: PolicyContext) -> CachedPlanner:
    return CachedPlanner("cache-dq", context, use_queue=True)
