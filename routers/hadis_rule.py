"""HADIS rule-based router: hardness = z-scored 8 prompt features · weights (HADIS §4.2).

As the artifact did, the weights are the best of random candidate vectors (uniform [0, 1],
2 decimals; the artifact drew 400 and kept the one with the best FID). Here the candidates are
seeded and scored by APGR on the training split; z-score statistics (pandas std, ddof=1) come
from the training split too (the artifact used all 5000 prompts).
"""

from __future__ import annotations

import numpy as np

from .base import Router, RouterError
from .data import HADIS_FEATURES, PromptBatch, RoutingData
from .metrics import MetricError, heavy_first_order, performance_gap_recovered, routed_quality_curve
from .metrics import apgr as area_under_pgr

# Candidate #141 of router/feat_weight_candidates.txt (best FID 21.10), HADIS artifact README.
HADIS_PUBLISHED_WEIGHTS = (0.85, 0.32, 0.72, 0.99, 0.76, 0.07, 0.78, 0.01)


def hardness_score(features: np.ndarray, mean: np.ndarray, std: np.ndarray, weights) -> np.ndarray:
    return ((np.asarray(features, float) - mean) / std) @ np.asarray(weights, float)


def train_apgr(scores: np.ndarray, train: RoutingData, tie_seed: int) -> float:
    shares, quality = routed_quality_curve(
        train.light_quality, train.heavy_quality, heavy_first_order(scores, tie_seed)
    )
    pgr = performance_gap_recovered(quality, train.light_quality.mean(), train.heavy_quality.mean())
    return area_under_pgr(shares, pgr)


class HadisRuleRouter(Router):
    """`weights=None`: random search over `n_candidates` seeded vectors; else fixed weights."""

    def __init__(
        self, weights: tuple[float, ...] | None = None, n_candidates: int = 400, seed: int = 0
    ) -> None:
        self.weights, self.n_candidates, self.seed = weights, n_candidates, seed
        self.name = "hadis-rule" if weights is None else "hadis-published"

    def fit(self, train: RoutingData) -> HadisRuleRouter:
        x = train.batch.features
        if x is None:
            raise RouterError(f"{self.name}: the data set has no HADIS router features")
        self.mean_ = x.mean(axis=0)
        std = x.std(axis=0, ddof=1)
        self.std_ = np.where(std > 0, std, 1.0)
        if self.weights is not None:
            self.weights_ = np.asarray(self.weights, float)
            return self
        rng = np.random.default_rng(self.seed)
        candidates = rng.uniform(0, 1, (self.n_candidates, len(HADIS_FEATURES))).round(2)
        try:
            objective = [
                train_apgr(hardness_score(x, self.mean_, self.std_, w), train, self.seed)
                for w in candidates
            ]
        except MetricError as exc:
            raise RouterError(
                f"{self.name}: cannot rank weight candidates on train: {exc}"
            ) from None
        self.candidate_apgr_ = np.asarray(objective)
        self.weights_ = candidates[int(np.argmax(objective))]
        return self

    def score(self, batch: PromptBatch) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise RouterError(f"{self.name}: call fit() before score()")
        if batch.features is None:
            raise RouterError(f"{self.name}: prompts carry no HADIS router features")
        return hardness_score(batch.features, self.mean_, self.std_, self.weights_)
