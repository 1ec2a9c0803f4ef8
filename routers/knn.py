"""kNN router: score = mean heavy-over-light quality gain of the k most cosine-similar
training prompts."""

from __future__ import annotations

import numpy as np

from .base import FeatureRouter
from .data import RoutingData
from .features import PromptFeaturizer
from .nn import TrainConfig


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class KnnRouter(FeatureRouter):
    name = "knn"

    def __init__(
        self, featurizer: PromptFeaturizer, config: TrainConfig, seed: int, k: int = 10
    ) -> None:
        super().__init__(featurizer, config, seed)
        self.k = k

    def _fit(self, x: np.ndarray, train: RoutingData) -> None:
        self.train_x_ = _unit(x)
        self.train_gain_ = train.heavy_quality - train.light_quality

    def _score(self, x: np.ndarray) -> np.ndarray:
        k = min(self.k, len(self.train_x_))
        similarity = _unit(x) @ self.train_x_.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        return self.train_gain_[nearest].mean(axis=1)
