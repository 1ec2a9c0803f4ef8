"""Router evaluation metrics (pure functions).

Notation: n test prompts, light/heavy quality l_i, h_i (higher = better), a routing decision
sends the set H to the heavy model; heavy share s = |H| / n; routed quality
Q(H) = (1/n) [sum_{i in H} h_i + sum_{i not in H} l_i]; Q_L = mean(l), Q_H = mean(h).

* ΔP (performance gap recovered, PGR) = (Q(H) - Q_L) / (Q_H - Q_L): 0 = all-light quality,
  1 = all-heavy quality; can exceed 1 where the light model beats the heavy on some prompts.
  A random router has E[ΔP] = s; the oracle (H = the s·n largest h_i - l_i) is the maximum
  over all decisions with the same share.
* APGR = ∫_0^1 ΔP(s) ds, trapezoid over the router's full curve s = k/n, k = 0..n. This is
  RouteLLM's definition (routellm/evals/evaluate.py: (AUC - weak AUC) / (strong AUC - weak
  AUC), AUCs by np.trapz over the strong-call share), taken on every share instead of its
  threshold grid. APGR > 1 is possible and not an error: where the light model beats the heavy
  on some prompts, a router that sends only the others heavy beats all-heavy quality. The
  oracle's curve rises to sum(max(h - l, 0)) / sum(h - l) at s = share of prompts with h > l
  and falls back to 1 at s = 1 (HADIS artifact, SDXL-Lightning -> SD3.5-Large: the light image
  wins on 21 % of prompts, peak ΔP 1.16, oracle APGR about 1.1).
* CPT(x) = the smallest heavy share whose ΔP reaches x, read on the monotone upper envelope
  ΔP*(s) = max_{s' <= s} ΔP(s') (RouteLLM reads it with np.interp on the raw, non-monotone
  curve, which np.interp does not support), linear between curve points; NaN if never reached.
* cloud-call saving at a ΔP target x = 1 - CPT(x) / x: fewer heavy calls than a random router,
  which needs share x to reach ΔP = x (RouteT2I's "cost saving under a performance target").
* light share at <= d quality drop (ECVL-Router) = max over the curve of 1 - s such that
  (Q_H - Q(s)) / |Q_H| <= d.
* PRS (RouteT2I's Pareto relative superiority of edge image over cloud image) =
  sum_i w_i σ((q_e,i - q_c,i) / (Γ |μ_e,i - μ_c,i|)), sum w_i = 1; = ½ for identical qualities.
* budget rule (RouteT2I): the largest α <= ½ with P{PRS < α} <= ρ; PRS < α goes to the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class MetricError(ValueError):
    """Inputs for which a metric is undefined."""


def heavy_first_order(scores: np.ndarray, tie_seed: int) -> np.ndarray:
    """Prompt indices by decreasing score (most heavy-worthy first), ties in seeded random order."""
    scores = np.asarray(scores, dtype=float)
    tiebreak = np.random.default_rng(tie_seed).random(len(scores))
    return np.lexsort((tiebreak, -scores))


def routed_quality_curve(
    light_q: np.ndarray, heavy_q: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(heavy_share, Q) for k = 0..n: the first k prompts of `order` go heavy."""
    light_q, heavy_q = np.asarray(light_q, float), np.asarray(heavy_q, float)
    n = len(light_q)
    gain = (heavy_q - light_q)[order]
    quality = light_q.mean() + np.concatenate([[0.0], np.cumsum(gain)]) / n
    return np.arange(n + 1) / n, quality


def performance_gap_recovered(
    quality: np.ndarray, light_mean: float, heavy_mean: float
) -> np.ndarray:
    """ΔP = (Q - Q_L) / (Q_H - Q_L)."""
    gap = heavy_mean - light_mean
    if not gap > 0:
        raise MetricError(
            f"heavy mean quality {heavy_mean:.6g} is not above light {light_mean:.6g}: ΔP undefined"
        )
    return (np.asarray(quality, float) - light_mean) / gap


def apgr(shares: np.ndarray, pgr: np.ndarray) -> float:
    """Area under the ΔP-vs-heavy-share curve (trapezoid)."""
    shares, pgr = np.asarray(shares, float), np.asarray(pgr, float)
    return float(np.sum((shares[1:] - shares[:-1]) * (pgr[1:] + pgr[:-1]) / 2))


def monotone_envelope(values: np.ndarray) -> np.ndarray:
    """Running maximum: the best value reachable at this share or less."""
    return np.maximum.accumulate(np.asarray(values, float))


def call_performance_threshold(shares: np.ndarray, pgr: np.ndarray, target: float) -> float:
    """CPT(target): smallest heavy share whose enveloped ΔP reaches `target`; NaN if never."""
    shares = np.asarray(shares, float)
    env = monotone_envelope(pgr)
    reached = np.flatnonzero(env >= target)
    if len(reached) == 0:
        return float("nan")
    i = reached[0]
    if i == 0:
        return float(shares[0])
    frac = (target - env[i - 1]) / (env[i] - env[i - 1])
    return float(shares[i - 1] + frac * (shares[i] - shares[i - 1]))


def cloud_call_saving(shares: np.ndarray, pgr: np.ndarray, dp_target: float) -> float:
    """1 - CPT(dp_target) / dp_target: heavy calls saved versus a random router."""
    if not dp_target > 0:
        raise MetricError(f"ΔP target {dp_target} must be > 0")
    return 1.0 - call_performance_threshold(shares, pgr, dp_target) / dp_target


def value_at_share(shares: np.ndarray, values: np.ndarray, share: float) -> float:
    """The curve's value at the curve point nearest `share` (curves are on a k/n grid)."""
    return float(np.asarray(values)[int(np.argmin(np.abs(np.asarray(shares) - share)))])


def light_share_at_quality_drop(
    shares: np.ndarray, quality: np.ndarray, heavy_mean: float, max_drop: float = 0.1
) -> float:
    """ECVL-Router: the largest light share whose relative drop from all-heavy is <= max_drop."""
    if heavy_mean == 0:
        raise MetricError("heavy mean quality is 0: relative quality drop undefined")
    drop = (heavy_mean - np.asarray(quality, float)) / abs(heavy_mean)
    ok = np.flatnonzero(drop <= max_drop + 1e-12)
    return float(np.max(1.0 - np.asarray(shares, float)[ok])) if len(ok) else 0.0


def pareto_relative_superiority(
    edge_q: np.ndarray,
    cloud_q: np.ndarray,
    edge_mean: np.ndarray,
    cloud_mean: np.ndarray,
    weights: np.ndarray | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """RouteT2I's PRS of the edge image over the cloud image, per prompt.

    edge_q, cloud_q: (n, k) per-metric quality; edge_mean, cloud_mean: (k,) metric means over
    the edge / cloud images (μ_i); weights (k,) summing to 1 (default uniform); Γ = gamma.
    """
    edge_q, cloud_q = np.atleast_2d(edge_q), np.atleast_2d(cloud_q)
    k = edge_q.shape[1]
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, float)
    if w.shape != (k,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise MetricError(f"PRS weights must be {k} non-negative numbers summing to 1, got {w}")
    if not gamma > 0:
        raise MetricError(f"PRS Γ must be > 0, got {gamma}")
    scale = gamma * np.maximum(np.abs(np.asarray(edge_mean) - np.asarray(cloud_mean)), 1e-12)
    z = (edge_q - cloud_q) / scale
    return (1.0 / (1.0 + np.exp(-z))) @ w


def budget_alpha(prs: np.ndarray, rho: float) -> float:
    """RouteT2I budget rule: the largest α <= ½ with share(PRS < α) <= ρ."""
    prs = np.sort(np.asarray(prs, float))
    allowed = int(np.floor(rho * len(prs) + 1e-9))
    if allowed >= len(prs):
        return 0.5
    return float(min(0.5, prs[allowed]))


def budget_threshold(scores: np.ndarray, heavy_share: float) -> float:
    """Smallest threshold t with share(score > t) <= heavy_share (the budget is never exceeded)."""
    scores = np.sort(np.asarray(scores, float))[::-1]
    allowed = int(np.floor(heavy_share * len(scores) + 1e-9))
    return float("-inf") if allowed >= len(scores) else float(scores[allowed])


@dataclass(frozen=True)
class EcvlWeights:
    """Weights of ECVL-Router's routing comprehensive score (RCS)."""

    solve: float
    cost: float
    latency: float


def ecvl_outcome(
    served_q: np.ndarray,
    heavy_mask: np.ndarray,
    mes: float,
    cost: tuple[float, float],
    latency_s: tuple[float, float],
    weights: EcvlWeights,
) -> dict[str, float]:
    """Our definitions of ECVL-Router's scores for one routing outcome.

    APSP = share of prompts whose served quality >= MES (minimal expected score);
    CA = 1 - mean cost / heavy cost (cost advantage over all-heavy);
    AIL_s = mean latency; RCS = w_solve APSP + w_cost CA + w_latency (1 - AIL_s / heavy latency).
    cost, latency_s: (light, heavy).
    """
    heavy_mask = np.asarray(heavy_mask, bool)
    share = float(heavy_mask.mean())
    apsp = float(np.mean(np.asarray(served_q) >= mes))
    ca = 1.0 - ((1 - share) * cost[0] + share * cost[1]) / cost[1]
    ail_s = (1 - share) * latency_s[0] + share * latency_s[1]
    rcs = weights.solve * apsp + weights.cost * ca + weights.latency * (1 - ail_s / latency_s[1])
    return {"heavy_share": share, "apsp": apsp, "ca": ca, "ail_s": ail_s, "rcs": rcs}
