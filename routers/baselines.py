"""Reference routers: random (lower bound) and oracle (upper bound)."""

from __future__ import annotations

import numpy as np

from .base import Router, RouterError
from .data import PromptBatch, RoutingData


def _by_prompt_id(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    table = np.full(int(np.max(ids)) + 1, np.nan)
    table[ids] = values
    return table


class RandomRouter(Router):
    """A uniform random score per prompt id (the same prompt always gets the same score)."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def score(self, batch: PromptBatch) -> np.ndarray:
        ids = np.asarray(batch.prompt_ids)
        return np.random.default_rng(self.seed).random(int(ids.max()) + 1)[ids]


class OracleRouter(Router):
    """Knows the true heavy-over-light gain of every prompt of `reference`."""

    name = "oracle"

    def __init__(self, reference: RoutingData) -> None:
        self.reference = reference

    def score(self, batch: PromptBatch) -> np.ndarray:
        ref = self.reference
        gain = _by_prompt_id(ref.batch.prompt_ids, ref.heavy_quality - ref.light_quality)
        ids = np.asarray(batch.prompt_ids)
        if ids.max() >= len(gain) or np.isnan(gain[ids]).any():
            raise RouterError("oracle: prompt not in the reference data")
        return gain[ids]
