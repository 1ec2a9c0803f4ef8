"""Clipper baselines (HADIS §5.1): every worker serves one model, no cascade, no router.

`clipper-light` serves everything with the fastest model, `clipper-heavy` with the slowest
(highest quality). Clipper adapts batch sizes to the latency objective; with work-conserving
greedy batching that amounts to a cap: the largest profiled batch whose latency is at most
half the SLO (a query may wait one batch and then run in one), at least 1.
"""

from __future__ import annotations

import numpy as np

from simulator.bundle import Bundle
from simulator.errors import InputError
from simulator.policy import Observation, Plan, PolicyContext, register_policy


class UnknownOptionError(InputError):
    """A policy option that is unknown or out of range."""


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
            batch_size={
                model: clipper_batch_size(bundle, model, context.slo_s, context.time_scale)
            },
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


class StaticCascadePolicy:
    """A fixed hybrid cascade (no re-planning): the benchmark's and tests' reference cascade.

    Options: `light`, `heavy` (default: fastest and slowest model), `router_ratio`,
    `disc_ratio` (default 0.2 / 0.3), `light_workers` (default: workers split in proportion to
    the expected GPU-seconds per query of each stage at batch 1, at least one each).
    """

    uses_router = True
    uses_discriminator = True

    def __init__(self, context: PolicyContext) -> None:
        bundle, options = context.bundle, dict(context.options)
        by_speed = models_by_speed(bundle)
        light = str(options.pop("light", by_speed[0]))
        heavy = str(options.pop("heavy", by_speed[-1]))
        router_ratio = float(options.pop("router_ratio", 0.2))
        disc_ratio = float(options.pop("disc_ratio", 0.3))
        light_workers = options.pop("light_workers", None)
        if options:
            raise UnknownOptionError(f"static-cascade: unknown option(s) {', '.join(options)}")
        bundle.model_index(light), bundle.model_index(heavy)
        if light == heavy or context.n_workers < 2:
            raise UnknownOptionError("static-cascade needs two different models and >= 2 workers")
        self.name = "static-cascade"
        self.router_scores = bundle.router_score
        self.quality_scores = bundle.disc_score
        rows = bundle.cascades
        match = rows[
            (rows.light == light)
            & (rows.heavy == heavy)
            & (np.isclose(rows.router_ratio, router_ratio))
            & (np.isclose(rows.disc_ratio, disc_ratio))
        ]
        heavy_share = (
            float(match.heavy_share.iloc[0])
            if len(match)
            else router_ratio + (1 - router_ratio) * disc_ratio
        )
        if light_workers is None:
            light_work = (1 - router_ratio) * bundle.batch_latency_s(light, 1)
            heavy_work = heavy_share * bundle.batch_latency_s(heavy, 1)
            share = light_work / (light_work + heavy_work)
            light_workers = round(context.n_workers * share)
        light_workers = min(max(int(light_workers), 1), context.n_workers - 1)
        self._plan = Plan(
            workers={light: light_workers, heavy: context.n_workers - light_workers},
            batch_size={
                m: clipper_batch_size(bundle, m, context.slo_s, context.time_scale)
                for m in (light, heavy)
            },
            light=light,
            heavy=heavy,
            router_ratio=router_ratio,
            disc_ratio=disc_ratio,
        )

    def plan(self, observation: Observation) -> Plan:
        return self._plan


register_policy("static-cascade")(StaticCascadePolicy)
