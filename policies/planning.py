"""Glue between the simulator's observations/plans and the MILP planner's arrays, and the
typed declarations of the MILP policies' options (parsed by `simulator.options.take_options`)."""

from __future__ import annotations

import numpy as np

from policies.learned_router import DEFAULT_FOLDS
from policies.milp import (
    ARTIFACT_BATCH_SIZES,
    CascadeOption,
    ModelProfile,
    PlanSolution,
    PlanTable,
)
from simulator.bundle import Bundle
from simulator.limits import Interval
from simulator.options import PolicyOptionError, choice, integer, real, take_options, text
from simulator.policy import Observation, Plan

QUEUE_ALPHA = 1.2  # safety factor α of the queue-delay estimate (the artifact's 1.2)
MIN_RATE_QPS = 1e-3  # floor of a model's arrival rate in α·Q/λ
__all__ = ["PolicyOptionError", "take_options"]  # re-exported for the policies


# typed option declarations shared by the MILP policies (`simulator.options`)
QUEUE_ALPHA_OPTION = real(QUEUE_ALPHA, Interval(0.0, 1e3))
PLANNER_OPTIONS = {
    "planner": choice("default", ("default", "faithful")),
    "spare": choice("distribute", ("distribute", "idle")),
    "queue_alpha": QUEUE_ALPHA_OPTION,
    "time_limit_s": real(10.0, Interval(0.1, 3600.0)),
    "router": text(""),  # a routers/ name: its trained score replaces the bundle's router score
    "router_features": text("auto"),  # checked by routers.features.resolve_feature_kind
    "router_folds": integer(DEFAULT_FOLDS, Interval(3)),  # cross-fitting K (learned_router)
    "router_seed": integer(None, Interval(0)),  # fold split and training; None: --seed
    # planner=faithful (policies/artifact_controller.py): which artifact revision's demand
    # signal, and whether the policy keeps that signal itself from per-tick observations
    "artifact_revision": choice("dae194b", ("dae194b", "dbd6629")),
    "demand_signal": choice("observation", ("observation", "artifact")),
}


def scaled_profiles(bundle: Bundle, time_scale: float) -> tuple[ModelProfile, ...]:
    """Per-model batch latencies (p50, x time_scale) at the artifact's batch sizes."""
    profiles = []
    for name in bundle.model_names:
        profiled = bundle.profiled_batch_sizes(name)
        sizes = tuple(b for b in ARTIFACT_BATCH_SIZES if profiled[0] <= b <= profiled[-1])
        sizes = sizes or profiled[:1]
        latency = tuple(bundle.batch_latency_s(name, b) * time_scale for b in sizes)
        profiles.append(ModelProfile(name, sizes, latency))
    return tuple(profiles)


def queue_delay_s(observation: Observation, alpha: float = QUEUE_ALPHA) -> np.ndarray:
    """D_i = α · Q_i / λ_i per model (HADIS eq. 5, Little's law), capped at 10 x SLO."""
    queue = np.asarray(observation.queue_len, dtype=np.float64)
    rate = np.maximum(np.asarray(observation.model_arrival_qps, dtype=np.float64), MIN_RATE_QPS)
    return np.minimum(alpha * queue / rate, 10 * observation.slo_s)


def solution_to_plan(
    solution: PlanSolution,
    table: PlanTable,
    bundle: Bundle,
    n_workers: int,
    spare: str = "distribute",
    reported_fid: float | None = None,
) -> Plan:
    """A simulator Plan from a MILP solution. With `spare="distribute"` the workers the MILP
    left unused join the plan's models in proportion to their GPU load (idle GPUs help nobody)."""
    option: CascadeOption = table.options[solution.option_index]
    workers = list(solution.workers)
    batch = list(solution.batch_sizes)
    members = [m for m in (option.light, option.heavy) if m is not None]
    if spare == "distribute":
        _distribute_spare(workers, batch, members, table, option, n_workers)
    names = bundle.model_names
    used = [m for m in range(len(names)) if workers[m] > 0]
    fid = option.fid if reported_fid is None else reported_fid
    common = {
        "workers": {names[m]: int(workers[m]) for m in used},
        "batch_size": {names[m]: int(max(batch[m], 1)) for m in used},
        "fid": float(fid),
        "infeasible": solution.status == "infeasible_fallback",
    }
    if option.heavy is None:
        return Plan(mix={names[option.light]: 1.0}, **common)
    return Plan(
        light=names[option.light],
        heavy=names[option.heavy],
        router_ratio=float(option.router_ratio),
        disc_ratio=float(option.disc_ratio),
        **common,
    )


def _distribute_spare(
    workers: list[int],
    batch: list[int],
    members: list[int],
    table: PlanTable,
    option: CascadeOption,
    n_workers: int,
) -> None:
    spare = n_workers - sum(workers)
    shares = {option.light: option.light_share}
    if option.heavy is not None:
        shares[option.heavy] = option.heavy_share
    load = {}
    for m in members:
        if shares[m] <= 0:
            continue
        if batch[m] == 0:  # a member the MILP gave no workers: its largest profiled batch
            batch[m] = int(table.profiles[m].batch_sizes[-1])
        j = table.profiles[m].batch_sizes.index(batch[m])
        load[m] = shares[m] * table.profiles[m].batch_latency_s[j] / batch[m]
    if spare <= 0 or not load:
        return
    total = sum(load.values())
    quota = {m: spare * w / total for m, w in load.items()}
    given = {m: int(np.floor(q)) for m, q in quota.items()}
    rest = spare - sum(given.values())
    for m in sorted(quota, key=lambda m: (given[m] - quota[m], m))[:rest]:
        given[m] += 1
    for m, extra in given.items():
        workers[m] += extra
