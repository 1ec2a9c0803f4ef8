"""Small hand-made bundles for core tests (independent of the calibrated default bundle)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.bundle import ROUTER_FEATURES, Bundle, make_meta, validate_tables
from simulator.cascade import expected_latency_s, hybrid_assignment

RATIOS = np.round(np.arange(0, 1.01, 0.1), 10)


def make_bundle(
    base_latency_s: dict[str, float] | None = None,
    fid_alone: dict[str, float] | None = None,
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8),
    n_prompts: int = 400,
    seed: int = 0,
    batch_factor: float = 0.9,
    load_s: float = 0.0,
) -> Bundle:
    """Models light -> heavy with latency base*b*batch_factor (b > 1), random prompts/scores,
    and a full 11 x 11 cascade table whose FID interpolates linearly in the heavy share."""
    base_latency_s = base_latency_s or {"light": 1.0, "heavy": 4.0}
    fid_alone = fid_alone or {"light": 30.0, "heavy": 20.0}
    names = list(base_latency_s)
    rng = np.random.default_rng(seed)
    models = pd.DataFrame(
        {
            "model": names,
            "steps": [4 * (i + 1) for i in range(len(names))],
            "load_s": [load_s] * len(names),
            "fid_alone": [fid_alone[m] for m in names],
        }
    )
    latency = pd.DataFrame(
        [
            {
                "model": m,
                "batch_size": b,
                "latency_p50_s": base_latency_s[m] * (1 if b == 1 else b * batch_factor),
                "latency_p95_s": base_latency_s[m] * (1 if b == 1 else b * batch_factor),
            }
            for m in names
            for b in batch_sizes
        ]
    )
    features = rng.integers(0, 6, size=(n_prompts, len(ROUTER_FEATURES)))
    hardness = features.sum(axis=1) + rng.normal(0, 1, n_prompts)
    prompts = pd.DataFrame(features, columns=list(ROUTER_FEATURES))
    prompts.insert(0, "text", [f"prompt {i}" for i in range(n_prompts)])
    prompts.insert(0, "prompt_id", np.arange(n_prompts))
    prompts["router_score"] = (hardness - hardness.mean()) / hardness.std()
    score_rows = []
    for m_i, m in enumerate(names):
        q = 1 / (1 + np.exp(hardness / 4 - m_i + rng.normal(0, 1, n_prompts)))
        score_rows.append(
            pd.DataFrame({"prompt_id": np.arange(n_prompts), "model": m, "disc_score": q})
        )
    scores = pd.concat(score_rows, ignore_index=True)
    rows = []
    for i, light in enumerate(names):
        for heavy in names[i + 1 :]:
            light_q = scores[scores.model == light].disc_score.to_numpy()
            for r in RATIOS:
                for c in RATIOS:
                    bypassed, escalated = hybrid_assignment(
                        prompts.router_score.to_numpy(), light_q, r, c
                    )
                    share = float((bypassed | escalated).mean())
                    rows.append(
                        {
                            "light": light,
                            "heavy": heavy,
                            "router_ratio": r,
                            "disc_ratio": c,
                            "heavy_share": share,
                            "latency_s": expected_latency_s(
                                base_latency_s[light], base_latency_s[heavy], r, share
                            ),
                            "fid": (1 - share) * fid_alone[light] + share * fid_alone[heavy],
                        }
                    )
    meta = make_meta("test-bundle", source="tests/bundle_factory.py", gpu="none")
    return validate_tables(
        meta,
        {
            "models": models,
            "latency": latency,
            "prompts": prompts,
            "scores": scores,
            "cascades": pd.DataFrame(rows),
        },
    )


def small_figure_context(folder):
    """A quick-mode FigureContext on a 4-model hand-made bundle (6 workers, 30 s SLO)."""
    from dataclasses import replace

    from experiments.figures.context import FigureContext
    from simulator.config import SimConfig

    bundle = make_bundle(
        base_latency_s={"m0": 0.5, "m1": 1.5, "m2": 4.0, "m3": 8.0},
        fid_alone={"m0": 30.0, "m1": 25.0, "m2": 21.0, "m3": 20.0},
        n_prompts=300,
    )
    ctx = FigureContext("small", bundle, folder, quick=True)
    ctx.base = replace(SimConfig(), n_workers=6, slo_s=30.0)
    return ctx
