"""Named presets: documented sets of `SimConfig` values, a policy and its options.

`t2isim simulate --preset NAME` starts from a preset; an option given explicitly on the command
line (`--workers 8`, `--option spare=idle`, `--policy ...`) overrides the preset's value, every
other preset value overrides the command line's defaults. Each value carries its source (a
file and line of an artifact, a paper section) so a preset documents where its numbers come
from (the artifact-testbed preset's table is also in `docs/FAITHFUL.md`).

A preset is registered once with `register_preset`; config keys must be `SimConfig` fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simulator.config import CLI_FLAGS, SimConfig
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

    def apply(
        self,
        config_fields: Mapping[str, object],
        policy: str,
        options: Mapping[str, object],
        given: set[str],
    ) -> tuple[dict[str, object], str, dict[str, object]]:
        """(config fields, policy, options) with this preset's values, except where the
        command line gave a value: `given` holds the explicit CLI parameter names (`workers`,
        `policy`, ...); explicit `options` keys always win over the preset's options."""
        fields = dict(config_fields)
        for name, sourced in self.config.items():
            if cli_parameter(name) not in given:
                fields[name] = sourced.value
        if self.policy is not None and "policy" not in given:
            policy = str(self.policy.value)
        merged = {key: sourced.value for key, sourced in (self.policy_options or {}).items()}
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
                "inflight",
                f"{_CTRL} computeSystemEWMA: len(queriesStartTime) + len(queriesEndTime)",
            ),
            "inflight_factor": Sourced(1.2, f"{_CTRL}:30 OVER_PROVISION_FACTOR = 1.2"),
            "drop_factor": Sourced(1.5, f"{_WORKER}:48 SLO_FACTOR = 1.5 (serviceQueue drop)"),
            "late_factor": Sourced(
                2.0, f"{_CTRL} computeSLOTimeoutsPerSec: expire_time = SLO x 2 x SLO_FACTOR(1)"
            ),
            "router_cost_s": Sourced(0.0, f"{_WORKER} isHardByRouter: no delay"),
            "disc_cost_s": Sourced(
                0.0,
                f"{_WORKER} executeBatch: time.sleep(0.01) per batch, not per image "
                "(docs/FAITHFUL.md)",
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
                "distribute",
                f"{_CTRL} allocateByMultiCascadeAlg leaves GPUs beyond the plan's count on their "
                "previous model; not expressible (docs/FAITHFUL.md)",
            ),
        },
    )
)
