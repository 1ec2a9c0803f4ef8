"""ECVL-Router (Tang et al.): scenario-aware edge/cloud routing. The paper names its scores but
not their formulas; ours:

* MES (minimal expected score) of a scenario = the `mes_quantile` quantile of the heavy model's
  training quality: the quality a user in that scenario needs.
* solve probability P_m(x) = P(q_m(x) >= MES), predicted for the light and heavy model by one
  MLP with two sigmoid outputs.
* per-prompt routing comprehensive score of model m:
  RCS_m(x) = w_solve P_m(x) + w_cost CA_m + w_latency (1 - L_m / L_heavy),
  CA_m = 1 - cost_m / cost_heavy, cost proportional to latency.
* score = RCS_heavy(x) - RCS_light(x); the scenario's own decision is score > τ (τ = 0).
  Under a heavy-share budget, `calibrate` moves τ as for every router.

Scenario weights (solve, cost, latency): fast (0.4, 0.1, 0.5), quality (0.8, 0.1, 0.1), energy
(0.4, 0.5, 0.1); MES quantiles 0.4, 0.7, 0.2 (energy/privacy accepts the most loss).
Latencies come from the data (HADIS: L40S batch-1 seconds) or default to light 1 s, heavy 10 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import FeatureRouter
from .data import RoutingData
from .features import PromptFeaturizer
from .metrics import EcvlWeights
from .nn import TrainConfig, bce_with_logits, fit_mlp, mlp_forward, sigmoid

DEFAULT_LATENCY_S = (1.0, 10.0)


@dataclass(frozen=True)
class EcvlScenario:
    name: str
    mes_quantile: float
    weights: EcvlWeights


ECVL_SCENARIOS = {
    s.name: s
    for s in (
        EcvlScenario("fast", 0.4, EcvlWeights(solve=0.4, cost=0.1, latency=0.5)),
        EcvlScenario("quality", 0.7, EcvlWeights(solve=0.8, cost=0.1, latency=0.1)),
        EcvlScenario("energy", 0.2, EcvlWeights(solve=0.4, cost=0.5, latency=0.1)),
    )
}


def pair_latency_s(data: RoutingData) -> tuple[float, float]:
    if data.latency_s is None:
        return DEFAULT_LATENCY_S
    return data.latency_s[data.light], data.latency_s[data.heavy]


class EcvlRouter(FeatureRouter):
    def __init__(
        self, featurizer: PromptFeaturizer, config: TrainConfig, seed: int, scenario: EcvlScenario
    ) -> None:
        super().__init__(featurizer, config, seed)
        self.scenario = scenario
        self.name = f"ecvl-{scenario.name}"

    def _fit(self, x: np.ndarray, train: RoutingData) -> None:
        self.mes_ = float(np.quantile(train.heavy_quality, self.scenario.mes_quantile))
        solved = np.stack([train.light_quality, train.heavy_quality], axis=1) >= self.mes_
        self.params_ = fit_mlp(x, solved.astype(float), bce_with_logits, self.config, self.seed)
        self.latency_s_ = pair_latency_s(train)

    def solve_probability(self, x: np.ndarray) -> np.ndarray:
        """(n, 2): P̂(light solves), P̂(heavy solves)."""
        return sigmoid(mlp_forward(self.params_, x)[0])

    def _score(self, x: np.ndarray) -> np.ndarray:
        w = self.scenario.weights
        light_s, heavy_s = self.latency_s_
        p = self.solve_probability(x)
        cost_advantage_light = 1.0 - light_s / heavy_s  # cost proportional to latency
        latency_term_light = 1.0 - light_s / heavy_s
        return w.solve * (p[:, 1] - p[:, 0]) - (
            w.cost * cost_advantage_light + w.latency * latency_term_light
        )
