"""The policy contract: what a serving policy sees (Observation) and decides (Plan).

The controller calls `Policy.plan(observation)` on its clock (every `plan_interval_s`); the
per-query decisions are the decision core's (`simulator.core.PlanState`) on the policy's score
values (`router_scores[prompt]`, `quality_scores[prompt, model]`):

* route:  bypass to the last stage  iff  router score >= θ(plan.router_ratio)
* accept: return a stage's image  iff  its quality score >= τ(that stage's disc ratio)

with θ and τ quantile thresholds over all bundle prompts. A policy may also decide per query by
defining hooks (queue priority, admission, route, accept/escalate, batch formation: see
`simulator.hooks`).

A new policy is a class plus `@register_policy("name")`; `simulator/` never imports `policies/`
(the CLI imports that package, which registers its policies here; `simulator.baselines`
registers the core's Clipper and static cascade, imported by `simulator.run`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from simulator.bundle import Bundle
from simulator.errors import InputError
from simulator.registry import Registry


@dataclass(frozen=True)
class Plan:
    """A resource plan: models per worker, batch sizes, and how queries flow.

    Cascade plans name their `stages`, light to heavy, with a discriminator ratio per stage but
    the last (`disc_ratios`); the router bypasses a share `router_ratio` to the last stage.
    Two-stage cascades may be written `light`, `heavy`, `disc_ratio` instead; either way all of
    these fields are set (light/heavy = first/last stage, disc_ratio = the first stage's).
    Mix plans (no cascade: Clipper, Proteus) set `mix`, the share of queries sent to each model.
    `fid` is the planner's expected FID (None: look it up).
    `loaded` (the HADIS artifact's placement, `spare=keep`): the model loaded on each of the
    first len(loaded) workers, in worker order, with this plan's batch sizes and thresholds;
    the other workers keep the model, batch size and thresholds they were loaded with, and
    `workers` counts them too. None: the simulator places `workers` with the fewest swaps and
    every worker runs the plan's batch sizes and thresholds.
    """

    workers: Mapping[str, int]
    batch_size: Mapping[str, int]
    light: str | None = None
    heavy: str | None = None
    router_ratio: float = 0.0
    disc_ratio: float = 0.0
    mix: Mapping[str, float] | None = None
    fid: float | None = None
    infeasible: bool = False
    stages: tuple[str, ...] | None = None
    disc_ratios: tuple[float, ...] | None = None
    loaded: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.stages is not None:
            self._set_from_stages()
        elif self.light is not None:
            if self.heavy is None:
                raise ValueError("a cascade plan needs a heavy model")
            object.__setattr__(self, "stages", (self.light, self.heavy))
            object.__setattr__(self, "disc_ratios", (self.disc_ratio,))
        if (self.stages is None) == (self.mix is None):
            raise ValueError("a plan is either a cascade (stages) or a mix, not both")
        ratios = (self.router_ratio, *(self.disc_ratios or ()))
        if not all(0.0 <= x <= 1.0 for x in ratios):
            raise ValueError("router_ratio and disc ratios must lie in [0, 1]")
        if any(n < 0 for n in self.workers.values()):
            raise ValueError("worker counts must be >= 0")
        if self.loaded is not None:
            object.__setattr__(self, "loaded", tuple(self.loaded))
        for name in set(self.loaded or ()):
            if self.loaded.count(name) > self.workers.get(name, 0):
                raise ValueError(f"loaded: {name} on more workers than `workers` gives it")

    def _set_from_stages(self) -> None:
        stages = tuple(self.stages)
        if len(stages) < 2 or len(set(stages)) != len(stages):
            raise ValueError(f"a cascade needs >= 2 distinct stages, got {list(stages)}")
        ratios = self.disc_ratios
        ratios = (self.disc_ratio,) * (len(stages) - 1) if ratios is None else tuple(ratios)
        if len(ratios) != len(stages) - 1:
            raise ValueError(f"{len(stages)} stages need {len(stages) - 1} disc ratios")
        if (self.light, self.heavy) not in ((None, None), (stages[0], stages[-1])):
            raise ValueError("light/heavy contradict the stages")
        for name, value in (
            ("stages", stages),
            ("disc_ratios", ratios),
            ("light", stages[0]),
            ("heavy", stages[-1]),
            ("disc_ratio", ratios[0]),
        ):
            object.__setattr__(self, name, value)

    @property
    def label(self) -> str:
        """`LIGHT->HEAVY` (`A->B->C`) for a cascade, `A+B` for a mix (positive shares)."""
        if self.stages is not None:
            return "->".join(self.stages)
        return "+".join(m for m, share in self.mix.items() if share > 0)

    @property
    def models(self) -> tuple[str, ...]:
        if self.stages is not None:
            return self.stages
        return tuple(m for m, share in self.mix.items() if share > 0)


@dataclass(frozen=True)
class Observation:
    """What the controller measured, handed to `Policy.plan`.

    Per-model tuples follow `bundle.model_names`.
    """

    now_s: float
    demand_qps: float  # the configured demand estimator's output
    arrival_rate_qps: float  # EWMA of arrivals per second
    inflight: int  # queries arrived and not yet finished
    queue_len: tuple[float, ...]  # EWMA of queued queries per model
    model_arrival_qps: tuple[float, ...]  # EWMA of arrivals per second per model
    n_workers: int
    slo_s: float
    current: Plan | None


@dataclass(frozen=True)
class PolicyContext:
    """Everything a policy may use to build itself."""

    bundle: Bundle
    n_workers: int
    slo_s: float
    time_scale: float = 1.0
    seed: int = 0
    options: Mapping[str, object] = field(default_factory=dict)
    load_s: float | None = None  # the run's model swap time (SimConfig.load_s); None: bundle's


class Policy(Protocol):
    """A serving policy. `router_scores` / `quality_scores` drive the per-query decisions."""

    name: str
    uses_router: bool  # queries pay the router cost on arrival
    uses_discriminator: bool  # light results pay the discriminator cost
    router_scores: np.ndarray  # (n_prompts,) hardness, higher = harder
    quality_scores: np.ndarray  # (n_prompts, n_models), higher = better

    def plan(self, observation: Observation) -> Plan: ...


PolicyFactory = Callable[[PolicyContext], Policy]


class UnknownPolicyError(InputError):
    pass


POLICIES: Registry[PolicyFactory] = Registry("policy", UnknownPolicyError)


def register_policy(name: str) -> Callable[[PolicyFactory], PolicyFactory]:
    """Class decorator: make a policy constructible by name."""
    return POLICIES.register(name)


def policy_names() -> list[str]:
    """Registered policies, sorted (importing `policies` registers all, `simulator.baselines`
    the core's)."""
    return sorted(POLICIES.names())


def make_policy(name: str, context: PolicyContext) -> Policy:
    return POLICIES.get(name)(context)
