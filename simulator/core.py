"""The decision core: every per-query rule of a serving policy, without a clock or SimPy.

Drivers own the clock, the queues and the scores; they ask the core what to do. The SimPy
cluster (`simulator.cluster`) is one driver; a serving path (real or emulated models, wall
time) is meant to be another, calling the same functions with `time.monotonic()` values. The
FID estimators (`simulator.metrics`), the cascade tables (`simulator.cascade`) and the routers'
evaluation (`routers.base`) use the same two rules, vectorised.

Models are integer indices (the bundle's `model_names` order); a cascade stage is named by the
model serving it, so a model appears at most once in a cascade. Scores are values computed for
one query (a live system has no prompt ids):

* route: a router score `>= θ` bypasses the cascade to its last (heavy) stage (`bypasses`);
* accept-or-escalate: a stage's image with quality score `< τ` of that stage goes to the next
  stage (`escalates`), else it is returned;
* θ and τ are quantiles of reference scores at the plan's ratios (`router_threshold`,
  `quality_threshold`, HADIS §4.2-4.3): linear-interpolated (`quantile`, the default) or the
  HADIS artifact's order statistic (`order-statistic`, `THRESHOLD_RULES`).

A budget router (RouteT2I: never exceed a heavy share) is the same `>=` rule with the smallest θ
that keeps the share within budget (`routers.metrics.budget_threshold` gives the largest score
left on the light side; `threshold_above` turns it into that θ).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from simulator.policy import Plan

NO_MODEL = -1  # no model: an orphaned query, an idle worker
ACCEPT = -1  # accept_or_escalate: the image is returned
# how a ratio becomes a score threshold: numpy's linear-interpolated quantile, or the HADIS
# artifact's order statistic (src/worker/model.py `isHardByRouter`, `executeBatch`)
THRESHOLD_RULES = ("quantile", "order-statistic")


def bypasses(router_score, theta):
    """The router rule: a score >= θ goes straight to the heavy stage (floats or arrays)."""
    return router_score >= theta


def escalates(quality_score, tau):
    """The discriminator rule: an image with quality < τ goes to the next stage (floats or
    arrays)."""
    return quality_score < tau


def router_threshold(
    router_score: np.ndarray, router_ratio: float, rule: str = "quantile"
) -> float:
    """θ over reference scores: a share `router_ratio` of them bypasses. `quantile`: the
    (1 - r)-quantile (r = 0: none); `order-statistic`: the artifact's sorted score at
    max(int(N (1 - r)) - 1, 0) (r = 0 still bypasses the top score)."""
    if rule == "order-statistic":
        return order_statistic(router_score, len(router_score) * (1.0 - router_ratio))
    if router_ratio <= 0.0:
        return math.inf
    return float(np.quantile(router_score, 1.0 - min(router_ratio, 1.0)))


def quality_threshold(stage_score: np.ndarray, disc_ratio: float, rule: str = "quantile") -> float:
    """τ over a stage's reference quality scores: a share `disc_ratio` escalates. `quantile`:
    the c-quantile (c = 1: all); `order-statistic`: the artifact's sorted score at
    max(int(N c) - 1, 0) (c = 1 keeps the top score)."""
    if rule == "order-statistic":
        return order_statistic(stage_score, len(stage_score) * disc_ratio)
    if disc_ratio >= 1.0:
        return math.inf
    return float(np.quantile(stage_score, max(disc_ratio, 0.0)))


def order_statistic(scores: np.ndarray, rank: float) -> float:
    """The HADIS artifact's threshold: the sorted scores at index max(int(rank) - 1, 0), with
    `rank` the float the artifact computes (N (1 - r) or N c; `int` truncates it)."""
    index = min(max(int(rank) - 1, 0), len(scores) - 1)
    return float(np.partition(np.asarray(scores, dtype=np.float64), index)[index])


def threshold_above(cut: float) -> float:
    """The θ whose `>=` rule sends exactly the scores `> cut` to the heavy stage."""
    return cut if math.isinf(cut) else math.nextafter(cut, math.inf)


class PlanState:
    """A plan's per-query decision state: cascade stages with θ and τ per model, or mix shares.

    Built once per plan (`from_plan`); `route` and `accept_or_escalate` decide one query from
    its score values, `route_table` and `escalation_table` many at once (the same rules).
    """

    __slots__ = (
        "stages",
        "first",
        "last",
        "theta",
        "tau_of",
        "next_of",
        "judged",
        "mix_models",
        "mix_cum",
    )

    def __init__(
        self,
        n_models: int,
        stages: Sequence[int] = (),
        theta: float = math.inf,
        tau_of: Sequence[float] | None = None,
        mix: Mapping[int, float] | None = None,
    ) -> None:
        """`stages`: cascade models, light to heavy; `tau_of`: τ per model (models outside
        the cascade are judged as its first stage: a query in service when the plan changed);
        `mix`: share per model of a plan without cascade."""
        if stages and mix:
            raise ValueError("a plan state is a cascade or a mix, not both")
        if len(set(stages)) != len(stages) or len(stages) == 1:
            raise ValueError(f"a cascade needs >= 2 distinct stages, got {list(stages)}")
        self.stages = tuple(stages)
        self.first = stages[0] if stages else NO_MODEL
        self.last = stages[-1] if stages else NO_MODEL
        self.theta = theta if stages else math.inf
        self.tau_of = [-math.inf] * n_models
        self.next_of = [ACCEPT] * n_models
        self.judged = [False] * n_models  # the discriminator scores this model's images
        if stages:
            for m in range(n_models):
                if m != self.last:
                    self.tau_of[m] = tau_of[m]
                    self.next_of[m] = self.last
            for here, after in zip(stages, stages[1:]):
                self.next_of[here] = after
                self.judged[here] = True
        shares = [(m, s) for m, s in (mix or {}).items() if s > 0]
        total = sum(s for _, s in shares)
        self.mix_models = [m for m, _ in shares]
        self.mix_cum = list(np.cumsum([s / total for _, s in shares])) if shares else []

    @classmethod
    def from_plan(
        cls,
        plan: Plan,
        model_index: Callable[[str], int],
        router_reference: np.ndarray,
        quality_reference: np.ndarray,
        threshold_rule: str = "quantile",
    ) -> PlanState:
        """θ from `plan.router_ratio` over the router's reference scores, τ per stage from
        `plan.disc_ratios` over each model's reference quality scores (n_prompts, n_models),
        both by `threshold_rule` (`THRESHOLD_RULES`); models outside the cascade get the first
        stage's ratio."""
        n_models = quality_reference.shape[1]
        if plan.stages is None:
            return cls(n_models, mix={model_index(m): s for m, s in plan.mix.items()})
        stages = [model_index(m) for m in plan.stages]
        ratio_of = [plan.disc_ratios[0]] * n_models
        for m, ratio in zip(stages, plan.disc_ratios):
            ratio_of[m] = ratio
        tau_of = [
            quality_threshold(quality_reference[:, m], ratio_of[m], threshold_rule)
            for m in range(n_models)
        ]
        theta = router_threshold(router_reference, plan.router_ratio, threshold_rule)
        return cls(n_models, stages, theta, tau_of)

    @property
    def is_cascade(self) -> bool:
        return bool(self.stages)

    def route(self, router_score: float, draw: Callable[[], float]) -> int:
        """First model of a new query: the last stage if the router bypasses, else the first;
        under a mix a model drawn by share (`draw()` uniform in [0, 1), called only when there
        is a choice); NO_MODEL under an empty plan."""
        if self.stages:
            return self.last if bypasses(router_score, self.theta) else self.first
        return self.draw_mix(draw)

    def draw_mix(self, draw: Callable[[], float]) -> int:
        models = self.mix_models
        if len(models) <= 1:
            return models[0] if models else NO_MODEL
        u = draw()
        for m, edge in zip(models, self.mix_cum):
            if u < edge:
                return m
        return models[-1]

    def accept_or_escalate(self, model: int, quality_score: float) -> int:
        """ACCEPT, or the next model, for an image of `model` with this quality score."""
        return self.next_of[model] if escalates(quality_score, self.tau_of[model]) else ACCEPT

    def route_table(self, router_scores: np.ndarray) -> list[int] | None:
        """`route` of each of many router scores (a driver that knows its scores in advance
        tabulates once per plan); None under a mix with a choice (each query draws)."""
        if self.stages:
            return np.where(bypasses(router_scores, self.theta), self.last, self.first).tolist()
        if len(self.mix_models) > 1:
            return None
        return [self.draw_mix(None)] * len(router_scores)

    def escalation_table(self, model: int, quality_scores: np.ndarray) -> list[int]:
        """`accept_or_escalate` of `model`'s images for each of many quality scores."""
        escalated = escalates(quality_scores, self.tau_of[model])
        return np.where(escalated, self.next_of[model], ACCEPT).tolist()

    def requeue(self, draw: Callable[[], float]) -> int:
        """Model for a query past its first stage whose queue the plan took away: the last
        stage of a cascade, a mix draw otherwise."""
        return self.last if self.stages else self.draw_mix(draw)


def place_workers(current: Sequence[int], desired: Sequence[int]) -> tuple[list[int], list[int]]:
    """(model per worker, workers whose model changed) with the fewest swaps: a worker keeps
    its model while that model still needs workers; the others take the missing models in
    model order, then the rest become spare (NO_MODEL). `changed` lists the reassigned workers
    in that order, then the workers left spare.

    `current`: model per worker (NO_MODEL = none); `desired`: workers wanted per model."""
    if sum(desired) > len(current):
        raise ValueError(f"plan uses {sum(desired)} workers, the cluster has {len(current)}")
    kept = [0] * len(desired)
    new = list(current)
    free: list[int] = []
    for w, m in enumerate(current):
        if m != NO_MODEL and kept[m] < desired[m]:
            kept[m] += 1
        else:
            free.append(w)
    changed: list[int] = []
    taken = 0
    for m, want in enumerate(desired):
        need = want - kept[m]
        for w in free[taken : taken + need]:
            if new[w] != m:
                changed.append(w)
            new[w] = m
        taken += need
    for w in free[taken:]:
        if new[w] != NO_MODEL:
            changed.append(w)
        new[w] = NO_MODEL
    return new, changed


def hosted_above(hosted: Sequence[bool]) -> list[int]:
    """Per model, the lowest-index model above it that some worker hosts (ACCEPT: none).

    The HADIS artifact's escalation target (src/load_balancer/load_balancer.py
    `balanceLoadEqual` gives a worker of model level l a table of the workers of the next level
    hosted above l, plus the sink; src/worker/worker.py `getHostID(None)` draws among its
    non-sink entries, equal weights, and sends to the sink, which returns the image, when there
    are none). `hosted[m]`: a worker hosts model m."""
    above = [ACCEPT] * len(hosted)
    nearest = ACCEPT
    for m in reversed(range(len(hosted))):
        above[m] = nearest
        if hosted[m]:
            nearest = m
    return above


def form_batch(
    queue,
    arrival_s: Sequence[float],
    now_s: float,
    max_batch: int,
    latency_s: Sequence[float],
    drop_limit_s: float,
) -> tuple[list[int], list[int]]:
    """(batch, dropped): pop queries from the front of `queue` (a deque-like of query ids)
    until `max_batch` are taken or it is empty, dropping each whose completion would pass
    `drop_limit_s` after its arrival. The completion is `now_s` + the latency of the batch
    size planned at the start (`latency_s[b]`: seconds for a batch of b)."""
    finish_by = now_s + latency_s[min(max_batch, len(queue))]
    batch: list[int] = []
    dropped: list[int] = []
    while queue and len(batch) < max_batch:
        q = queue.popleft()
        if finish_by - arrival_s[q] > drop_limit_s:
            dropped.append(q)
        else:
            batch.append(q)
    return batch, dropped
