"""Fréchet distance between Gaussians (the FID formula) and the exact FID of per-prompt model mixes.

FID = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2})  (Heusel et al. 2017).

The trace of the matrix square root is computed from the symmetric PSD product
S1^{1/2} S2 S1^{1/2}, which has the same eigenvalues as S1 S2: Tr((S1 S2)^{1/2}) is the sum of
the square roots of its eigenvalues. Both steps use `eigh` (symmetric, real, stable even for
rank-deficient covariances, e.g. fewer images than feature dimensions), with round-off negatives
clipped to zero — no complex parts, no eps-offset retry as `scipy.linalg.sqrtm` needs.

Pure numpy: no torch here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.npz_input import read_npz_arrays


class FeatureError(ValueError):
    """Features or Gaussian statistics that cannot be used (shape, size, finiteness)."""


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature distribution (what FID compares)."""

    mu: np.ndarray  # (d,)
    sigma: np.ndarray  # (d, d)
    n: int  # number of feature vectors they were estimated from

    @classmethod
    def from_features(cls, features: np.ndarray) -> GaussianStats:
        """Sample mean and unbiased covariance (ddof=1, as clean-fid / pytorch-fid) of (n, d)."""
        x = _as_matrix(features, "features")
        if x.shape[0] < 2:
            raise FeatureError(
                f"features: need at least 2 vectors for a covariance, got {x.shape[0]}"
            )
        return cls(
            x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]), x.shape[0]
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez(path, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))
        return path

    @classmethod
    def load(cls, path: str | Path) -> GaussianStats:
        """The statistics `save` wrote; a file that is not such is one `FeatureError` naming it
        (shapes and finiteness are checked where they are used)."""
        arrays = read_npz_arrays(path, ("mu", "sigma", "n"), FeatureError)
        for name in ("mu", "sigma"):
            if arrays[name].dtype.kind not in "iuf":
                raise FeatureError(f"{path}: {name}: expected numbers, got {arrays[name].dtype}")
        n = arrays["n"]
        if n.shape != () or n.dtype.kind not in "iu":
            raise FeatureError(f"{path}: n: expected an integer, got {n.dtype} of shape {n.shape}")
        return cls(arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64), int(n))


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise FeatureError(f"{name}: expected a 2-D (n, d) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise FeatureError(f"{name}: contains NaN or infinite values")
    return x


def psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(
    sigma1: np.ndarray, sigma2: np.ndarray, root2: np.ndarray | None = None
) -> float:
    """Tr((S1 S2)^{1/2}) for symmetric PSD S1, S2 (eigenvalues of S2^{1/2} S1 S2^{1/2}).
    `root2` = S2^{1/2}, when already known (one reference against many image sets)."""
    root2 = psd_sqrt(sigma2) if root2 is None else root2
    middle = root2 @ sigma1 @ root2
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    root2: np.ndarray | None = None,
) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, S1) and N(mu2, S2)
    (`root2`: S2^{1/2} when already known)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, float)),
        np.atleast_2d(np.asarray(sigma2, float)),
    )
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,):
        raise FeatureError(f"mean shapes differ or are not vectors: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise FeatureError(
            f"covariance shapes {sigma1.shape}, {sigma2.shape} do not match dimension {d}"
        )
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise FeatureError(f"{name}: contains NaN or infinite values")
    diff = mu1 - mu2
    cross = trace_sqrt_product(sigma1, sigma2, root2)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * cross
    return max(float(value), 0.0)


def fid_from_stats(stats: GaussianStats, reference: GaussianStats) -> float:
    return frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)


def fid_from_features(features: np.ndarray, reference: GaussianStats) -> float:
    return fid_from_stats(GaussianStats.from_features(features), reference)


class MixStats:
    """Per-model sufficient statistics (sums and Gram matrices per prompt set) so that the FID of
    any per-prompt assignment of prompts to models is exact and cheap to recompute.

    `features_by_model[m]` has shape (n_prompts, images_per_prompt, d): the features of every
    image each model generated for each prompt (prompts in the same order for every model).
    """

    def __init__(self, features_by_model: Mapping[str, np.ndarray]):
        if not features_by_model:
            raise FeatureError("features_by_model: no models given")
        shapes = {m: np.shape(f) for m, f in features_by_model.items()}
        first = next(iter(shapes.values()))
        for model, shape in shapes.items():
            if len(shape) != 3:
                raise FeatureError(
                    f"features of {model!r}: expected (prompts, images per prompt, d), got {shape}"
                )
            if shape != first:
                raise FeatureError(f"features of {model!r}: shape {shape} differs from {first}")
        self.models = tuple(features_by_model)
        self.n_prompts, self.images_per_prompt, self.dim = first
        flat = {
            m: _as_matrix(
                np.asarray(f, dtype=np.float64).reshape(-1, self.dim), f"features of {m!r}"
            )
            for m, f in features_by_model.items()
        }
        # Gram matrices of features shifted by a common centre avoid the cancellation of
        # E[xx^T] - mu mu^T; the covariance does not depend on the shift.
        self._shift = np.mean([x.mean(axis=0) for x in flat.values()], axis=0)
        self._flat = {m: x - self._shift for m, x in flat.items()}
        self._sum = {m: x.sum(axis=0) for m, x in self._flat.items()}
        self._gram = {m: x.T @ x for m, x in self._flat.items()}

    def _rows(self, prompt_mask: np.ndarray) -> np.ndarray:
        return np.repeat(prompt_mask, self.images_per_prompt)

    def _partial(self, model: str, prompt_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sum, Gram) of the model's images over the masked prompts, computed over the smaller
        of the mask and its complement."""
        x = self._flat[model]
        n_in = int(prompt_mask.sum())
        if n_in == 0:
            return np.zeros(self.dim), np.zeros((self.dim, self.dim))
        if n_in == self.n_prompts:
            return self._sum[model], self._gram[model]
        if 2 * n_in <= self.n_prompts:
            sub = x[self._rows(prompt_mask)]
            return sub.sum(axis=0), sub.T @ sub
        sub = x[self._rows(~prompt_mask)]
        return self._sum[model] - sub.sum(axis=0), self._gram[model] - sub.T @ sub

    def stats(self, assignment: Sequence[str] | np.ndarray) -> GaussianStats:
        """Gaussian statistics of the image set where prompt p is served by `assignment[p]`."""
        assignment = np.asarray(assignment)
        if assignment.shape != (self.n_prompts,):
            raise FeatureError(
                f"assignment: expected one model per prompt ({self.n_prompts}), got shape "
                f"{assignment.shape}"
            )
        unknown = sorted(set(assignment.tolist()) - set(self.models))
        if unknown:
            raise FeatureError(f"assignment: unknown model {unknown[0]!r}")
        n = self.n_prompts * self.images_per_prompt
        if n < 2:
            raise FeatureError("assignment: need at least 2 images for a covariance")
        total = np.zeros(self.dim)
        gram = np.zeros((self.dim, self.dim))
        for model in self.models:
            s, g = self._partial(model, assignment == model)
            total += s
            gram += g
        shifted_mu = total / n
        sigma = (gram - n * np.outer(shifted_mu, shifted_mu)) / (n - 1)
        return GaussianStats(shifted_mu + self._shift, (sigma + sigma.T) / 2.0, n)

    def fid(self, assignment: Sequence[str] | np.ndarray, reference: GaussianStats) -> float:
        return float(self.fids([assignment], reference)[0])

    def fids(
        self, assignments: Iterable[Sequence[str] | np.ndarray], reference: GaussianStats
    ) -> np.ndarray:
        """FID of many assignments against one reference (its square root computed once)."""
        root = psd_sqrt(reference.sigma)
        values = []
        for assignment in assignments:
            stats = self.stats(assignment)
            values.append(
                frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma, root)
            )
        return np.array(values, dtype=np.float64)


def fid_of_mix(
    features_by_model: Mapping[str, np.ndarray],
    assignment: Sequence[str] | np.ndarray,
    reference_stats: GaussianStats,
) -> float:
    """Exact FID of the image set where prompt p's images come from model `assignment[p]`."""
    return MixStats(features_by_model).fid(assignment, reference_stats)
