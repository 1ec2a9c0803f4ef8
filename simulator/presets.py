"""Named presets: documented sets of `SimConfig` values, a policy and its options.

`t2isim simulate --preset NAME` starts from a preset; an option given explicitly on the command
line (`--workers 8`, `--option spare=idle`, `--policy ...`) overrides the preset's value, every
other preset value overrides the command line's defaults. Each value carries its source (a
file and line of an artifact, a paper section) so a preset documents where its numbers come
from (the artifact-testbed preset's table is also in `docs/FAITHFUL.md`).

A preset is registered once with `register_preset`; config keys must be `SimConfig` fields.
The policy options of a run are the preset's `options_by_policy` entry of the run's policy, else
its `policy_options` (the options of its own policy, which the MILP ablations share).

Three presets name the modelling choices that decide headline numbers (docs/PRESETS.md, and the
sensitivity table `experiments/figures/tab02_sensitivity.py`): `paper` (the HADIS paper's
description), `artifact` (the HADIS artifact's code: `artifact-testbed` without its testbed
scale) and `default` (the project's own choices, the `SimConfig` and option defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from simulator.config import CLI_FLAGS, SimConfig, field_label
from simulator.errors import InputError


class UnknownPresetError(InputError):
    """A preset name that is not registered."""


@dataclass(frozen=True)
class Sourced:
    """A preset value and where it comes from."""

    value: object
    source: str


@dataclass(frozen=True)
class Preset:
    """Config field values, a policy and its options, each with its source."""

    name: str
    summary: str
    config: Mapping[str, Sourced]
    policy: Sourced | None = None
    policy_options: Mapping[str, Sourced] | None = None
    options_by_policy: Mapping[str, Mapping[str, Sourced]] = field(default_factory=dict)

    def apply(
        self,
        config_fields: Mapping[str, object],
        policy: str,
        options: Mapping[str, object],
        given: set[str],
    ) -> tuple[dict[str, object], str, dict[str, object]]:
        """(config fields, policy, options) with this preset's values, except where the
        command line gave a value: `given` holds the explicit CLI parameter names (`workers`,
        `policy`, ...); the preset's options are those of the resulting policy
        (`options_by_policy`, else `policy_options`), and explicit `options` keys win."""
        fields = dict(config_fields)
        for name, sourced in self.config.items():
            if cli_parameter(name) not in given:
                fields[name] = sourced.value
        if self.policy is not None and "policy" not in given:
            policy = str(self.policy.value)
        preset_options = self.options_by_policy.get(policy, self.policy_options or {})
        merged = {key: sourced.value for key, sourced in preset_options.items()}
        merged.update(options)
        return fields, policy, merged


def cli_parameter(field: str) -> str:
    """The `t2isim simulate` parameter name of a config field (`n_workers` -> `workers`)."""
    flag = CLI_FLAGS.get(field)
    return flag.lstrip("-").replace("-", "_") if flag else field


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    unknown = sorted(set(preset.config) - set(SimConfig.field_names()))
    if unknown:
        raise ValueError(f"preset {preset.name!r}: {unknown} are not SimConfig fields")
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is registered twice")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise UnknownPresetError(f"--preset: unknown preset {name!r}; known: {known}")
    return PRESETS[name]


# --------------------------------------------------------------------------- artifact-testbed
# github Tung-I/diffserve-2 at commit dae194b, the revision its constant-load logs
# (logs_analysis/) were committed with; paths relative to that repository, lines counted there.
_CTRL = "src/controller/controller.py"
_WORKER = "src/worker/model.py"
_ROUTE = "src/worker/worker.py"

register_preset(
    Preset(
        name="artifact-testbed",
        summary="the HADIS artifact's simulated-GPU testbed: 16 workers, 10x time compression, "
        "6 s SLO, its controller (planner=faithful) with its own demand signal",
        config={
            "n_workers": Sourced(
                16, "launch_17_workers.sh:7 (538dc5d) NUM_WORKERS=16, plus one sink worker"
            ),
            "slo_s": Sourced(
                6.0, "traces/apps/sdturbo_sdv15/multi_models.json:4 latencySLOInMSec 6000"
            ),
            "time_scale": Sourced(
                0.1,
                f"{_WORKER} LoadedModel.__init__ base_latencies 50/130/1300/2700 ms = 0.1 x "
                f"L40S; {_CTRL} Controller.__init__ base_latencies 0.05/0.13/1.3/2.7 s",
            ),
            "tick_s": Sourced(1.0, f"{_CTRL} Controller.__init__ self.period = 1"),
            "plan_interval_s": Sourced(
                1.0,
                f"{_CTRL} eventLoop: the demand signal every tick, allocateResources() when "
                "clockCounter % 5 == 0; the policy sees every tick and re-plans every 5th "
                "(demand_signal=artifact)",
            ),
            "ewma_com": Sourced(
                0.0,
                "raw per-tick estimates (alpha = 1): the policy applies the artifact's EWMA "
                f"({_CTRL} computeSystemEWMA)",
            ),
            "demand_estimator": Sourced(
                "artifact-inflight",
                f"{_CTRL} computeSystemEWMA: len(queriesStartTime) + len(queriesEndTime), "
                "kept by checkWorkerHeartbeat and computeSLOTimeoutsPerSec "
                "(simulator/artifact_inflight.py)",
            ),
            "inflight_factor": Sourced(1.2, f"{_CTRL}:30 OVER_PROVISION_FACTOR = 1.2"),
            "drop_factor": Sourced(1.5, f"{_WORKER}:48 SLO_FACTOR = 1.5 (serviceQueue drop)"),
            "late_factor": Sourced(
                2.0, f"{_CTRL} computeSLOTimeoutsPerSec: expire_time = SLO x 2 x SLO_FACTOR(1)"
            ),
            "router_cost_s": Sourced(0.0, f"{_WORKER} isHardByRouter: no delay"),
            "disc_cost_s": Sourced(
                0.1,
                f"{_WORKER} executeBatch: time.sleep(0.01) per batch when simulating: 10 ms at "
                "the testbed's time_scale 0.1 (disc_cost_s x time_scale)",
            ),
            "disc_cost_per": Sourced(
                "batch",
                f"{_WORKER} executeBatch: the discriminator's sleep runs once per batch, on "
                "every model's worker",
            ),
            "batch_latency": Sourced(
                "artifact",
                f"{_WORKER} LoadedModel.__init__ profiled_runtimes (batch sizes 1, 2, 4, 8, 16, "
                "32, round(..., 1) ms; 3, 5, 6, 7 averaged from (2,4), (2,8), (4,8), (6,8)); "
                "executeBatch and serviceQueue: a size not in [1..8, 16, 32] runs for the "
                "batch-4 time",
            ),
            "threshold_rule": Sourced(
                "order-statistic",
                f"{_WORKER} isHardByRouter: sorted router scores at max(int(N (1 - r)) - 1, 0), "
                "hard iff score >= it; executeBatch: sorted confidence scores at "
                "max(int(N c) - 1, 0), qualified iff score >= it",
            ),
            "bypass_arrivals_at_first": Sourced(
                True,
                f"{_ROUTE} readIPCMessages: COMPLETED_INFERENCE_BY_ROUTER sets needToRegister, "
                "so the router's (first-model) worker registers the bypassed query "
                "(registerQuery) among its queriesSinceHeartbeat",
            ),
            "load_s": Sourced(0.0, f"{_WORKER} loadFromStorage: no load time when simulating"),
            "dispatch": Sourced("random", f"{_ROUTE} getHostID: random.choices over workers"),
            "max_wait_s": Sourced(0.0, f"{_WORKER} serviceQueue: batches what is queued"),
            "queue": Sourced("fifo", f"{_WORKER} serviceQueue: self.queue.pop(0)"),
            "plan_delay_s": Sourced(
                0.0,
                f"{_CTRL} allocateByMultiCascadeAlg loads the plan right after solving (the "
                "solve's wall time is not simulated: docs/FAITHFUL.md)",
            ),
            "service_time": Sourced(
                "deterministic", f"{_WORKER} executeBatch: time.sleep(profiled runtime)"
            ),
            "on_plan_change": Sourced(
                "keep",
                f"{_WORKER} readIPCMessages LOAD_MODEL: the worker loads the new model and "
                "leaves self.queue as it is; serviceQueue serves it with the new model",
            ),
            "escalation": Sourced(
                "next-hosted",
                f"{_ROUTE} forwardIntermediateQuery: an escalated (resultQualified 0) query goes "
                "to getHostID(None), equal weights over the non-sink entries of the routing "
                "table, which src/load_balancer/load_balancer.py balanceLoadEqual fills with the "
                "workers of the next model level hosted above the worker's",
            ),
        },
        policy=Sourced(
            "hadis", f"{_CTRL} allocateResources: CAS_ITER -> allocateByMultiCascadeAlg"
        ),
        policy_options={
            "planner": Sourced("faithful", "policies/artifact_controller.py (the port)"),
            "artifact_revision": Sourced(
                "dae194b", f"{_CTRL}:25-30 EWMA_WINDOW, DEFAULT_EWMA_DECAY, OVER_PROVISION_FACTOR"
            ),
            "demand_signal": Sourced("artifact", f"{_CTRL} computeSystemEWMA (window 20)"),
            "queue_alpha": Sourced(
                1.2,
                "src/controller/qaware_multi_cascade_ILP.py solve_milp_loop queue_safety_factor",
            ),
            "spare": Sourced(
                "keep",
                f"{_CTRL} allocateByMultiCascadeAlg: the reloading loop loads the plan on the "
                "first sum(x) GPUs (loadModelOnWorker sends each its batch size and thresholds); "
                "the others keep their model, batch size and thresholds, and new queries go to "
                "the workers of the lowest model level hosted (docs/FAITHFUL.md #7, #12)",
            ),
        },
    )
)


# --------------------------------------------------------------------------- modelling choices
# The knobs of the modelling choices the sensitivity table varies (tab02_sensitivity): a preset
# states each, so `--preset NAME` fixes every one of them.
_PAPER = "HADIS paper"
_PROTEUS_ROUTING_PAPER = (
    f"{_PAPER} §5.1 Baselines: Proteus's queries 'are randomly routed to each worker with equal "
    "probability'"
)
_BASELINES = ("clipper-light", "clipper-heavy")  # no options: a preset gives them none

register_preset(
    Preset(
        name="paper",
        summary="the HADIS paper's description (§4.4, §5.1): EWMA demand, the paper's MILP "
        "(Eqs. 3-6, one per pair), only the planned workers serve, Proteus routes to workers "
        "equally",
        config={
            "demand_estimator": Sourced(
                "ewma", f"{_PAPER} §4.4 'Solving the MILP': λ is an EWMA of recent demand"
            ),
            "load_s": Sourced(
                None,
                f"the bundle's load time per model: {_PAPER} §4.1 Workers swap models at "
                "runtime on real L40S GPUs and gives no load time",
            ),
            "on_plan_change": Sourced(
                "reroute",
                f"{_PAPER} §4.1: the Load Balancer updates the routing tables on a placement "
                "change; silent on queued queries, read as routed again under the new tables",
            ),
        },
        policy=Sourced("hadis", f"{_PAPER} §4"),
        policy_options={
            "planner": Sourced(
                "faithful",
                f"{_PAPER} §4.4 Eqs. 3-6: a selector per pair, x_i >= 0, both members in the "
                "path bound (Eq. 5), objective FID alone: the artifact's formulation "
                "(policies/artifact_controller.py); the default MILP adds >= 1 worker per "
                "member and a GPU tie-break",
            ),
            "demand_signal": Sourced(
                "observation", f"{_PAPER} §4.4: the simulator's EWMA demand, not the artifact's"
            ),
            "spare": Sourced(
                "idle",
                f"{_PAPER} §4.4 Eq. 3 (sum_i x_i <= S): the plan places x_i workers; the paper "
                "says nothing of the rest",
            ),
        },
        options_by_policy={
            "proteus": {"routing": Sourced("workers", _PROTEUS_ROUTING_PAPER)},
            "diffserve": {
                "spare": Sourced(
                    "idle", "as HADIS here: DiffServe is planned by the HADIS MILP over its pair"
                )
            },
            **{name: {} for name in _BASELINES},
        },
    )
)

TESTBED_SCALE_FIELDS = ("n_workers", "slo_s", "time_scale")  # the testbed's, not its code's
_TESTBED = PRESETS["artifact-testbed"]
register_preset(
    Preset(
        name="artifact",
        summary="the HADIS artifact's code behaviour at the paper's scale: every artifact-testbed "
        "value but the testbed's scale (" + ", ".join(TESTBED_SCALE_FIELDS) + "), and Proteus "
        "routed by the artifact's equal-share load balancer",
        config={k: v for k, v in _TESTBED.config.items() if k not in TESTBED_SCALE_FIELDS},
        policy=_TESTBED.policy,
        policy_options=_TESTBED.policy_options,
        options_by_policy={
            "proteus": {
                "routing": Sourced(
                    "workers",
                    "src/load_balancer/load_balancer.py balanceLoadEqual (RoutingPolicy.EQUAL): "
                    "1 / len(workers) per worker",
                )
            },
            "diffserve": {},
            **{name: {} for name in _BASELINES},
        },
    )
)

_OWN = "the project's choice"
register_preset(
    Preset(
        name="default",
        summary="the project's own choices (the SimConfig and policy-option defaults): EWMA "
        "demand, the default MILP, spare workers join the plan's models, capacity-proportional "
        "Proteus routing",
        config={
            "demand_estimator": Sourced("ewma", f"{_OWN}; as {_PAPER} §4.4"),
            "load_s": Sourced(None, f"{_OWN}: the bundle's load time per model"),
            "on_plan_change": Sourced(
                "reroute",
                f"{_OWN}: a worker's queue follows the plan (simulator/cluster.py apply_plan)",
            ),
        },
        policy=Sourced("hadis", f"{_PAPER} §4"),
        policy_options={
            "planner": Sourced(
                "default",
                f"{_OWN}: one MILP over all pairs, >= 1 worker per member (policies/milp.py)",
            ),
            "spare": Sourced(
                "distribute",
                f"{_OWN}: workers the MILP leaves unused join the plan's models (idle GPUs help "
                "nobody; policies/planning.py)",
            ),
        },
        options_by_policy={
            "proteus": {
                "routing": Sourced(
                    "capacity",
                    f"{_OWN}: a model in proportion to its planned capacity keeps every model "
                    "under its capacity (policies/proteus.py)",
                )
            },
            "diffserve": {"spare": Sourced("distribute", f"{_OWN}, as HADIS")},
            **{name: {} for name in _BASELINES},
        },
    )
)
MODELLING_PRESETS = ("paper", "artifact", "default")


def preset_rows(preset: Preset) -> list[tuple[str, str, str]]:
    """(knob, value, source) for every value of a preset, as docs/PRESETS.md tabulates them: a
    config field as `field (--flag)`, an option as `--option key` (`policy: --option key` for a
    policy's own entry)."""
    rows = [(field_label(k), _text(s.value), s.source) for k, s in preset.config.items()]
    if preset.policy is not None:
        rows.append(("--policy", _text(preset.policy.value), preset.policy.source))
    own = (preset.policy_options or {}).items()
    rows += [(f"--option {k}", _text(s.value), s.source) for k, s in own]
    for policy, options in preset.options_by_policy.items():
        rows += [(f"{policy}: --option {k}", _text(s.value), s.source) for k, s in options.items()]
    return rows


def markdown_table(preset: Preset) -> list[str]:
    """docs/PRESETS.md's table of a preset: one row per `preset_rows` row."""
    rows = [f"| `{knob}` | `{value}` | {source} |" for knob, value, source in preset_rows(preset)]
    return ["| knob | value | source |", "|---|---|---|", *rows]


def _text(value: object) -> str:
    return "the bundle's" if value is None else str(value)
