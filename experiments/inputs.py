"""Resolve CLI inputs: `--bundle default|default:replicate=K|PATH` and `--trace SPEC|PATH`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from simulator.bundle import Bundle, BundleError, load_bundle
from simulator.workloads import Trace, parse_trace_spec

EASY_HARD_QUANTILE = 0.3  # easy = the 30% of prompts with the lowest router score, hard = top 30%


DEFAULT_BUNDLE = "default"
REPLICATE_PREFIX = "default:replicate="
MAX_REPLICATE = 2**32 - 1  # a replicate is a latent draw's seed


@lru_cache(maxsize=16)  # a figure's replicates (one build: 3.6 s measured on a loaded machine)
def _default_bundle(replicate: int = 0) -> Bundle:
    from simulator.default_bundle import build_replicate_bundle

    return build_replicate_bundle(replicate)


def replicate_spec(replicate: int) -> str:
    """The bundle spec of the default bundle's replicate `replicate`."""
    return f"{REPLICATE_PREFIX}{replicate}"


def parse_replicate(spec: str) -> int | None:
    """The replicate K of `default:replicate=K` (0 for `default`), None for anything else
    that does not start with `default:`; BundleError for a bad `default:` spec."""
    if spec == DEFAULT_BUNDLE:
        return 0
    if not spec.startswith(DEFAULT_BUNDLE + ":"):
        return None
    value = spec[len(REPLICATE_PREFIX) :] if spec.startswith(REPLICATE_PREFIX) else None
    if value is None or not value.isdigit() or int(value) > MAX_REPLICATE:
        raise BundleError(
            f"bundle {spec!r}: expected default:replicate=K with K an integer 0..{MAX_REPLICATE} "
            "(0: the nominal default bundle; K: latent draw K under calibration draw K)"
        )
    return int(value)


def resolve_bundle(spec: str) -> Bundle:
    """`default` (the embedded synthetic bundle), `default:replicate=K` (its replicate K:
    `simulator.default_bundle.build_replicate_bundle`) or a bundle folder. Cached per process."""
    replicate = parse_replicate(spec)
    if replicate is not None:
        return _default_bundle(replicate)
    path = Path(spec)
    if not path.exists():
        raise BundleError(
            f"{spec}: no such bundle folder (use 'default', 'default:replicate=K' or a path)"
        )
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
