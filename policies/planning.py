"""Glue between the simulator's observations/plans and the MILP planner's arrays, the typed
declarations of the MILP policies' options (parsed by `simulator.options.take_options`), and
the swap-cost rule of the HADIS family's default planner (`SwapRule`).

Swap cost. A worker whose model changes spends the model's load time (`load_s`: the bundle's
models.csv, or the run's `--load-s`) loading it and serves nothing meanwhile; the queries sent
to it wait. The MILP plans for one demand and ignores where the workers are, so a demand that
wobbles around a boundary moves workers back and forth every re-plan; with a load time close to
the re-plan interval a worker can spend most of its time loading. `SwapRule` is a hysteresis
on plan changes in the manner of ski rental (rent until the rent paid equals the price, then
buy): the plan in force is kept while it still serves the demand (every served model's
capacity >= its share of the demand, path latency within the SLO, both as the MILP checks
them) and the quality it forgoes, summed over the re-plans it has been kept, is below the price
of the loading a change costs:

    switch  iff  the plan in force no longer serves the demand
                 or  load_gpu_s == 0
                 or  regret + gain * dt >= swap_fid_s_per_gpu_s * load_gpu_s

where gain = FID(in force) - FID(new) (keep, and regret = 0, when gain <= 0), dt = seconds
since the previous re-plan, regret = the sum of gain * dt over the re-plans that kept the plan
since its last switch, and load_gpu_s = sum over models of (workers gained) x load_s, the
GPU-seconds of loading under the fewest-swaps placement (`simulator.core.place_workers`;
workers left spare load nothing). A demand rise the plan in force cannot carry always switches,
as before; a dip for a re-plan or two does not move workers; a lasting one does, once its
forgone quality pays for the loading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
from simulator.options import (
    Option,
    PolicyOptionError,
    choice,
    flag,
    integer,
    real,
    take_options,
    text,
)
from simulator.policy import Observation, Plan, PolicyContext

QUEUE_ALPHA = 1.2  # safety factor α of the queue-delay estimate (the artifact's 1.2)
MIN_RATE_QPS = 1e-3  # floor of a model's arrival rate in α·Q/λ
__all__ = ["PolicyOptionError", "take_options"]  # re-exported for the policies


# typed option declarations shared by the MILP policies (`simulator.options`)
QUEUE_ALPHA_OPTION = real(QUEUE_ALPHA, Interval(0.0, 1e3))
PLANNER_OPTIONS = {
    "planner": choice("default", ("default", "faithful")),
    # keep (planner=faithful): GPUs beyond the plan keep their model (artifact_controller.py)
    "spare": choice("distribute", ("distribute", "idle", "keep")),
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
# FID-seconds of forgone quality worth one GPU-second of model loading (`SwapRule`): moving 2
# workers to SD3.5-Large-Turbo (18 GPU-s of loading) waits until the plan in force has cost
# SWAP_FID_S_PER_GPU_S x 18 FID-seconds (at a gain of 1 FID, that many seconds). A choice, not a
# measurement (experiments/figures/fig16_swap_cost.py shows its effect)
SWAP_FID_S_PER_GPU_S = 1.0
# the HADIS family's options: the planner's and the swap-cost rule's (`SwapRule`); swap_aware
# None = on for planner=default, off for planner=faithful (the artifact ignores swap cost)
HADIS_OPTIONS: dict[str, Option] = {
    **PLANNER_OPTIONS,
    "swap_aware": flag(None),
    "swap_fid_s_per_gpu_s": real(SWAP_FID_S_PER_GPU_S, Interval(0.0, 1e6)),
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


# ----------------------------------------------------------------------------- swap cost


def model_load_s(context: PolicyContext) -> dict[str, float]:
    """Seconds a worker spends loading each model: the run's `--load-s` for every model
    (`PolicyContext.load_s`), else the bundle's models.csv `load_s`."""
    names = context.bundle.model_names
    if context.load_s is not None:
        return {name: float(context.load_s) for name in names}
    return {name: float(x) for name, x in zip(names, context.bundle.models["load_s"])}


def load_gpu_s(
    placed: Mapping[str, int], wanted: Mapping[str, int], load_s: Mapping[str, float]
) -> float:
    """GPU-seconds of model loading to go from the workers per model `placed` to `wanted` with
    the fewest swaps: each worker a model gains loads it once (spare workers load nothing)."""
    return float(sum(max(0, n - placed.get(m, 0)) * load_s[m] for m, n in wanted.items()))


def sustains(
    table: PlanTable,
    option_index: int,
    plan: Plan,
    model_names: Sequence[str],
    demand_qps: float,
    queue_delay_s: np.ndarray,
    slo_s: float,
) -> bool:
    """Whether `plan` (of table option `option_index`) serves `demand_qps` as the default MILP
    requires: every model with a share has capacity workers x b / L(b) >= demand x share at its
    batch size b, and the path latency sum (L(b) + D) over those models is within the SLO."""
    k = option_index
    path_s = 0.0
    for i in np.flatnonzero(table.serves[k]):
        name = model_names[i]
        workers, batch = plan.workers.get(name, 0), plan.batch_size.get(name, 0)
        j = int(np.searchsorted(table.batch_sizes, batch))
        if workers <= 0 or j == len(table.batch_sizes) or table.batch_sizes[j] != batch:
            return False
        latency = table.latency_s[i, j]
        if not np.isfinite(latency) or workers * batch / latency < demand_qps * table.share[k, i]:
            return False
        path_s += latency + queue_delay_s[i]
    return path_s <= slo_s


class SwapRule:
    """The swap-cost hysteresis of the HADIS family's default planner (module docstring); it
    keeps the regret of the plan in force between re-plans (one per policy and run)."""

    def __init__(self, load_s: Mapping[str, float], fid_s_per_gpu_s: float) -> None:
        self.load_s = dict(load_s)  # seconds to load each model on a worker, in bundle order
        self.fid_s_per_gpu_s = fid_s_per_gpu_s  # FID-seconds forgone worth a GPU-s of loading
        self.regret_fid_s = 0.0  # quality forgone by keeping the plan in force (FID x s)
        self.last_s: float | None = None  # time of the previous re-plan

    def keeps(
        self,
        table: PlanTable,
        in_force: tuple[PlanSolution, Plan] | None,
        new: Plan,
        placed: Plan | None,
        observation: Observation,
        queue_delay_s: np.ndarray,
    ) -> bool:
        """Whether to keep the plan in force (`in_force`: its solution and plan; None before
        the first plan) rather than apply `new`; `placed` is the plan the cluster's workers
        follow now. Call at every re-plan, in time order."""
        dt = 0.0 if self.last_s is None else observation.now_s - self.last_s
        self.last_s = observation.now_s
        keep = self._keeps(table, in_force, new, placed, observation, queue_delay_s, dt)
        if not keep:
            self.regret_fid_s = 0.0
        return keep

    def _keeps(self, table, in_force, new, placed, observation, queue_delay_s, dt) -> bool:
        if in_force is None or placed is None or new == in_force[1]:
            return False
        solution, plan = in_force
        cost = load_gpu_s(placed.workers, new.workers, self.load_s)
        if cost <= 0:
            return False
        names = list(self.load_s)
        if not sustains(
            table,
            solution.option_index,
            plan,
            names,
            observation.demand_qps,
            queue_delay_s,
            observation.slo_s,
        ):
            return False
        gain = plan.fid - new.fid
        if gain <= 0:
            self.regret_fid_s = 0.0
            return True
        self.regret_fid_s += gain * dt
        return self.regret_fid_s < self.fid_s_per_gpu_s * cost


def swap_rule(
    policy: str, options: Mapping[str, object], context: PolicyContext
) -> SwapRule | None:
    """The policy's `SwapRule`, or None when it plans without swap cost: `swap_aware=false`,
    or planner=faithful (as the artifact; swap_aware=true with it is refused)."""
    faithful = options["planner"] == "faithful"
    aware = options["swap_aware"]
    if aware and faithful:
        raise PolicyOptionError(
            f"{policy}: option swap_aware: true needs planner=default (planner=faithful "
            "replays the artifact's controller, which plans without swap cost)"
        )
    if aware is False or faithful:
        return None
    return SwapRule(model_load_s(context), float(options["swap_fid_s_per_gpu_s"]))
