"""HADIS resource-management MILP (HADIS §4.4), solved with HiGHS (highspy).

Given a cascade lookup table (options k: model pair, router_ratio, disc_ratio, FID_k), model
profiles (batch latency L_{i,b}, throughput μ_{i,b} = b / L_{i,b}), demand λ, per-model queue
delay estimates D_i, an SLO and S workers, choose one option, a batch size per model and integer
workers per model. Variables and constraints (one MILP over all pairs):

    z_k ∈ {0,1}, Σ_k z_k = 1                                   one option
    y_{i,b} ∈ {0,1}, Σ_b y_{i,b} = Σ_k m_{k,i} z_k              a batch size iff i is a member
    w_{i,b} ∈ Z+, w_{i,b} <= U_{i,b} y_{i,b}                    workers at that batch size
    x_i = Σ_b w_{i,b}, Σ_i x_i <= S                             worker budget
    Σ_b μ_{i,b} w_{i,b} >= λ Σ_k r_{k,i} z_k                    throughput (Eq. 4)
    Σ_{i,b} (L_{i,b} + D_i) y_{i,b} <= SLO                      path latency (Eq. 5)

m_{k,i} = 1 when model i is a member of option k, r_{k,i} its demand share (light: 1 -
router_ratio, heavy: heavy_share). The paper's bilinear x_i Σ_b y_{i,b} μ_{i,b} is linearised
exactly: w_{i,b} is nonzero only at the chosen batch size. Because Σ_b y_{i,b} is 0 for
non-members, the latency row automatically counts only the selected pair — no big-M needed.
U_{i,b} = min(S, max(1, ceil(λ max_k r_{k,i} / μ_{i,b}))) is the most workers model i can need
there. Batch sizes with L_{i,b} + D_i > SLO, or slower and no more productive than another
batch size of the same model, get no columns (exact). Among plans equal in the objective below,
the batch sizes are HiGHS's pick (deterministic for a given HiGHS version).

Members are the models with a positive share; each gets at least one worker
(w_{i,b} >= y_{i,b}: a plan never idles on demand that arrives before the next re-plan).
Objective: lexicographic (FID, then fewest GPUs, then least heavy share) as ONE integer
objective over dense ranks: rank_fid(k)·(S+1)·H + H·Σx + rank_heavy(k), H = number of
distinct heavy shares. Since H·Σx + rank_heavy <= H·S + H - 1 < (S+1)·H, a lower FID rank
always wins, then fewer GPUs, then a lower heavy share: provably lexicographic, and integral, so
the MILP is solved to proven optimality (mip_rel_gap 0, mip_abs_gap 0.5). The table is pruned
exactly before the solve (`policies.pareto`: per-pair dominance once per table, cross-pair
"cover" dominance and necessary-condition filters per call), and the previous plan seeds HiGHS
(its option and batch sizes with workers re-sized to the new demand) when still feasible.
Status ``time_limit``: HiGHS stopped at `time_limit_s` with a feasible, maybe suboptimal plan.

Infeasible (demand above capacity, or no option meets the SLO): a graceful plan, flagged
``infeasible_fallback``: among options that meet the SLO at some batch sizes (all options if
none does), the one serving the most demand (MILP maximising served demand θ <= λ, then the
lowest FID at that throughput), with every spare worker added to the member with the least
capacity per unit share. Never raises for infeasibility, never leaves the cluster idle.

The HADIS artifact's own controller (`--option planner=faithful`) is a separate port:
`policies/artifact_controller.py`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from policies.highs_solver import (
    ModelStatus,
    SolverError,
    new_highs,
    pass_rowwise_model,
    run_checked,
)
from policies.pareto import dominated_by_cover, grouped_pareto_mask, pareto_mask
from simulator.bundle import Bundle
from simulator.errors import InputError

PlanStatus = Literal["optimal", "time_limit", "infeasible_fallback"]
_EPS = 1e-9
ARTIFACT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)  # the artifact's controller (shared/data/README.md)


class PlanInputError(InputError):
    """Planner input that cannot be used; the message names the argument and the problem."""


@dataclass(frozen=True)
class CascadeOption:
    """One row of the lookup table. `heavy=None` is a single-model option (share 1 on `light`)."""

    light: int
    heavy: int | None
    router_ratio: float
    disc_ratio: float
    heavy_share: float
    fid: float

    @classmethod
    def single(cls, model: int, fid: float) -> CascadeOption:
        return cls(model, None, 0.0, 0.0, 0.0, fid)

    @property
    def light_share(self) -> float:
        return 1.0 if self.heavy is None else 1.0 - self.router_ratio


@dataclass(frozen=True)
class ModelProfile:
    """Profiled batch latency of one model: `batch_latency_s[j]` for `batch_sizes[j]`."""

    name: str
    batch_sizes: tuple[int, ...]
    batch_latency_s: tuple[float, ...]


@dataclass(frozen=True)
class PlanSolution:
    """A plan: option index into the table, workers and batch size per model (0 = unused).

    `capacity_qps`: the largest demand the plan sustains (min over served models of
    workers·μ / share); `path_latency_s`: the latency bound Σ (L + D) over the constrained
    members; `solve_time_s`: wall time of `solve_plan` (the only non-deterministic field).
    """

    option_index: int
    workers: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    fid: float
    status: PlanStatus
    capacity_qps: float
    path_latency_s: float
    solve_time_s: float

    @property
    def n_gpus(self) -> int:
        return sum(self.workers)


@dataclass(frozen=True)
class PlanTable:
    """Options and profiles as dense arrays, with the demand-independent prunes precomputed."""

    options: tuple[CascadeOption, ...]
    profiles: tuple[ModelProfile, ...]
    batch_sizes: np.ndarray  # (B,) union of profiled batch sizes
    latency_s: np.ndarray  # (M, B) batch latency, inf where not profiled
    share: np.ndarray  # (K, M) demand share per model
    serves: np.ndarray  # (K, M) bool: share > 0 (the option's members)
    member: np.ndarray  # (K, 2) int: serving models, -1 = none
    member_share: np.ndarray  # (K, 2)
    pair_id: np.ndarray  # (K,) index of (light, heavy) in table order
    fid: np.ndarray  # (K,)
    heavy_share: np.ndarray  # (K,)
    throughput_qps: np.ndarray  # (M, B) per worker: batch size / batch latency, 0 where absent
    batch_keep: np.ndarray  # (M, B) bool: no other batch size is as fast and as productive
    exact_keep: np.ndarray  # (K,) bool: not dominated within its pair (exact)

    @property
    def n_models(self) -> int:
        return len(self.profiles)


def plan_table(options: Sequence[CascadeOption], profiles: Sequence[ModelProfile]) -> PlanTable:
    """Validate options and profiles and build the planner's arrays (once per table)."""
    profiles = tuple(profiles)
    options = tuple(options)
    if not profiles:
        raise PlanInputError("profiles: at least one model profile is required")
    if not options:
        raise PlanInputError("options: the cascade table is empty")
    for i, p in enumerate(profiles):
        _check_profile(i, p)
    n_models = len(profiles)
    sizes = np.array(sorted({b for p in profiles for b in p.batch_sizes}), dtype=np.int64)
    latency = np.full((n_models, len(sizes)), np.inf)
    for i, p in enumerate(profiles):
        latency[i, np.searchsorted(sizes, p.batch_sizes)] = p.batch_latency_s

    # a batch size with no lower latency and no higher throughput than another is never needed:
    # the other is usable whenever it is (lower latency) and serves as much per worker
    throughput = sizes[None, :] / latency
    batch_keep = np.zeros_like(latency, dtype=bool)
    for i in range(n_models):
        cols = np.flatnonzero(np.isfinite(latency[i]))
        batch_keep[i, cols] = pareto_mask(np.column_stack([latency[i, cols], -throughput[i, cols]]))

    k_count = len(options)
    share = np.zeros((k_count, n_models))
    pairs: dict[tuple[int, int | None], int] = {}
    pair_id = np.empty(k_count, dtype=np.int64)
    for k, o in enumerate(options):
        _check_option(k, o, n_models)
        share[k, o.light] += o.light_share
        if o.heavy is not None:
            share[k, o.heavy] += o.heavy_share
        pair_id[k] = pairs.setdefault((o.light, o.heavy), len(pairs))
    serves = share > 0
    member = np.full((k_count, 2), -1, dtype=np.int64)
    member_share = np.zeros((k_count, 2))
    for k in range(k_count):
        models = np.flatnonzero(serves[k])
        member[k, : len(models)] = models
        member_share[k, : len(models)] = share[k, models]
    fid = np.array([o.fid for o in options])
    heavy_share = np.array([o.heavy_share for o in options])
    light = np.array([o.light for o in options])
    # exact dominance with every model standing in only for itself: first within each pair
    # (light share, heavy share, fid) — cheap — then across pairs on the survivors
    exact_keep = grouped_pareto_mask(
        np.column_stack([share[np.arange(k_count), light], heavy_share, fid]), pair_id
    )
    front = np.flatnonzero(exact_keep)
    exact_keep[front] = ~dominated_by_cover(
        member[front],
        member_share[front],
        fid[front],
        heavy_share[front],
        np.eye(n_models, dtype=bool),
    )
    return PlanTable(
        options=options,
        profiles=profiles,
        batch_sizes=sizes,
        latency_s=latency,
        share=share,
        serves=serves,
        member=member,
        member_share=member_share,
        pair_id=pair_id,
        fid=fid,
        heavy_share=heavy_share,
        throughput_qps=throughput,
        batch_keep=batch_keep,
        exact_keep=exact_keep,
    )


def profiles_from_bundle(
    bundle: Bundle, batch_sizes: Sequence[int] = ARTIFACT_BATCH_SIZES
) -> tuple[ModelProfile, ...]:
    """Per-model profiles at the `batch_sizes` inside each model's profiled range (p50)."""
    profiles = []
    for name in bundle.model_names:
        profiled = bundle.profiled_batch_sizes(name)
        sizes = tuple(b for b in batch_sizes if profiled[0] <= b <= profiled[-1]) or profiled[:1]
        profiles.append(
            ModelProfile(name, sizes, tuple(bundle.batch_latency_s(name, b) for b in sizes))
        )
    return tuple(profiles)


def options_from_bundle(bundle: Bundle, single_models: bool = False) -> tuple[CascadeOption, ...]:
    """The bundle's cascade table as options (plus one single-model option per model, FID
    alone, when `single_models`: lets Clipper/Proteus-like plans use the same planner)."""
    c = bundle.cascades
    options = [
        CascadeOption(bundle.model_index(light), bundle.model_index(heavy), r, d, h, f)
        for light, heavy, r, d, h, f in zip(
            c["light"], c["heavy"], c["router_ratio"], c["disc_ratio"], c["heavy_share"], c["fid"]
        )
    ]
    if single_models:
        options += [
            CascadeOption.single(i, float(fid)) for i, fid in enumerate(bundle.models["fid_alone"])
        ]
    return tuple(options)


def _check_profile(i: int, p: ModelProfile) -> None:
    where = f"profiles[{i}] ({p.name})"
    if not p.batch_sizes or len(p.batch_sizes) != len(p.batch_latency_s):
        raise PlanInputError(f"{where}: batch_sizes and batch_latency_s must be non-empty, equal")
    sizes = np.asarray(p.batch_sizes)
    lat = np.asarray(p.batch_latency_s, dtype=np.float64)
    if sizes.dtype.kind not in "iu" or (sizes < 1).any() or (np.diff(sizes) <= 0).any():
        raise PlanInputError(f"{where}: batch_sizes must be increasing integers >= 1")
    if not np.isfinite(lat).all() or (lat <= 0).any():
        raise PlanInputError(f"{where}: batch_latency_s must be finite and > 0")


def _check_option(k: int, o: CascadeOption, n_models: int) -> None:
    where = f"options[{k}]"
    for name, model in (("light", o.light), ("heavy", o.heavy)):
        if model is not None and not 0 <= model < n_models:
            raise PlanInputError(f"{where}: {name} model index {model} outside 0..{n_models - 1}")
    if o.heavy == o.light:
        raise PlanInputError(f"{where}: heavy model equals light model")
    for name in ("router_ratio", "disc_ratio", "heavy_share"):
        value = getattr(o, name)
        if not 0.0 <= value <= 1.0:
            raise PlanInputError(f"{where}: {name} {value!r} outside [0, 1]")
    if not math.isfinite(o.fid) or o.fid < 0:
        raise PlanInputError(f"{where}: fid {o.fid!r} is not a finite number >= 0")
    if o.light_share + (0.0 if o.heavy is None else o.heavy_share) <= 0:
        raise PlanInputError(f"{where}: routes no demand to any model")


# ----------------------------------------------------------------------------- solving


@dataclass(frozen=True)
class _Instance:
    """One planning call: demand, delays and the per-(model, batch) quantities derived."""

    table: PlanTable
    demand_qps: float
    slo_s: float
    n_workers: int
    step_latency_s: np.ndarray  # (M, B) L + D, inf where not profiled
    usable: np.ndarray  # (M, B) bool: batch sizes a plan may use
    latency_bound: bool  # whether the path-latency row is imposed


def solve_plan(
    table: PlanTable,
    demand_qps: float,
    queue_delay_s: Sequence[float] | np.ndarray,
    slo_s: float,
    n_workers: int,
    *,
    previous: PlanSolution | None = None,
    time_limit_s: float = 10.0,
) -> PlanSolution:
    """Plan option, workers and batch sizes for `demand_qps` (see the module docstring)."""
    start = time.perf_counter()
    delay = np.asarray(queue_delay_s, dtype=np.float64)
    _check_call(table, demand_qps, delay, slo_s, n_workers, previous, time_limit_s)
    step = table.latency_s + delay[:, None]
    inst = _Instance(
        table, float(demand_qps), float(slo_s), int(n_workers), step, step <= slo_s, True
    )
    plan = _solve(inst, previous, time_limit_s)
    return PlanSolution(**{**plan, "solve_time_s": time.perf_counter() - start})


def _check_call(
    table: PlanTable,
    demand_qps: float,
    delay: np.ndarray,
    slo_s: float,
    n_workers: int,
    previous: PlanSolution | None,
    time_limit_s: float,
) -> None:
    if not math.isfinite(demand_qps) or demand_qps < 0:
        raise PlanInputError(f"demand_qps: {demand_qps!r} is not a finite number >= 0")
    if delay.shape != (table.n_models,) or not np.isfinite(delay).all() or (delay < 0).any():
        raise PlanInputError(
            f"queue_delay_s: expected {table.n_models} finite values >= 0, got {delay.tolist()}"
        )
    if not math.isfinite(slo_s) or slo_s <= 0:
        raise PlanInputError(f"slo_s: {slo_s!r} is not a finite number > 0")
    if int(n_workers) != n_workers or n_workers < 1:
        raise PlanInputError(f"n_workers: {n_workers!r} is not an integer >= 1")
    if not time_limit_s > 0:
        raise PlanInputError(f"time_limit_s: {time_limit_s!r} is not > 0")
    if previous is not None and not 0 <= previous.option_index < len(table.options):
        raise PlanInputError(f"previous: option_index {previous.option_index} is not in the table")


def _solve(inst: _Instance, previous: PlanSolution | None, time_limit_s: float) -> dict:
    t = inst.table
    rows = _candidates(inst, np.flatnonzero(t.exact_keep), t.serves, min_one=True)
    if rows.size:
        rows = _cover_prune(inst, rows)
        plan = _solve_lexicographic(inst, rows, previous, time_limit_s)
        if plan is not None:
            return plan
    return _max_throughput_plan(inst, time_limit_s)


def _candidates(
    inst: _Instance, rows: np.ndarray, members: np.ndarray, min_one: bool, budget: bool = True
) -> np.ndarray:
    """The options of `rows` passing necessary conditions for feasibility: the members'
    fastest usable batch sizes fit the SLO together, and (`budget`) the members' fewest
    workers at their highest usable throughput fit the worker budget."""
    m = members[rows]
    step = np.where(inst.usable, inst.step_latency_s, np.inf).min(axis=1)
    ok = np.where(m, step[None, :], 0.0).sum(axis=1) <= inst.slo_s + _EPS
    if budget:
        mu_max = np.where(inst.usable, inst.table.throughput_qps, 0.0).max(axis=1)
        load = inst.demand_qps * inst.table.share[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(load > 0, np.ceil(load / mu_max[None, :] - _EPS), 0.0)
        need = np.where(m, np.maximum(need, 1.0 if min_one else 0.0), 0.0).sum(axis=1)
        ok &= need <= inst.n_workers
    return rows[ok]


def _cover_prune(inst: _Instance, rows: np.ndarray) -> np.ndarray:
    """Drop options another option dominates (`pareto.dominated_by_cover`), where model i
    covers model j when, at every batch size j may use, i is no slower with and without queue
    delay — i then stands in for j with the same workers (exact for this call's D)."""
    t, lat, step = inst.table, inst.table.latency_s, inst.step_latency_s
    faster = (lat[:, None, :] <= lat[None, :, :]) & (step[:, None, :] <= step[None, :, :])
    covers = np.all(faster | ~inst.usable[None, :, :], axis=2)
    dominated = dominated_by_cover(
        t.member[rows], t.member_share[rows], t.fid[rows], t.heavy_share[rows], covers
    )
    return rows[~dominated]


@dataclass(frozen=True)
class _Columns:
    """Column layout: z for each candidate option, then (y, w) for each usable (model, batch)."""

    rows: np.ndarray  # (K',) option indices
    model: np.ndarray  # (P,) model of each (model, batch) column pair
    batch: np.ndarray  # (P,) batch-size position in table.batch_sizes

    @property
    def y0(self) -> int:
        return len(self.rows)

    @property
    def w0(self) -> int:
        return len(self.rows) + len(self.model)

    @property
    def n(self) -> int:
        return len(self.rows) + 2 * len(self.model)


def _columns(inst: _Instance, rows: np.ndarray, members: np.ndarray) -> _Columns:
    """Usable (model, batch) columns of the models some candidate option needs."""
    active = members[rows].any(axis=0)
    models, batches = np.nonzero(inst.usable & inst.table.batch_keep & active[:, None])
    return _Columns(rows, models, batches)


class _Model:
    """Sparse MILP builder: blocks of rows appended as (lower, upper, row_of, cols, values)."""

    def __init__(self, n_cols: int) -> None:
        self.n_cols = n_cols
        self.n_rows = 0
        self.blocks: list[tuple[np.ndarray, ...]] = []

    def add_rows(self, lower, upper, row_of, cols, values) -> None:
        """Add len(lower) rows; entry e goes to new row row_of[e], column cols[e]."""
        lower = np.asarray(lower, dtype=np.float64)
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), lower.shape)
        self.blocks.append(
            (
                lower,
                upper,
                self.n_rows + np.asarray(row_of),
                np.asarray(cols),
                np.asarray(values, dtype=np.float64),
            )
        )
        self.n_rows += len(lower)

    def highs(self, cost, col_upper, integer, time_limit_s: float, abs_gap: float):
        lower, upper, rows, cols, values = (np.concatenate(part) for part in zip(*self.blocks))
        order = np.argsort(rows, kind="stable")
        # the model arrives reduced (exact prunes): HiGHS presolve and the feasibility-jump
        # heuristic cost ~10-30 ms on these ~100-column MILPs and find nothing to remove
        h = new_highs(
            mip_rel_gap=0.0,
            mip_abs_gap=abs_gap,
            time_limit=float(time_limit_s),
            presolve="off",
            mip_heuristic_run_feasibility_jump=False,
        )
        pass_rowwise_model(
            h,
            col_cost=cost,
            col_lower=np.zeros(self.n_cols),
            col_upper=col_upper,
            row_lower=lower,
            row_upper=upper,
            row_start=np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.n_rows))]),
            col_index=cols[order],
            value=values[order],
            integer=integer,
            label="HADIS MILP",
        )
        return h


def _constraints(
    inst: _Instance, cols: _Columns, members: np.ndarray, worker_cap: np.ndarray, min_one: bool
) -> _Model:
    """Rows shared by both objectives (everything but throughput)."""
    k_n, p_n = len(cols.rows), len(cols.model)
    z, y, w = np.arange(k_n), cols.y0 + np.arange(p_n), cols.w0 + np.arange(p_n)
    model = _Model(cols.n)
    model.add_rows([1.0], [1.0], np.zeros(k_n, dtype=int), z, np.ones(k_n))  # Σ z = 1
    active = np.unique(cols.model)
    slot = np.searchsorted(active, cols.model)
    opt, mod = np.nonzero(members[cols.rows][:, active])  # Σ_b y_{i,b} - Σ_k m_{k,i} z_k = 0
    model.add_rows(
        np.zeros(len(active)),
        np.zeros(len(active)),
        np.concatenate([slot, mod]),
        np.concatenate([y, z[opt]]),
        np.concatenate([np.ones(p_n), -np.ones(len(opt))]),
    )
    each = np.arange(p_n)
    model.add_rows(
        np.full(p_n, -np.inf),
        np.zeros(p_n),
        np.concatenate([each, each]),
        np.concatenate([w, y]),
        np.concatenate([np.ones(p_n), -worker_cap]),
    )
    if min_one:  # w_{i,b} >= y_{i,b}
        model.add_rows(
            np.zeros(p_n),
            np.full(p_n, np.inf),
            np.concatenate([each, each]),
            np.concatenate([w, y]),
            np.concatenate([np.ones(p_n), -np.ones(p_n)]),
        )
    if inst.latency_bound:
        model.add_rows(
            [-np.inf],
            [inst.slo_s],
            np.zeros(p_n, dtype=int),
            y,
            inst.step_latency_s[cols.model, cols.batch],
        )
    model.add_rows([-np.inf], [float(inst.n_workers)], np.zeros(p_n, dtype=int), w, np.ones(p_n))
    return model


def _throughput_rows(model: _Model, inst: _Instance, cols: _Columns, demand_cols, demand_coef):
    """Σ_b μ_{i,b} w_{i,b} - Σ_k r_{k,i}·coef_k·col_k >= 0 per active model i."""
    active = np.unique(cols.model)
    slot = np.searchsorted(active, cols.model)
    mu = inst.table.throughput_qps[cols.model, cols.batch]
    share = inst.table.share[cols.rows][:, active]
    opt, mod = np.nonzero(share)
    model.add_rows(
        np.zeros(len(active)),
        np.full(len(active), np.inf),
        np.concatenate([slot, mod]),
        np.concatenate([cols.w0 + np.arange(len(cols.model)), demand_cols[opt]]),
        np.concatenate([mu, -share[opt, mod] * demand_coef[opt]]),
    )


def _dense_rank(values: np.ndarray) -> np.ndarray:
    rounded = np.round(values, 9)
    return np.searchsorted(np.unique(rounded), rounded).astype(np.float64)


def _solve_lexicographic(
    inst: _Instance, rows: np.ndarray, previous: PlanSolution | None, time_limit_s: float
) -> dict | None:
    """Min (FID, GPUs, heavy share) over candidate options `rows`, every member with at least
    one worker; None when infeasible."""
    if rows.size == 0:
        return None
    t = inst.table
    members = t.serves
    cols = _columns(inst, rows, members)
    mu = inst.table.throughput_qps[cols.model, cols.batch]
    peak_share = t.share[rows][:, cols.model].max(axis=0)
    need = np.ceil(inst.demand_qps * peak_share / mu - _EPS)
    cap = np.clip(need, 1.0, inst.n_workers)
    model = _constraints(inst, cols, members, cap, min_one=True)
    _throughput_rows(model, inst, cols, np.arange(len(rows)), np.full(len(rows), inst.demand_qps))
    heavy_rank = _dense_rank(t.heavy_share[rows])
    n_heavy = heavy_rank.max() + 1.0
    cost = np.concatenate(
        [
            _dense_rank(t.fid[rows]) * (inst.n_workers + 1) * n_heavy + heavy_rank,
            np.zeros(len(cols.model)),
            np.full(len(cols.model), n_heavy),
        ]
    )
    upper = np.concatenate([np.ones(len(rows) + len(cols.model)), cap])
    h = model.highs(cost, upper, np.ones(cols.n, dtype=bool), time_limit_s, abs_gap=0.5)
    start = _warm_start(inst, cols, previous)
    if start is not None:
        h.setSolution(cols.n, np.arange(cols.n, dtype=np.int32), start)
    status = run_checked(h, "HADIS MILP (lexicographic plan)")
    if status == ModelStatus.kOptimal:
        label = "optimal"
    elif status == ModelStatus.kTimeLimit:
        label = "time_limit"
    else:
        return None
    return _decode(inst, cols, members, np.asarray(h.getSolution().col_value), label)


def _warm_start(
    inst: _Instance, cols: _Columns, previous: PlanSolution | None
) -> np.ndarray | None:
    """The previous option and batch sizes with workers re-sized to this demand (at least one
    per member), if feasible."""
    if previous is None or previous.option_index not in cols.rows:
        return None
    k = previous.option_index
    x = np.zeros(cols.n)
    x[int(np.searchsorted(cols.rows, k))] = 1.0
    latency = 0.0
    for i in np.flatnonzero(inst.table.serves[k]):
        pos = int(np.searchsorted(inst.table.batch_sizes, previous.batch_sizes[i]))
        match = np.flatnonzero((cols.model == i) & (cols.batch == pos))
        if match.size == 0 or inst.table.batch_sizes[pos] != previous.batch_sizes[i]:
            return None
        p = int(match[0])
        mu = inst.table.throughput_qps[i, pos]
        workers = math.ceil(inst.demand_qps * inst.table.share[k, i] / mu - _EPS)
        x[cols.y0 + p] = 1.0
        x[cols.w0 + p] = max(workers, 1)
        latency += inst.step_latency_s[i, pos]
    if x[cols.w0 :].sum() > inst.n_workers or latency > inst.slo_s + _EPS:
        return None
    return x


def _decode(
    inst: _Instance, cols: _Columns, members: np.ndarray, x: np.ndarray, status: PlanStatus
) -> dict:
    k = int(cols.rows[int(np.argmax(x[: len(cols.rows)]))])
    workers = np.zeros(inst.table.n_models, dtype=np.int64)
    batch = np.zeros(inst.table.n_models, dtype=np.int64)
    for p in np.flatnonzero(x[cols.y0 : cols.w0] > 0.5):
        i = cols.model[p]
        batch[i] = inst.table.batch_sizes[cols.batch[p]]
        workers[i] = round(x[cols.w0 + p])
    return _plan_dict(inst, k, workers, batch, members, status)


def _plan_dict(
    inst: _Instance,
    k: int,
    workers: np.ndarray,
    batch: np.ndarray,
    members: np.ndarray,
    status: PlanStatus,
) -> dict:
    t = inst.table
    pos = np.searchsorted(t.batch_sizes, batch)
    served = np.flatnonzero(t.serves[k])
    capacity = min(
        workers[i] * t.batch_sizes[pos[i]] / t.latency_s[i, pos[i]] / t.share[k, i] for i in served
    )
    path = sum(inst.step_latency_s[i, pos[i]] for i in np.flatnonzero(members[k]))
    return {
        "option_index": k,
        "workers": tuple(int(v) for v in workers),
        "batch_sizes": tuple(int(v) for v in batch),
        "fid": float(t.fid[k]),
        "status": status,
        "capacity_qps": float(capacity),
        "path_latency_s": float(path),
    }


# ----------------------------------------------------------------------------- fallbacks


def _max_throughput_plan(inst: _Instance, time_limit_s: float) -> dict:
    """The graceful infeasible plan: most demand served, then lowest FID, all workers used."""
    t = inst.table
    rows = _candidates(inst, np.flatnonzero(t.exact_keep), t.serves, False, budget=False)
    if rows.size == 0:  # no option meets the SLO at any batch size: ignore latency
        inst = replace(inst, usable=np.isfinite(t.latency_s), latency_bound=False)
        rows = np.flatnonzero(t.exact_keep)
    rows = _cover_prune(inst, rows)
    cols = _columns(inst, rows, t.serves)
    k_n, p_n = len(rows), len(cols.model)
    theta = cols.n + np.arange(k_n)  # served demand θ_k <= λ z_k, extra columns after w
    cap = np.full(p_n, float(inst.n_workers))
    model = _constraints(inst, cols, t.serves, cap, min_one=False)
    model.n_cols += k_n
    _throughput_rows(model, inst, cols, theta, np.ones(k_n))
    model.add_rows(
        np.full(k_n, -np.inf),
        np.zeros(k_n),
        np.tile(np.arange(k_n), 2),
        np.concatenate([theta, np.arange(k_n)]),
        np.concatenate([np.ones(k_n), np.full(k_n, -inst.demand_qps)]),
    )
    cost = np.concatenate([np.zeros(cols.n), -np.ones(k_n)])
    upper = np.concatenate([np.ones(k_n + p_n), cap, np.full(k_n, inst.demand_qps)])
    integer = np.arange(cols.n + k_n) < cols.n
    h = model.highs(cost, upper, integer, time_limit_s, abs_gap=1e-9)
    _run_fallback(h, "HADIS MILP (fallback stage 1: most demand served)")
    served = -h.getInfo().objective_function_value
    # stage 2: at (almost) that served demand, the lowest FID, then the least heavy share
    h.addRow(served * (1 - 1e-7) - _EPS, np.inf, k_n, theta.astype(np.int32), np.ones(k_n))
    heavy_rank = _dense_rank(t.heavy_share[rows])
    stage2 = np.zeros(cols.n + k_n)
    stage2[:k_n] = _dense_rank(t.fid[rows]) * (heavy_rank.max() + 1.0) + heavy_rank
    h.changeColsCost(len(stage2), np.arange(len(stage2), dtype=np.int32), stage2)
    h.setOptionValue("mip_abs_gap", 0.5)
    _run_fallback(h, "HADIS MILP (fallback stage 2: lowest FID at that demand)")
    plan = _decode(
        inst, cols, t.serves, np.asarray(h.getSolution().col_value)[: cols.n], "infeasible_fallback"
    )
    workers = _spread_spare_workers(inst, plan)
    return _plan_dict(
        inst,
        plan["option_index"],
        workers,
        np.array(plan["batch_sizes"]),
        t.serves,
        "infeasible_fallback",
    )


def _run_fallback(h, label: str) -> None:
    """Run a fallback stage, which is feasible by construction (every θ = 0, z on any row):
    a status other than optimal or a time limit with a solution is a solver failure."""
    status = run_checked(h, label)
    if status not in (ModelStatus.kOptimal, ModelStatus.kTimeLimit):
        raise SolverError(
            f"{label}: HiGHS returned {h.modelStatusToString(status)!r} for a model that is "
            "feasible by construction"
        )


def _spread_spare_workers(inst: _Instance, plan: dict) -> np.ndarray:
    """Give each unused worker to the served model with the least capacity per unit share."""
    t, k = inst.table, plan["option_index"]
    workers = np.array(plan["workers"], dtype=np.int64)
    served = np.flatnonzero(t.serves[k])
    pos = np.searchsorted(t.batch_sizes, np.array(plan["batch_sizes"])[served])
    per_worker = t.batch_sizes[pos] / t.latency_s[served, pos] / t.share[k, served]
    for _ in range(inst.n_workers - int(workers.sum())):
        workers[served[int(np.argmin(workers[served] * per_worker))]] += 1
    return workers
