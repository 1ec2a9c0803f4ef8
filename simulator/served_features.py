"""Per-image features of a profiled bundle (`features.npz`) and the FID of the images a run served.

`features.npz` (optional; `profiler.steps.build_bundle` writes it from the profiler's per-image
features) holds::

    features         (n_prompts, n_models, images_per_prompt, d) float: the feature vector
                     (Inception pool, or the tiny extractor's) of each image each model
                     generated for each prompt; prompts in prompt_id order, models in
                     models.csv order
    models           (n_models,) the model names, in models.csv order (checked on load)
    reference_mu     (d,) mean of the reference (real) images' features
    reference_sigma  (d, d) their covariance
    reference_n      how many reference images they were estimated from

Served FID: every completed query adds its prompt's `images_per_prompt` images of the model
that served it (its final model) to the image set, repeats included, whose Gaussian statistics
are compared with the reference's by `profiler.frechet.frechet_distance`. A set that serves
each prompt once is the set whose FID the profiler's cascade table tabulates, so the two agree
on it exactly; any other routing, mix or cascade length is scored from its own images, with no
table or fitted model in between.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from profiler.frechet import frechet_distance, psd_sqrt
from simulator.errors import InputError
from simulator.npz_input import read_npz_arrays

FEATURES_FILE = "features.npz"
ARRAYS = ("features", "models", "reference_mu", "reference_sigma", "reference_n")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: the file is byte-stable
MAX_ABS_VALUE = 1e50  # far beyond any real feature; the FID's products of three stay finite
MAX_REFERENCE_N = int(np.iinfo(np.int64).max)


class FeaturesError(InputError):
    """A features file that cannot be used; the message names the file, array and problem."""


def _fail(array: str, problem: str) -> FeaturesError:
    return FeaturesError(f"{FEATURES_FILE}: {array}: {problem}")


def _beyond_bound(values: np.ndarray) -> bool:
    """Whether a finite, non-empty array holds a value beyond ±MAX_ABS_VALUE (no copy made)."""
    return max(-float(values.min()), float(values.max())) > MAX_ABS_VALUE


def _first_image(mask: np.ndarray, model_names: tuple[str, ...]) -> str:
    """`prompt P, model 'M'` of the first image with a True in the (prompts, models, ...) mask."""
    prompt, model = np.argwhere(mask)[0][:2]
    return f"prompt {prompt}, model {model_names[model]!r}"


@dataclass(frozen=True, eq=False)
class ServedFeatures:
    """The per-image features of a bundle and the reference statistics they are scored against."""

    features: np.ndarray  # (n_prompts, n_models, images_per_prompt, d)
    models: tuple[str, ...]
    reference_mu: np.ndarray  # (d,)
    reference_sigma: np.ndarray  # (d, d)
    reference_n: int

    @property
    def images_per_prompt(self) -> int:
        return int(self.features.shape[2])

    @cached_property
    def reference_root(self) -> np.ndarray:
        """reference_sigma^{1/2}, computed once per bundle (the costliest step at d = 2048)."""
        return psd_sqrt(self.reference_sigma)

    def check(self, model_names: tuple[str, ...], n_prompts: int) -> None:
        """Shapes, finiteness and alignment with the bundle's prompts and models, or a
        one-line `FeaturesError`."""
        x = self.features
        if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
            raise _fail(
                "features",
                f"expected a float (prompts, models, images per prompt, d) array, got "
                f"{x.dtype} of shape {x.shape}",
            )
        if self.models != tuple(model_names):
            raise _fail(
                "models",
                f"{list(self.models)} differ from models.csv's {list(model_names)} (same order)",
            )
        if x.shape[:2] != (n_prompts, len(model_names)):
            raise _fail(
                "features",
                f"shape {x.shape} does not start with (prompts, models) = "
                f"({n_prompts}, {len(model_names)})",
            )
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise _fail("features", f"shape {x.shape}: no images or no feature dimensions")
        if not np.isfinite(x).all():
            where = _first_image(~np.isfinite(x), model_names)
            raise _fail("features", f"NaN or infinite value ({where})")
        if _beyond_bound(x):
            where = _first_image(np.abs(x) > MAX_ABS_VALUE, model_names)
            raise _fail("features", f"value beyond ±{MAX_ABS_VALUE:g} ({where})")
        d = x.shape[3]
        for name, value, shape in (
            ("reference_mu", self.reference_mu, (d,)),
            ("reference_sigma", self.reference_sigma, (d, d)),
        ):
            if value.shape != shape or not np.issubdtype(value.dtype, np.floating):
                raise _fail(name, f"expected a float array of shape {shape}, got {value.shape}")
            if not np.isfinite(value).all():
                raise _fail(name, "contains NaN or infinite values")
            if _beyond_bound(value):
                raise _fail(name, f"contains values beyond ±{MAX_ABS_VALUE:g}")
        sigma = self.reference_sigma
        if not np.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-12 * max(np.abs(sigma).max(), 1)):
            raise _fail("reference_sigma", "not symmetric (a covariance matrix is)")
        if not 2 <= self.reference_n <= MAX_REFERENCE_N:
            raise _fail(
                "reference_n",
                f"value {self.reference_n} is not an integer in [2, {MAX_REFERENCE_N}]",
            )

    def fid(self, prompt_idx: np.ndarray, model_idx: np.ndarray) -> float | None:
        """FID of the images of the served (prompt, model) pairs, one pair per completed query
        (None with fewer than two images: no covariance)."""
        n_prompts, n_models, k, d = self.features.shape
        counts = np.bincount(
            np.asarray(prompt_idx, np.int64) * n_models + np.asarray(model_idx, np.int64),
            minlength=n_prompts * n_models,
        )
        served = np.flatnonzero(counts)
        if counts.sum() * k < 2:
            return None
        images = self.features.reshape(n_prompts * n_models, k, d)[served].reshape(-1, d)
        weights = np.repeat(counts[served], k)
        x = images.astype(np.float64)
        mu = np.average(x, axis=0, weights=weights)
        if len(x) < d:  # fewer distinct images than dimensions: the set's Gram matrix
            return self._few_images_fid(x - mu, weights, mu)
        sigma = np.cov(x, rowvar=False, fweights=weights).reshape(d, d)
        return frechet_distance(
            mu, sigma, self.reference_mu, self.reference_sigma, self.reference_root
        )

    def fid_groups(
        self, prompt_idx: np.ndarray, model_idx: np.ndarray, group: np.ndarray, n_groups: int
    ) -> np.ndarray:
        """`fid` of each group of served pairs (pair i in group[i], e.g. a run's plan epochs):
        (n_groups,), NaN for a group with fewer than two images."""
        prompt_idx, model_idx = np.asarray(prompt_idx), np.asarray(model_idx)
        group = np.asarray(group, np.int64)
        order = np.argsort(group, kind="stable")  # pair order kept within a group
        bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
        fid = np.full(n_groups, np.nan)
        for k in np.flatnonzero(np.diff(bounds)):
            pairs = order[bounds[k] : bounds[k + 1]]
            value = self.fid(prompt_idx[pairs], model_idx[pairs])
            fid[k] = np.nan if value is None else value
        return fid

    def _few_images_fid(self, centred: np.ndarray, weights: np.ndarray, mu: np.ndarray) -> float:
        """The Fréchet distance for n < d distinct images in O(n d^2): with B = W^{1/2} X_c
        S_ref^{1/2} / sqrt(N - 1), the set's covariance gives S_ref^{1/2} S S_ref^{1/2} = B^T B,
        whose non-zero eigenvalues are those of the n x n matrix B B^T =
        W^{1/2} X_c S_ref X_c^T W^{1/2} / (N - 1); Tr S = sum_i w_i |x_i - mu|^2 / (N - 1).
        The same value as `frechet_distance` on the d x d covariance, up to round-off."""
        scaled = centred * np.sqrt(weights / (weights.sum() - 1.0))[:, None]
        gram = scaled @ self.reference_sigma @ scaled.T
        eigenvalues = np.linalg.eigvalsh((gram + gram.T) / 2.0)
        cross = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
        diff = mu - self.reference_mu
        value = diff @ diff + (scaled**2).sum() + np.trace(self.reference_sigma) - 2.0 * cross
        return max(float(value), 0.0)

    def update_hash(self, digest: hashlib._Hash) -> None:
        """Feed every array (dtype, shape, bytes) into a bundle's content hash."""
        for name, value in self._arrays().items():
            value = np.ascontiguousarray(value)
            digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
            digest.update(value.tobytes())

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "features": self.features,
            "models": np.array(self.models, dtype=str),
            "reference_mu": self.reference_mu,
            "reference_sigma": self.reference_sigma,
            "reference_n": np.int64(self.reference_n),
        }

    def save(self, path: str | Path) -> Path:
        """An uncompressed .npz with fixed entry timestamps (byte-identical for equal arrays)."""
        path = Path(path)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for name, value in self._arrays().items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_DATE), buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ServedFeatures:
        """Read a features file (no pickles); shape and alignment are checked by `check`."""
        arrays = read_npz_arrays(path, ARRAYS, FeaturesError, label=FEATURES_FILE)
        models, n = arrays["models"], arrays["reference_n"]
        if models.ndim != 1 or models.dtype.kind != "U":
            raise _fail(
                "models", f"expected a 1-D array of names, got {models.dtype} {models.shape}"
            )
        if n.shape != () or n.dtype.kind not in "iu":
            raise _fail("reference_n", f"expected an integer, got {n.dtype} of shape {n.shape}")
        return cls(
            features=arrays["features"],
            models=tuple(str(m) for m in models),
            reference_mu=arrays["reference_mu"],
            reference_sigma=arrays["reference_sigma"],
            reference_n=int(n),
        )
