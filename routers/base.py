"""The router interface: fit on training prompts, score prompts, calibrate to a heavy share.

A router maps each prompt to a scalar score, higher = more in need of the heavy (cloud) model.
`calibrate` turns a target heavy share into a threshold θ on a calibration split and reports
the share realised there; `route_heavy` applies it. The routing rule is the decision core's
(`simulator.core.bypasses`: score >= θ -> heavy), the one the simulator and the serving path
apply. A router's `threshold_for` gives the largest score that stays light under the budget
(`routers.metrics.budget_threshold`: the share of scores above it never exceeds the target);
θ is the next float above it (`simulator.core.threshold_above`), so the budget holds under
`>=` too and ties at the cut stay light.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from simulator.core import bypasses, threshold_above

from .data import PromptBatch, RoutingData
from .features import PromptFeaturizer
from .metrics import budget_threshold
from .nn import TrainConfig


class RouterError(ValueError):
    """A router used out of order or on data it cannot handle."""


@dataclass(frozen=True)
class Calibration:
    target_heavy_share: float
    threshold: float  # θ: score >= θ -> heavy
    realised_heavy_share: float  # on the calibration split


class Router(ABC):
    """Base class; subclasses implement `score` and, when they learn, `fit`."""

    name = "router"

    def fit(self, train: RoutingData) -> Router:
        """Learn from training prompts with their per-model quality; returns self."""
        return self

    @abstractmethod
    def score(self, batch: PromptBatch) -> np.ndarray:
        """Per-prompt score, higher = send to the heavy model."""

    def threshold_for(self, calib_scores: np.ndarray, target_heavy_share: float) -> float:
        """The largest score kept light: the share of calibration scores above it never
        exceeds the target."""
        return budget_threshold(calib_scores, target_heavy_share)

    def calibrate(self, calib: PromptBatch, target_heavy_share: float) -> Calibration:
        """Set the threshold from the calibration prompts; report the share it realises there."""
        return self.calibrate_scores(self.score(calib), target_heavy_share)

    def calibrate_scores(self, calib_scores: np.ndarray, target_heavy_share: float) -> Calibration:
        """`calibrate` on already computed calibration scores."""
        if not 0.0 <= target_heavy_share <= 1.0:
            raise RouterError(f"{self.name}: target heavy share {target_heavy_share} not in [0, 1]")
        self.threshold_ = threshold_above(self.threshold_for(calib_scores, target_heavy_share))
        realised = float(np.mean(heavy_mask(calib_scores, self.threshold_)))
        return Calibration(target_heavy_share, self.threshold_, realised)

    def route_heavy(self, batch: PromptBatch) -> np.ndarray:
        """Boolean mask: which prompts go to the heavy model under the calibrated threshold."""
        if not hasattr(self, "threshold_"):
            raise RouterError(f"{self.name}: call calibrate() before route_heavy()")
        return heavy_mask(self.score(batch), self.threshold_)


def heavy_mask(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The core's routing rule on router scores, compared in float64 (θ is a float64 just above
    a score; a float32 comparison would round it back onto that score)."""
    return bypasses(np.asarray(scores, dtype=np.float64), threshold)


class FeatureRouter(Router):
    """A router that learns on a prompt representation (see `routers.features`)."""

    def __init__(self, featurizer: PromptFeaturizer, config: TrainConfig, seed: int) -> None:
        self.featurizer, self.config, self.seed = featurizer, config, seed

    def fit(self, train: RoutingData) -> FeatureRouter:
        self.featurizer.fit(train.batch)
        self._fit(self.featurizer.transform(train.batch), train)
        return self

    def score(self, batch: PromptBatch) -> np.ndarray:
        if not hasattr(self.featurizer, "mean_"):
            raise RouterError(f"{self.name}: call fit() before score()")
        return self._score(self.featurizer.transform(batch))

    @abstractmethod
    def _fit(self, x: np.ndarray, train: RoutingData) -> None: ...

    @abstractmethod
    def _score(self, x: np.ndarray) -> np.ndarray: ...
