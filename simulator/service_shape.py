"""The shape of a batch's service time around its p50 (`SimConfig.service_time`).

lognormal: p50 x exp(sigma Z), sigma fitted to the profile's p95, so its lower tail mirrors its
upper one in log space (p05 = p50^2 / p95). A batch's time often has a floor (the pipeline at
the device's full speed) and a long upper tail (interference): the tiny models' served batches
of one had p05/p50 of 0.75-0.85 against p95/p50 of 1.4, where a lognormal fitted to the p95
puts the p05 at 0.6-0.7 of the p50 (results/validation/HISTORY.md, section "Session 21", where a
fresh set did not show that fitting the floor predicts the served p50 better on that shared CPU).

shifted-lognormal: floor + exp(mu + sigma Z), the three parameters fitted to the profile's p05,
p50 and p95 (closed form: with m = p50 - floor, (p95 - floor)(p05 - floor) = m^2, so
floor = (p05 p95 - p50^2) / (p05 + p95 - 2 p50)). It keeps the p50 and p95 exactly; where the
p05 is unknown, or the lower tail is at least as wide as a lognormal's (no floor in [0, p05)),
the floor is 0 and it is the lognormal. empirical: a draw from the bundle's measured shape
(`simulator.empirical_shape`). As ratios to the p50 (`ServiceShape`), the shape
scales with a batch's median (`simulator.cluster`: the latency after idle moves the median).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.6448536269514722  # standard normal 95th percentile
# the service-time model that draws from the bundle's measured shapes
# (`simulator.empirical_shape`), the lognormal for a model without one
EMPIRICAL_SERVICE = "empirical"


def lognormal_sigma(p50: float, p95: float) -> float:
    """σ of a lognormal with median p50 and 95th percentile p95 (0 when either is unknown)."""
    if not (p50 > 0 and p95 > p50):
        return 0.0
    return math.log(p95 / p50) / Z95


@dataclass(frozen=True)
class ServiceShape:
    """A batch's time as a multiple of its median: floor_ratio + (1 - floor_ratio) x
    exp(sigma Z)."""

    floor_ratio: float = 0.0
    sigma: float = 0.0

    def factor(self, z: float) -> float:
        """The multiple of the median at the standard normal quantile z."""
        return self.floor_ratio + (1.0 - self.floor_ratio) * math.exp(self.sigma * z)


def shifted_lognormal_floor(p05: float, p50: float, p95: float) -> float:
    """The floor of the shifted lognormal through (p05, p50, p95); 0 when no floor in [0, p05)
    fits (p05 unknown, or p05 x p95 <= p50^2: a lower tail as wide as a lognormal's or wider)."""
    if not (0 < p05 <= p50 < p95) or p05 * p95 <= p50 * p50:
        return 0.0
    # p05 * p95 > p50^2 with p05 <= p50 < p95 makes the denominator positive
    floor = (p05 * p95 - p50 * p50) / (p05 + p95 - 2.0 * p50)
    return floor if 0.0 <= floor < p05 else 0.0


def service_shape(model: str, p05: float, p50: float, p95: float) -> ServiceShape:
    """The shape of one (model, batch size) under `model` (a SERVICE_TIME_MODELS name);
    the identity (floor 0, sigma 0) for the deterministic and exponential models, which do not
    use it, and where the p50 or p95 is unknown."""
    if model == "lognormal":
        return ServiceShape(0.0, lognormal_sigma(p50, p95))
    if model != "shifted-lognormal":
        return ServiceShape()
    floor = shifted_lognormal_floor(p05, p50, p95)
    sigma = lognormal_sigma(p50 - floor, p95 - floor)
    return ServiceShape(floor / p50 if sigma else 0.0, sigma)
