"""Where each profiling step reads and writes inside a work folder (one place for the paths).

<root>/prompts.txt                 one prompt per line (prompt_id = line index)
<root>/prompt_features.csv         prompt + 8 router features
<root>/latency/<model>.csv|.json   latency rows + sidecar (steps, load_s, provenance)
<root>/images/<model>/NNNNN_i.png  generated images
<root>/real/                       synthetic "real" images of tiny runs
<root>/features/<model>.npz        per-image features; features/reference.npz = real stats
<root>/discriminator-training/     the discriminator's own work folder: prompts.txt and
                                   images/<model>/ of prompts the bundle does not hold
<root>/discriminator.pt            trained discriminator head (+ the prompts it trained on)
<root>/discriminator_latency.csv   its cost per batch size (the serving path's p_real)
<root>/scores/<model>.csv          per-image P(real) and CLIPScore
<root>/bundle/                     the profile bundle
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkLayout:
    root: Path

    @property
    def prompts_txt(self) -> Path:
        return self.root / "prompts.txt"

    @property
    def prompt_features_csv(self) -> Path:
        return self.root / "prompt_features.csv"

    @property
    def real_images(self) -> Path:
        return self.root / "real"

    @property
    def reference_stats(self) -> Path:
        return self.root / "features" / "reference.npz"

    @property
    def discriminator(self) -> Path:
        return self.root / "discriminator.pt"

    @property
    def discriminator_training(self) -> WorkLayout:
        return WorkLayout(self.root / "discriminator-training")

    @property
    def discriminator_latency_csv(self) -> Path:
        return self.root / "discriminator_latency.csv"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def latency_csv(self, model: str) -> Path:
        return self.root / "latency" / f"{model}.csv"

    def images(self, model: str) -> Path:
        return self.root / "images" / model

    def features(self, model: str) -> Path:
        return self.root / "features" / f"{model}.npz"

    def scores(self, model: str) -> Path:
        return self.root / "scores" / f"{model}.csv"

    def profiled_models(self) -> list[str]:
        """Models with a latency profile, by name."""
        folder = self.root / "latency"
        return sorted(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else []
