"""Resolve CLI inputs: `--bundle default|PATH` and `--trace SPEC|PATH`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from simulator.bundle import Bundle, BundleError, load_bundle
from simulator.workloads import Trace, parse_trace_spec

EASY_HARD_QUANTILE = 0.3  # easy = the 30% of prompts with the lowest router score, hard = top 30%


@lru_cache(maxsize=4)
def _default_bundle() -> Bundle:
    from simulator.default_bundle import build_default_bundle

    return build_default_bundle()


def resolve_bundle(spec: str) -> Bundle:
    """`default` (the embedded synthetic bundle) or a bundle folder."""
    if spec == "default":
        return _default_bundle()
    path = Path(spec)
    if not path.exists():
        raise BundleError(f"{spec}: no such bundle folder (use 'default' or a path)")
    return load_bundle(path)


def prompt_pools(bundle: Bundle) -> dict[str, np.ndarray]:
    """Prompt pools for `alternating:` traces: easy / hard by router score (HADIS §5.7), all."""
    score = bundle.router_score
    lo, hi = np.quantile(score, [EASY_HARD_QUANTILE, 1 - EASY_HARD_QUANTILE])
    return {
        "easy": np.flatnonzero(score <= lo),
        "hard": np.flatnonzero(score >= hi),
        "all": np.arange(bundle.n_prompts),
    }


def resolve_trace(spec: str, bundle: Bundle, seed: int) -> Trace:
    return parse_trace_spec(spec, n_prompts=bundle.n_prompts, seed=seed, pools=prompt_pools(bundle))
