"""Per-prompt quality matrices for router training and evaluation, and the seeded prompt split.

A `RoutingData` holds, for N prompts and M models ordered light -> heavy, the quality of each
prompt under each model (higher = better) plus what routers may look at: prompt text and, for
the HADIS artifact, its 8 router features. One (light, heavy) pair is selected for routing.

Sources:

* ``hadis-artifact``: quality(p, m) = mean over the 4 images of prompt p of the discriminator's
  P(real) (column 1 of ``discriminator/confidence_scores/scores_model_m.txt``, rows 4p+i);
  prompts from ``traces/text_imagenet1k_hr_5k.txt``; features from
  ``router/prompt_features.csv``. Default pair SDXL-Lightning (0) -> SD3.5-Large (3).
* ``agiqa-3k``: quality = human MOS ``mos_quality`` per prompt x generator (``data.csv``; the
  generator/setting is the ``name`` prefix, the prompt index its number); ``mos_align`` is kept
  as a second metric and ``std_quality`` as the per-entry spread. Default pair
  ``sd1.5_lowstep`` (edge) -> ``xl2.2_normal`` (cloud, SDXL), as suggested by the data README.
* ``default``: the embedded synthetic bundle (`simulator.default_bundle`, built in memory):
  quality(p, m) = the generative model's discriminator score (the artifact's mean P(real)
  over a prompt's images), prompts and their 8 router features from the bundle; the HADIS
  models and default pair as for ``hadis-artifact``.
* a wide CSV: ``prompt`` + one numeric column per model, light -> heavy; default pair first and
  last column.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.bundle import ROUTER_FEATURES
from simulator.csv_input import read_csv_table
from simulator.errors import InputError
from simulator.limits import parse_number

HADIS_MODELS = ("sdxl-lightning", "sd35-large-turbo", "sd35-medium", "sd35-large")
# Batch-1 latency on an L40S (s), HADIS artifact README table (shared/data/README.md).
HADIS_LATENCY_S = (0.5, 1.3, 13.0, 27.0)
HADIS_FEATURES = ROUTER_FEATURES
HADIS_DEFAULT_PAIR = ("sdxl-lightning", "sd35-large")
# AGIQA-3K generators ordered light -> heavy by approximate serving cost (closed models last).
AGIQA_MODELS = (
    "AttnGAN_normal",
    "glide_normal",
    "sd1.5_lowstep",
    "sd1.5_lowcorr",
    "sd1.5_highcorr",
    "sd1.5_normal",
    "xl2.2_normal",
    "midjourney_lowstep",
    "midjourney_normal",
    "DALLE2_normal",
)
AGIQA_DEFAULT_PAIR = ("sd1.5_lowstep", "xl2.2_normal")
DATASETS = ("default", "hadis-artifact", "agiqa-3k")


class RouterDataError(InputError):
    """Routing data that cannot be used; the message names file, line and field."""


@dataclass(frozen=True, eq=False)
class PromptBatch:
    """What a router may look at: prompt ids (row in the source), texts, optional features."""

    prompt_ids: np.ndarray
    texts: tuple[str, ...]
    features: np.ndarray | None = None  # (n, 8) HADIS router features

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True, eq=False)
class RoutingData:
    """Quality of N prompts under M models (light -> heavy) and the selected routing pair."""

    name: str
    batch: PromptBatch
    model_names: tuple[str, ...]
    quality: np.ndarray  # (n, m), higher = better; NaN = not measured (never in the pair)
    light: int
    heavy: int
    extra_metrics: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n, m)
    quality_samples: np.ndarray | None = None  # (n, m, s): per-image quality, where measured
    quality_std: np.ndarray | None = None  # (n, m): spread of the quality estimate
    latency_s: tuple[float, ...] | None = None  # per model, where known

    def __len__(self) -> int:
        return len(self.batch)

    @property
    def light_quality(self) -> np.ndarray:
        return self.quality[:, self.light]

    @property
    def heavy_quality(self) -> np.ndarray:
        return self.quality[:, self.heavy]

    @property
    def pair_names(self) -> tuple[str, str]:
        return self.model_names[self.light], self.model_names[self.heavy]

    def metrics(self) -> dict[str, np.ndarray]:
        """Every quality metric, primary (``quality``) first."""
        return {"quality": self.quality, **self.extra_metrics}

    def subset(self, idx: np.ndarray) -> RoutingData:
        """The rows `idx` (same models and pair)."""
        b = self.batch
        return RoutingData(
            name=self.name,
            batch=PromptBatch(
                b.prompt_ids[idx],
                tuple(b.texts[i] for i in idx),
                None if b.features is None else b.features[idx],
            ),
            model_names=self.model_names,
            quality=self.quality[idx],
            light=self.light,
            heavy=self.heavy,
            extra_metrics={k: v[idx] for k, v in self.extra_metrics.items()},
            quality_samples=None if self.quality_samples is None else self.quality_samples[idx],
            quality_std=None if self.quality_std is None else self.quality_std[idx],
            latency_s=self.latency_s,
        )


@dataclass(frozen=True, eq=False)
class Split:
    train: RoutingData
    calib: RoutingData
    test: RoutingData


def parse_pair(
    spec: str | None, model_names: tuple[str, ...], default: tuple[str, str]
) -> tuple[int, int]:
    """`LIGHT,HEAVY` (model names or column indices) -> (light, heavy) indices, light first."""
    if spec is None:
        names = default
    else:
        names = tuple(s.strip() for s in spec.split(","))
        if len(names) != 2:
            raise RouterDataError(f"--pair {spec!r}: expected LIGHT,HEAVY")
    idx = []
    for name in names:
        if name in model_names:
            idx.append(model_names.index(name))
        elif name.isdigit() and int(name) < len(model_names):
            idx.append(int(name))
        else:
            raise RouterDataError(f"pair: unknown model {name!r}; models: {', '.join(model_names)}")
    light, heavy = idx
    if light >= heavy:
        raise RouterDataError(
            f"pair {model_names[light]},{model_names[heavy]}: LIGHT must come before HEAVY "
            "in the light -> heavy model order"
        )
    return light, heavy


def _drop_incomplete_pair(data: RoutingData, where: str) -> RoutingData:
    keep = np.flatnonzero(np.isfinite(data.light_quality) & np.isfinite(data.heavy_quality))
    if len(keep) < 10:
        raise RouterDataError(
            f"{where}: only {len(keep)} prompts have quality for both "
            f"{data.pair_names[0]} and {data.pair_names[1]} (need >= 10)"
        )
    return data if len(keep) == len(data) else data.subset(keep)


def load_hadis_artifact(root: Path, pair: str | None = None) -> RoutingData:
    """The HADIS artifact's 5000 prompts x 4 models (see module docstring)."""
    root = Path(root)
    prompts_path = root / "traces" / "text_imagenet1k_hr_5k.txt"
    features_path = root / "router" / "prompt_features.csv"
    for path in (prompts_path, features_path):
        if not path.is_file():
            raise RouterDataError(f"{path}: missing (not a HADIS artifact folder?)")
    texts = tuple(prompts_path.read_text(encoding="utf-8").splitlines())
    n = len(texts)
    features = pd.read_csv(features_path)
    missing = [c for c in HADIS_FEATURES if c not in features.columns]
    if missing:
        raise RouterDataError(f"{features_path}: missing column {missing[0]!r}")
    if len(features) != n:
        raise RouterDataError(f"{features_path}: {len(features)} rows, prompts file has {n}")
    samples = []
    for k in range(len(HADIS_MODELS)):
        path = root / "discriminator" / "confidence_scores" / f"scores_model_{k}.txt"
        if not path.is_file():
            raise RouterDataError(f"{path}: missing")
        try:
            scores = np.loadtxt(path, dtype=float, ndmin=2)
        except ValueError as exc:
            raise RouterDataError(f"{path}: not a numeric table ({exc})") from None
        if scores.shape != (4 * n, 2):
            raise RouterDataError(f"{path}: shape {scores.shape}, expected ({4 * n}, 2)")
        samples.append(scores[:, 1].reshape(n, 4))
    quality_samples = np.stack(samples, axis=1)  # (n, 4 models, 4 images)
    light, heavy = parse_pair(pair, HADIS_MODELS, HADIS_DEFAULT_PAIR)
    return RoutingData(
        name="hadis-artifact",
        batch=PromptBatch(
            np.arange(n), texts, features[list(HADIS_FEATURES)].to_numpy(dtype=float)
        ),
        model_names=HADIS_MODELS,
        quality=quality_samples.mean(axis=2),
        light=light,
        heavy=heavy,
        quality_samples=quality_samples,
        latency_s=HADIS_LATENCY_S,
    )


def load_default_bundle(pair: str | None = None) -> RoutingData:
    """The default synthetic bundle's 5000 prompts x 4 HADIS models (see module docstring)."""
    from simulator.default_bundle import build_default_bundle

    light, heavy = parse_pair(pair, HADIS_MODELS, HADIS_DEFAULT_PAIR)
    bundle = build_default_bundle()
    prompts = bundle.prompts
    return RoutingData(
        name="default",
        batch=PromptBatch(
            prompts["prompt_id"].to_numpy(),
            tuple(prompts["text"]),
            prompts[list(HADIS_FEATURES)].to_numpy(dtype=float),
        ),
        model_names=HADIS_MODELS,  # the bundle's models, in the same light -> heavy order
        quality=bundle.disc_score,
        light=light,
        heavy=heavy,
        latency_s=HADIS_LATENCY_S,
    )


_AGIQA_NAME = re.compile(r"^(?P<model>.+)_(?P<index>\d+)\.\w+$")


def load_agiqa(root: Path, pair: str | None = None) -> RoutingData:
    """AGIQA-3K: 300 prompts x 10 generators of human MOS (see module docstring)."""
    path = Path(root) / "data.csv"
    if not path.is_file():
        raise RouterDataError(f"{path}: missing (not an AGIQA-3K folder?)")
    table = pd.read_csv(path)
    for column in ("name", "prompt", "mos_quality", "std_quality", "mos_align"):
        if column not in table.columns:
            raise RouterDataError(f"{path}: missing column {column!r}")
    parsed = table["name"].astype(str).str.extract(_AGIQA_NAME)
    for row in range(len(table)):
        model = parsed.at[row, "model"]
        if not isinstance(model, str) or model not in AGIQA_MODELS:
            raise RouterDataError(
                f"{path} line {row + 2}: name {table.at[row, 'name']!r} is not GENERATOR_NNN "
                f"with a known generator"
            )
    index = parsed["index"].astype(int).to_numpy()
    n = int(index.max()) + 1
    texts = [""] * n
    for i, prompt in zip(index, table["prompt"].astype(str)):
        texts[i] = prompt
    cols = np.array([AGIQA_MODELS.index(m) for m in parsed["model"]])

    def matrix(column: str) -> np.ndarray:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise RouterDataError(f"{path} line {bad[0] + 2}: {column} is not a number")
        out = np.full((n, len(AGIQA_MODELS)), np.nan)
        out[index, cols] = values
        return out

    light, heavy = parse_pair(pair, AGIQA_MODELS, AGIQA_DEFAULT_PAIR)
    data = RoutingData(
        name="agiqa-3k",
        batch=PromptBatch(np.arange(n), tuple(texts)),
        model_names=AGIQA_MODELS,
        quality=matrix("mos_quality"),
        light=light,
        heavy=heavy,
        extra_metrics={"alignment": matrix("mos_align")},
        quality_std=matrix("std_quality"),
    )
    return _drop_incomplete_pair(data, str(path))


def load_wide_csv(path: Path, pair: str | None = None) -> RoutingData:
    """`prompt` + one numeric column per model (light -> heavy, higher = better)."""
    path = Path(path)
    table = read_csv_table(path, RouterDataError, dtype=str, keep_default_na=False).fillna("")
    with path.open(encoding="utf-8", newline="") as handle:  # pandas decoded it as UTF-8
        header = next(csv.reader(handle), [])
    repeated = [c for c in dict.fromkeys(header) if header.count(c) > 1]
    if repeated:
        raise RouterDataError(
            f"{path} line 1: column {repeated[0]!r} appears {header.count(repeated[0])} times; "
            "column names must be unique"
        )
    if "prompt" not in table.columns:
        raise RouterDataError(f"{path}: missing column 'prompt'")
    if not any(text.strip() for text in table["prompt"]):
        raise RouterDataError(f"{path}: column 'prompt' is empty in every row")
    models = tuple(c for c in table.columns if c != "prompt")
    if len(models) < 2:
        raise RouterDataError(f"{path}: need at least two model columns besides 'prompt'")
    quality = np.full((len(table), len(models)), np.nan)
    for j, model in enumerate(models):
        for i, cell in enumerate(table[model]):
            if cell.strip():
                quality[i, j] = _score(cell, f"{path} line {i + 2}: column {model!r}")
    light, heavy = parse_pair(pair, models, (models[0], models[-1]))
    for j in (light, heavy):
        bad = np.flatnonzero(~np.isfinite(quality[:, j]))
        if len(bad):
            raise RouterDataError(f"{path} line {bad[0] + 2}: column {models[j]!r} is empty")
    if len(table) < 10:
        raise RouterDataError(f"{path}: {len(table)} prompts, need at least 10")
    return RoutingData(
        name=path.stem,
        batch=PromptBatch(np.arange(len(table)), tuple(table["prompt"])),
        model_names=models,
        quality=quality,
        light=light,
        heavy=heavy,
    )


NON_FINITE_WORDS = ("nan", "inf", "infinity")


def _score(cell: str, where: str) -> float:
    """A wide-CSV score cell as a finite float (plain decimal); RouterDataError otherwise."""
    value = parse_number(cell)
    if value is not None and math.isfinite(value):
        return float(value)
    if value is not None or cell.strip().lower().lstrip("+-") in NON_FINITE_WORDS:
        raise RouterDataError(
            f"{where} value {cell!r} is nan/inf: scores must be finite numbers "
            "(leave the cell empty for a missing score)"
        )
    raise RouterDataError(f"{where} value {cell!r} is not a number")


def load_routing_data(spec: str, data_root: Path, pair: str | None = None) -> RoutingData:
    """`default` (built in memory), `hadis-artifact` / `agiqa-3k` (folders under `data_root`)
    or a wide CSV path."""
    if spec == "default":
        return load_default_bundle(pair)
    if spec == "hadis-artifact":
        root = Path(data_root) / "hadis-artifact"
    elif spec == "agiqa-3k":
        root = Path(data_root) / "agiqa-3k"
    else:
        return load_wide_csv(Path(spec), pair)
    if not root.is_dir():
        raise RouterDataError(f"{root}: data folder for {spec!r} not found (set --data-root)")
    return load_hadis_artifact(root, pair) if spec == "hadis-artifact" else load_agiqa(root, pair)


def split_by_prompt(
    data: RoutingData, seed: int, calib_frac: float = 0.2, test_frac: float = 0.2
) -> Split:
    """Seeded disjoint train / calibration / test split of the prompts."""
    n = len(data)
    n_calib, n_test = round(calib_frac * n), round(test_frac * n)
    if min(n_calib, n_test, n - n_calib - n_test) < 2:
        raise RouterDataError(
            f"{data.name}: {n} prompts cannot be split {1 - calib_frac - test_frac:.2f}/"
            f"{calib_frac:.2f}/{test_frac:.2f} with >= 2 prompts per part"
        )
    order = np.random.default_rng(seed).permutation(n)
    test, calib, train = order[:n_test], order[n_test : n_test + n_calib], order[n_test + n_calib :]
    return Split(*(data.subset(np.sort(part)) for part in (train, calib, test)))
