"""RouteT2I (Xin et al., ICCV 2025): multi-metric quality prediction, PRS, budget rule.

1. A dual-gate token-selection MoE (`routers.moe`) predicts, from the prompt's token vectors,
   every quality metric the data has (e.g. AGIQA-3K: quality and alignment; HADIS artifact:
   the discriminator score) for the edge (light) and the cloud (heavy) image; targets are
   z-scored per metric with training statistics.
2. PRS(I_e, I_c) = Σ_i w_i σ((q̂_e,i - q̂_c,i) / (Γ |μ_i(I_e) - μ_i(I_c)|)), μ = training means.
3. Budget rule: the prompt goes to the cloud when PRS < α, α = the largest α <= ½ with
   P{PRS < α} <= ρ on the calibration split. With score = 1 - PRS this is the usual budget
   threshold floored at ½: a prompt whose edge image is predicted at least as good never
   goes to the cloud, whatever the budget.

The slides (shared/papers/000_*) give neither the metric weights w_i nor Γ: ours default to
uniform w_i (summing to 1, so that PRS = ½ means a tie, the α <= ½ rule's reference) and Γ = 1.
"""

from __future__ import annotations

import numpy as np

from .base import Router, RouterError
from .data import PromptBatch, RoutingData
from .features import TokenFeaturizer
from .metrics import budget_threshold, pareto_relative_superiority
from .moe import MoeShape, fit_moe_regression, moe_forward
from .nn import TrainConfig

DEFAULT_MOE_SHAPE = MoeShape()


class RouteT2IRouter(Router):
    name = "routet2i"

    def __init__(
        self,
        tokens: TokenFeaturizer,
        config: TrainConfig,
        seed: int,
        shape: MoeShape = DEFAULT_MOE_SHAPE,
        prs_weights: tuple[float, ...] | None = None,
        gamma: float = 1.0,
    ) -> None:
        self.tokens, self.config, self.seed, self.shape = tokens, config, seed, shape
        self.prs_weights, self.gamma = prs_weights, gamma

    def fit(self, train: RoutingData) -> RouteT2IRouter:
        metrics = train.metrics()
        self.metric_names_ = tuple(metrics)
        # (n, 2K): light then heavy value of each metric
        light = np.stack([m[:, train.light] for m in metrics.values()], axis=1)
        heavy = np.stack([m[:, train.heavy] for m in metrics.values()], axis=1)
        if not (np.isfinite(light).all() and np.isfinite(heavy).all()):
            raise RouterError(f"{self.name}: a quality metric is missing for the routing pair")
        both = np.vstack([light, heavy])
        self.center_, self.scale_ = both.mean(axis=0), np.maximum(both.std(axis=0), 1e-12)
        self.edge_mean_, self.cloud_mean_ = light.mean(axis=0), heavy.mean(axis=0)
        target = (np.hstack([light, heavy]) - np.tile(self.center_, 2)) / np.tile(self.scale_, 2)
        self.tokens.fit(train.batch)
        x, mask = self.tokens.transform(train.batch)
        self.params_ = fit_moe_regression(x, mask, target, self.shape, self.config, self.seed)
        return self

    def predict_quality(self, batch: PromptBatch) -> tuple[np.ndarray, np.ndarray]:
        """Predicted per-metric quality (n, K) of the edge and of the cloud image."""
        if not hasattr(self, "params_"):
            raise RouterError(f"{self.name}: call fit() before score()")
        x, mask = self.tokens.transform(batch)
        out = moe_forward(self.params_, x, mask, self.shape)[0]
        k = len(self.metric_names_)
        return out[:, :k] * self.scale_ + self.center_, out[:, k:] * self.scale_ + self.center_

    def prs(self, batch: PromptBatch) -> np.ndarray:
        edge, cloud = self.predict_quality(batch)
        return pareto_relative_superiority(
            edge, cloud, self.edge_mean_, self.cloud_mean_, self.prs_weights, self.gamma
        )

    def score(self, batch: PromptBatch) -> np.ndarray:
        return 1.0 - self.prs(batch)

    def threshold_for(self, calib_scores: np.ndarray, target_heavy_share: float) -> float:
        return max(budget_threshold(calib_scores, target_heavy_share), 0.5)
