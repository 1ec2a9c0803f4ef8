"""Simulation settings: one typed dataclass, dumped with every run.

Every numeric field has a documented range (`FIELD_RANGES`, checked by `simulator.limits`);
times in simulated seconds and the worker count are also bounded by the size limits
`T2ISIM_MAX_SIM_S` and `T2ISIM_MAX_WORKERS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from simulator.errors import InputError
from simulator.limits import MAX_SIM_S, MAX_WORKERS, NON_NEGATIVE, Interval
from simulator.queues import QUEUE_DISCIPLINES

DISPATCH_MODES = ("random", "jsq", "central")
DEMAND_ESTIMATORS = ("ewma", "inflight")
SERVICE_TIME_MODELS = ("deterministic", "exponential", "lognormal")


class ConfigError(InputError):
    pass


FIELD_RANGES: dict[str, Interval] = {
    "n_workers": Interval(1, integer=True),
    "slo_s": Interval(1e-3),
    "time_scale": Interval(1e-3, 1e3),
    "seed": Interval(0, 2**63 - 1, integer=True),
    "tick_s": Interval(1e-2, 3600.0),
    "plan_interval_s": Interval(1e-2),
    "ewma_com": Interval(0.0, 1e6),
    "inflight_factor": Interval(0.0, 100.0, low_open=True),
    "router_cost_s": NON_NEGATIVE,
    "disc_cost_s": NON_NEGATIVE,
    "drop_factor": Interval(0.0, 100.0, low_open=True),
    "late_factor": Interval(0.0, 100.0, low_open=True),
    "load_s": NON_NEGATIVE,  # or None
    "max_wait_s": NON_NEGATIVE,
    "plan_delay_s": NON_NEGATIVE,
}
SIM_SECONDS_FIELDS = (
    "slo_s", "plan_interval_s", "router_cost_s", "disc_cost_s", "load_s", "max_wait_s",
    "plan_delay_s",
)
CLI_FLAGS = {  # the `t2isim simulate` option of each field, named in errors
    "n_workers": "--workers", "slo_s": "--slo", "time_scale": "--time-scale", "seed": "--seed",
    "plan_interval_s": "--plan-interval", "router_cost_s": "--router-cost",
    "disc_cost_s": "--disc-cost", "drop_factor": "--drop-factor", "load_s": "--load-s",
    "max_wait_s": "--max-wait", "plan_delay_s": "--plan-delay",
}


def field_label(name: str) -> str:
    """`slo_s (--slo)`: a field as errors name it."""
    flag = CLI_FLAGS.get(name)
    return f"{name} ({flag})" if flag else name


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
    queue: str = "fifo"  # worker queue order: fifo | edf (earliest deadline = arrival + SLO first)

    def __post_init__(self) -> None:
        for name, interval in FIELD_RANGES.items():
            value = getattr(self, name)
            if value is None and name == "load_s":
                continue
            label = field_label(name)
            try:
                interval.check(value, label)
                if name in SIM_SECONDS_FIELDS:
                    MAX_SIM_S.check(value, label)
            except InputError as exc:
                raise ConfigError(str(exc)) from None
        try:
            MAX_WORKERS.check(self.n_workers, field_label("n_workers"))
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        checks = [
            (
                self.plan_interval_s >= self.tick_s,
                f"plan_interval_s (--plan-interval): {self.plan_interval_s:g} must be >= "
                f"tick_s={self.tick_s:g}",
            ),
            (
                isinstance(self.plan_delay_measured, bool),
                f"plan_delay_measured: {self.plan_delay_measured!r} is not true or false",
            ),
            (self.dispatch in DISPATCH_MODES, f"dispatch must be one of {DISPATCH_MODES}"),
            (self.queue in QUEUE_DISCIPLINES, f"queue must be one of {QUEUE_DISCIPLINES}"),
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
