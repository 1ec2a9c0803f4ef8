"""open_clip backbones: loading (pretrained tag, local checkpoint, or random init), a tiny
registered config for tests, image/text embeddings and CLIPScore (HADIS §4.3: cosine similarity
between the image and text embeddings).

open_clip / torch are imported inside the functions only.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TINY_CLIP = "t2isim-tiny-clip"
# ViT with 1 layer, width 32, 32x32 input: random-init, for CPU tests only
_TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@dataclass(frozen=True)
class ClipBackbone:
    name: str
    pretrained: str | None
    model: object  # open_clip.CLIP, eval mode, frozen
    preprocess: object  # PIL image -> normalised tensor
    tokenizer: object
    device: str


def register_tiny_clip() -> str:
    """Add the tiny config to open_clip's model registry (idempotent); returns its name."""
    import open_clip

    if TINY_CLIP not in open_clip.list_models():
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{TINY_CLIP}.json"
            path.write_text(json.dumps(_TINY_CLIP_CONFIG))
            open_clip.add_model_config(path)
    return TINY_CLIP


def load_clip(
    name: str, pretrained: str | None, device: str = "cpu", seed: int = 0
) -> ClipBackbone:
    """A frozen open_clip model. `pretrained`: an open_clip tag (e.g. 'openai', fetched through
    the Hugging Face cache, offline mode honoured), a local checkpoint path, or None for random
    init (seeded; tests only)."""
    import open_clip
    import torch

    if name == TINY_CLIP:
        register_tiny_clip()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device
        )
    model.eval().requires_grad_(False)
    return ClipBackbone(name, pretrained, model, preprocess, open_clip.get_tokenizer(name), device)


def _open_rgb(image):
    """An RGB PIL image from a path, or from a PIL image in memory (a served image)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    with Image.open(image) as opened:
        return opened.convert("RGB")


def image_embeddings(
    backbone: ClipBackbone, paths: Sequence[str | Path], batch_size: int = 64
) -> np.ndarray:
    """L2-normalised image embeddings, (n, embed_dim) float32 (paths or PIL images)."""
    import torch

    out = []
    for k in range(0, len(paths), batch_size):
        batch = torch.stack([backbone.preprocess(_open_rgb(p)) for p in paths[k : k + batch_size]])
        with torch.inference_mode():
            emb = backbone.model.encode_image(batch.to(backbone.device))
        out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def text_embeddings(
    backbone: ClipBackbone, texts: Sequence[str], batch_size: int = 256
) -> np.ndarray:
    """L2-normalised text embeddings, (n, embed_dim) float32."""
    import torch

    out = []
    for k in range(0, len(texts), batch_size):
        tokens = backbone.tokenizer(list(texts[k : k + batch_size])).to(backbone.device)
        with torch.inference_mode():
            emb = backbone.model.encode_text(tokens)
        out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def clip_scores(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """CLIPScore as HADIS reports it: cosine similarity of each image with its prompt
    (row-aligned, L2-normalised embeddings)."""
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            f"clip_scores: image embeddings {image_emb.shape} and text embeddings "
            f"{text_emb.shape} are not row-aligned"
        )
    return np.einsum("nd,nd->n", image_emb.astype(np.float64), text_emb.astype(np.float64))
