"""The policy contract: what a serving policy sees (Observation) and decides (Plan).

The controller calls `Policy.plan(observation)` on its clock (every `plan_interval_s`); the
per-query decisions are cheap array lookups the cluster makes with the policy's score arrays:

* route:  bypass to heavy  iff  router_scores[prompt] >= θ(plan.router_ratio)
* accept: return the light image  iff  quality_scores[prompt, light] >= τ(plan.disc_ratio)

with θ and τ the quantile thresholds of `simulator.cascade` over all bundle prompts.

A new policy is a class plus `@register_policy("name")`; `simulator/` never imports `policies/`
(the CLI imports that package, which registers its policies here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from simulator.bundle import Bundle
from simulator.errors import InputError


@dataclass(frozen=True)
class Plan:
    """A resource plan: models per worker, batch sizes, and how queries flow.

    Cascade plans set `light` and `heavy` (router bypass by `router_ratio`, discriminator
    escalation by `disc_ratio`); mix plans (no cascade: Clipper, Proteus) set `mix`, the share
    of queries sent to each model. `fid` is the planner's expected FID (None: look it up).
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

    def __post_init__(self) -> None:
        if (self.light is None) == (self.mix is None):
            raise ValueError("a plan is either a cascade (light, heavy) or a mix, not both")
        if self.light is not None and self.heavy is None:
            raise ValueError("a cascade plan needs a heavy model")
        if not 0.0 <= self.router_ratio <= 1.0 or not 0.0 <= self.disc_ratio <= 1.0:
            raise ValueError("router_ratio and disc_ratio must lie in [0, 1]")
        if any(n < 0 for n in self.workers.values()):
            raise ValueError("worker counts must be >= 0")

    @property
    def label(self) -> str:
        """`LIGHT->HEAVY` for a cascade, `A+B` for a mix (models with a positive share)."""
        if self.light is not None:
            return f"{self.light}->{self.heavy}"
        return "+".join(m for m, share in self.mix.items() if share > 0)

    @property
    def models(self) -> tuple[str, ...]:
        if self.light is not None:
            return (self.light, self.heavy)
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


class Policy(Protocol):
    """A serving policy. `router_scores` / `quality_scores` drive the per-query decisions."""

    name: str
    uses_router: bool  # queries pay the router cost on arrival
    uses_discriminator: bool  # light results pay the discriminator cost
    router_scores: np.ndarray  # (n_prompts,) hardness, higher = harder
    quality_scores: np.ndarray  # (n_prompts, n_models), higher = better

    def plan(self, observation: Observation) -> Plan: ...


PolicyFactory = Callable[[PolicyContext], Policy]
_REGISTRY: dict[str, PolicyFactory] = {}


class UnknownPolicyError(InputError):
    pass


def register_policy(name: str) -> Callable[[PolicyFactory], PolicyFactory]:
    """Class decorator: make a policy constructible by name."""

    def decorate(factory: PolicyFactory) -> PolicyFactory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"policy {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def policy_names() -> list[str]:
    import simulator.baselines  # noqa: F401  (registers the core baselines)

    return sorted(_REGISTRY)


def make_policy(name: str, context: PolicyContext) -> Policy:
    names = policy_names()
    if name not in _REGISTRY:
        raise UnknownPolicyError(f"unknown policy {name!r}; known: {', '.join(names)}")
    return _REGISTRY[name](context)
