"""Edge-cloud setting (RouteT2I): a cloud-call budget ρ instead of a GPU cluster.

Each router is fitted on train and calibrated on the calibration split to the budget ρ (its own
threshold rule: RouteT2I's is the α <= ½ budget rule); the test prompts are then routed once.
Per router: realised cloud share s (calibration and test; the budget is violated when the test
share exceeds ρ), mean quality, ΔP, RouteT2I's cloud fee per request s · F_c (the slides'
constraint P{R(X) = 1} · F_c <= τ_fee: edge generation is free), the cost per request when both
models are paid, (1 - s) c_edge + s c_cloud, and mean latency (1 - s) L_edge + s L_cloud (the
slides' router delay D_R is not modelled).

Default prices are RouteT2I's table ($ per million images): SDXL 9K (edge), SD3.5 65K (cloud).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Router
from .data import Split
from .ecvl import pair_latency_s
from .metrics import performance_gap_recovered
from .nn import single_blas_thread

EDGE_COST_PER_REQUEST = 9_000 / 1e6  # $, SDXL, RouteT2I slides' pricing table
CLOUD_COST_PER_REQUEST = 65_000 / 1e6  # $, SD3.5


@dataclass(frozen=True)
class EdgeCloudCosts:
    edge_cost: float = EDGE_COST_PER_REQUEST
    cloud_cost: float = CLOUD_COST_PER_REQUEST


def simulate_edge_cloud(
    router: Router, split: Split, rho: float, costs: EdgeCloudCosts
) -> dict[str, float | str]:
    """Fit, calibrate to the cloud budget ρ, route the test prompts; one row of results."""
    test = split.test
    with single_blas_thread():  # see routers.evaluate.evaluate_router
        router.fit(split.train)
        calibration = router.calibrate(split.calib.batch, rho)
        cloud = router.route_heavy(test.batch)
    served = np.where(cloud, test.heavy_quality, test.light_quality)
    share = float(cloud.mean())
    edge_s, cloud_s = pair_latency_s(test)
    return {
        "router": router.name,
        "rho": rho,
        "cloud_share_calib": calibration.realised_heavy_share,
        "cloud_share_test": share,
        "budget_violated": share > rho + 1e-12,
        "quality": float(served.mean()),
        "dp": float(
            performance_gap_recovered(
                served.mean(), test.light_quality.mean(), test.heavy_quality.mean()
            )
        ),
        "cloud_fee_per_request": share * costs.cloud_cost,
        "cost_per_request": (1 - share) * costs.edge_cost + share * costs.cloud_cost,
        "latency_s": (1 - share) * edge_s + share * cloud_s,
    }
