"""One function per profiling step: read inputs from a `WorkLayout`, write its outputs there.
Thin shells over the pure parts (frechet, table_builder, candidates, prompt_features)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.candidates import prune_candidates
from profiler.frechet import GaussianStats, MixStats, fid_from_stats
from profiler.generate import image_grid, read_prompts
from profiler.latency import (
    SIDECAR_SHAPE_KEYS,
    bundle_latency_rows,
    read_latency_profile,
    sidecar_shape_rows,
)
from profiler.layout import WorkLayout
from profiler.multimetric import (
    MultiMetricConfig,
    metric_text_embeddings,
    quality_column_names,
    quality_columns,
)
from profiler.prompt_features import HADIS_ROUTER_WEIGHTS, router_scores
from profiler.table_builder import cascade_rows, ratio_grid
from simulator.bundle import ROUTER_FEATURES, Bundle, make_meta, validate_tables, write_bundle
from simulator.json_input import read_json_object
from simulator.served_features import ServedFeatures

SCORE_COLUMNS = ("image", "prompt_id", "image_idx", "p_real", "clip_score")
# A prompt's quality scores in the bundle: the mean over its images (what a query with a random
# seed scores in expectation), or those of its first image (image_seed(seed, prompt, 0): the
# image a one-image serving request renders, so a validation's two drivers judge one image)
PROMPT_SCORES = ("mean", "first-image")


class StepError(ValueError):
    """A step whose inputs (from an earlier step) are missing or inconsistent."""


def write_prompts(layout: WorkLayout, prompts: Sequence[str]) -> Path:
    for i, text in enumerate(prompts):
        if not text.strip() or "\n" in text:
            raise StepError(f"prompt {i}: empty or multi-line")
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.prompts_txt.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return layout.prompts_txt


def features_step(
    layout: WorkLayout, extractor, models: Sequence[str], real_dir: str | Path
) -> None:
    """Per-image features of every model's images and the real images' Gaussian stats."""
    from profiler.inception import extract_features, generated_features, list_images, save_features

    for model in models:
        features, names = generated_features(extractor, layout.images(model))
        save_features(layout.features(model), features, names, extractor.name)
    real = extract_features(extractor, list_images(real_dir))
    GaussianStats.from_features(real).save(layout.reference_stats)


def train_discriminator_step(
    layout: WorkLayout,
    clip: Callable[[], object],
    real_dir: str | Path,
    models: Sequence[str],
    training: WorkLayout | None = None,
    **train_kwargs,
):
    """Train the discriminator (`profiler.discriminator.train_discriminator`, on the backbone
    `clip()` loads once the inputs are checked) on the real images and the images `models`
    generated in `training` (default `layout.discriminator_training`), whose prompts must not
    be the work folder's; save it to `layout.discriminator`. Returns (backbone,
    `TrainedDiscriminator`)."""
    from profiler.discriminator import check_held_out, save_discriminator, train_discriminator
    from profiler.inception import list_images

    training = training or layout.discriminator_training
    if not training.prompts_txt.is_file():
        raise StepError(
            f"{training.prompts_txt}: no training prompts (generate the discriminator's training "
            f"images with `t2isim profile generate --work {training.root} --prompts FILE`)"
        )
    texts = read_prompts(training.prompts_txt)
    if layout.prompts_txt.is_file():
        check_held_out(texts, read_prompts(layout.prompts_txt), str(layout.prompts_txt))
    generated = []
    for model in models:
        n_prompts, _, grid = image_grid(training.images(model))
        if n_prompts != len(texts):
            raise StepError(f"{training.images(model)}: {n_prompts} prompts, expected {len(texts)}")
        generated += [p for row in grid for p in row]
    real = list_images(real_dir)
    backbone = clip()
    disc = train_discriminator(backbone, real, generated, texts, **train_kwargs)
    save_discriminator(disc, layout.discriminator)
    return backbone, disc


def score_step(
    layout: WorkLayout,
    backbone,
    head,
    training_prompts: Sequence[str],
    models: Sequence[str],
    multi_metric: MultiMetricConfig | None = None,
) -> None:
    """Per-image P(real) (discriminator trained on `training_prompts`' images, none of them a
    prompt scored here) and CLIPScore (same backbone) for every model; with a
    `MultiMetricConfig`, also the RouteT2I `q_<metric>` columns (the config goes to a `.json`
    sidecar next to each score file)."""
    from profiler.discriminator import check_held_out, p_real
    from profiler.openclip import clip_scores, image_embeddings, text_embeddings

    prompts = read_prompts(layout.prompts_txt)
    check_held_out(training_prompts, prompts, str(layout.prompts_txt))
    metric_texts = None
    if multi_metric is not None:
        metric_texts = metric_text_embeddings(backbone, multi_metric)
    for model in models:
        n_prompts, k, grid = image_grid(layout.images(model))
        if n_prompts != len(prompts):
            raise StepError(f"{layout.images(model)}: {n_prompts} prompts, expected {len(prompts)}")
        paths = [p for row in grid for p in row]
        texts = [prompts[p] for p in range(n_prompts) for _ in range(k)]
        image_emb = image_embeddings(backbone, paths)
        columns = {
            "image": [p.name for p in paths],
            "prompt_id": np.repeat(np.arange(n_prompts), k),
            "image_idx": np.tile(np.arange(k), n_prompts),
            "p_real": p_real(backbone, head, paths),
            "clip_score": clip_scores(image_emb, text_embeddings(backbone, texts)),
        }
        path = layout.scores(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        sidecar = path.with_suffix(".json")
        if multi_metric is not None:
            columns.update(quality_columns(image_emb, metric_texts, multi_metric))
            sidecar.write_text(json.dumps(multi_metric.to_dict(), indent=2) + "\n")
        elif sidecar.exists():
            sidecar.unlink()  # a stale config from an earlier multi-metric run
        pd.DataFrame(columns).to_csv(path, index=False, float_format="%.10g")


def discriminator_latency_step(
    layout: WorkLayout,
    backbone,
    head,
    model: str,
    batch_sizes: Sequence[int],
    n_warmup: int = 2,
    n_repeats: int = 10,
) -> Path:
    """The discriminator's cost per batch size (`profiler.discriminator.time_p_real`) on
    `model`'s images, held in memory as a serving worker holds them; the bundle's
    `discriminator_latency` (`build_bundle`)."""
    from PIL import Image

    from profiler.discriminator import time_p_real

    _, _, grid = image_grid(layout.images(model))
    paths = [p for row in grid for p in row][: max(batch_sizes)]
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    table = time_p_real(backbone, head, images, batch_sizes, n_warmup, n_repeats)
    table.to_csv(layout.discriminator_latency_csv, index=False, float_format="%.10g")
    return layout.discriminator_latency_csv


def prompt_features_step(
    layout: WorkLayout, extract: Callable[[Sequence[str]], np.ndarray]
) -> Path:
    from profiler.prompt_features import features_table

    prompts = read_prompts(layout.prompts_txt)
    features_table(extract(prompts), prompts).to_csv(layout.prompt_features_csv, index=False)
    return layout.prompt_features_csv


def _per_prompt_scores(
    layout: WorkLayout,
    model: str,
    n_prompts: int,
    multi_metric: bool = False,
    prompt_score: str = "mean",
) -> tuple[pd.DataFrame, dict | None]:
    """Per-prompt scores of a model from its per-image ones (PROMPT_SCORES: their mean, or the
    first image's), with the `q_<metric>` columns and their config when `multi_metric`."""
    path = layout.scores(model)
    if not path.is_file():
        raise StepError(f"{path}: scores missing (run `profile score` first)")
    table = pd.read_csv(path)
    missing = [c for c in SCORE_COLUMNS if c not in table.columns]
    if missing:
        raise StepError(f"{path}: column {missing[0]}: missing")
    quality, config = [], None
    if multi_metric:
        quality = quality_column_names(table.columns)
        sidecar = path.with_suffix(".json")
        if not quality or not sidecar.is_file():
            raise StepError(
                f"{path}: no q_<metric> columns (run `profile score --multi-metric` first)"
            )
        config = read_json_object(sidecar, StepError)
    if prompt_score == "first-image":
        table = table[table["image_idx"] == 0]
    means = table.groupby("prompt_id")[["p_real", "clip_score", *quality]].mean()
    if not np.array_equal(means.index.to_numpy(), np.arange(n_prompts)):
        raise StepError(f"{path}: prompt ids are not 0..{n_prompts - 1}")
    return means, config


def _score_table(
    layout: WorkLayout,
    models: Sequence[str],
    n_prompts: int,
    multi_metric: bool,
    prompt_score: str = "mean",
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict | None]:
    """(bundle scores table, per-prompt scores per model, the shared multi-metric config)."""
    scores, configs = {}, {}
    for model in models:
        scores[model], configs[model] = _per_prompt_scores(
            layout, model, n_prompts, multi_metric, prompt_score
        )
    first = models[0]
    for model in models[1:]:
        if configs[model] != configs[first] or list(scores[model]) != list(scores[first]):
            raise StepError(
                f"{layout.scores(model)}: multi-metric columns or config differ from "
                f"{layout.scores(first)}'s (re-run `profile score --multi-metric`)"
            )
    table = pd.concat(
        [
            pd.DataFrame(
                {
                    "prompt_id": np.arange(n_prompts),
                    "model": m,
                    "disc_score": scores[m]["p_real"].to_numpy(),
                    **{c: scores[m][c].to_numpy() for c in scores[m].columns if c != "p_real"},
                }
            )
            for m in models
        ],
        ignore_index=True,
    )
    return table, scores, configs[first]


def build_bundle(
    layout: WorkLayout,
    name: str,
    *,
    router_weights: Sequence[float] = HADIS_ROUTER_WEIGHTS,
    grid_points: int = 11,
    prune_models: bool = True,
    multi_metric: bool = False,
    prompt_score: str = "mean",
) -> Bundle:
    """Assemble and validate the bundle from every step's outputs (models light -> heavy by
    batch-1 latency; cascades for every pair of the candidates kept by HADIS pruning; each
    prompt's scores by `prompt_score` (PROMPT_SCORES); with `multi_metric`, the per-prompt
    RouteT2I `q_<metric>` scores as extra score columns). The per-image features and the
    reference statistics go in too (`features.npz`), so that runs score the FID of the images
    they served. Each latency profile's measured shapes (`profiler.latency`, batch sizes timed
    often enough) go in as `shapes.csv`."""
    from profiler.inception import load_features

    if prompt_score not in PROMPT_SCORES:
        expected = ", ".join(PROMPT_SCORES)
        raise StepError(f"prompt score {prompt_score!r}: expected one of {expected}")

    models = layout.profiled_models()
    if len(models) < 2:
        raise StepError(f"{layout.root / 'latency'}: need latency profiles of >= 2 models")
    prompts = read_prompts(layout.prompts_txt)
    n = len(prompts)
    profiles = {m: read_latency_profile(layout.latency_csv(m)) for m in models}
    latency = pd.concat([bundle_latency_rows(t) for t, _ in profiles.values()], ignore_index=True)
    batch1 = latency[latency["batch_size"] == 1].set_index("model")["latency_p50_s"]
    lacking = sorted(set(models) - set(batch1.index))
    if lacking:
        raise StepError(f"{layout.latency_csv(lacking[0])}: batch size 1 not feasible/profiled")
    models.sort(key=lambda m: (batch1[m], m))

    reference = GaussianStats.load(layout.reference_stats)
    features, extractor = {}, set()
    for model in models:
        feats, _, extractor_name = load_features(layout.features(model))
        if feats.shape[0] != n:
            raise StepError(f"{layout.features(model)}: {feats.shape[0]} prompts, expected {n}")
        features[model] = feats
        extractor.add(extractor_name)
    if len(extractor) != 1:
        raise StepError(f"features come from different extractors: {sorted(extractor)}")
    mix = MixStats(features)
    fid_alone = {
        m: fid_from_stats(GaussianStats.from_features(f.reshape(-1, f.shape[-1])), reference)
        for m, f in features.items()
    }
    pruned = prune_candidates(batch1.to_dict(), fid_alone) if prune_models else None
    kept = [m for m in models if pruned is None or m in pruned.kept]
    pairs = [(a, b) for i, a in enumerate(kept) for b in kept[i + 1 :]]
    if not pairs:
        raise StepError(f"only {kept} left after candidate pruning: no pair to tabulate")

    feature_table = pd.read_csv(layout.prompt_features_csv, keep_default_na=False)
    if len(feature_table) != n:
        raise StepError(f"{layout.prompt_features_csv}: {len(feature_table)} rows, expected {n}")
    prompt_table = feature_table[list(ROUTER_FEATURES)].copy()
    prompt_table.insert(0, "text", prompts)
    prompt_table.insert(0, "prompt_id", np.arange(n))
    prompt_table["router_score"] = router_scores(
        prompt_table[list(ROUTER_FEATURES)].to_numpy(), router_weights
    )
    score_table, scores, metric_config = _score_table(layout, models, n, multi_metric, prompt_score)
    cascades = cascade_rows(
        mix,
        reference,
        prompt_table["router_score"].to_numpy(),
        {m: scores[m]["p_real"].to_numpy() for m in kept},
        batch1.to_dict(),
        pairs,
        ratio_grid(grid_points),
    )
    models_table = pd.DataFrame(
        {
            "model": models,
            "steps": [int(profiles[m][1]["steps"]) for m in models],
            "load_s": [float(profiles[m][1]["load_s"]) for m in models],
            "fid_alone": [fid_alone[m] for m in models],
        }
    )
    first_meta = profiles[models[0]][1]
    meta = make_meta(
        name,
        source="t2isim profiler",
        gpu=str(first_meta.get("gpu", "unknown")),
        libraries=first_meta.get("libraries", {}),
        router={"features": list(ROUTER_FEATURES), "weights": [float(w) for w in router_weights]},
        fid={"extractor": extractor.pop(), "reference_images": reference.n},
        images_per_prompt=int(mix.images_per_prompt),
        **({"prompt_score": prompt_score} if prompt_score != "mean" else {}),
        pruned_models=dict(sorted(pruned.reasons.items())) if pruned else {},
        **_discriminator_latency(layout),
        latency_profiles={
            m: {
                k: v
                for k, v in profiles[m][1].items()
                if k != "libraries" and k not in SIDECAR_SHAPE_KEYS
            }
            for m in models
        },
        **({"multi_metric": metric_config} if multi_metric else {}),
    )
    served = ServedFeatures(
        features=np.stack([features[m] for m in models], axis=1),
        models=tuple(models),
        reference_mu=reference.mu,
        reference_sigma=reference.sigma,
        reference_n=reference.n,
    )
    shapes = [
        sidecar_shape_rows(m, profiles[m][1], latency.batch_size[latency.model == m].tolist())
        for m in models
    ]
    shapes = [part for part in shapes if len(part)]
    return validate_tables(
        meta,
        {
            "models": models_table,
            "latency": latency,
            "prompts": prompt_table,
            "scores": score_table,
            "cascades": cascades,
        },
        served,
        pd.concat(shapes, ignore_index=True) if shapes else None,
    )


def _discriminator_latency(layout: WorkLayout) -> dict:
    """{"discriminator_latency": its table's columns as lists} when the work folder has it
    (`discriminator_latency_step`), else {} (a work folder profiled before it was timed)."""
    path = layout.discriminator_latency_csv
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    return {"discriminator_latency": {c: table[c].tolist() for c in table.columns}}


def build_table_step(
    layout: WorkLayout, name: str, out: str | Path | None = None, **kwargs
) -> Path:
    return write_bundle(build_bundle(layout, name, **kwargs), out or layout.bundle)
