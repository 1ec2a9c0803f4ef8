"""What a serving run is: bundle, policy, its options and the simulator's `SimConfig` (one
config source for both drivers), the backend its workers run, the dispatch among a model's
workers (`serving.dispatch`), built the same way in every process that needs them (the
ingress, the controller, the load generator)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from serving.dispatch import DISPATCH_MODES
from serving.stack import DEFAULT_STACK, recorded_stack, serve_stack
from simulator.config import SimConfig, field_label
from simulator.errors import InputError

INGRESS_APP = "t2isim"
# Serve's logging for every replica and the proxy: warnings only, no access log (a log line
# per request costs the request path CPU; the run folders record every query)
SERVE_LOGGING = {"log_level": "WARNING", "enable_access_log": False}
# how often a stopping replica checks for requests still in flight (Serve's default: 2 s, the
# least each replica's stop took; the timeout that bounds the wait is each deployment's own)
SHUTDOWN_POLL_S = 0.1
BACKENDS = ("emulated", "diffusers")
# the service-time model validate's simulation gives each backend's workers: an emulated worker
# sleeps the profiled p50; a diffusers worker's batch takes what the pipeline takes, which
# varies (the profile's p95 over its p50: 1.2-1.7 for the tiny models on CPU), so lognormal
# with the profile's p50 and p95. COMPARED_SERVICE_TIMES: the models each of its validations
# also simulates, reported as error_<model>_service: the p50 alone, and shifted-lognormal (a
# floor through the profile's p05; session 21's fresh set did not support judging on it:
# results/validation/HISTORY.md, section "Session 21")
SIMULATED_SERVICE_TIME = {"emulated": "deterministic", "diffusers": "lognormal"}
COMPARED_SERVICE_TIMES = {"emulated": (), "diffusers": ("deterministic", "shifted-lognormal")}
# and, where the bundle carries the profile's measured shapes of its batch times
# (`profile latency` timed a size 100 times or more), each batch drawn from them
SHAPED_SERVICE_TIMES = {"emulated": (), "diffusers": ("empirical",)}
# whether validate's simulation gives a batch after idle the bundle's latency after idle
# (`SimConfig.idle_latency`): an emulated worker sleeps the p50 whatever it idled; a diffusers
# worker runs the pipeline, as the profile's idle timing did (`error_back_to_back_latency`
# reports the p50 alone when the bundle has it)
SIMULATED_IDLE_LATENCY = {"emulated": False, "diffusers": True}
# validate: simulations whose spread and mean are the simulator's own (DIR/sim + 49): the mean's
# standard error at most a quarter of the p50 goal (1.25%) at the widest replicate spread
# measured, HADIS at 16 s's 8.06% of its mean over 200 replicates (set 13): 8.06/sqrt(50) = 1.14%
SIM_REPEATS = 50
REAL_PATH_HOOKS = ("admit", "route", "accept_or_escalate")  # hooks the ingress runs
SERVING_ESTIMATORS = ("ewma", "inflight")  # from the ingress's counters
# SimConfig fields the real path sets itself, each at its default (`dispatch`: or the serving
# dispatch, as validate's simulation), and why; another value is refused, however it is given
REAL_PATH_SETS = {
    "dispatch": "on the serving path the ingress chooses a model's worker by serve's --dispatch "
    "(p2c, jsq, random; validate: jsq, in its real runs and its simulation)",
    "service_time": "on the serving path a worker takes the time it takes (emulated: the "
    "profiled p50; validate simulates a diffusers backend's as lognormal(p50, p95))",
    "idle_latency": "on the serving path a batch after idle takes what it takes (emulated: "
    "the profiled p50; validate simulates a diffusers backend's with the bundle's latency after "
    "idle where it has one)",
    "max_wait_s": "on the serving path a worker starts a batch as soon as it is free",
    "plan_delay_s": "on the serving path a plan takes effect as its workers reconfigure",
    "plan_delay_measured": "on the serving path a plan takes effect as its workers reconfigure",
    "queue": "on the serving path a worker serves its queue in arrival order (fifo)",
    "on_plan_change": "on the serving path the ingress routes again the queries queued at a "
    "worker whose model changes (reroute)",
    "reroute_order": "on the serving path the ingress routes again the queries waiting for a "
    "plan first, then each worker's queue as the worker answers resend (serving)",
    "escalation": "on the serving path the ingress escalates to the plan's next stage "
    "(next-stage)",
    "bypass_arrivals_at_first": "on the serving path a model's arrivals are the queries sent "
    "to it",
    "batch_latency": "on the serving path a batch takes what the backend takes (emulated: the "
    "bundle's batch latencies)",
    "disc_cost_per": "on the serving path the discriminator's cost is charged per judged image "
    "(judged-image)",
}

# SimConfig fields that choose how the simulator models the serving path's own protocol, which
# the serving path never reads: a real run replays a policy whatever it recorded for them
# (validate simulates with its own; `serving.validate`'s --reuse-real)
SIMULATOR_MODELS = ("route_at", "plan_switch", "replicate_redraws")


@dataclass(frozen=True)
class ServeSetup:
    bundle: str  # 'default' or a bundle folder (resolved in each process)
    policy: str
    options: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)  # SimConfig fields
    backend: str = "emulated"
    dispatch: str = "p2c"
    discriminator: str | None = None  # diffusers: checkpoint (default: next to the bundle)
    stack: str = DEFAULT_STACK  # Ray Serve's own configuration (`serving.stack`)

    @property
    def config(self) -> SimConfig:
        return SimConfig(**self.sim)

    def simulation_config(self, config: SimConfig) -> SimConfig:
        """`config` with the service-time model of this backend's workers
        (`SIMULATED_SERVICE_TIME`, `SIMULATED_IDLE_LATENCY`): what validate simulates them
        with."""
        return dataclasses.replace(
            config,
            service_time=SIMULATED_SERVICE_TIME[self.backend],
            idle_latency=SIMULATED_IDLE_LATENCY[self.backend],
        )

    def compared_service_times(self, config: SimConfig, shaped: bool) -> tuple[str, ...]:
        """The other service-time models validate simulates this backend's workers with: the
        config's own, `COMPARED_SERVICE_TIMES` and, for a bundle with measured batch-time
        shapes (`shaped`), `SHAPED_SERVICE_TIMES`; not the one it judges."""
        judged = SIMULATED_SERVICE_TIME[self.backend]
        also = SHAPED_SERVICE_TIMES[self.backend] if shaped else ()
        models = dict.fromkeys((config.service_time, *COMPARED_SERVICE_TIMES[self.backend], *also))
        return tuple(m for m in models if m != judged)

    def to_dict(self) -> dict:
        return {
            "bundle": self.bundle,
            "policy": self.policy,
            "options": dict(self.options),
            "sim": dict(self.sim),
            "backend": self.backend,
            "dispatch": self.dispatch,
            "discriminator": self.discriminator,
            "stack": self.stack,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ServeSetup:
        defaults = cls("", "")
        return cls(
            data["bundle"],
            data["policy"],
            dict(data["options"]),
            dict(data["sim"]),
            data.get("backend", defaults.backend),
            data.get("dispatch", defaults.dispatch),
            data.get("discriminator"),
            recorded_stack(data.get("stack")),
        )

    def build(self):
        """(bundle, policy, config) in this process; the policy checked to use only the hooks
        the serving path runs, the backend's inputs checked (`models`)."""
        import policies  # noqa: F401  (registers the adaptive policies)
        from experiments.inputs import resolve_bundle
        from simulator.hooks import PolicyHooks
        from simulator.run import build_policy

        config = self.config
        bundle = resolve_bundle(self.bundle)
        policy = build_policy(bundle, self.policy, config, self.options)
        hooks = PolicyHooks.of(policy)
        for name in ("queue_priority", "form_batch"):
            if getattr(hooks, name) is not None:
                raise InputError(
                    f"policy {self.policy!r} defines the {name} hook; the serving path runs "
                    f"only {', '.join(REAL_PATH_HOOKS)}"
                )
        check_real_path_fields(config, self.dispatch)
        if getattr(policy, "options", {}).get("spare") == "keep":
            raise InputError(
                f"policy {self.policy!r} option spare: 'keep' is not servable: the serving path "
                "places workers by fewest swaps, not per GPU (Plan.loaded); use distribute or idle"
            )
        if config.demand_estimator not in SERVING_ESTIMATORS:
            raise InputError(
                f"demand_estimator {config.demand_estimator!r}: the serving path estimates "
                f"{' or '.join(SERVING_ESTIMATORS)}"
            )
        if self.dispatch not in DISPATCH_MODES:
            raise InputError(
                f"--dispatch {self.dispatch!r}: expected one of {', '.join(DISPATCH_MODES)}"
            )
        serve_stack(self.stack)
        if self.backend not in BACKENDS:
            raise InputError(f"--backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        self.models(bundle, policy, config)
        return bundle, policy, config

    def models(self, bundle, policy, config) -> list:
        """The model spec of each bundle model (every worker is built with all of them)."""
        if self.backend == "diffusers":
            from serving.diffusers_backend import diffusers_models

            return diffusers_models(bundle, self.bundle, config, self.discriminator)
        from serving.emulated import emulated_model

        return [emulated_model(bundle, policy, config, m) for m in bundle.model_names]


def check_real_path_fields(config: SimConfig, dispatch: str) -> None:
    """InputError for a `REAL_PATH_SETS` field of `config` away from what the real path does."""
    defaults = SimConfig()
    for name, why in REAL_PATH_SETS.items():
        value = getattr(config, name)
        if value != getattr(defaults, name) and not (name == "dispatch" and value == dispatch):
            raise InputError(f"{field_label(name)}: {value!r} is not settable: {why}")


def worker_app(slot: int) -> str:
    """The Serve application of GPU worker `slot` (one deployment, one replica)."""
    return f"t2isim-w{slot}"
