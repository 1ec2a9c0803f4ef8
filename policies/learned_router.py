"""A trained router from `routers/` as the hardness score of a cascade policy (`--router NAME`).

The router is trained on the bundle's own prompts with quality = the discriminator score of
the light and heavy model (the bundle's fastest and slowest), on the train part of a seeded
prompt split (routers.data.split_by_prompt), then scores every prompt; the score replaces
`prompts.router_score` and is thresholded by the same quantile rule (router_ratio).

The bundle's cascade table was measured with the bundle's own router, so with another router
the table-based FID is an approximation; on the default bundle `fid_exact` is exact.
"""

from __future__ import annotations

import numpy as np

from simulator.bundle import ROUTER_FEATURES, Bundle
from simulator.errors import InputError

DEFAULT_EPOCHS = 30


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


def learned_router_scores(
    bundle: Bundle, name: str, seed: int, features: str = "auto", epochs: int = DEFAULT_EPOCHS
) -> np.ndarray:
    """Hardness score per bundle prompt from router `name` trained on the bundle's prompts."""
    try:
        from routers.data import split_by_prompt
        from routers.features import MiniLMEncoder, resolve_feature_kind
        from routers.nn import TrainConfig
        from routers.registry import RouterContext, build_router
    except ImportError as exc:
        raise InputError(
            f"--router {name}: the routers package is not importable ({exc})"
        ) from None
    data = bundle_routing_data(bundle)
    split = split_by_prompt(data, seed)
    context = RouterContext(
        reference=data,
        feature_kind=resolve_feature_kind(features, has_hadis_features=True),
        seed=seed,
        config=TrainConfig(epochs=epochs),
        encoder=MiniLMEncoder(corpus=data.batch.texts),
    )
    router = build_router(name, context).fit(split.train)
    return np.asarray(router.score(data.batch), dtype=np.float64)
