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
    """Predicted outputs (B, n_outputs) and the activations the backward pass needs.

    Expert tensors are laid out expert-major, (E, B·T, ·), so each expert is one matmul."""
    b, t, d = x.shape
    flat = x.reshape(b * t, d)
    s = x @ params["u"] + params["bu"]
    sel = token_selection(s, mask, shape.keep_fraction)
    gs = sigmoid(s)
    logits = x @ params["v"] + params["bv"]
    g = np.exp(logits - logits.max(axis=2, keepdims=True))
    g /= g.sum(axis=2, keepdims=True)
    a = (sel * gs * g).reshape(b * t, -1).T  # (E, B·T)
    pre = flat @ params["w1"] + params["b1"][:, None, :]  # (E, B·T, hidden)
    hidden = np.maximum(pre, 0.0)
    f = hidden @ params["w2"] + params["b2"][:, None, :]  # (E, B·T, out)
    y = flat @ params["r"] + (a[:, :, None] * f).sum(axis=0)
    n_valid = mask.sum(axis=1, keepdims=True).astype(float)
    pooled = (y.reshape(b, t, -1) * mask[:, :, None]).sum(axis=1) / n_valid
    out = pooled @ params["head"] + params["bhead"]
    cache = dict(
        s=s, sel=sel, gs=gs, g=g, a=a, pre=pre, hidden=hidden, f=f, pooled=pooled, n=n_valid
    )
    return out, cache


def moe_backward(
    params: Params, x: np.ndarray, mask: np.ndarray, c: dict, dout: np.ndarray
) -> Params:
    b, t, d = x.shape
    flat = x.reshape(b * t, d)
    dpooled = dout @ params["head"].T
    dy = (mask[:, :, None] * (dpooled / c["n"])[:, None, :]).reshape(b * t, -1)
    da = (c["f"] * dy).sum(axis=2).T.reshape(b, t, -1)  # (B, T, E)
    df = c["a"][:, :, None] * dy  # (E, B·T, out)
    dpre = (df @ params["w2"].transpose(0, 2, 1)) * (c["pre"] > 0)
    ds = da * c["sel"] * c["g"] * c["gs"] * (1 - c["gs"])
    dg = da * c["sel"] * c["gs"]
    dlogits = c["g"] * (dg - (c["g"] * dg).sum(axis=2, keepdims=True))
    return {
        "u": flat.T @ ds.reshape(b * t, -1),
        "bu": ds.sum(axis=(0, 1)),
        "v": flat.T @ dlogits.reshape(b * t, -1),
        "bv": dlogits.sum(axis=(0, 1)),
        "w1": flat.T @ dpre,
        "b1": dpre.sum(axis=1),
        "w2": c["hidden"].transpose(0, 2, 1) @ df,
        "b2": df.sum(axis=1),
        "r": flat.T @ dy,
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
        t = int(mask[idx].sum(axis=1).max())  # tokens are left-aligned: drop all-padding columns
        xb, mb = x[idx, :t], mask[idx, :t]
        out, cache = moe_forward(p, xb, mb, shape)
        value, dout = mse(out, target[idx])
        return value, moe_backward(p, xb, mb, cache, dout)

    return train_adam(params, loss_and_grad, len(x), config, seed + 1)
