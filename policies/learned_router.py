"""A trained router from `routers/` as the hardness score of a cascade policy (`--router NAME`),
cross-fitted so that no prompt is scored by a model that saw it.

Training data: the bundle's prompts with quality = the discriminator score of the light and
heavy model (the bundle's fastest and slowest).

Cross-fitting (K folds: option `router_folds`, default 5; seed: `router_seed`, default the
run's seed): the prompts are permuted with the seed and cut into K folds of near-equal size.
Fold model f is fitted on the *training part* (every fold except f and f+1 mod K), calibrated
on fold f+1 mod K and scores fold f — with K = 5 the 60/20/20 train/calibration/test
proportions of `routers.data.split_by_prompt`. Every prompt is scored exactly once, by the
one model whose training and calibration parts exclude it; `CrossFit.folds` records each
model's prompt ids and `cross_fit_scores` refuses a fold plan that overlaps.

One scale: fold models are different functions, so their raw scores are not comparable. Each
fold's scores are mapped through its model's calibration-set CDF, u = F_f(s) in [0, 1], the
inverse of numpy's linear-interpolation quantile of the calibration scores; hence u >= 1 - r
exactly when s >= the fold model's calibration (1 - r)-quantile. The map is the router's
calibration to every heavy share r at once (as `Router.calibrate` is for one share), made
from the calibration fold alone: neither the scored prompts nor any label enter it. A quantile
scale rather than, say, z-scores because the simulator thresholds by quantile: on it, one
threshold means one heavy share for every fold model, without assuming a score distribution.
Scores outside a fold's calibration range map to 0 or 1 (ties, about 1/n_calib of a fold).

The simulator's θ (simulator/cascade.router_threshold: the (1 - r)-quantile of the scores of
all bundle prompts, so the bypass share is r as the cascade table assumes) is computed from
these mapped scores: it reads scores only, never a label, and since each fold's mapped scores
are near-uniform on [0, 1], θ stays near the calibration-only threshold 1 - r (within about
0.01 on the default bundle; tests/test_router_leakage.py checks 0.03).

`oracle` is the exception by design: its score is each prompt's true gain (an upper bound).
The bundle's cascade table was measured with the bundle's own router, so with another router
the table-based FID is an approximation; on the default bundle `fid_exact` is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.bundle import ROUTER_FEATURES, Bundle
from simulator.errors import InputError

DEFAULT_EPOCHS = 30
DEFAULT_FOLDS = 5


@dataclass(frozen=True, eq=False)
class FoldModel:
    """The prompt ids one fold model was fitted on, calibrated on and scored."""

    train_ids: np.ndarray
    calib_ids: np.ndarray
    scored_ids: np.ndarray


@dataclass(frozen=True, eq=False)
class CrossFit:
    """Per-prompt scores on the calibration-CDF scale and the fold models that made them."""

    scores: np.ndarray  # (n_prompts,) in [0, 1]
    folds: tuple[FoldModel, ...]


def bundle_routing_data(bundle: Bundle):
    """The bundle's prompts and discriminator scores as router training data."""
    from routers.data import PromptBatch, RoutingData
    from simulator.baselines import models_by_speed

    by_speed = models_by_speed(bundle)
    batch = PromptBatch(
        prompt_ids=np.arange(bundle.n_prompts),
        texts=tuple(bundle.prompts["text"]),
        features=bundle.prompts[list(ROUTER_FEATURES)].to_numpy(dtype=np.float64),
    )
    return RoutingData(
        name=f"bundle {bundle.name}",
        batch=batch,
        model_names=bundle.model_names,
        quality=bundle.disc_score,
        light=bundle.model_index(by_speed[0]),
        heavy=bundle.model_index(by_speed[-1]),
    )


def cross_fit_folds(n_prompts: int, n_folds: int, seed: int) -> tuple[FoldModel, ...]:
    """The seeded K-fold plan of the module docstring: model f trains on all folds but f and
    f+1, calibrates on f+1, scores f."""
    if not 3 <= n_folds <= n_prompts // 2:
        raise InputError(
            f"router_folds {n_folds}: need 3 <= K <= {n_prompts // 2} for {n_prompts} prompts "
            "(each fold model trains on K-2 folds, calibrates on 1 and scores 1)"
        )
    order = np.random.default_rng(seed).permutation(n_prompts)
    folds = [np.sort(part) for part in np.array_split(order, n_folds)]
    plan = []
    for f in range(n_folds):
        calib = (f + 1) % n_folds
        train = np.sort(np.concatenate([folds[g] for g in range(n_folds) if g not in (f, calib)]))
        plan.append(FoldModel(train, folds[calib], folds[f]))
    return tuple(plan)


def calibration_cdf(calib_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """`scores` mapped through the calibration scores' CDF: the inverse of np.quantile's linear
    interpolation (tied calibration scores take their mean plotting position)."""
    ordered = np.sort(np.asarray(calib_scores, dtype=np.float64))
    levels, first, count = np.unique(ordered, return_index=True, return_counts=True)
    positions = np.linspace(0.0, 1.0, len(ordered)) if len(ordered) > 1 else np.zeros(1)
    mean_position = np.add.reduceat(positions, first) / count
    return np.interp(np.asarray(scores, dtype=np.float64), levels, mean_position)


def _check_plan(plan: tuple[FoldModel, ...], n_prompts: int) -> None:
    scored = np.sort(np.concatenate([fold.scored_ids for fold in plan]))
    if not np.array_equal(scored, np.arange(n_prompts)):
        raise ValueError("cross-fit plan: the scored folds must cover every prompt exactly once")
    for f, fold in enumerate(plan):
        for part, ids in (("train", fold.train_ids), ("calibration", fold.calib_ids)):
            if np.intersect1d(ids, fold.scored_ids).size:
                raise ValueError(f"cross-fit plan: fold {f} scores prompts of its {part} part")
        if np.intersect1d(fold.train_ids, fold.calib_ids).size:
            raise ValueError(f"cross-fit plan: fold {f} calibrates on training prompts")


def cross_fit_scores(data, plan: tuple[FoldModel, ...], make_router: Callable) -> CrossFit:
    """Score every prompt of `data` (a routers.data.RoutingData whose prompt ids are 0..N-1)
    with a fresh `make_router()` per fold of `plan`, on the calibration-CDF scale."""
    _check_plan(plan, len(data))
    scores = np.empty(len(data))
    for fold in plan:
        router = make_router()
        router.fit(data.subset(fold.train_ids))
        calib = np.asarray(router.score(data.subset(fold.calib_ids).batch), dtype=np.float64)
        raw = np.asarray(router.score(data.subset(fold.scored_ids).batch), dtype=np.float64)
        scores[fold.scored_ids] = calibration_cdf(calib, raw)
    return CrossFit(scores, plan)


def learned_router_cross_fit(
    bundle: Bundle,
    name: str,
    seed: int,
    features: str = "auto",
    epochs: int = DEFAULT_EPOCHS,
    n_folds: int = DEFAULT_FOLDS,
) -> CrossFit:
    """Router `name` cross-fitted on the bundle's prompts (see the module docstring)."""
    try:
        from routers.features import MiniLMEncoder, resolve_feature_kind
        from routers.nn import TrainConfig
        from routers.registry import RouterContext, build_router
    except ImportError as exc:
        raise InputError(
            f"--router {name}: the routers package is not importable ({exc})"
        ) from None
    data = bundle_routing_data(bundle)
    plan = cross_fit_folds(len(data), n_folds, seed)
    context = RouterContext(
        reference=data,
        feature_kind=resolve_feature_kind(features, has_hadis_features=True),
        seed=seed,
        config=TrainConfig(epochs=epochs),
        encoder=MiniLMEncoder(corpus=data.batch.texts),
    )
    return cross_fit_scores(data, plan, lambda: build_router(name, context))


def learned_router_scores(
    bundle: Bundle,
    name: str,
    seed: int,
    features: str = "auto",
    epochs: int = DEFAULT_EPOCHS,
    n_folds: int = DEFAULT_FOLDS,
) -> np.ndarray:
    """Hardness score per bundle prompt, each from a fold model that never saw the prompt."""
    return learned_router_cross_fit(bundle, name, seed, features, epochs, n_folds).scores
