"""RouteLLM-style routers (Ong et al., 2024) on prompt representations.

* ``mlp`` (RouteLLM-BERT style): a classifier of P(heavy beats light) trained on the label
  1[q_heavy > q_light]; score = its logit.
* ``mf`` (RouteLLM-MF): s(m, x) = c · (v_m ⊙ W x); P(a beats b | x) = σ(s(a, x) - s(b, x)),
  trained on every pair of models the data measures (ties skipped); score = s(heavy) - s(light).
"""

from __future__ import annotations

import numpy as np

from .base import FeatureRouter, RouterError
from .data import RoutingData
from .nn import Params, bce_with_logits, fit_mlp, mlp_forward, sigmoid, train_adam


class MlpClassifierRouter(FeatureRouter):
    name = "mlp"

    def _fit(self, x: np.ndarray, train: RoutingData) -> None:
        label = (train.heavy_quality > train.light_quality).astype(float)
        self.params_ = fit_mlp(x, label, bce_with_logits, self.config, self.seed)

    def _score(self, x: np.ndarray) -> np.ndarray:
        return mlp_forward(self.params_, x)[0][:, 0]


def pairwise_battles(quality: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(prompt, model a, model b, 1[a beats b]) for every measured, untied pair a < b."""
    prompts, a, b = [], [], []
    n_models = quality.shape[1]
    for i in range(n_models):
        for j in range(i + 1, n_models):
            ok = np.flatnonzero(
                np.isfinite(quality[:, i])
                & np.isfinite(quality[:, j])
                & (quality[:, i] != quality[:, j])
            )
            prompts.append(ok)
            a.append(np.full(len(ok), i))
            b.append(np.full(len(ok), j))
    p, a, b = np.concatenate(prompts), np.concatenate(a), np.concatenate(b)
    return p, a, b, (quality[p, a] > quality[p, b]).astype(float)


def mf_score(params: Params, x: np.ndarray, model: np.ndarray) -> np.ndarray:
    return ((x @ params["w"]) * params["v"][model]) @ params["c"]


def mf_loss_and_grad(
    params: Params, x: np.ndarray, a: np.ndarray, b: np.ndarray, won: np.ndarray
) -> tuple[float, Params]:
    """BCE of σ(s(a) - s(b)) against `won`, with gradients."""
    z = x @ params["w"]
    dv = params["v"][a] - params["v"][b]
    diff = (z * dv) @ params["c"]
    loss, g = bce_with_logits(diff, won)
    cz = params["c"] * z * g[:, None]
    grad_v = np.zeros_like(params["v"])
    np.add.at(grad_v, a, cz)
    np.add.at(grad_v, b, -cz)
    return loss, {
        "w": x.T @ (g[:, None] * params["c"] * dv),
        "v": grad_v,
        "c": ((g[:, None] * dv) * z).sum(0),
    }


class MatrixFactorisationRouter(FeatureRouter):
    name = "mf"
    dim = 32

    def _fit(self, x: np.ndarray, train: RoutingData) -> None:
        prompt, a, b, won = pairwise_battles(train.quality)
        if len(prompt) == 0:
            raise RouterError(f"{self.name}: no untied model comparisons in the training data")
        rng = np.random.default_rng(self.seed)
        params = {
            "w": rng.normal(0, 1 / np.sqrt(x.shape[1]), (x.shape[1], self.dim)),
            "v": rng.normal(0, 1, (train.quality.shape[1], self.dim)),
            "c": rng.normal(0, 1 / np.sqrt(self.dim), self.dim),
        }
        self.pair_ = (train.light, train.heavy)
        self.params_ = train_adam(
            params,
            lambda p, idx: mf_loss_and_grad(p, x[prompt[idx]], a[idx], b[idx], won[idx]),
            len(prompt),
            self.config,
            self.seed + 1,
        )

    def _score(self, x: np.ndarray) -> np.ndarray:
        light, heavy = self.pair_
        ones = np.ones(len(x), dtype=int)
        return mf_score(self.params_, x, heavy * ones) - mf_score(self.params_, x, light * ones)

    def win_probability(self, x: np.ndarray) -> np.ndarray:
        """P(heavy beats light | x) under the fitted model."""
        return sigmoid(self._score(x))
