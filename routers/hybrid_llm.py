"""Hybrid LLM router (Ding et al., ICLR 2024): a classifier of "the light model is good enough".

Labels per training prompt x with light / heavy quality l, h:

* deterministic: y = 1[l >= h];
* probabilistic: y = P(l >= h) over the quality's sampling noise — over all pairs of per-image
  samples where the data has them (HADIS artifact: 4 images per prompt and model), else
  Φ((l - h) / sqrt(σ_l² + σ_h²)) from per-entry spreads (AGIQA-3K ``std_quality``), else the
  deterministic label;
* transformed: y_t = P(l >= h - t) with t* maximising the label spread
  mean_{i,j} |y_t(x_i) - y_t(x_j)| over t in the 0, 2, ..., 100 % quantiles of h - l.

Score = -logit P̂(light good enough), so higher = heavy.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from .base import FeatureRouter
from .data import RoutingData
from .features import PromptFeaturizer
from .nn import TrainConfig, bce_with_logits, fit_mlp, mlp_forward

HYBRID_NAMES = {
    "deterministic": "hybrid-det",
    "probabilistic": "hybrid-prob",
    "transformed": "hybrid-trans",
}


def light_good_probability(train: RoutingData, relax: float = 0.0) -> np.ndarray:
    """P(l >= h - relax) per prompt (see module docstring for the noise model)."""
    if train.quality_samples is not None:
        ls = train.quality_samples[:, train.light, :]
        hs = train.quality_samples[:, train.heavy, :]
        return np.mean(ls[:, :, None] >= hs[:, None, :] - relax, axis=(1, 2))
    diff = train.light_quality - train.heavy_quality + relax
    if train.quality_std is not None:
        spread = np.hypot(train.quality_std[:, train.light], train.quality_std[:, train.heavy])
        safe = np.where(spread > 0, spread, 1.0)
        return np.where(spread > 0, ndtr(diff / safe), (diff >= 0).astype(float))
    return (diff >= 0).astype(float)


def label_spread(labels: np.ndarray) -> float:
    """mean over ordered pairs i != j of |y_i - y_j| (Hybrid LLM's transformation objective)."""
    y = np.sort(np.asarray(labels, float))
    n = len(y)
    return float(2 * np.sum(y * (2 * np.arange(n) - n + 1)) / (n * (n - 1)))


def transformed_relax(train: RoutingData) -> float:
    gap = train.heavy_quality - train.light_quality
    candidates = np.quantile(gap, np.linspace(0, 1, 51))
    spread = [label_spread(light_good_probability(train, t)) for t in candidates]
    return float(candidates[int(np.argmax(spread))])


class HybridLlmRouter(FeatureRouter):
    def __init__(
        self, featurizer: PromptFeaturizer, config: TrainConfig, seed: int, label: str
    ) -> None:
        super().__init__(featurizer, config, seed)
        if label not in HYBRID_NAMES:
            raise ValueError(f"hybrid label {label!r}: expected one of {tuple(HYBRID_NAMES)}")
        self.label = label
        self.name = HYBRID_NAMES[label]

    def _fit(self, x: np.ndarray, train: RoutingData) -> None:
        if self.label == "deterministic":
            target = (train.light_quality >= train.heavy_quality).astype(float)
        elif self.label == "probabilistic":
            target = light_good_probability(train)
        else:
            self.relax_ = transformed_relax(train)
            target = light_good_probability(train, self.relax_)
        self.params_ = fit_mlp(x, target, bce_with_logits, self.config, self.seed)

    def _score(self, x: np.ndarray) -> np.ndarray:
        return -mlp_forward(self.params_, x)[0][:, 0]
