"""Router names -> constructed (unfitted) routers (a `simulator.registry.Registry`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from simulator.errors import InputError
from simulator.registry import Registry

from .base import Router
from .baselines import OracleRouter, RandomRouter
from .data import RoutingData
from .ecvl import ECVL_SCENARIOS, EcvlRouter, EcvlScenario
from .features import MiniLMEncoder, TokenFeaturizer, make_prompt_featurizer
from .hadis_rule import HADIS_PUBLISHED_WEIGHTS, HadisRuleRouter
from .hybrid_llm import HybridLlmRouter
from .knn import KnnRouter
from .nn import TrainConfig
from .routellm import MatrixFactorisationRouter, MlpClassifierRouter
from .routet2i import RouteT2IRouter
from .zooter import ZooterRouter


class UnknownRouterError(InputError):
    """A router name that is not registered."""


@dataclass(frozen=True)
class RouterContext:
    """What router constructors may use: the full data (oracle only), representation, seed,
    the ECVL scenarios (see routers.ecvl.parse_ecvl_scenarios)."""

    reference: RoutingData
    feature_kind: str  # resolved, see routers.features.resolve_feature_kind
    seed: int
    config: TrainConfig
    encoder: MiniLMEncoder
    ecvl_scenarios: Mapping[str, EcvlScenario] = field(default_factory=lambda: ECVL_SCENARIOS)

    def featurizer(self):
        return make_prompt_featurizer(self.feature_kind, self.encoder)

    def tokens(self) -> TokenFeaturizer:
        return TokenFeaturizer("minilm" if self.feature_kind == "minilm" else "bow", self.encoder)


def _learned(cls, **kwargs) -> Callable[[RouterContext], Router]:
    return lambda ctx: cls(ctx.featurizer(), ctx.config, ctx.seed, **kwargs)


ROUTERS: Registry[Callable[[RouterContext], Router]] = Registry("router", UnknownRouterError)
for _name, _factory in {
    "random": lambda ctx: RandomRouter(ctx.seed),
    "oracle": lambda ctx: OracleRouter(ctx.reference),
    "hadis-rule": lambda ctx: HadisRuleRouter(seed=ctx.seed),
    "hadis-published": lambda ctx: HadisRuleRouter(weights=HADIS_PUBLISHED_WEIGHTS),
    "knn": _learned(KnnRouter),
    "mlp": _learned(MlpClassifierRouter),
    "mf": _learned(MatrixFactorisationRouter),
    "hybrid-det": _learned(HybridLlmRouter, label="deterministic"),
    "hybrid-prob": _learned(HybridLlmRouter, label="probabilistic"),
    "hybrid-trans": _learned(HybridLlmRouter, label="transformed"),
    "zooter": _learned(ZooterRouter),
    "routet2i": lambda ctx: RouteT2IRouter(ctx.tokens(), ctx.config, ctx.seed),
    **{
        f"ecvl-{name}": lambda ctx, name=name: EcvlRouter(
            ctx.featurizer(), ctx.config, ctx.seed, scenario=ctx.ecvl_scenarios[name]
        )
        for name in ECVL_SCENARIOS
    },
}.items():
    ROUTERS.register(_name, _factory)
NEEDS_HADIS_FEATURES = ("hadis-rule", "hadis-published")


def select_router_names(spec: str, has_hadis_features: bool) -> tuple[list[str], list[str]]:
    """`all` or `a,b,...` -> (names to build, names skipped because the data cannot serve them).

    Naming a router the data cannot serve explicitly is an error."""
    if spec == "all":
        names = ROUTERS.names()
        skipped = [] if has_hadis_features else [n for n in names if n in NEEDS_HADIS_FEATURES]
        return [n for n in names if n not in skipped], skipped
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        if name not in ROUTERS:
            known = ", ".join(ROUTERS.names())
            raise UnknownRouterError(f"router {name!r}: expected one of all, {known}")
        if name in NEEDS_HADIS_FEATURES and not has_hadis_features:
            raise UnknownRouterError(f"router {name!r} needs the HADIS router features")
    if not names:
        raise UnknownRouterError("--routers: no router named")
    return names, []


def build_router(name: str, ctx: RouterContext) -> Router:
    """A constructed (unfitted) router; UnknownRouterError names the known ones."""
    return ROUTERS.get(name)(ctx)
