"""Generate N images per prompt: seeded per (prompt, image), batched, resumable, atomic writes.

Images are `<out>/<prompt_id:05d>_<image_idx>.png`. Batches are fixed chunks of the
(prompt, image) list, so a resumed run regenerates an interrupted chunk with exactly the same
batch composition and seeds as an uninterrupted one (same pixels, same bytes). A subset of the
images (`jobs`, e.g. one shard of a multi-device run) is made with those same batches too.
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


class GenerationError(ValueError):
    """Bad generation request or an image folder that does not follow the naming scheme."""


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line (the artifact's `text_*.txt` format); blank lines are an error."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            raise GenerationError(f"{path}: line {i + 1}: empty prompt")
    if not lines:
        raise GenerationError(f"{path}: no prompts")
    return lines


def image_name(prompt_id: int, image_idx: int) -> str:
    return f"{prompt_id:05d}_{image_idx}.png"


def image_seed(seed: int, prompt_id: int, image_idx: int) -> int:
    """Independent 32-bit seed per (run seed, prompt, image)."""
    return int(np.random.SeedSequence([seed, prompt_id, image_idx]).generate_state(1)[0])


def index_images(folder: str | Path) -> dict[tuple[int, int], Path]:
    """{(prompt_id, image_idx): path} of the generated images in a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GenerationError(f"{folder}: image folder not found")
    found = {}
    for path in sorted(folder.iterdir()):
        match = IMAGE_NAME.match(path.name)
        if match:
            found[(int(match[1]), int(match[2]))] = path
    return found


def image_grid(folder: str | Path) -> tuple[int, int, list[list[Path]]]:
    """(n_prompts, images_per_prompt, paths[p][i]) of a complete generated folder."""
    found = index_images(folder)
    if not found:
        raise GenerationError(f"{folder}: no images named <prompt>_<image>.png")
    n_prompts = max(p for p, _ in found) + 1
    k = max(i for _, i in found) + 1
    for p in range(n_prompts):
        for i in range(k):
            if (p, i) not in found:
                raise GenerationError(f"{folder}: missing {image_name(p, i)} (incomplete run?)")
    return n_prompts, k, [[found[(p, i)] for i in range(k)] for p in range(n_prompts)]


def _save_png_atomic(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)


def _checked_jobs(
    jobs: Sequence[tuple[int, int]], n_prompts: int, images_per_prompt: int
) -> set[tuple[int, int]]:
    wanted = set()
    for job in jobs:
        if len(job) != 2:
            raise GenerationError(f"job {job!r}: expected (prompt_id, image_idx)")
        p, i = int(job[0]), int(job[1])
        if not (0 <= p < n_prompts and 0 <= i < images_per_prompt):
            raise GenerationError(
                f"job {tuple(job)}: outside {n_prompts} prompts x {images_per_prompt} images"
            )
        wanted.add((p, i))
    return wanted


def render(
    pipe,
    texts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int,
    resolution: int,
    device: str = "cpu",
    **call_kwargs,
) -> np.ndarray:
    """One batch through the pipeline: uint8 (n, resolution, resolution, 3) images, image k
    drawn with a generator seeded with seeds[k]; on CPU with a CPU worker's torch threads
    (`profiler.cpu_threads`: the pixels do not depend on the process's thread count)."""
    import torch

    from profiler.cpu_threads import worker_threads

    generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]
    with torch.inference_mode(), worker_threads(device):
        images = pipe(
            prompt=list(texts),
            num_inference_steps=steps,
            height=resolution,
            width=resolution,
            generator=generators,
            output_type="np",
            **call_kwargs,
        ).images
    return np.clip(np.round(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def served_batch(
    pipe,
    texts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int,
    resolution: int,
    device: str = "cpu",
) -> tuple[list, list[str]]:
    """One batch as a serving worker answers it: the images `render` draws, as PIL images,
    and each one encoded as a base64 PNG (the OpenAI images API's `b64_json`). What `profile
    latency` times and what the diffusers backend's replicas run."""
    from PIL import Image

    pixels = render(pipe, texts, seeds, steps=steps, resolution=resolution, device=device)
    images = [Image.fromarray(x) for x in pixels]
    return images, [png_base64(image) for image in images]


def png_base64(image) -> str:
    """A PIL image as base64 PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class GenerationResult:
    generated: int  # images written by this call
    skipped: int  # images that already existed


def generate_images(
    pipe,
    prompts: Sequence[str],
    out_dir: str | Path,
    *,
    images_per_prompt: int,
    steps: int,
    resolution: int,
    batch_size: int,
    seed: int,
    device: str = "cpu",
    guidance_scale: float | None = None,
    jobs: Sequence[tuple[int, int]] | None = None,
    progress: bool = True,
) -> GenerationResult:
    """Generate the missing images of `prompts` x `images_per_prompt` into `out_dir`, or only
    those of `jobs` ((prompt_id, image_idx) pairs; default all). A batch holding a wanted image
    is always run whole, so every image has the pixels of an unrestricted run."""
    from rich.progress import Progress

    if images_per_prompt < 1 or batch_size < 1 or steps < 1 or resolution < 8:
        raise GenerationError(
            f"images_per_prompt={images_per_prompt}, batch_size={batch_size}, steps={steps}, "
            f"resolution={resolution}: expected >= 1, >= 1, >= 1, >= 8"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    every = [(p, i) for p in range(len(prompts)) for i in range(images_per_prompt)]
    wanted = set(every) if jobs is None else _checked_jobs(jobs, len(prompts), images_per_prompt)
    chunks = [every[k : k + batch_size] for k in range(0, len(every), batch_size)]
    extra = {} if guidance_scale is None else {"guidance_scale": guidance_scale}
    generated = skipped = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"generating {out.name}", total=len(wanted))
        for chunk in chunks:
            mine = [job for job in chunk if job in wanted]
            missing = [(p, i) for p, i in mine if not (out / image_name(p, i)).exists()]
            if not missing:
                skipped += len(mine)
                bar.advance(task, len(mine))
                continue
            pixels = render(
                pipe,
                [prompts[p] for p, _ in chunk],
                [image_seed(seed, p, i) for p, i in chunk],
                steps=steps,
                resolution=resolution,
                device=device,
                **extra,
            )
            for (p, i), image in zip(chunk, pixels):
                if (p, i) in missing:
                    _save_png_atomic(image, out / image_name(p, i))
            generated += len(missing)
            skipped += len(mine) - len(missing)
            bar.advance(task, len(mine))
    return GenerationResult(generated, skipped)
