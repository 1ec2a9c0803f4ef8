"""RouteT2I multi-metric image quality (Xin et al., ICCV 2025; slides `000_*`):

    q(I, m) = σ(s · (cos(e_I, e_m+) − cos(e_I, e_m−)))

for each metric m with a positive and a negative text (e.g. "a sharp image" / "a blurry
image"), e = CLIP embeddings, s = the logit scale (CLIP's 100 by default). The slides name 10
metrics, Definition … Integrity; the texts live in a JSON config (default:
`profiler/data/routet2i_metrics.json`, t2isim's own wording). Per-image values are stored as
`q_<metric>` columns of the score files; the bundle keeps their per-prompt means, the inputs of
RouteT2I's PRS (`routers.metrics.pareto_relative_superiority`).

open_clip / torch are imported inside the functions only (through `profiler.openclip`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from simulator.json_input import read_json_object

ROUTET2I_METRICS = (
    "definition",
    "detail",
    "clarity",
    "sharpness",
    "harmony",
    "realism",
    "color",
    "consistency",
    "layout",
    "integrity",
)
DEFAULT_METRICS_CONFIG = Path(__file__).parent / "data" / "routet2i_metrics.json"
CLIP_LOGIT_SCALE = 100.0
COLUMN_PREFIX = "q_"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class MetricConfigError(ValueError):
    """A metric-texts config that cannot be used (file, entry, field)."""


@dataclass(frozen=True)
class MetricTexts:
    name: str  # lower-case identifier; the score column is q_<name>
    positive: str
    negative: str


@dataclass(frozen=True)
class MultiMetricConfig:
    metrics: tuple[MetricTexts, ...]
    logit_scale: float = CLIP_LOGIT_SCALE
    source: str = ""  # where the texts come from (recorded in bundle.json)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(COLUMN_PREFIX + m.name for m in self.metrics)

    def to_dict(self) -> dict:
        return {
            "logit_scale": self.logit_scale,
            "source": self.source,
            "metrics": [
                {"name": m.name, "positive": m.positive, "negative": m.negative}
                for m in self.metrics
            ],
        }


def _text(path: Path, i: int, entry: dict, field: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise MetricConfigError(
            f"{path}: metrics[{i}]: field {field}: expected a non-empty one-line string"
        )
    return value


def load_metric_config(
    path: str | Path | None = None, logit_scale: float = CLIP_LOGIT_SCALE
) -> MultiMetricConfig:
    """Read `{"source": ..., "metrics": [{"name", "positive", "negative"}, ...]}` (order kept);
    `path=None` reads the shipped RouteT2I default."""
    path = Path(path) if path is not None else DEFAULT_METRICS_CONFIG
    if not np.isfinite(logit_scale) or logit_scale <= 0:
        raise MetricConfigError(f"logit scale {logit_scale}: expected a finite number > 0")
    if not Path(path).is_file():
        raise MetricConfigError(f"{path}: metric config not found")
    data = read_json_object(path, MetricConfigError)
    entries = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise MetricConfigError(f"{path}: field metrics: expected a non-empty list")
    metrics, seen = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise MetricConfigError(f"{path}: metrics[{i}]: expected an object")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name in seen:
            raise MetricConfigError(
                f"{path}: metrics[{i}]: field name: {name!r} is not a new lower-case identifier"
            )
        seen.add(name)
        metrics.append(
            MetricTexts(name, _text(path, i, entry, "positive"), _text(path, i, entry, "negative"))
        )
    source = data.get("source", "")
    return MultiMetricConfig(tuple(metrics), float(logit_scale), str(source) or str(path))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if x.ndim != 2 or not np.all(norms > 0):
        raise MetricConfigError(f"embeddings {x.shape}: expected (n, d) rows of non-zero norm")
    return x / norms


def metric_quality(
    image_emb: np.ndarray,
    positive_emb: np.ndarray,
    negative_emb: np.ndarray,
    logit_scale: float = CLIP_LOGIT_SCALE,
) -> np.ndarray:
    """(n_images, n_metrics) q = σ(s (cos(I, m+) − cos(I, m−))), float64 in [0, 1]
    (strictly inside unless s × the cosine gap exceeds ~37, where float64 rounds to 1)."""
    image = _unit_rows(image_emb)
    positive, negative = _unit_rows(positive_emb), _unit_rows(negative_emb)
    if positive.shape != negative.shape or positive.shape[1] != image.shape[1]:
        raise MetricConfigError(
            f"metric embeddings {positive.shape} / {negative.shape} do not match images "
            f"{image.shape}"
        )
    return expit(logit_scale * (image @ positive.T - image @ negative.T))


def metric_text_embeddings(backbone, config: MultiMetricConfig) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) text embeddings of the config's metrics, (n_metrics, d) each."""
    from profiler.openclip import text_embeddings

    positive = text_embeddings(backbone, [m.positive for m in config.metrics])
    negative = text_embeddings(backbone, [m.negative for m in config.metrics])
    return positive, negative


def quality_columns(
    image_emb: np.ndarray, text_emb: tuple[np.ndarray, np.ndarray], config: MultiMetricConfig
) -> dict[str, np.ndarray]:
    """{q_<metric>: per-image quality} for images embedded by the same backbone as `text_emb`."""
    q = metric_quality(image_emb, *text_emb, config.logit_scale)
    return {column: q[:, k] for k, column in enumerate(config.columns)}


def quality_column_names(columns: Sequence[str]) -> list[str]:
    """The `q_<metric>` columns of a score table, in table order."""
    return [
        c for c in columns if c.startswith(COLUMN_PREFIX) and _NAME.match(c[len(COLUMN_PREFIX) :])
    ]
