"""Per-image feature extraction for FID: Inception-v3 pool features (2048-d) with clean resizing,
or a tiny random-init conv net for tests.

Clean resizing follows clean-fid (Parmar et al. 2022): each channel is resized as a float image
with PIL's bicubic filter (no uint8 rounding, proper antialiasing) to the network's input size.
Weights: torchvision's ImageNet Inception-v3 (`weights="torchvision"`, from the torch hub cache
or downloaded once) or a local state-dict file in torchvision's layout. FIDs measured with these
weights are comparable with each other, not with clean-fid's TF-Inception numbers.

Features are stored per image (npz: `features` (n_prompts, images_per_prompt, d), `names`) so
that the FID of any per-prompt model mix is exact (`profiler.frechet.MixStats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from profiler.frechet import FeatureError
from profiler.generate import image_grid
from simulator.npz_input import read_npz_arrays

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class FeatureExtractor:
    name: str
    net: object  # torch.nn.Module in eval mode: (b, 3, s, s) -> (b, dim)
    image_size: int
    dim: int
    device: str


def inception_extractor(
    weights: str | None, device: str = "cpu", seed: int = 0
) -> FeatureExtractor:
    """Inception-v3 up to the 2048-d average pool. `weights`: 'torchvision', a local state-dict
    path, or None (random init, seeded: only for smoke tests, its FIDs mean nothing)."""
    import torch
    from torchvision.models import Inception_V3_Weights, inception_v3

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if weights == "torchvision":
            net = inception_v3(weights=Inception_V3_Weights.IMAGENET1K_V1)
            name = "inception_v3:torchvision-IMAGENET1K_V1"
        else:
            # transform_input maps ImageNet-normalised input to the [-1, 1] range the
            # ImageNet weights were trained on (what torchvision does for its own weights)
            net = inception_v3(
                weights=None,
                aux_logits=True,
                init_weights=False,
                transform_input=weights is not None,
            )
            name = "inception_v3:random-init"
            if weights is not None:
                path = Path(weights)
                if not path.is_file():
                    raise FeatureError(f"{path}: Inception weights file not found")
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                name = f"inception_v3:{path.name}"
    net.fc = torch.nn.Identity()
    return FeatureExtractor(name, net.eval().to(device), 299, 2048, device)


def tiny_extractor(seed: int = 0, dim: int = 16, device: str = "cpu") -> FeatureExtractor:
    """A 2-layer random-init conv net on 32x32 inputs with `dim` pooled features (tests)."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, dim, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
    return FeatureExtractor(f"tiny-conv:{dim}:seed{seed}", net.eval().to(device), 32, dim, device)


def clean_resize(path: str | Path, size: int) -> np.ndarray:
    """(3, size, size) float32 in [0, 1]: per-channel float bicubic resize (clean-fid style)."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    channels = [
        np.asarray(Image.fromarray(pixels[:, :, c]).resize((size, size), Image.BICUBIC))
        for c in range(3)
    ]
    return np.clip(np.stack(channels), 0.0, 255.0) / 255.0


def extract_features(
    extractor: FeatureExtractor, paths: Sequence[str | Path], batch_size: int = 32
) -> np.ndarray:
    """(n, dim) float32 features of the images at `paths`, in order."""
    import torch

    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    out = []
    for k in range(0, len(paths), batch_size):
        batch = np.stack([clean_resize(p, extractor.image_size) for p in paths[k : k + batch_size]])
        tensor = torch.from_numpy((batch - mean) / std).to(extractor.device)
        with torch.inference_mode():
            out.append(extractor.net(tensor).float().cpu().numpy())
    if not out:
        raise FeatureError("extract_features: no images given")
    return np.concatenate(out)


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (sorted by name), e.g. the real reference images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FeatureError(f"{folder}: image folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FeatureError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def generated_features(extractor: FeatureExtractor, folder: str | Path, batch_size: int = 32):
    """(features (n_prompts, images_per_prompt, dim), names (n_prompts, images_per_prompt)) of a
    generated folder (`<prompt>_<image>.png`)."""
    n_prompts, k, grid = image_grid(folder)
    flat = [path for row in grid for path in row]
    features = extract_features(extractor, flat, batch_size).reshape(n_prompts, k, -1)
    names = np.array([p.name for p in flat]).reshape(n_prompts, k)
    return features, names


def save_features(
    path: str | Path, features: np.ndarray, names: np.ndarray, extractor: str
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=features, names=names, extractor=np.array(extractor))
    return path


def load_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(features, names, extractor name) as written by `save_features`."""
    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: features file not found")
    arrays = read_npz_arrays(path, ("features", "names", "extractor"), FeatureError)
    features = arrays["features"]
    if features.ndim < 2 or features.dtype.kind not in "iuf":
        raise FeatureError(
            f"{path}: features: expected numbers of shape (..., d), got {features.dtype} of "
            f"shape {features.shape}"
        )
    return features, arrays["names"], str(arrays["extractor"])
