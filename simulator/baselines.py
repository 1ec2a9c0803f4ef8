"""Clipper baselines (HADIS §5.1): every worker serves one model, no cascade, no router.

`clipper-light` serves everything with the fastest model, `clipper-heavy` with the slowest
(highest quality). Clipper adapts batch sizes to the latency objective; with work-conserving
greedy batching that amounts to a cap: the largest profiled batch whose latency is at most
half the SLO (a query may wait one batch and then run in one), at least 1. Clipper takes no
options.

`static-cascade` is a fixed cascade of two or more stages with the same batch-size rule (options
in `StaticCascadePolicy`, checked by `simulator.options`: `--option models=A,B,C`).
"""

from __future__ import annotations

import numpy as np

from simulator.bundle import Bundle
from simulator.cascade import stage_shares
from simulator.errors import InputError
from simulator.limits import FRACTION, Interval
from simulator.options import PolicyOptionError, integer, real, take_options, text
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
        take_options(name, context.options, {})  # Clipper has no options
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


STATIC_CASCADE_OPTIONS = {
    "light": text(None),  # default: the fastest model
    "heavy": text(None),  # default: the slowest model
    "models": text(None),  # A,B,C: the stages, light to heavy (instead of light/heavy)
    "router_ratio": real(0.2, FRACTION),
    "disc_ratio": real(0.3, FRACTION),  # every stage but the last
    "disc_ratios": text(None),  # c1/c2/...: one per stage but the last (instead of disc_ratio)
    "light_workers": integer(None, Interval(1)),  # default: split by expected work
}


class StaticCascadePolicy:
    """A fixed cascade (no re-planning): the benchmark's and tests' reference cascade.

    Options: `light`, `heavy` (default: fastest and slowest model) or `models=A,B,C` (a cascade
    of two or more stages, light to heavy), `router_ratio` (default 0.2: bypass to the last
    stage), `disc_ratio` (default 0.3, every stage but the last) or `disc_ratios=c1/c2`,
    `light_workers` (the first stage's; default: workers split in proportion to the expected
    GPU-seconds per query of each stage at batch 1, at least one each).
    """

    uses_router = True
    uses_discriminator = True

    def __init__(self, context: PolicyContext) -> None:
        bundle = context.bundle
        options = take_options("static-cascade", context.options, STATIC_CASCADE_OPTIONS)
        stages = _stages(bundle, options)
        n_judged = len(stages) - 1
        ratios = _disc_ratios(options, n_judged)
        router_ratio = options["router_ratio"]
        if context.n_workers < len(stages):
            raise PolicyOptionError(
                f"static-cascade: {len(stages)} stages need >= {len(stages)} workers, "
                f"got {context.n_workers}"
            )
        self.name = "static-cascade"
        self.router_scores = bundle.router_score
        self.quality_scores = bundle.disc_score
        reached, _ = stage_shares(router_ratio, ratios)
        if len(stages) == 2:  # the cascade table's heavy share where it has the row
            rows = bundle.cascades
            match = rows[
                (rows.light == stages[0])
                & (rows.heavy == stages[1])
                & (np.isclose(rows.router_ratio, router_ratio))
                & (np.isclose(rows.disc_ratio, ratios[0]))
            ]
            if len(match):
                reached[1] = float(match.heavy_share.iloc[0])
        first_workers = options["light_workers"]
        if first_workers is not None and first_workers > context.n_workers - n_judged:
            raise PolicyOptionError(
                f"static-cascade: option light_workers: {first_workers} leaves no worker for "
                f"the other {n_judged} stage(s) of {context.n_workers} workers"
            )
        work = [share * bundle.batch_latency_s(m, 1) for share, m in zip(reached, stages)]
        workers = split_workers(context.n_workers, work, first_workers)
        batch_size = {
            m: clipper_batch_size(bundle, m, context.slo_s, context.time_scale) for m in stages
        }
        self._plan = Plan(
            workers=dict(zip(stages, workers)),
            batch_size=batch_size,
            router_ratio=router_ratio,
            stages=stages,
            disc_ratios=ratios,
        )

    def plan(self, observation: Observation) -> Plan:
        return self._plan


def _stages(bundle: Bundle, options: dict) -> tuple[str, ...]:
    """The cascade's models from `models`, or `light` and `heavy`; each checked in the bundle."""
    if options["models"] is not None:
        if options["light"] is not None or options["heavy"] is not None:
            raise PolicyOptionError("static-cascade: give models, or light and heavy, not both")
        named = [("models", m.strip()) for m in options["models"].split(",")]
    else:
        by_speed = models_by_speed(bundle)
        named = [
            ("light", options["light"] or by_speed[0]),
            ("heavy", options["heavy"] or by_speed[-1]),
        ]
    for key, model in named:
        if model not in bundle.model_names:
            raise PolicyOptionError(
                f"static-cascade: option {key}: unknown model {model!r}; "
                f"the bundle has {', '.join(bundle.model_names)}"
            )
    stages = tuple(m for _, m in named)
    if len(stages) < 2 or len(set(stages)) != len(stages):
        raise PolicyOptionError(
            f"static-cascade: a cascade needs two or more different models, got {', '.join(stages)}"
        )
    return stages


def _disc_ratios(options: dict, n_judged: int) -> tuple[float, ...]:
    """Per judged stage: `disc_ratios=c1/c2/...`, else `disc_ratio` for each."""
    if options["disc_ratios"] is None:
        return (options["disc_ratio"],) * n_judged
    parts = options["disc_ratios"].split("/")
    if len(parts) != n_judged:
        raise PolicyOptionError(
            f"static-cascade: option disc_ratios: {options['disc_ratios']!r} has {len(parts)} "
            f"value(s), the cascade judges {n_judged} stage(s)"
        )
    try:
        return tuple(FRACTION.check(x, "static-cascade: option disc_ratios") for x in parts)
    except InputError as exc:
        raise PolicyOptionError(str(exc)) from None


def split_workers(n_workers: int, work: list[float], first: int | None = None) -> list[int]:
    """Workers per stage in proportion to its expected work, at least one each; `first` fixes
    the first stage's count; the last stage takes the rest."""
    counts: list[int] = []
    total = sum(work)
    for i, stage_work in enumerate(work[:-1]):
        wanted = first if i == 0 and first is not None else round(n_workers * stage_work / total)
        later = len(work) - 1 - i
        counts.append(min(max(int(wanted), 1), n_workers - sum(counts) - later))
    counts.append(n_workers - sum(counts))
    return counts


register_policy("static-cascade")(StaticCascadePolicy)
