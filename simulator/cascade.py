"""HADIS hybrid-cascade routing rules and their quantile semantics (HADIS §4.2-4.3).

A cascade configuration is (light, heavy, router_ratio r, disc_ratio c), as in the artifact's
lookup table (`config_results_hybrid.csv`):

* router: a prompt whose router (hardness) score is >= the (1-r)-quantile of all prompts' scores
  goes straight to the heavy model (r = 0: none, r = 1: all);
* discriminator: of the rest, a prompt whose light-model quality score is below the c-quantile of
  the light model's scores over *all* prompts is escalated to the heavy model (c = 0: none,
  c = 1: all).

Quantiles use linear interpolation (numpy's and pandas' default, as the artifact). The rules
and thresholds are defined once, in the decision core (`simulator.core`); this module applies
them to whole prompt sets (the cascade tables) and re-exports the thresholds.
"""

from __future__ import annotations

import numpy as np

from simulator.core import bypasses, escalates, quality_threshold, router_threshold

__all__ = [
    "expected_latency_s",
    "hybrid_assignment",
    "quality_threshold",
    "router_threshold",
    "stage_shares",
]


def hybrid_assignment(
    router_score: np.ndarray, light_score: np.ndarray, router_ratio: float, disc_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Masks (bypassed, escalated) over prompts: bypassed go straight to heavy, escalated are
    served by light then heavy; the rest are served by light only. The decision core's rules
    (`simulator.core`), vectorised over the prompts that also set the thresholds."""
    bypassed = bypasses(router_score, router_threshold(router_score, router_ratio))
    escalated = ~bypassed & escalates(light_score, quality_threshold(light_score, disc_ratio))
    return bypassed, escalated


def expected_latency_s(
    light_latency_s: float, heavy_latency_s: float, router_ratio: float, heavy_share: float
) -> float:
    """Expected per-query latency of a configuration, as the artifact tabulates it:
    (1 - r) * L_light + heavy_share * L_heavy."""
    return (1.0 - router_ratio) * light_latency_s + heavy_share * heavy_latency_s


def stage_shares(router_ratio: float, disc_ratios: tuple[float, ...]) -> tuple[list, list]:
    """Nominal (reached, returned) share of queries per stage of a cascade whose ratios act
    independently: the first stage gets 1 - r, stage i passes a share c_i of what it serves to
    the next, the last stage also gets the router's r. Two stages: heavy reached r + (1 - r) c."""
    reached = [1.0 - router_ratio]
    for c in disc_ratios[:-1]:
        reached.append(reached[-1] * c)
    reached.append(router_ratio + reached[-1] * disc_ratios[-1])
    returned = [share * (1.0 - c) for share, c in zip(reached, disc_ratios)] + [reached[-1]]
    return reached, returned
