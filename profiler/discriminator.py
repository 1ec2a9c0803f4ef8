"""CLIP discriminator (HADIS §4.3): a frozen open_clip image encoder + a trained MLP head that
tells real images (label 1) from generated ones (label 0). Its softmax P(real) per image is the
quality score the cascade thresholds.

A discriminator never scores images of prompts it was trained on: it trains on a separate set
of generated images (`WorkLayout.discriminator_training`), its checkpoint records those
prompts, and scoring refuses a prompt among them (`check_held_out`).

The backbone is frozen, so image embeddings are computed once and the head is trained on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from profiler.openclip import ClipBackbone, image_embeddings, load_clip


class DiscriminatorError(ValueError):
    """Bad training data or an unreadable discriminator checkpoint."""


@dataclass(frozen=True)
class TrainedDiscriminator:
    clip_name: str
    clip_pretrained: str | None
    head: object  # torch.nn.Sequential: embedding -> 2 logits (fake, real)
    hidden: int
    validation_accuracy: float  # on held-out prompts and real images; NaN without a split
    training_prompts: tuple[str, ...]  # the prompts of the generated images it trained on


def _mlp(embed_dim: int, hidden: int):
    """Standardise the embedding (running statistics of the training set), then a 1-hidden-
    layer MLP to 2 logits (fake, real)."""
    from torch import nn

    return nn.Sequential(
        nn.BatchNorm1d(embed_dim, affine=False, momentum=None),
        nn.Linear(embed_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2),
    )


def train_head(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    hidden: int = 256,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    validation_fraction: float = 0.2,
    seed: int = 0,
    groups: np.ndarray | None = None,
):
    """Train the MLP head on frozen embeddings (class-balanced cross-entropy, Adam); the
    validation split holds out `validation_fraction` of the `groups` (per sample, e.g. its
    prompt; default: each sample its own), so no group has samples on both sides. Returns
    (head, validation accuracy)."""
    import torch

    labels = np.asarray(labels, dtype=np.int64)
    if embeddings.shape[0] != labels.shape[0] or embeddings.ndim != 2:
        raise DiscriminatorError(
            f"embeddings {embeddings.shape} and labels {labels.shape} do not match"
        )
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0 or labels.max() > 1:
        raise DiscriminatorError(f"labels: need both real (1) and generated (0), got {counts}")
    rng = np.random.default_rng(seed)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    unique, sample_group = np.unique(groups, return_inverse=True)
    rank = np.empty(len(unique), np.int64)
    rank[rng.permutation(len(unique))] = np.arange(len(unique))  # each group's place
    sample_rank = rank[sample_group]
    n_val_groups = int(round(validation_fraction * len(unique)))
    by_rank = np.argsort(sample_rank, kind="stable")
    n_val = int((sample_rank < n_val_groups).sum())
    val, train = by_rank[:n_val], by_rank[n_val:]
    x = torch.from_numpy(np.asarray(embeddings, np.float32))
    y = torch.from_numpy(labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = _mlp(x.shape[1], hidden)
    weight = torch.tensor(len(labels) / (2.0 * counts), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    for _ in range(epochs):
        perm = train[rng.permutation(len(train))]
        for k in range(0, len(perm), batch_size):
            idx = torch.from_numpy(perm[k : k + batch_size])
            if len(idx) < 2:  # batch statistics need two samples
                continue
            optimiser.zero_grad()
            loss_fn(head(x[idx]), y[idx]).backward()
            optimiser.step()
    head.eval()
    if n_val == 0:
        return head, float("nan")
    with torch.inference_mode():
        predicted = head(x[torch.from_numpy(val)]).argmax(dim=1).numpy()
    return head, float((predicted == labels[val]).mean())


def train_discriminator(
    backbone: ClipBackbone,
    real_paths: Sequence[str | Path],
    generated_paths: Sequence[str | Path],
    training_prompts: Sequence[str],
    **train_kwargs,
) -> TrainedDiscriminator:
    """Embed real and generated images (of `training_prompts`) with the frozen backbone and
    train the head."""
    if not real_paths or not generated_paths:
        raise DiscriminatorError(
            f"need real and generated images, got {len(real_paths)} and {len(generated_paths)}"
        )
    if not training_prompts:
        raise DiscriminatorError("the generated training images' prompts are not given")
    embeddings = image_embeddings(backbone, [*real_paths, *generated_paths])
    labels = np.r_[np.ones(len(real_paths), np.int64), np.zeros(len(generated_paths), np.int64)]
    head, accuracy = train_head(
        embeddings, labels, groups=_prompt_groups(len(real_paths), generated_paths), **train_kwargs
    )
    hidden = int(head[1].out_features)
    return TrainedDiscriminator(
        backbone.name, backbone.pretrained, head, hidden, accuracy, tuple(training_prompts)
    )


def _prompt_groups(n_real: int, generated_paths: Sequence[str | Path]) -> np.ndarray:
    """The validation split's groups: each real image its own; a generated image its prompt's
    (`<prompt>_<image>.png`, one group across models), else its own."""
    from profiler.generate import IMAGE_NAME

    groups = [f"real {i}" for i in range(n_real)]
    for i, path in enumerate(generated_paths):
        match = IMAGE_NAME.match(Path(path).name)
        groups.append(f"prompt {int(match.group(1))}" if match else f"generated {i}")
    return np.asarray(groups)


def save_discriminator(disc: TrainedDiscriminator, path: str | Path) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "clip_name": disc.clip_name,
            "clip_pretrained": disc.clip_pretrained,
            "hidden": disc.hidden,
            "validation_accuracy": disc.validation_accuracy,
            "training_prompts": list(disc.training_prompts),
            "head": disc.head.state_dict(),
        },
        path,
    )
    return path


def _checkpoint(path: str | Path) -> dict:
    """A checkpoint's fields, checked for the ones `save_discriminator` writes."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DiscriminatorError(f"{path}: discriminator checkpoint not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"clip_name", "clip_pretrained", "hidden", "head", "training_prompts"} - set(state)
    if missing:
        raise DiscriminatorError(
            f"{path}: missing fields {', '.join(sorted(missing))} (re-train it with "
            "`t2isim profile train-discriminator`)"
        )
    return state


def load_discriminator(path: str | Path, device: str = "cpu") -> tuple[ClipBackbone, object]:
    """(frozen backbone, head) from a checkpoint written by `save_discriminator`; the backbone
    is re-created from its open_clip name and pretrained tag/path."""
    state = _checkpoint(path)
    backbone = load_clip(state["clip_name"], state["clip_pretrained"], device)
    embed_dim = state["head"]["1.weight"].shape[1]
    head = _mlp(embed_dim, state["hidden"])
    head.load_state_dict(state["head"])
    return backbone, head.eval().to(device)


def training_prompts(path: str | Path) -> tuple[str, ...]:
    """The prompts whose generated images a saved discriminator was trained on."""
    return tuple(_checkpoint(path)["training_prompts"])


def check_held_out(trained_on: Sequence[str], prompts: Sequence[str], where: str) -> None:
    """Raise unless no prompt of `prompts` (those about to be scored) is one the discriminator
    trained on: a model never scores data it was trained on."""
    seen = set(trained_on)
    shared = [i for i, text in enumerate(prompts) if text in seen]
    if shared:
        raise DiscriminatorError(
            f"{where}: the discriminator was trained on {len(shared)} of these prompts (first: "
            f"prompt {shared[0]}, {prompts[shared[0]]!r}); train it on images of other prompts"
        )


def p_real(backbone: ClipBackbone, head, paths: Sequence[str | Path]) -> np.ndarray:
    """Softmax P(real) per image, float64 (n,)."""
    import torch

    embeddings = torch.from_numpy(image_embeddings(backbone, paths)).to(backbone.device)
    with torch.inference_mode():
        probs = torch.softmax(head(embeddings).double(), dim=1)[:, 1]
    return probs.cpu().numpy()


DISC_LATENCY_COLUMNS = ("batch_size", "latency_p50_s", "latency_p95_s", "n_repeats")


def time_p_real(
    backbone: ClipBackbone,
    head,
    images: Sequence,
    batch_sizes: Sequence[int],
    n_warmup: int = 2,
    n_repeats: int = 10,
):
    """The discriminator's cost as a serving worker pays it: seconds of `p_real` on a batch of
    b in-memory images (PIL, cycled from `images`), per batch size, after `n_warmup` untimed
    calls; p50 and p95 of `n_repeats` timed ones (`profiler.latency.timed_call_s`, as the
    pipelines are timed, with a CPU worker's threads). A DataFrame of DISC_LATENCY_COLUMNS."""
    import pandas as pd

    from profiler.cpu_threads import worker_threads
    from profiler.latency import LatencyTiming, check_batch_sizes, timed_call_s

    check_batch_sizes(batch_sizes)
    LatencyTiming(n_warmup, n_repeats)  # checks the counts
    if not images:
        raise DiscriminatorError("no images to time the discriminator on")
    rows = []
    with worker_threads(backbone.device):
        for b in batch_sizes:
            batch = [images[k % len(images)] for k in range(b)]

            def call(batch: list = batch) -> object:
                return p_real(backbone, head, batch)

            for _ in range(n_warmup):
                call()
            times_s = [timed_call_s(call, backbone.device) for _ in range(n_repeats)]
            p50, p95 = np.percentile(times_s, [50, 95])
            rows.append((int(b), float(p50), float(p95), int(n_repeats)))
    return pd.DataFrame(rows, columns=list(DISC_LATENCY_COLUMNS))
