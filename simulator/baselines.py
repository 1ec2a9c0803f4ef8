"""Clipper baselines (HADIS §5.1): every worker serves one model, no cascade, no router.

`clipper-light` serves everything with the fastest model, `clipper-heavy` with the slowest
(highest quality). Clipper adapts batch sizes to the latency objective; with work-conserving
greedy batching that amounts to a cap: the largest profiled batch whose latency is at most
half the SLO (a query may wait one batch and then run in one), at least 1.
"""

from __future__ import annotations

from simulator.bundle import Bundle
from simulator.policy import Observation, Plan, PolicyContext, register_policy


def clipper_batch_size(bundle: Bundle, model: str, slo_s: float, time_scale: float) -> int:
    """Largest profiled batch size with scaled latency <= slo_s / 2 (at least the smallest)."""
    sizes = bundle.profiled_batch_sizes(model)
    fitting = [b for b in sizes if bundle.batch_latency_s(model, b) * time_scale <= slo_s / 2]
    return fitting[-1] if fitting else sizes[0]


def models_by_speed(bundle: Bundle) -> list[str]:
    """Model names ordered by batch-1 latency, fastest first."""
    first = {
        m: bundle.batch_latency_s(m, bundle.profiled_batch_sizes(m)[0]) for m in bundle.model_names
    }
    return sorted(bundle.model_names, key=lambda m: (first[m], m))


class SingleModelPolicy:
    """All workers on one model; a static plan."""

    uses_router = False
    uses_discriminator = False

    def __init__(self, name: str, context: PolicyContext, model: str) -> None:
        bundle = context.bundle
        self.name = name
        self.router_scores = bundle.router_score
        self.quality_scores = bundle.disc_score
        fid = float(bundle.models.set_index("model").loc[model, "fid_alone"])
        self._plan = Plan(
            workers={model: context.n_workers},
            batch_size={model: clipper_batch_size(bundle, model, context.slo_s, context.time_scale)},
            mix={model: 1.0},
            fid=fid,
        )

    def plan(self, observation: Observation) -> Plan:
        return self._plan


@register_policy("clipper-light")
def clipper_light(context: PolicyContext) -> SingleModelPolicy:
    return SingleModelPolicy("clipper-light", context, models_by_speed(context.bundle)[0])


@register_policy("clipper-heavy")
def clipper_heavy(context: PolicyContext) -> SingleModelPolicy:
    return SingleModelPolicy("clipper-heavy", context, models_by_speed(context.bundle)[-1])

