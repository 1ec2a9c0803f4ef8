"""HADIS hybrid-cascade routing rules and their quantile semantics (HADIS §4.2-4.3).

A cascade configuration is (light, heavy, router_ratio r, disc_ratio c), as in the artifact's
lookup table (`config_results_hybrid.csv`):

* router: a prompt whose router (hardness) score is >= the (1-r)-quantile of all prompts' scores
  goes straight to the heavy model (r = 0: none, r = 1: all);
* discriminator: of the rest, a prompt whose light-model quality score is below the c-quantile of
  the light model's scores over *all* prompts is escalated to the heavy model (c = 0: none,
  c = 1: all).

Quantiles use linear interpolation (numpy's and pandas' default, as the artifact).
"""

from __future__ import annotations

import numpy as np


def router_threshold(router_score: np.ndarray, router_ratio: float) -> float:
    """Hardness threshold θ: prompts with score >= θ bypass the light model."""
    if router_ratio <= 0.0:
        return float("inf")
    return float(np.quantile(router_score, 1.0 - min(router_ratio, 1.0)))


def quality_threshold(light_score: np.ndarray, disc_ratio: float) -> float:
    """Quality threshold τ: light results with score < τ are escalated to the heavy model."""
    if disc_ratio >= 1.0:
        return float("inf")
    return float(np.quantile(light_score, max(disc_ratio, 0.0)))


def hybrid_assignment(
    router_score: np.ndarray, light_score: np.ndarray, router_ratio: float, disc_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Masks (bypassed, escalated) over prompts: bypassed go straight to heavy, escalated are
    served by light then heavy; the rest are served by light only."""
    bypassed = router_score >= router_threshold(router_score, router_ratio)
    escalated = ~bypassed & (light_score < quality_threshold(light_score, disc_ratio))
    return bypassed, escalated


def expected_latency_s(
    light_latency_s: float, heavy_latency_s: float, router_ratio: float, heavy_share: float
) -> float:
    """Expected per-query latency of a configuration, as the artifact tabulates it:
    (1 - r) * L_light + heavy_share * L_heavy."""
    return (1.0 - router_ratio) * light_latency_s + heavy_share * heavy_latency_s
