"""Readers of the HADIS authors' artifact (github Tung-I/diffserve-2) and its bundle importer.

The paths are those of the artifact repository (see the reference data README), so the importer
works on a clone of it as on ``../shared/data/hadis-artifact``. Every reader fails with an
`ArtifactError` naming the file and, where it applies, the line (1-based, header included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.bundle import (
    MAX_TABLE_INTEGER,
    ROUTER_FEATURES,
    Bundle,
    BundleError,
    cell_repr,
    make_meta,
    validate_tables,
)
from simulator.cascade import expected_latency_s, hybrid_assignment
from simulator.csv_input import read_csv_table
from simulator.synthetic_prompts import HADIS_ROUTER_WEIGHTS, router_score

ARTIFACT_SOURCE = "hadis-artifact (github Tung-I/diffserve-2@538dc5d)"
ARTIFACT_GPU = "NVIDIA L40S"
# artifact model index -> (name, denoising steps, latency at batch 1 in s, FID alone)
HADIS_MODELS = (
    ("SDXL-Lightning", 2, 0.5, 29.76),
    ("SD3.5-Large-Turbo", 4, 1.3, 25.23),
    ("SD3.5-Medium", 50, 13.0, 20.61),
    ("SD3.5-Large", 50, 27.0, 19.95),
)
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
BATCH_GAIN = 0.9  # the artifact's batch latency: base * b * 0.9 for b > 1
IMAGES_PER_PROMPT = 4

PROMPTS_FILE = "traces/text_imagenet1k_hr_5k.txt"
FEATURES_FILE = "router/prompt_features.csv"
SCORES_FILE = "discriminator/confidence_scores/scores_model_{}.txt"
HYBRID_FILE = "discriminator/config_results_hybrid.csv"
DISC_ONLY_FILE = "discriminator/config_results.csv"


class ArtifactError(BundleError):
    """An artifact file that is missing or malformed; the message names file and line."""


def _file(root: Path, relative: str) -> Path:
    path = Path(root) / relative
    if not path.is_file():
        raise ArtifactError(f"{path}: missing artifact file")
    return path


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    return read_csv_table(path, ArtifactError, **kwargs)


def _numeric(
    path: Path, df: pd.DataFrame, columns: list, integer: bool = False, header: bool = True
) -> pd.DataFrame:
    """Columns coerced to numbers; the first bad cell raises naming its line."""
    out = df.copy()
    for column in columns:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(float))
        if integer:
            bad |= (values.fillna(0) % 1 != 0) | (values.abs() > MAX_TABLE_INTEGER)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            kind = "an integer" if integer else "a finite number"
            name = f"column {column}" if header else f"column {int(column) + 1}"
            shown = cell_repr(df[column].iloc[i])
            raise ArtifactError(f"{path}: line {i + 1 + header}: {name}: {shown} is not {kind}")
        out[column] = values.astype(np.int64 if integer else np.float64)
    return out


def read_prompts(root: Path) -> list[str]:
    """The 5000 ImageNet-1k captions, one per line."""
    path = _file(root, PROMPTS_FILE)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: not UTF-8 text ({exc.reason})") from None
    for i, line in enumerate(lines):
        if not line.strip():
            raise ArtifactError(f"{path}: line {i + 1}: empty prompt")
    return lines


def read_prompt_features(root: Path, n_prompts: int) -> pd.DataFrame:
    """`prompt` + the 8 integer router features, one row per prompt."""
    path = _file(root, FEATURES_FILE)
    df = _read_csv(path, keep_default_na=False)
    for column in ("prompt", *ROUTER_FEATURES):
        if column not in df.columns:
            raise ArtifactError(f"{path}: line 1: missing column {column}")
    if len(df) != n_prompts:
        raise ArtifactError(f"{path}: {len(df)} data rows, expected {n_prompts} (one per prompt)")
    df = _numeric(path, df, list(ROUTER_FEATURES), integer=True)
    negative = (df[list(ROUTER_FEATURES)] < 0).any(axis=1).to_numpy()
    if negative.any():
        raise ArtifactError(f"{path}: line {int(np.flatnonzero(negative)[0]) + 2}: negative count")
    return df


def read_disc_scores(root: Path, model_index: int, n_prompts: int) -> np.ndarray:
    """Per-prompt quality score of one model: mean P(real) (column 1) of its 4 images."""
    path = _file(root, SCORES_FILE.format(model_index))
    df = _read_csv(path, sep=r"\s+", header=None)
    if df.shape[1] != 2:
        raise ArtifactError(f"{path}: line 1: {df.shape[1]} columns, expected 2 (P(fake) P(real))")
    expected = n_prompts * IMAGES_PER_PROMPT
    if len(df) != expected:
        raise ArtifactError(f"{path}: {len(df)} lines, expected {expected} (4 images per prompt)")
    df = _numeric(path, df, [0, 1], header=False)
    p_real = df[1].to_numpy()
    outside = np.flatnonzero((p_real < 0) | (p_real > 1))
    if outside.size:
        raise ArtifactError(f"{path}: line {int(outside[0]) + 1}: column 2: not in [0, 1]")
    return p_real.reshape(n_prompts, IMAGES_PER_PROMPT).mean(axis=1)


def _model_column(path: Path, df: pd.DataFrame, column: str) -> pd.Series:
    bad = ~df[column].isin(range(len(HADIS_MODELS)))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ArtifactError(
            f"{path}: line {i + 2}: column {column}: model index {int(df[column].iloc[i])} "
            f"not in 0..{len(HADIS_MODELS) - 1}"
        )
    return df[column].map(lambda m: HADIS_MODELS[m][0])


def _read_cascade_table(root: Path, relative: str, columns: tuple[str, ...]) -> pd.DataFrame:
    path = _file(root, relative)
    df = _read_csv(path)
    for column in columns:
        if column not in df.columns:
            raise ArtifactError(f"{path}: line 1: missing column {column}")
    df = _numeric(path, df, ["light_model", "heavy_model"], integer=True)
    df = _numeric(path, df, [c for c in columns if not c.endswith("_model")])
    df["light"] = _model_column(path, df, "light_model")
    df["heavy"] = _model_column(path, df, "heavy_model")
    return df


def read_hybrid_table(root: Path) -> pd.DataFrame:
    """The 726-row hybrid lookup table, with model names in `light`/`heavy`."""
    return _read_cascade_table(
        root,
        HYBRID_FILE,
        ("light_model", "heavy_model", "router_ratio", "disc_ratio", "threshold", "latency", "fid"),
    )


def read_disc_only_table(root: Path) -> pd.DataFrame:
    """The 66-row discriminator-only table (threshold = fraction escalated to heavy)."""
    return _read_cascade_table(
        root, DISC_ONLY_FILE, ("light_model", "heavy_model", "threshold", "latency", "fid")
    )


def read_artifact_prompts(root: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(prompts table with features and router score, disc scores (n_prompts, 4 models))."""
    texts = read_prompts(root)
    features = read_prompt_features(root, len(texts))
    # the features file carries the prompts with non-ASCII characters dropped
    ascii_texts = [t.encode("ascii", "ignore").decode() for t in texts]
    differs = np.flatnonzero(features["prompt"].astype(str).to_numpy() != np.asarray(ascii_texts))
    if differs.size:
        raise ArtifactError(
            f"{Path(root) / FEATURES_FILE}: line {int(differs[0]) + 2}: prompt differs from "
            f"line {int(differs[0]) + 1} of {PROMPTS_FILE}"
        )
    prompts = pd.DataFrame({"prompt_id": np.arange(len(texts)), "text": texts})
    for feature in ROUTER_FEATURES:
        prompts[feature] = features[feature].to_numpy()
    prompts["router_score"] = router_score(prompts)
    scores = np.column_stack(
        [read_disc_scores(root, m, len(texts)) for m in range(len(HADIS_MODELS))]
    )
    return prompts, scores


def hadis_models_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": [m[0] for m in HADIS_MODELS],
            "steps": [m[1] for m in HADIS_MODELS],
            "load_s": 0.0,
            "fid_alone": [m[3] for m in HADIS_MODELS],
        }
    )


def hadis_latency_table() -> pd.DataFrame:
    """The artifact's batch latency model (p95 = p50: only one number is known)."""
    rows = []
    for name, _, base_s, _ in HADIS_MODELS:
        for b in BATCH_SIZES:
            latency_s = base_s if b == 1 else BATCH_GAIN * b * base_s
            rows.append((name, b, latency_s, latency_s))
    return pd.DataFrame(rows, columns=["model", "batch_size", "latency_p50_s", "latency_p95_s"])


def scores_table(model_names: tuple[str, ...], disc_score: np.ndarray) -> pd.DataFrame:
    """Long `scores.csv` table from a (n_prompts, n_models) score matrix."""
    n_prompts, n_models = disc_score.shape
    return pd.DataFrame(
        {
            "prompt_id": np.repeat(np.arange(n_prompts), n_models),
            "model": np.tile(np.asarray(model_names, dtype=object), n_prompts),
            "disc_score": disc_score.reshape(-1),
        }
    )


def realized_heavy_share(
    prompts: pd.DataFrame, disc_score: np.ndarray, cascades: pd.DataFrame
) -> np.ndarray:
    """Fraction of prompts `hybrid_assignment` sends to the heavy model, per cascade row."""
    names = [m[0] for m in HADIS_MODELS]
    router = prompts["router_score"].to_numpy()
    shares = np.empty(len(cascades))
    for k, row in enumerate(cascades.itertuples(index=False)):
        light = disc_score[:, names.index(row.light)]
        bypassed, escalated = hybrid_assignment(router, light, row.router_ratio, row.disc_ratio)
        shares[k] = (bypassed | escalated).mean()
    return shares


def import_hadis_artifact(path: Path) -> Bundle:
    """Bundle of the artifact: its prompts, router features and score, mean discriminator
    scores, the 726-row hybrid table (heavy_share = nominal `threshold`), L40S latencies."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root}: not an artifact folder (no such directory)")
    prompts, disc_score = read_artifact_prompts(root)
    hybrid = read_hybrid_table(root)
    latency_b1 = {m[0]: m[2] for m in HADIS_MODELS}
    cascades = pd.DataFrame(
        {
            "light": hybrid["light"],
            "heavy": hybrid["heavy"],
            "router_ratio": hybrid["router_ratio"],
            "disc_ratio": hybrid["disc_ratio"],
            "heavy_share": hybrid["threshold"],
            "latency_s": hybrid["latency"],
            "fid": hybrid["fid"],
        }
    )
    models = hadis_models_table()
    meta = make_meta(
        "hadis-artifact",
        ARTIFACT_SOURCE,
        ARTIFACT_GPU,
        router={"features": list(ROUTER_FEATURES), "weights": list(HADIS_ROUTER_WEIGHTS)},
        latency_model="batch 1: profiled; b > 1: 0.9 * b * batch-1 latency (as the artifact)",
    )
    expected = [
        expected_latency_s(latency_b1[r.light], latency_b1[r.heavy], r.router_ratio, r.heavy_share)
        for r in cascades.itertuples(index=False)
    ]
    off = np.flatnonzero(np.abs(np.asarray(expected) - cascades["latency_s"].to_numpy()) > 0.011)
    if off.size:
        i = int(off[0])
        raise ArtifactError(
            f"{root / HYBRID_FILE}: line {i + 2}: latency {cascades['latency_s'].iloc[i]} is not "
            f"(1-r)*L_light + threshold*L_heavy = {expected[i]:.3f}"
        )
    tables = {
        "models": models,
        "latency": hadis_latency_table(),
        "prompts": prompts,
        "scores": scores_table(tuple(models["model"]), disc_score),
        "cascades": cascades,
    }
    return validate_tables(meta, tables)
