"""Prompt routers between a light (edge) and a heavy (cloud) text-to-image model.

`Router` (fit / score / calibrate / route_heavy), data loaders (`routers.data`), metrics
(`routers.metrics`), the registry of router names (`routers.registry`) and the evaluation
pipeline (`routers.evaluate`). Importing this package touches neither the network nor torch.
"""

from .base import Calibration, Router, RouterError
from .data import PromptBatch, RouterDataError, RoutingData, load_routing_data, split_by_prompt
from .registry import ROUTERS, RouterContext, build_router

__all__ = [
    "Calibration",
    "PromptBatch",
    "ROUTERS",
    "Router",
    "RouterContext",
    "RouterDataError",
    "RouterError",
    "RoutingData",
    "build_router",
    "load_routing_data",
    "split_by_prompt",
]
