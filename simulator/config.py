"""Simulation settings: one typed dataclass, dumped with every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from simulator.errors import InputError

DISPATCH_MODES = ("random", "jsq", "central")
DEMAND_ESTIMATORS = ("ewma", "inflight")
SERVICE_TIME_MODELS = ("deterministic", "exponential", "lognormal")


class ConfigError(InputError):
    pass


@dataclass(frozen=True)
class SimConfig:
    n_workers: int = 16  # GPU workers in the cluster
    slo_s: float = 60.0  # end-to-end latency SLO; slower queries are timeouts
    time_scale: float = 1.0  # multiplies every profiled execution time (0.1 = 10x faster GPUs)
    seed: int = 0  # master seed; one derived stream per purpose
    tick_s: float = 1.0  # controller tick (demand and queue EWMAs)
    plan_interval_s: float = 5.0  # the policy plans every this many seconds
    demand_estimator: str = (
        "ewma"  # ewma: arrival-rate EWMA; inflight: artifact's in-flight x 1.2
    )
    ewma_com: float = 2.1  # EWMA centre of mass (alpha = 1 / (1 + com)), as the artifact
    inflight_factor: float = 1.2  # the artifact's in-flight demand multiplier
    router_cost_s: float = 0.005  # rule-based router per query (HADIS §5.8)
    disc_cost_s: float = 0.007  # CLIP discriminator per light image (HADIS §5.8)
    drop_factor: float = 1.5  # a worker drops a query whose completion would pass drop_factor x SLO
    late_factor: float = 2.0  # a query not done by late_factor x SLO counts as dropped
    load_s: float | None = None  # model swap time; None: the bundle's load_s per model
    dispatch: str = "random"  # worker choice within a model: random | jsq | central (shared FIFO)
    max_wait_s: float = 0.0  # a worker with a partial batch waits this long for more queries
    service_time: str = "deterministic"  # deterministic p50 | exponential | lognormal(p50, p95)
    plan_delay_s: float = 0.0  # a plan takes effect this long after it is computed
    plan_delay_measured: bool = False  # add the planner's measured wall time (not deterministic)

    def __post_init__(self) -> None:
        checks = [
            (self.n_workers >= 1, "n_workers must be >= 1"),
            (self.slo_s > 0, "slo_s must be > 0"),
            (self.time_scale > 0, "time_scale must be > 0"),
            (self.tick_s > 0, "tick_s must be > 0"),
            (self.plan_interval_s >= self.tick_s, "plan_interval_s must be >= tick_s"),
            (self.ewma_com >= 0, "ewma_com must be >= 0"),
            (self.router_cost_s >= 0 and self.disc_cost_s >= 0, "costs must be >= 0"),
            (self.drop_factor > 0 and self.late_factor > 0, "drop/late factors must be > 0"),
            (self.load_s is None or self.load_s >= 0, "load_s must be >= 0"),
            (self.max_wait_s >= 0 and self.plan_delay_s >= 0, "waits must be >= 0"),
            (self.dispatch in DISPATCH_MODES, f"dispatch must be one of {DISPATCH_MODES}"),
            (
                self.demand_estimator in DEMAND_ESTIMATORS,
                f"demand_estimator must be one of {DEMAND_ESTIMATORS}",
            ),
            (
                self.service_time in SERVICE_TIME_MODELS,
                f"service_time must be one of {SERVICE_TIME_MODELS}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def ewma_alpha(self) -> float:
        return 1.0 / (1.0 + self.ewma_com)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
