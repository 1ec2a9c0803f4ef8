"""`profile all --tiny`'s steps on 8 prompts, for tests that need a profiled bundle (needs the
profiler extra: torch, diffusers, open_clip)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


def word_counts(texts):
    """A stand-in router-feature extractor (the workflow, not feature quality, is under test)."""
    rows = []
    for text in texts:
        words = text.split()
        rows.append([len(words), sum(len(w) > 6 for w in words), 1, 0, 0, 0, 0, 0])
    return np.asarray(rows, dtype=np.int64)


def run_tiny_profile(work_dir: Path, name: str):
    """(layout, run_all's result) of the tiny profile in `work_dir`, bundle named `name`."""
    from profiler.latency import LatencyTiming
    from profiler.layout import WorkLayout
    from profiler.workflow import run_all, tiny_plan, write_smooth_images

    layout = WorkLayout(work_dir)
    write_smooth_images(layout.real_images, 16, 32, seed=0)
    plan = dataclasses.replace(
        tiny_plan(layout, n_prompts=8, seed=0),
        prompt_features=word_counts,
        batch_sizes=(1, 2),
        timing=LatencyTiming(0, 1),
        generation_batch_size=16,
    )
    # random-init models have arbitrary FIDs: candidate pruning would leave no pair
    return layout, run_all(plan, layout, name, prune_models=False)
