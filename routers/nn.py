"""Small numpy neural-network pieces: a one-hidden-layer MLP, losses, minibatch Adam.

Gradients are written by hand (checked against finite differences in the tests), so the
learned routers need neither torch nor scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

try:  # many small matmuls: BLAS threads only add contention (measured 4x slower on 2 cores)
    from threadpoolctl import threadpool_limits
except ImportError:  # optional; results are identical either way
    threadpool_limits = None

Params = dict[str, np.ndarray]
# loss_and_grad(params, sample_idx) -> (loss, grads with the keys of params)
LossAndGrad = Callable[[Params, np.ndarray], tuple[float, Params]]


@dataclass(frozen=True)
class TrainConfig:
    hidden: int = 64
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4


def init_mlp(in_dim: int, hidden: int, out_dim: int, rng: np.random.Generator) -> Params:
    """He-initialised in_dim -> hidden (ReLU) -> out_dim."""
    return {
        "w1": rng.normal(0, np.sqrt(2 / in_dim), (in_dim, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0, np.sqrt(1 / hidden), (hidden, out_dim)),
        "b2": np.zeros(out_dim),
    }


def mlp_forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output logits, hidden activations)."""
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return hidden @ params["w2"] + params["b2"], hidden


def mlp_backward(params: Params, x: np.ndarray, hidden: np.ndarray, dout: np.ndarray) -> Params:
    dhidden = (dout @ params["w2"].T) * (hidden > 0)
    return {
        "w1": x.T @ dhidden,
        "b1": dhidden.sum(0),
        "w2": hidden.T @ dout,
        "b2": dout.sum(0),
    }


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def bce_with_logits(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean binary cross-entropy with (soft) targets in [0, 1]; gradient w.r.t. logits."""
    loss = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    return float(loss.mean()), (sigmoid(logits) - target) / logits.size


def masked_log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    return np.where(mask, z - np.log(np.exp(z).sum(axis=1, keepdims=True)), 0.0)


def soft_cross_entropy(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean -sum target log softmax(logits) over available classes (NaN target = unavailable)."""
    mask = np.isfinite(target)
    target = np.where(mask, target, 0.0)
    logp = masked_log_softmax(logits, mask)
    n = len(logits)
    grad = np.where(mask, np.exp(logp) * target.sum(1, keepdims=True) - target, 0.0) / n
    return float(-(target * logp).sum() / n), grad


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    diff = pred - target
    return float(np.mean(diff**2)), 2 * diff / diff.size


def train_adam(
    params: Params, loss_and_grad: LossAndGrad, n_samples: int, config: TrainConfig, seed: int
) -> Params:
    """Minibatch Adam (decoupled weight decay on matrices); returns new parameters.

    All parameters live in one flat vector (the dict holds views of it), so each step is a
    few vector operations whatever the number of parameter arrays."""
    keys = list(params)
    flat = np.concatenate([np.asarray(params[k], dtype=float).ravel() for k in keys])
    views, start = {}, 0
    for k in keys:
        views[k] = flat[start : start + params[k].size].reshape(params[k].shape)
        start += params[k].size
    decay = np.concatenate(
        [np.full(params[k].size, config.weight_decay if params[k].ndim > 1 else 0.0) for k in keys]
    )
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    rng = np.random.default_rng(seed)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    with single_blas_thread():
        for _ in range(config.epochs):
            order = rng.permutation(n_samples)
            for first in range(0, n_samples, config.batch_size):
                _, grads = loss_and_grad(views, order[first : first + config.batch_size])
                g = np.concatenate([grads[k].ravel() for k in keys])
                step += 1
                m = beta1 * m + (1 - beta1) * g
                v = beta2 * v + (1 - beta2) * g * g
                m_hat, v_hat = m / (1 - beta1**step), v / (1 - beta2**step)
                flat -= config.lr * (m_hat / (np.sqrt(v_hat) + eps) + decay * flat)
    return {k: views[k].copy() for k in keys}


def single_blas_thread() -> AbstractContextManager:
    """BLAS on one thread inside the block (where threadpoolctl is installed)."""
    return nullcontext() if threadpool_limits is None else threadpool_limits(1, user_api="blas")


def fit_mlp(
    x: np.ndarray,
    target: np.ndarray,
    loss: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]],
    config: TrainConfig,
    seed: int,
) -> Params:
    """Train an MLP x -> logits under `loss(logits, target_batch)`."""
    out_dim = target.shape[1] if target.ndim > 1 else 1
    target2 = target.reshape(len(target), out_dim) if target.ndim == 1 else target
    params = init_mlp(x.shape[1], config.hidden, out_dim, np.random.default_rng(seed))

    def loss_and_grad(p: Params, idx: np.ndarray) -> tuple[float, Params]:
        logits, hidden = mlp_forward(p, x[idx])
        value, dlogits = loss(logits, target2[idx])
        return value, mlp_backward(p, x[idx], hidden, dlogits)

    return train_adam(params, loss_and_grad, len(x), config, seed + 1)
