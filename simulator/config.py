"""Simulation settings: one typed dataclass, dumped with every run, and the one source of what
each setting means and accepts.

Each `SimConfig` field declares in its dataclass metadata (`Setting`) its help, unit, allowed
values (`domain`: an `Interval` of numbers, a `Choice` of names or `SWITCH`), the size bound
it counts against (`limit`, raised by an environment variable) and its `t2isim simulate` flag.
`check_field` is the one check of a value: `SimConfig` runs it on every field, `t2isim simulate`
builds one option per field from the metadata (`experiments/cli_config.py`) and a sweep spec
accepts every field under `sim:` and as a grid axis (`experiments/sweep.py`), so a value is
accepted or refused in the same words (`ConfigError`) wherever it is given.
"""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field, fields, replace
from typing import Any

from simulator.core import THRESHOLD_RULES
from simulator.errors import InputError
from simulator.limits import (
    MAX_SIM_S,
    MAX_WORKERS,
    NON_NEGATIVE,
    SWITCH,
    Choice,
    Interval,
    LimitError,
    SizeLimit,
    Switch,
    read_number,
)
from simulator.queues import QUEUE_DISCIPLINES

DISPATCH_MODES = ("random", "jsq", "central")
DEMAND_ESTIMATORS = ("ewma", "inflight", "artifact-inflight")
SERVICE_TIME_MODELS = (
    "deterministic", "exponential", "lognormal", "shifted-lognormal", "empirical"
)
PLAN_CHANGE_MODES = ("reroute", "keep")  # queued queries of a worker whose model changes
REROUTE_ORDERS = ("serving", "arrival")  # the order in which a plan change routes them again
ESCALATION_TARGETS = ("next-stage", "next-hosted")  # where an escalated query goes
BATCH_LATENCY_MODELS = ("bundle", "artifact")  # a batch's execution time by its size
DISC_COST_UNITS = ("judged-image", "batch")  # what disc_cost_s is charged for
ROUTING_MOMENTS = ("arrival", "ingress")  # when a query is routed (`SimConfig.route_at`)
REPLICATE_REDRAWS = ("timing", "all")  # what a replicate run redraws (`replicate_redraws`)
PLAN_SWITCHES = ("per-swap", "routing-first", "together")  # how a plan takes effect
FACTOR = Interval(0.0, 100.0, low_open=True)  # a multiple of something (x SLO, x demand)


class ConfigError(InputError):
    """A SimConfig value outside what its field declares."""


@dataclass(frozen=True)
class Setting:
    """What a `SimConfig` field declares: help, unit, allowed values, size bound, flag."""

    help: str  # a sentence without its full stop
    domain: Interval | Choice | Switch
    unit: str = ""  # "s": (simulated) seconds, "x": a multiplier, "ticks": controller ticks
    limit: SizeLimit | None = None  # the size bound the value counts against
    flag: str = ""  # the `t2isim simulate` option; "" for --field-name
    optional: bool = False  # None is allowed (and means what `help` says)


def setting(default: object, help: str, domain: Interval | Choice | Switch, **declared) -> Any:
    """A `SimConfig` field with its `Setting` as metadata."""
    return field(default=default, metadata={"setting": Setting(help, domain, **declared)})


@dataclass(frozen=True)
class SimConfig:
    n_workers: int = setting(
        16, "GPU workers in the cluster", Interval(1, integer=True), limit=MAX_WORKERS,
        flag="--workers",
    )
    slo_s: float = setting(
        60.0, "End-to-end latency SLO; slower queries are timeouts", Interval(1e-3), unit="s",
        limit=MAX_SIM_S, flag="--slo",
    )
    time_scale: float = setting(
        1.0, "Multiplies every profiled execution time (0.1 = 10x faster GPUs)",
        Interval(1e-3, 1e3), unit="x",
    )
    seed: int = setting(
        0, "Master seed; one derived stream per purpose", Interval(0, 2**63 - 1, integer=True)
    )
    tick_s: float = setting(
        1.0, "Controller tick (demand and queue EWMAs)", Interval(1e-2, 3600.0), unit="s"
    )
    plan_interval_s: float = setting(
        5.0, "The policy plans every this many seconds (>= tick_s)", Interval(1e-2), unit="s",
        limit=MAX_SIM_S, flag="--plan-interval",
    )
    demand_estimator: str = setting(
        "ewma",
        "Demand signal: ewma (arrival-rate EWMA), inflight (EWMA of queries in flight x "
        "inflight_factor) or artifact-inflight (the same over the artifact's count, "
        "simulator/artifact_inflight.py)",
        Choice(DEMAND_ESTIMATORS),
    )
    ewma_com: float = setting(
        2.1, "EWMA centre of mass (alpha = 1 / (1 + com)), as the artifact",
        Interval(0.0, 1e6), unit="ticks",
    )
    inflight_factor: float = setting(
        1.2, "The artifact's in-flight demand multiplier", FACTOR, unit="x"
    )
    router_cost_s: float = setting(
        0.005, "Rule-based router per query (HADIS §5.8)", NON_NEGATIVE, unit="s",
        limit=MAX_SIM_S, flag="--router-cost",
    )
    disc_cost_s: float = setting(
        0.007, "CLIP discriminator per light image (HADIS §5.8)", NON_NEGATIVE, unit="s",
        limit=MAX_SIM_S, flag="--disc-cost",
    )
    drop_factor: float = setting(
        1.5, "A worker drops a query whose completion would pass drop_factor x SLO", FACTOR,
        unit="x",
    )
    late_factor: float = setting(
        2.0, "A query not done by late_factor x SLO counts as dropped", FACTOR, unit="x"
    )
    load_s: float | None = setting(
        None, "Model swap time; unset: the bundle's load_s per model", NON_NEGATIVE, unit="s",
        limit=MAX_SIM_S, optional=True,
    )
    dispatch: str = setting(
        "random", "Worker choice within a model (central: one shared FIFO)",
        Choice(DISPATCH_MODES),
    )
    max_wait_s: float = setting(
        0.0, "A worker with a partial batch waits this long for more queries", NON_NEGATIVE,
        unit="s", limit=MAX_SIM_S, flag="--max-wait",
    )
    service_time: str = setting(
        "deterministic", "Batch service time: the profiled p50, exponential, "
        "lognormal(p50, p95), shifted-lognormal(p05, p50, p95): a floor plus a lognormal, "
        "the lognormal where latency.csv has no latency_p05_s (`simulator.service_shape`), or "
        "empirical: the p50 times a draw from the bundle's measured shape (shapes.csv; the "
        "nearest batch size's, the lognormal for a model without one)",
        Choice(SERVICE_TIME_MODELS),
    )
    idle_latency: bool = setting(
        True,
        "A worker's batch after idle takes the bundle's latency after idle (latency.csv "
        "latency_idle_p50_s, timed after idle_gap_s idle), ramped linearly from the p50 at no "
        "idle to it at idle_gap_s and beyond; off, or a bundle without it: the p50 always",
        SWITCH,
    )
    plan_delay_s: float = setting(
        0.0, "A plan takes effect this long after it is computed", NON_NEGATIVE, unit="s",
        limit=MAX_SIM_S, flag="--plan-delay",
    )
    plan_delay_measured: bool = setting(
        False, "Add the planner's measured wall time to the plan delay (not deterministic)",
        SWITCH,
    )
    queue: str = setting(
        "fifo", "Worker queue order: fifo, or edf (earliest deadline = arrival + SLO first)",
        Choice(QUEUE_DISCIPLINES),
    )
    on_plan_change: str = setting(
        "reroute",
        "Queued queries of a worker whose model a plan changes: reroute (routed again under "
        "the new plan) or keep (left on the worker and served by its new model, as the HADIS "
        "artifact; a worker left without a model has its queue rerouted)",
        Choice(PLAN_CHANGE_MODES),
    )
    reroute_order: str = setting(
        "serving",
        "The order in which a plan change routes queries again: serving (the queries waiting "
        "for a plan first, then each changed worker's queue in worker and queue order, as the "
        "serving path's workers answer resend) or arrival (all of them by arrival); either way "
        "a query counts at its worker until it is routed again, as the serving path's ingress "
        "counts it until the answer",
        Choice(REROUTE_ORDERS),
    )
    escalation: str = setting(
        "next-stage",
        "Where an escalated query goes: next-stage (a worker of the plan's next stage) or "
        "next-hosted (the HADIS artifact's load balancer: a worker of the lowest-index model "
        "above the escalating one that a worker hosts; returned as it is when none)",
        Choice(ESCALATION_TARGETS),
    )
    threshold_rule: str = setting(
        "quantile",
        "How a plan's router and confidence ratios become score thresholds: quantile (numpy's "
        "linear-interpolated quantile of the reference scores) or order-statistic (the HADIS "
        "artifact's: the sorted scores at max(int(N(1 - r)) - 1, 0), resp. max(int(N c) - 1, 0))",
        Choice(THRESHOLD_RULES),
    )
    bypass_arrivals_at_first: bool = setting(
        False,
        "A query the router bypasses counts among the arrivals of the plan's first model too "
        "(the HADIS artifact's router runs on a first-model worker, which registers it)",
        SWITCH,
    )
    batch_latency: str = setting(
        "bundle",
        "A batch's execution time: bundle (its latency table) or artifact (the HADIS artifact "
        "worker's lookup: the bundle's times at 1, 2, 4, 8, 16, 32 to 0.1 ms, sizes 3, 5, 6, 7 "
        "as its averages, other sizes the batch-4 time)",
        Choice(BATCH_LATENCY_MODELS),
    )
    disc_cost_per: str = setting(
        "judged-image",
        "What disc_cost_s is charged for: judged-image (each image of a stage the "
        "discriminator judges) or batch (once per batch of any model, as the HADIS artifact's "
        "simulated workers)",
        Choice(DISC_COST_UNITS),
    )

    route_at: str = setting(
        "ingress",
        "When a new query is counted and routed: ingress (once its arrival hop has passed, as "
        "the serving path's ingress counts and routes a query when it receives it; the rest of "
        "its dispatch hop takes it to its worker; the default since session 46, set 13) or "
        "arrival (at its trace time, after the router's cost); the same without an arrival "
        "hop",
        Choice(ROUTING_MOMENTS),
    )
    replicate_redraws: str = setting(
        "timing",
        "What a replicate run (`run_simulation(replicate=k)`, k > 0: validate's spread and "
        "expectations) draws afresh: timing (the hops, the order of a re-plan's swaps and "
        "batch-time noise; the mix draws and random worker choices stay the seed's, as the "
        "serving path's ingress draws them from the seed's stream in every run; the default "
        "since session 47) or all (those too)",
        Choice(REPLICATE_REDRAWS),
    )
    plan_switch: str = setting(
        "per-swap",
        "How a re-plan takes effect: routing-first (new queries are routed by it after the "
        "bundle's route hop, as the serving path's ingress; each worker it gives a new model "
        "holds the queries sent for that model, serving its queue, until the plan hop, when "
        "it gets the plan: its queue routed again, the held queries queued, its model loaded), "
        "per-swap (the same, but the workers get it one by one, in a random order, a configure "
        "hop apart from the route hop on, as the serving path's `configure` calls reach its "
        "workers: a plan with more swaps takes longer; routing-first without a configure hop) "
        "or together (routing and workers at the plan hop); all the same with central "
        "dispatch and for plans with per-worker loads, routing-first and together where the "
        "route hop is not shorter than the plan hop",
        Choice(PLAN_SWITCHES),
    )

    def __post_init__(self) -> None:
        for name in SETTINGS:
            object.__setattr__(self, name, check_field(name, getattr(self, name)))
        if not self.plan_interval_s >= self.tick_s:
            raise ConfigError(
                f"{field_label('plan_interval_s')}: {self.plan_interval_s:g} must be >= "
                f"tick_s={self.tick_s:g}"
            )

    @property
    def ewma_alpha(self) -> float:
        return 1.0 / (1.0 + self.ewma_com)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _resolved(config_field: Field) -> Setting:
    """The field's Setting with its flag filled in (`--field-name` unless declared)."""
    declared: Setting = config_field.metadata["setting"]
    return replace(declared, flag=declared.flag or "--" + config_field.name.replace("_", "-"))


SETTINGS: dict[str, Setting] = {f.name: _resolved(f) for f in fields(SimConfig)}
CLI_FLAGS = {name: declared.flag for name, declared in SETTINGS.items()}  # presets.cli_parameter


def field_label(name: str) -> str:
    """`slo_s (--slo)`: a field as errors name it."""
    return f"{name} ({SETTINGS[name].flag})"


def check_field(name: str, value: object) -> object:
    """`value` as field `name` holds it, or ConfigError naming the field, its flag, the value
    and what is allowed. Text (a command-line value) is parsed: numbers in plain decimal,
    switches as `true`/`false`. An integer field gets an int; a real-valued field keeps a number
    as given (a sweep's `slo_s: 20` stays the int its stored run keys were computed with)."""
    declared = SETTINGS.get(name)
    if declared is None:
        raise ConfigError(f"unknown SimConfig field {name!r}; known: {', '.join(SETTINGS)}")
    if value is None and declared.optional:
        return None
    label = field_label(name)
    text = isinstance(value, str)
    if text and isinstance(declared.domain, Interval):
        value = read_number(value)  # `--seed -1` is refused as -1, as a sweep's `seed: -1` is
    try:
        checked = declared.domain.check(value, label)
        if declared.limit is not None:
            declared.limit.check(checked, label)
    except LimitError as exc:
        raise ConfigError(str(exc)) from None
    as_given = not text and isinstance(checked, float) and isinstance(value, int | float)
    return value if as_given else checked
