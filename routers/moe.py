"""Dual-gate token-selection mixture of experts (RouteT2I's routing model, numpy).

RouteT2I's slides: "a dual-gate MoE that uses the token selection gate as the gate network",
replacing the FFN of a Transformer block; the model predicts image quality "by identifying key
tokens in the prompt". Our layer, on token vectors x_t (t = 1..T, padded tokens masked):

* token-selection gate: S = X U + b_u (T x E); expert e takes only its top-k tokens by S[:, e]
  (k = ceil(κ · valid tokens)), weighted by σ(S_te) — each expert picks the key tokens it sees;
* expert gate: G = softmax_e(X V + b_v), the usual per-token mixture over experts;
* dual-gate weight A_te = 1[t in top-k(e)] σ(S_te) G_te;
* experts f_e(x) = W2_e relu(W1_e x + b1_e) + b2_e; output with the FFN's residual path
  y_t = x_t R + Σ_e A_te f_e(x_t);
* masked mean pool over tokens, then a linear head to the predicted quality vector.

Gradients are hand-written (the top-k selection passes no gradient, as in expert-choice MoE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nn import Params, TrainConfig, mse, sigmoid, train_adam


@dataclass(frozen=True)
class MoeShape:
    experts: int = 4
    hidden: int = 32
    out: int = 32
    keep_fraction: float = 0.5  # κ


def init_moe(in_dim: int, n_outputs: int, shape: MoeShape, rng: np.random.Generator) -> Params:
    e, h, o = shape.experts, shape.hidden, shape.out
    return {
        "u": rng.normal(0, 1 / np.sqrt(in_dim), (in_dim, e)),
        "bu": np.zeros(e),
        "v": rng.normal(0, 1 / np.sqrt(in_dim), (in_dim, e)),
        "bv": np.zeros(e),
        "w1": rng.normal(0, np.sqrt(2 / in_dim), (e, in_dim, h)),
        "b1": np.zeros((e, h)),
        "w2": rng.normal(0, np.sqrt(1 / h), (e, h, o)),
        "b2": np.zeros((e, o)),
        "r": rng.normal(0, 1 / np.sqrt(in_dim), (in_dim, o)),
        "head": rng.normal(0, 1 / np.sqrt(o), (o, n_outputs)),
        "bhead": np.zeros(n_outputs),
    }


def token_selection(scores: np.ndarray, mask: np.ndarray, keep_fraction: float) -> np.ndarray:
    """(B, T, E) 0/1: each expert's top-k valid tokens by gate score (ties: earlier token)."""
    k = np.ceil(keep_fraction * mask.sum(axis=1)).astype(int)  # (B,)
    masked = np.where(mask[:, :, None], scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(scores.shape[1])[None, :, None], axis=1)
    return ((rank < k[:, None, None]) & mask[:, :, None]).astype(float)


def moe_forward(
    params: Params, x: np.ndarray, mask: np.ndarray, shape: MoeShape
) -> tuple[np.ndarray, dict]:
    """Predicted outputs (B, n_outputs) and the activations the backward pass needs."""
    s = x @ params["u"] + params["bu"]
    sel = token_selection(s, mask, shape.keep_fraction)
    gs = sigmoid(s)
    logits = x @ params["v"] + params["bv"]
    g = np.exp(logits - logits.max(axis=2, keepdims=True))
    g /= g.sum(axis=2, keepdims=True)
    a = sel * gs * g
    pre = np.einsum("btd,edh->bteh", x, params["w1"], optimize=True) + params["b1"]
    hidden = np.maximum(pre, 0.0)
    f = np.einsum("bteh,eho->bteo", hidden, params["w2"], optimize=True) + params["b2"]
    y = x @ params["r"] + np.einsum("bte,bteo->bto", a, f, optimize=True)
    n_valid = mask.sum(axis=1, keepdims=True).astype(float)
    pooled = (y * mask[:, :, None]).sum(axis=1) / n_valid
    out = pooled @ params["head"] + params["bhead"]
    cache = dict(
        s=s, sel=sel, gs=gs, g=g, a=a, pre=pre, hidden=hidden, f=f, pooled=pooled, n=n_valid
    )
    return out, cache


def moe_backward(
    params: Params, x: np.ndarray, mask: np.ndarray, c: dict, dout: np.ndarray
) -> Params:
    dpooled = dout @ params["head"].T
    dy = mask[:, :, None] * (dpooled / c["n"])[:, None, :]
    da = np.einsum("bto,bteo->bte", dy, c["f"], optimize=True)
    df = c["a"][..., None] * dy[:, :, None, :]
    dhidden = np.einsum("bteo,eho->bteh", df, params["w2"], optimize=True) * (c["pre"] > 0)
    ds = da * c["sel"] * c["g"] * c["gs"] * (1 - c["gs"])
    dg = da * c["sel"] * c["gs"]
    dlogits = c["g"] * (dg - (c["g"] * dg).sum(axis=2, keepdims=True))
    return {
        "u": np.einsum("btd,bte->de", x, ds, optimize=True),
        "bu": ds.sum(axis=(0, 1)),
        "v": np.einsum("btd,bte->de", x, dlogits, optimize=True),
        "bv": dlogits.sum(axis=(0, 1)),
        "w1": np.einsum("btd,bteh->edh", x, dhidden, optimize=True),
        "b1": dhidden.sum(axis=(0, 1)),
        "w2": np.einsum("bteh,bteo->eho", c["hidden"], df, optimize=True),
        "b2": df.sum(axis=(0, 1)),
        "r": np.einsum("btd,bto->do", x, dy, optimize=True),
        "head": c["pooled"].T @ dout,
        "bhead": dout.sum(axis=0),
    }


def fit_moe_regression(
    x: np.ndarray,
    mask: np.ndarray,
    target: np.ndarray,
    shape: MoeShape,
    config: TrainConfig,
    seed: int,
) -> Params:
    """Train the MoE to predict `target` (B, n_outputs) under mean squared error."""
    params = init_moe(x.shape[2], target.shape[1], shape, np.random.default_rng(seed))

    def loss_and_grad(p: Params, idx: np.ndarray) -> tuple[float, Params]:
        out, cache = moe_forward(p, x[idx], mask[idx], shape)
        value, dout = mse(out, target[idx])
        return value, moe_backward(p, x[idx], mask[idx], cache, dout)

    return train_adam(params, loss_and_grad, len(x), config, seed + 1)
