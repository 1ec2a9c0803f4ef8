"""HADIS §4.2 model-candidate pruning, applied before cascades are tabulated.

Rules, in order, on each model's (latency at batch 1, FID alone):

1. similar — models within `similar_latency_rel` relative latency and `similar_fid` FID of a
   kept model are represented by it (the better FID is kept, then the lower latency);
2. dominated — a model no better in both latency and FID than another (and worse in one) goes;
3. collinear — walking the survivors in latency order, a model whose FID is on or above the
   segment between its two neighbours, within `collinear_fid_rel` of the neighbours' FID span,
   goes: a cascade thresholding between the neighbours reproduces (or beats) its trade-off.
   Repeated until nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class CandidateError(ValueError):
    """Model candidates with non-positive latency or non-finite FID."""


@dataclass(frozen=True)
class PruneResult:
    kept: tuple[str, ...]  # by increasing latency
    reasons: dict[str, str]  # pruned model -> why


def prune_candidates(
    latency_s: Mapping[str, float],
    fid: Mapping[str, float],
    *,
    similar_latency_rel: float = 0.1,
    similar_fid: float = 0.5,
    collinear_fid_rel: float = 0.05,
) -> PruneResult:
    if set(latency_s) != set(fid):
        raise CandidateError("latency and FID must be given for the same models")
    for model in latency_s:
        lat, q = latency_s[model], fid[model]
        if not (lat > 0 and q == q and q != float("inf")):
            raise CandidateError(f"model {model!r}: latency {lat} / FID {q} not usable")
    reasons: dict[str, str] = {}
    # 1. similar: best FID first claims its neighbourhood
    kept: list[str] = []
    for model in sorted(latency_s, key=lambda m: (fid[m], latency_s[m], m)):
        twin = next(
            (
                k
                for k in kept
                if abs(latency_s[model] - latency_s[k]) <= similar_latency_rel * latency_s[k]
                and abs(fid[model] - fid[k]) <= similar_fid
            ),
            None,
        )
        if twin is None:
            kept.append(model)
        else:
            reasons[model] = f"similar to {twin}"
    # 2. dominated
    for model in list(kept):
        better = next(
            (
                k
                for k in kept
                if k != model
                and latency_s[k] <= latency_s[model]
                and fid[k] <= fid[model]
                and (latency_s[k] < latency_s[model] or fid[k] < fid[model])
            ),
            None,
        )
        if better is not None:
            reasons[model] = f"dominated by {better}"
    kept = sorted((m for m in kept if m not in reasons), key=lambda m: (latency_s[m], m))
    # 3. collinear (on or above the segment between latency neighbours)
    changed = True
    while changed and len(kept) > 2:
        changed = False
        for i in range(1, len(kept) - 1):
            left, model, right = kept[i - 1], kept[i], kept[i + 1]
            t = (latency_s[model] - latency_s[left]) / (latency_s[right] - latency_s[left])
            on_segment = fid[left] + t * (fid[right] - fid[left])
            span = abs(fid[left] - fid[right])
            if fid[model] >= on_segment - collinear_fid_rel * span:
                reasons[model] = f"collinear between {left} and {right}"
                del kept[i]
                changed = True
                break
    return PruneResult(tuple(kept), reasons)
