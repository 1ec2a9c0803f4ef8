"""Per-query policy hooks: what a policy may decide for each query; the decision core's rules
by default.

A policy overrides a hook by defining a method of that name. `PolicyHooks.of` looks them up
once per run; a driver keeps its fast path for every hook left undefined (None here), so a
policy that overrides nothing costs nothing per query. Hooks see score values and times, never
prompt ids (a live system computes scores on the spot):

* `queue_priority(arrival_s, router_score) -> float` when a query joins a queue: lower is
  served first. Default: the run's `queue` discipline (fifo / edf).
* `admit(now_s, router_score, inflight) -> bool` on arrival: False drops the query at once.
  Default: admit all.
* `route(state, router_score, now_s, queued) -> model` when a query enters (on arrival, or
  again after a plan took its queue away). Default: `state.route`.
* `accept_or_escalate(state, model, quality_score, now_s) -> core.ACCEPT | next model` after
  each stage. Default: `state.accept_or_escalate`.
* `form_batch(queue, arrival_s, now_s, max_batch, latency_s, drop_limit_s) -> (batch,
  dropped)` when a worker starts a batch. Default: `core.form_batch`.

`state` is the plan in force (`core.PlanState`), `queued` the queries waiting per model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

from simulator.core import form_batch


@dataclass(frozen=True)
class PolicyHooks:
    """The hooks a policy overrides (None: the core's rule, on the driver's fast path)."""

    queue_priority: Callable | None = None
    admit: Callable | None = None
    route: Callable | None = None
    accept_or_escalate: Callable | None = None
    form_batch: Callable | None = None

    @classmethod
    def of(cls, policy: object) -> PolicyHooks:
        """The hooks `policy` defines (bound methods), each checked to be callable."""
        found = {}
        for f in fields(cls):
            hook = getattr(policy, f.name, None)
            if hook is not None and not callable(hook):
                raise TypeError(f"policy hook {f.name} is not callable: {hook!r}")
            found[f.name] = hook
        return cls(**found)

    @property
    def batch_former(self) -> Callable:
        """The batch formation in force: the policy's, else the core's."""
        return self.form_batch if self.form_batch is not None else form_batch
