"""Every profiling step in order (`profile all`), driven by a `ProfilePlan`; `tiny_plan` is the
CPU-only plan with random-init tiny models (CI, tests) that still exercises every code path.
Latency and generation run in this process, or as tasks on a `profiler.sharding.TaskRunner`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from profiler.generate import generate_images
from profiler.latency import LatencyTiming, profile_latency, write_latency_profile
from profiler.layout import WorkLayout
from profiler.multimetric import MultiMetricConfig
from profiler.sharding import PipelineSource, TaskRunner
from profiler.steps import (
    build_table_step,
    discriminator_latency_step,
    features_step,
    prompt_features_step,
    score_step,
    train_discriminator_step,
    write_prompts,
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    steps: int
    source: PipelineSource  # built on the plan's device, or on each worker's


@dataclass(frozen=True)
class ProfilePlan:
    models: tuple[ModelSpec, ...]
    prompts: tuple[str, ...]
    discriminator_prompts: tuple[str, ...]  # its training images' prompts (none of `prompts`)
    real_dir: Path  # real reference images (FID reference, discriminator's positives)
    extractor: Callable[[], object]  # () -> profiler.inception.FeatureExtractor
    clip: Callable[[], object]  # () -> profiler.openclip.ClipBackbone
    prompt_features: Callable[[Sequence[str]], np.ndarray]  # texts -> (n, 8)
    resolution: int = 1024
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    timing: LatencyTiming = LatencyTiming()  # the latency's (and the discriminator's counts)
    images_per_prompt: int = 4
    generation_batch_size: int = 4
    seed: int = 0
    device: str = "cuda"
    dtype: str = "fp16"
    discriminator: dict = field(default_factory=dict)  # train_head keyword arguments
    multi_metric: MultiMetricConfig | None = None  # RouteT2I q_<metric> scores when set
    progress: bool = True


def _latency_meta(plan: ProfilePlan, spec: ModelSpec, device: str, provenance: dict) -> dict:
    return {
        "source_model": spec.source.model,
        "steps": spec.steps,
        "resolution": plan.resolution,
        "dtype": plan.dtype,
        "device": device,
        **provenance,
    }


def _image_sets(
    plan: ProfilePlan, layout: WorkLayout, spec: ModelSpec
) -> tuple[tuple[tuple[str, ...], Path], ...]:
    """(prompts, image folder) a model generates for: the bundle's prompts, then the
    discriminator's training prompts."""
    return (
        (plan.prompts, layout.images(spec.name)),
        (plan.discriminator_prompts, layout.discriminator_training.images(spec.name)),
    )


def _latency_and_images_serial(plan: ProfilePlan, layout: WorkLayout) -> None:
    """One model at a time in this process: latency, then its images."""
    from profiler.provenance import device_provenance, library_versions

    provenance = {**device_provenance(plan.device), "libraries": library_versions()}
    for spec in plan.models:
        factory = functools.partial(spec.source.load, plan.device)
        profile = profile_latency(
            factory,
            plan.batch_sizes,
            plan.timing,
            plan.device,
            model=spec.name,
            steps=spec.steps,
            resolution=plan.resolution,
        )
        meta = _latency_meta(plan, spec, plan.device, provenance)
        write_latency_profile(profile, layout.latency_csv(spec.name), meta)
        pipeline = factory()
        for prompts, folder in _image_sets(plan, layout, spec):
            generate_images(
                pipeline,
                prompts,
                folder,
                images_per_prompt=plan.images_per_prompt,
                steps=spec.steps,
                resolution=plan.resolution,
                batch_size=plan.generation_batch_size,
                seed=plan.seed,
                device=plan.device,
                progress=plan.progress,
            )


def _latency_and_images_sharded(plan: ProfilePlan, layout: WorkLayout, runner: TaskRunner) -> None:
    """Every (model, batch size) latency task, then every image shard, on the runner."""
    from profiler.sharding import generate_on, generation_shards, latency_tasks, profile_latency_on

    tasks = latency_tasks(
        [(spec.name, spec.source, spec.steps) for spec in plan.models],
        plan.batch_sizes,
        resolution=plan.resolution,
        timing=plan.timing,
    )
    profiles = profile_latency_on(runner, tasks)
    for spec in plan.models:
        profile, provenance = profiles[spec.name]
        meta = _latency_meta(plan, spec, runner.description, provenance)
        write_latency_profile(profile, layout.latency_csv(spec.name), meta)
    shards = [
        shard
        for spec in plan.models
        for prompts, folder in _image_sets(plan, layout, spec)
        for shard in generation_shards(
            spec.source,
            prompts,
            folder,
            runner.n_workers,
            images_per_prompt=plan.images_per_prompt,
            steps=spec.steps,
            resolution=plan.resolution,
            batch_size=plan.generation_batch_size,
            seed=plan.seed,
        )
    ]
    generate_on(runner, shards)


def run_all(
    plan: ProfilePlan,
    layout: WorkLayout,
    name: str,
    runner: TaskRunner | None = None,
    **table_kwargs,
) -> Path:
    """prompt features -> latency -> generate (the bundle's prompts, then the discriminator's
    training prompts) -> features -> train discriminator -> score ->
    time the discriminator -> lookup table; returns the bundle folder. Generation resumes where
    a previous run stopped. With a `profiler.sharding.TaskRunner` (entered), latency and
    generation run as tasks on its workers (same files)."""
    write_prompts(layout, plan.prompts)
    write_prompts(layout.discriminator_training, plan.discriminator_prompts)
    prompt_features_step(layout, plan.prompt_features)  # cheap: fail fast on a missing extractor
    if runner is None:
        _latency_and_images_serial(plan, layout)
    else:
        _latency_and_images_sharded(plan, layout, runner)
    names = [spec.name for spec in plan.models]
    features_step(layout, plan.extractor(), names, plan.real_dir)
    backbone, disc = train_discriminator_step(
        layout, plan.clip, plan.real_dir, names, **{"seed": plan.seed, **plan.discriminator}
    )
    score_step(layout, backbone, disc.head, disc.training_prompts, names, plan.multi_metric)
    timing = plan.timing
    discriminator_latency_step(
        layout, backbone, disc.head, names[0], plan.batch_sizes, timing.n_warmup, timing.n_repeats
    )
    multi_metric = plan.multi_metric is not None
    return build_table_step(layout, name, multi_metric=multi_metric, **table_kwargs)


# ----------------------------------------------------------------------------- tiny plan

_SUBJECTS = ("cat", "dog", "red car", "old man", "tall tree", "wooden boat", "robot", "castle")
_ACTIONS = ("", "running", "sleeping", "holding a ball")
_PLACES = ("", "on a table", "next to a river", "behind the house", "in Paris")


def tiny_prompts(n: int, seed: int) -> tuple[str, ...]:
    """n template prompts of varying length and structure (so router features vary)."""
    rng = np.random.default_rng(seed)
    prompts = []
    for _ in range(n):
        parts = [f"a {_SUBJECTS[rng.integers(len(_SUBJECTS))]}"]
        parts += [_ACTIONS[rng.integers(len(_ACTIONS))], _PLACES[rng.integers(len(_PLACES))]]
        prompts.append(" ".join(p for p in parts if p))
    return tuple(prompts)


def tiny_training_prompts(n: int, seed: int) -> tuple[str, ...]:
    """n prompts for the discriminator's training images: `tiny_prompts` as photographs ("a
    photo of a cat ..."), so that none is a bundle prompt (those start "a <subject>")."""
    return tuple(f"a photo of {text}" for text in tiny_prompts(n, seed))


def write_smooth_images(folder: Path, n: int, size: int, seed: int) -> Path:
    """n smooth random colour fields (bicubic-upsampled 4x4 noise): the tiny runs' "real"
    images, statistically unlike the tiny models' outputs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(folder / f"{i:05d}.png")
    return folder


def tiny_plan(layout: WorkLayout, n_prompts: int = 16, seed: int = 0) -> ProfilePlan:
    """Three random-init tiny models (light/mid/heavy by steps and width) at 32x32 on CPU;
    real images are expected in `layout.real_images` (see `run_tiny`)."""
    from profiler.inception import tiny_extractor
    from profiler.openclip import TINY_CLIP, load_clip
    from profiler.prompt_features import extract_prompt_features

    models = (
        ModelSpec("tiny-light", 1, PipelineSource(f"tiny:{seed + 1}:8", "fp32")),
        ModelSpec("tiny-mid", 2, PipelineSource(f"tiny:{seed + 2}:8", "fp32")),
        ModelSpec("tiny-heavy", 4, PipelineSource(f"tiny:{seed + 3}:16", "fp32")),
    )
    return ProfilePlan(
        models=models,
        prompts=tiny_prompts(n_prompts, seed),
        discriminator_prompts=tiny_training_prompts(n_prompts, seed + 1),
        real_dir=layout.real_images,
        extractor=functools.partial(tiny_extractor, seed, 16, "cpu"),
        clip=functools.partial(load_clip, TINY_CLIP, None, "cpu", seed),
        prompt_features=extract_prompt_features,
        resolution=32,
        batch_sizes=(1, 2, 4),
        timing=LatencyTiming(n_warmup=1, n_repeats=3),
        images_per_prompt=2,
        generation_batch_size=4,
        seed=seed,
        device="cpu",
        dtype="fp32",
        discriminator={"epochs": 5, "hidden": 16, "batch_size": 16},
        progress=False,
    )


def run_tiny(
    layout: WorkLayout,
    name: str = "tiny",
    n_prompts: int = 16,
    seed: int = 0,
    runner: TaskRunner | None = None,
    multi_metric: MultiMetricConfig | None = None,
    prompt_score: str = "mean",
    rounds: int = 1,
    round_gap_s: float = 0.0,
    idle_gap_s: float = 0.0,
    repeats: int | None = None,
) -> Path:
    """`profile all --tiny`: synthetic real images, then every step with the tiny plan (its
    latency timed `repeats` times per round, default the plan's, in `rounds` rounds
    `round_gap_s` apart, and after `idle_gap_s` idle when > 0: `LatencyTiming`). Candidate
    pruning is off: random-init models have arbitrary FIDs. `prompt_score`: see
    `profiler.steps.PROMPT_SCORES`."""
    write_smooth_images(layout.real_images, 2 * n_prompts, 32, seed)
    plan = tiny_plan(layout, n_prompts, seed)
    timing = dataclasses.replace(
        plan.timing,
        n_repeats=repeats or plan.timing.n_repeats,
        rounds=rounds,
        round_gap_s=round_gap_s,
        idle_gap_s=idle_gap_s,
    )
    plan = dataclasses.replace(plan, multi_metric=multi_metric, timing=timing)
    return run_all(plan, layout, name, runner, prune_models=False, prompt_score=prompt_score)
