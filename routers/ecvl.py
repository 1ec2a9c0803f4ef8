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
* on a routed test set (`routers.metrics.ecvl_outcome`): APSP = share of prompts served at
  quality >= MES, CA = 1 - mean cost / heavy cost, AIL = mean latency, RCS = w_solve APSP +
  w_cost CA + w_latency (1 - AIL / L_heavy).

Default scenario weights (solve, cost, latency): fast (0.4, 0.1, 0.5), quality (0.8, 0.1, 0.1),
energy (0.4, 0.5, 0.1); MES quantiles 0.4, 0.7, 0.2 (energy/privacy accepts the most loss).
`parse_ecvl_scenarios` overrides them (CLI ``--ecvl-weights 'fast=0.5,0.2,0.3;...'`` and
``--ecvl-mes 'quality=0.8'``): weights non-negative and summing to 1, quantiles in [0, 1].
Latencies come from the data (HADIS: L40S batch-1 seconds) or default to light 1 s, heavy 10 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from simulator.errors import InputError

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


class EcvlConfigError(InputError):
    """A bad ECVL scenario override (--ecvl-weights / --ecvl-mes)."""


def _entries(option: str, spec: str) -> dict[str, str]:
    """'name=value;name=value' -> {scenario name: value text}, names checked."""
    out: dict[str, str] = {}
    for entry in (e.strip() for e in spec.split(";")):
        if not entry:
            continue
        name, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or not value:
            raise EcvlConfigError(f"{option} {entry!r}: expected SCENARIO=VALUE[;SCENARIO=VALUE]")
        if name not in ECVL_SCENARIOS:
            raise EcvlConfigError(
                f"{option}: unknown scenario {name!r}; expected one of {', '.join(ECVL_SCENARIOS)}"
            )
        if name in out:
            raise EcvlConfigError(f"{option}: scenario {name!r} given twice")
        out[name] = value
    return out


def _number(option: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EcvlConfigError(f"{option} {name}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise EcvlConfigError(f"{option} {name}: {text.strip()!r} is not a finite number")
    return value


def parse_ecvl_scenarios(
    weights: str | None = None, mes: str | None = None
) -> dict[str, EcvlScenario]:
    """The default scenarios with overrides.

    weights: 'fast=SOLVE,COST,LATENCY;quality=...' (each >= 0, summing to 1);
    mes: 'fast=Q;energy=Q' (MES quantile of the heavy model's training quality, in [0, 1]).
    """
    scenarios = dict(ECVL_SCENARIOS)
    for name, text in _entries("--ecvl-weights", weights or "").items():
        parts = text.split(",")
        if len(parts) != 3:
            raise EcvlConfigError(
                f"--ecvl-weights {name}: expected 3 numbers SOLVE,COST,LATENCY, got {text!r}"
            )
        values = [_number("--ecvl-weights", name, p) for p in parts]
        if min(values) < 0:
            raise EcvlConfigError(f"--ecvl-weights {name}: weights must be >= 0, got {text!r}")
        if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            raise EcvlConfigError(
                f"--ecvl-weights {name}: weights sum to {sum(values):.6g}, expected 1"
            )
        scenarios[name] = replace(scenarios[name], weights=EcvlWeights(*values))
    for name, text in _entries("--ecvl-mes", mes or "").items():
        quantile = _number("--ecvl-mes", name, text)
        if not 0.0 <= quantile <= 1.0:
            raise EcvlConfigError(f"--ecvl-mes {name}: quantile {quantile:g} not in [0, 1]")
        scenarios[name] = replace(scenarios[name], mes_quantile=quantile)
    return scenarios


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
