"""ZOOTER (Lu et al., NAACL 2024): reward distillation into a router over all N models.

Training target per prompt: softmax over the measured models of r̃ / T, where r̃ is the
quality's empirical CDF pooled over the training matrix (robust to the heavy-tailed
discriminator scores) and T the temperature. The router is an MLP with N outputs trained with
soft cross-entropy; pair score = logit(heavy) - logit(light).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .base import FeatureRouter
from .data import RoutingData
from .features import PromptFeaturizer
from .nn import TrainConfig, fit_mlp, mlp_forward, soft_cross_entropy


def distillation_targets(quality: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of pooled-rank rewards over measured models; NaN where not measured."""
    measured = np.isfinite(quality)
    reward = np.full(quality.shape, np.nan)
    reward[measured] = rankdata(quality[measured]) / measured.sum()
    z = np.where(measured, reward / temperature, -np.inf)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return np.where(measured, z / z.sum(axis=1, keepdims=True), np.nan)


class ZooterRouter(FeatureRouter):
    name = "zooter"

    def __init__(
        self, featurizer: PromptFeaturizer, config: TrainConfig, seed: int, temperature: float = 0.1
    ) -> None:
        super().__init__(featurizer, config, seed)
        self.temperature = temperature

    def _fit(self, x: np.ndarray, train: RoutingData) -> None:
        target = distillation_targets(train.quality, self.temperature)
        self.pair_ = (train.light, train.heavy)
        self.params_ = fit_mlp(x, target, soft_cross_entropy, self.config, self.seed)

    def _score(self, x: np.ndarray) -> np.ndarray:
        logits = mlp_forward(self.params_, x)[0]
        return logits[:, self.pair_[1]] - logits[:, self.pair_[0]]
