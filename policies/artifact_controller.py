"""A clean-room port of the HADIS artifact's controller (`--option planner=faithful`).

Source: github Tung-I/diffserve-2, `src/controller/controller.py` (the control loop, demand
signal, latency table, plan application) and `src/controller/qaware_multi_cascade_ILP.py`
(`solve_milp_loop`, the table of `model_comb_thres_config`). Facts carried over, own code; file
and line of each value in `simulator/presets.py` and `docs/FAITHFUL.md`. Two revisions run the
four-model cascade (`artifact_revision`): `dae194b` (default), the one the artifact's
constant-load logs (`logs_analysis/`) were committed with, and the later `dbd6629`, which
changes only the demand signal's constants; HEAD 538dc5d restricts `CASCADE_MODEL_ORDER` to two
models, which its four-model table cannot index.

Control loop (controller.py `eventLoop`): a 1 s tick; every tick the demand signal is updated;
on ticks 0, 5, 10, ... the MILP re-plans.

Demand signal (controller.py `computeSystemEWMA`): the system demand is the number of queries
in flight (entries of queries a worker reported receiving, neither reported done by the sink nor
older than 2 x SLO, re-entries included: the run's `Observation.inflight`, which
`demand_estimator=artifact-inflight` counts as the artifact does, `simulator/artifact_inflight.py`)
times an over-provision factor (1.2 at dae194b, 1.05 at dbd6629); per model, the queries its workers
received since the last tick and their queue length. Each series is smoothed by a pandas-style
EWMA recomputed over its last 20 samples (`EWMA_WINDOW`): centre of mass 2.1 with adjustment
at dae194b, half-life 3 ticks without adjustment at dbd6629. A tick with nothing in flight adds
no sample (the estimates keep their values); the per-model series start with one 0 sample.
With `demand_signal=artifact` this policy keeps those series itself from per-tick observations
(the `artifact-testbed` preset plans every tick with raw estimates, `ewma_com=0`, and the
policy re-plans on every 5th call); with `demand_signal=observation` it uses the simulator's
estimates as they come, re-planning on every call.

Queue delay (`solve_milp_loop`): D_i = 1.2 · Q_i / λ_i (Little's law with a safety factor),
0 when λ_i = 0.

Latency table (controller.py `__init__`, pipeline `multi`): L(i, 1) = base_i,
L(i, b) = base_i · b · 0.9 for b > 1, each rounded to 0.1 s (Python `round`); base_i is the
model's batch-1 latency at the testbed's time scale (the artifact hard-codes 0.05, 0.13, 1.3,
2.7 s = 0.1 x the L40S latencies; here the bundle's batch-1 p50 x time_scale, rounded to 1e-10
to drop float noise, which gives exactly those on the artifact's bundle).

The MILP (`solve_milp_loop`), once per model combination of the table (pandas `groupby` order:
membership bit-tuples ascending), over that combination's rows k:

    t_k ∈ {0,1}, Σ_k t_k = 1                                  one row (router, conf thresholds)
    b_{i,j} ∈ {0,1}, Σ_j b_{i,j} = 1                           one batch size per model
    x_i ∈ Z+, Σ_i x_i <= workers                               GPUs (`total_servers - 1`)
    Σ_j μ_{i,j} b_{i,j} · x_i >= λ Σ_k ρ_{k,i} t_k             throughput, each model
    Σ_{i member} (Σ_j L_{i,j} b_{i,j} + D_i) <= SLO            latency: both members, always
    minimise Σ_k FID_k t_k

with batch sizes {1, 2, 4, 8, 16, 32}, μ_{i,j} = b_j / L_{i,j}, route ratios ρ of the first
model 1.0 (all demand, bypassed queries included) and of the second round(r + (1 - r)c, 2).
Non-members route nothing and may keep x = 0, so only members get variables here. The product
b·x is linearised exactly (w_{i,j} = b_{i,j} x_i, w <= workers · b). The best combination (lowest
FID, strictly: ties keep the earlier one) wins. Gurobi's choice among equal-FID solutions is
unspecified; this port breaks ties as one integer objective, exactly lexicographic: FID, then
table order of the row, then fewest GPUs, then the smaller batch of the higher-index member,
then of the lower-index one. Demand 0 or no feasible combination → the artifact's fallback:
every model of the order in turn gets a worker (round robin), batch 1, router and confidence
thresholds 0.5; the simulator's plans name two stages, so it runs first model → last model with
the workers placed as the artifact places them (`docs/FAITHFUL.md`).

Thresholds reach the workers as the ratios r and c themselves (controller.py `loadModelOnWorker`
→ worker `model.py`, which turns them into score order statistics); the plan carries r and c.

Placement (`spare=keep`, `ArtifactPlacement`; controller.py `allocateByMultiCascadeAlg`'s
reloading loop): the GPUs in registration order, the first x of the plan's first model get it,
the next ones the next model's (the fallback: every model of the order in turn), and the GPUs
beyond Σ x are not touched: they keep the model, batch size and thresholds they had, and the
plan counts them; the plan names the GPUs it reloads (`Plan.loaded`), so that the simulator
keeps the others as they are (`docs/FAITHFUL.md` #7).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policies.highs_solver import (
    ModelStatus,
    SolverError,
    new_highs,
    pass_rowwise_model,
    run_checked,
)
from policies.milp import (
    ARTIFACT_BATCH_SIZES,
    CascadeOption,
    ModelProfile,
    PlanSolution,
    PlanTable,
    plan_table,
)
from simulator.bundle import Bundle
from simulator.errors import InputError
from simulator.policy import Observation, Plan

TICK_S = 1.0  # controller.py: self.period = 1
REPLAN_TICKS = 5  # controller.py eventLoop: allocateResources() when clockCounter % 5 == 0
EWMA_WINDOW = 20  # controller.py: EWMA_WINDOW = 20
QUEUE_SAFETY_FACTOR = 1.2  # qaware_multi_cascade_ILP.py solve_milp_loop: queue_safety_factor
BATCH_GAIN = 0.9  # controller.py: base * batch * 0.9 for batch > 1
LATENCY_DECIMALS = 1  # controller.py: round(..., 1)
FALLBACK_RATIO = 0.5  # controller.py allocateByMultiCascadeAlg: conf_thres = router_thres = 0.5
# src/config.py:4 CASCADE_MODEL_ORDER (sdxlltn, sd35turbo, sd35med, sd35large), as bundle names
MODEL_ORDER = ("SDXL-Lightning", "SD3.5-Large-Turbo", "SD3.5-Medium", "SD3.5-Large")

# qaware_multi_cascade_ILP.py `model_comb_thres_config` (line 11): the 49 (light, heavy,
# router ratio, confidence ratio) rows the controller plans over, in its order (model indices
# of MODEL_ORDER); their FIDs are the bundle's (on the artifact's bundle, `model_fid_config`).
_ROWS_BY_PAIR = {
    (2, 3): "0.2/0.5 0.5/0 0.4/0 0.3/0 0.2/0 0.1/0",
    (1, 2): "0.8/0.6 0.8/0.4 0.6/0.6 0.8/0.2 0.7/0.4 0.8/0.1 0.6/0.4 0.7/0.2 0.5/0.4 0.6/0.2 "
    "0.4/0.4 0.6/0.1 0.5/0.2 0.4/0.3 0.5/0.1 0.4/0.2 0.1/0.4 0.4/0.1 0.3/0.2 0/0.4 0.1/0.3 "
    "0.2/0.2 0.3/0.1 0/0.3 0.1/0.2 0.2/0.1 0/0.2 0.1/0.1 0.2/0 0/0.1 0.1/0",
    (0, 1): "0.7/0.1 0.7/0 0.6/0.1 0.6/0 0.5/0.1 0.5/0 0.4/0.1 0.4/0 0.3/0 0.2/0 0.1/0 0/0",
}
ARTIFACT_ROWS: tuple[tuple[int, int, float, float], ...] = tuple(
    (light, heavy, float(r), float(c))
    for (light, heavy), rows in _ROWS_BY_PAIR.items()
    for r, c in (pair.split("/") for pair in rows.split())
)


@dataclass(frozen=True)
class Revision:
    """The demand-signal constants of one artifact revision (controller.py)."""

    over_provision: float  # OVER_PROVISION_FACTOR
    ewma_alpha: float  # pandas ewm smoothing factor
    ewma_adjust: bool  # pandas ewm `adjust`


REVISIONS = {
    # ewm(com=DEFAULT_EWMA_DECAY = 2.1), adjust=True (pandas default): alpha = 1 / (1 + 2.1)
    "dae194b": Revision(over_provision=1.2, ewma_alpha=1.0 / 3.1, ewma_adjust=True),
    # ewm(halflife=3, adjust=False): alpha = 1 - 0.5 ** (1 / 3)
    "dbd6629": Revision(
        over_provision=1.05, ewma_alpha=1.0 - 0.5 ** (1.0 / 3.0), ewma_adjust=False
    ),
}


class ArtifactControllerError(InputError):
    """The bundle or the run cannot carry the artifact's controller (names what is missing)."""


def artifact_batch_latency_s(base_s: float, batch: int) -> float:
    """The controller's planned latency of a batch: base · b (· 0.9 when b > 1), to 0.1 s."""
    scaled = base_s * batch if batch == 1 else base_s * batch * BATCH_GAIN
    return round(scaled, LATENCY_DECIMALS)


def windowed_ewma(samples: Sequence[float], alpha: float, adjust: bool) -> float:
    """The last value of pandas `Series(samples).ewm(alpha=alpha, adjust=adjust).mean()`."""
    if adjust:
        weights = (1.0 - alpha) ** np.arange(len(samples) - 1, -1, -1, dtype=np.float64)
        return float(np.dot(weights, samples) / weights.sum())
    value = float(samples[0])
    for sample in samples[1:]:
        value = (1.0 - alpha) * value + alpha * float(sample)
    return value


class ArtifactDemandSignal:
    """The controller's smoothed system demand, per-model demand and per-model queue length."""

    def __init__(self, n_models: int, revision: Revision) -> None:
        self.revision = revision
        self.system: list[float] = []
        self.model_demand: list[list[float]] = [[0.0] for _ in range(n_models)]
        self.model_queue: list[list[float]] = [[0.0] for _ in range(n_models)]
        self.demand = 0.0
        self.demand_per_model = np.zeros(n_models)
        self.queue_per_model = np.zeros(n_models)

    def update(
        self, inflight: int, model_arrivals: Sequence[float], queue_len: Sequence[float]
    ) -> None:
        """One tick: `inflight` queries in flight, per-model arrivals and queue lengths."""
        total = inflight * self.revision.over_provision
        if total <= 0:
            return
        smooth = self._append_and_smooth
        for m, (arrived, queued) in enumerate(zip(model_arrivals, queue_len)):
            self.demand_per_model[m] = smooth(self.model_demand[m], arrived)
            self.queue_per_model[m] = smooth(self.model_queue[m], queued)
        self.demand = smooth(self.system, total)

    def _append_and_smooth(self, series: list[float], sample: float) -> float:
        series.append(float(sample))
        del series[:-EWMA_WINDOW]
        return windowed_ewma(series, self.revision.ewma_alpha, self.revision.ewma_adjust)


def queue_delay_s(
    demand_per_model: np.ndarray, queue_per_model: np.ndarray, factor: float = QUEUE_SAFETY_FACTOR
) -> np.ndarray:
    """D_i = factor · Q_i / λ_i, and 0 where λ_i = 0 (solve_milp_loop)."""
    demand = np.asarray(demand_per_model, dtype=np.float64)
    queue = np.asarray(queue_per_model, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(demand == 0, 0.0, factor * queue / demand)


@dataclass(frozen=True)
class ControllerTable:
    """The rows the controller plans over and its latency table.

    `latency_s[i, j]`: planned latency of model i at ARTIFACT_BATCH_SIZES[j]; `route[k, i]`:
    share of the demand row k sends to model i; `combos`: row indices per model combination,
    in the artifact's `groupby` order.
    """

    options: tuple[CascadeOption, ...]
    latency_s: np.ndarray
    route: np.ndarray
    combos: tuple[np.ndarray, ...]

    @property
    def n_models(self) -> int:
        return self.latency_s.shape[0]


def controller_table(
    options: Sequence[CascadeOption], base_latency_s: Sequence[float]
) -> ControllerTable:
    """The table of `options` (pair rows) with the artifact's batch-latency model."""
    n_models = len(base_latency_s)
    latency = np.array(
        [
            [artifact_batch_latency_s(base, b) for b in ARTIFACT_BATCH_SIZES]
            for base in base_latency_s
        ]
    )
    if not (latency > 0).all():
        raise ArtifactControllerError(
            f"base latencies {list(base_latency_s)}: every planned batch latency must round to "
            "> 0 s at 0.1 s resolution"
        )
    route = np.zeros((len(options), n_models))
    membership = []
    for k, o in enumerate(options):
        if o.heavy is None:
            raise ArtifactControllerError(f"options[{k}]: the controller plans model pairs only")
        route[k, o.light] = 1.0
        route[k, o.heavy] = round(o.router_ratio + (1.0 - o.router_ratio) * o.disc_ratio, 2)
        membership.append(tuple(int(i in (o.light, o.heavy)) for i in range(n_models)))
    order = sorted(set(membership))
    combos = tuple(np.array([k for k, m in enumerate(membership) if m == key]) for key in order)
    return ControllerTable(tuple(options), latency, route, combos)


@dataclass(frozen=True)
class ControllerDecision:
    """What the controller decides: a table row (None: the fallback), GPUs and batch size per
    model (0 = none), the planned FID (None for the fallback)."""

    row: int | None
    workers: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    fid: float | None


def decide(
    table: ControllerTable,
    demand: float,
    delay_s: np.ndarray,
    slo_s: float,
    n_workers: int,
    time_limit_s: float = 10.0,
) -> ControllerDecision:
    """`solve_milp_loop` and its fallback: the controller's plan for one re-plan tick."""
    best: ControllerDecision | None = None
    if demand != 0:
        for rows in table.combos:
            found = _solve_combination(table, rows, demand, delay_s, slo_s, n_workers, time_limit_s)
            if found is not None and (best is None or found.fid < best.fid):
                best = found
    return best if best is not None else fallback_decision(table.n_models, n_workers)


def fallback_decision(n_models: int, n_workers: int) -> ControllerDecision:
    """Every model of the order in turn gets a GPU (round robin), at batch size 1."""
    workers = tuple(n_workers // n_models + (i < n_workers % n_models) for i in range(n_models))
    return ControllerDecision(None, workers, tuple(int(w > 0) for w in workers), None)


def _solve_combination(
    table: ControllerTable,
    rows: np.ndarray,
    demand: float,
    delay_s: np.ndarray,
    slo_s: float,
    n_workers: int,
    time_limit_s: float,
) -> ControllerDecision | None:
    """The combination's MILP (see the module docstring); None when infeasible."""
    first = table.options[int(rows[0])]
    members = sorted((first.light, first.heavy))
    n_rows, n_batch = len(rows), len(ARTIFACT_BATCH_SIZES)
    sizes = np.array(ARTIFACT_BATCH_SIZES, dtype=np.float64)
    y0, w0 = n_rows, n_rows + 2 * n_batch  # columns: t_k, y_{p,j}, w_{p,j}
    n_cols = w0 + 2 * n_batch
    gpu_weight = float(n_batch * n_batch)  # above any batch tie-break cost j_0 + n_batch · j_1
    row_weight = gpu_weight * (n_workers + 1)
    fid = np.array([table.options[int(k)].fid for k in rows])
    rank = np.argsort(np.lexsort((np.arange(n_rows), fid)))  # FID, then table order
    cost = np.concatenate(
        [
            row_weight * rank,
            np.concatenate([np.arange(n_batch) * n_batch**p for p in range(2)]),
            np.full(2 * n_batch, gpu_weight),
        ]
    )
    matrix: list[tuple[float, float, list[int], list[float]]] = []  # (lower, upper, cols, vals)
    matrix.append((1.0, 1.0, list(range(n_rows)), [1.0] * n_rows))
    latency_cols, latency_vals = [], []
    for p, model in enumerate(members):
        y = [y0 + p * n_batch + j for j in range(n_batch)]
        w = [w0 + p * n_batch + j for j in range(n_batch)]
        matrix.append((1.0, 1.0, y, [1.0] * n_batch))
        for j in range(n_batch):
            matrix.append((-math.inf, 0.0, [w[j], y[j]], [1.0, -float(n_workers)]))
        mu = sizes / table.latency_s[model]
        share = table.route[rows, model]
        matrix.append((0.0, math.inf, w + list(range(n_rows)), list(mu) + list(-demand * share)))
        latency_cols += y
        latency_vals += list(table.latency_s[model])
    matrix.append((-math.inf, float(n_workers), list(range(w0, n_cols)), [1.0] * 2 * n_batch))
    budget = slo_s - float(sum(delay_s[m] for m in members))
    matrix.append((-math.inf, budget, latency_cols, latency_vals))

    # HiGHS's feasibility-jump heuristic costs about a third of these tiny solves, finds
    # nothing branch and bound does not
    h = new_highs(
        mip_rel_gap=0.0,
        mip_abs_gap=0.5,
        time_limit=float(time_limit_s),
        mip_heuristic_run_feasibility_jump=False,
    )
    pass_rowwise_model(
        h,
        col_cost=cost,
        col_lower=np.zeros(n_cols),
        col_upper=np.concatenate([np.ones(w0), np.full(2 * n_batch, float(n_workers))]),
        row_lower=np.array([r[0] for r in matrix]),
        row_upper=np.array([r[1] for r in matrix]),
        row_start=np.cumsum([0] + [len(r[2]) for r in matrix]),
        col_index=np.concatenate([r[2] for r in matrix]),
        value=np.concatenate([r[3] for r in matrix]),
        integer=np.ones(n_cols, dtype=bool),
        label=f"artifact controller MILP, models {members}",
    )
    status = run_checked(h, f"artifact controller MILP, models {members}")
    if status == ModelStatus.kInfeasible:
        return None
    if status != ModelStatus.kOptimal:
        raise SolverError(
            f"artifact controller MILP, models {members}: HiGHS ended with "
            f"{h.modelStatusToString(status)!r}, not a proven optimum"
        )
    x = np.asarray(h.getSolution().col_value)
    row = int(rows[int(np.argmax(x[:n_rows]))])
    workers = [0] * table.n_models
    batch = [0] * table.n_models
    for p, model in enumerate(members):
        j = int(np.argmax(x[y0 + p * n_batch : y0 + (p + 1) * n_batch]))
        batch[model] = ARTIFACT_BATCH_SIZES[j]
        workers[model] = int(round(x[w0 + p * n_batch + j]))
    return ControllerDecision(row, tuple(workers), tuple(batch), float(table.options[row].fid))


class ArtifactController:
    """The controller as a planner: observations in, `PlanSolution`s over `self.table` out."""

    def __init__(
        self,
        bundle: Bundle,
        options: Sequence[CascadeOption],
        *,
        time_scale: float,
        n_workers: int,
        slo_s: float,
        revision: str,
        demand_signal: str,
        queue_factor: float,
        time_limit_s: float,
        keep_spare: bool = False,
    ) -> None:
        names = tuple(bundle.model_names)
        if names != MODEL_ORDER:
            raise ArtifactControllerError(
                f"bundle models {list(names)}: planner=faithful needs the artifact's model "
                f"order {list(MODEL_ORDER)}"
            )
        keys = {_row_key(o.light, o.heavy, o.router_ratio, o.disc_ratio): o for o in options}
        rows = [keys[_row_key(*row)] for row in ARTIFACT_ROWS if _row_key(*row) in keys]
        if not rows:
            raise ArtifactControllerError(
                "planner=faithful: none of the artifact's 49 table rows is among this policy's "
                "options"
            )
        base = [round(bundle.batch_latency_s(n, 1) * time_scale, 10) for n in names]
        self.controller_table = controller_table(rows, base)
        fallback = _fallback_option(bundle, len(names))
        profiles = tuple(
            ModelProfile(n, ARTIFACT_BATCH_SIZES, tuple(self.controller_table.latency_s[i]))
            for i, n in enumerate(names)
        )
        self.table: PlanTable = plan_table((*rows, fallback), profiles)
        self.model_names = names
        self.n_workers = n_workers
        self.slo_s = slo_s
        self.queue_factor = queue_factor
        self.time_limit_s = time_limit_s
        self.own_signal = demand_signal == "artifact"
        self.signal = ArtifactDemandSignal(len(names), REVISIONS[revision])
        self.placement = ArtifactPlacement(n_workers) if keep_spare else None
        self.calls = 0
        self.last_call_s: float | None = None
        self.solution: PlanSolution | None = None

    def solve(self, observation: Observation) -> PlanSolution:
        """The plan in force after this call: re-planned on re-plan ticks, else unchanged."""
        if self.own_signal:
            self._tick(observation)
            replan = self.calls % REPLAN_TICKS == 0 or self.solution is None
            self.calls += 1
            if not replan:
                return self.solution
            demand = self.signal.demand
            delay = queue_delay_s(
                self.signal.demand_per_model, self.signal.queue_per_model, self.queue_factor
            )
        else:
            demand = observation.demand_qps
            delay = queue_delay_s(
                np.asarray(observation.model_arrival_qps) * TICK_S,
                observation.queue_len,
                self.queue_factor,
            )
        start = time.perf_counter()
        decision = decide(
            self.controller_table, demand, delay, self.slo_s, self.n_workers, self.time_limit_s
        )
        self.solution = self._solution(decision, delay, time.perf_counter() - start)
        return self.solution

    def with_loads(self, plan: Plan, solution: PlanSolution) -> Plan:
        """`plan` (of `solution`) carrying the GPUs its decision reloads (`Plan.loaded`) under
        `spare=keep`: the others keep their model, batch size and thresholds."""
        if self.placement is None or solution is not self.solution:
            return plan
        names = self.model_names
        return dataclasses.replace(plan, loaded=tuple(names[m] for m in self.placement.loaded))

    def _tick(self, observation: Observation) -> None:
        """Feed one tick's raw observation to the demand signal (a call per 1 s tick)."""
        if self.last_call_s is not None and observation.now_s > self.last_call_s:
            gap = observation.now_s - self.last_call_s
            if not math.isclose(gap, TICK_S, abs_tol=1e-9):
                raise ArtifactControllerError(
                    f"demand_signal=artifact: planner called {gap:g} s after the previous call; "
                    "it needs one call per 1 s tick (plan_interval_s = tick_s = 1, as the "
                    "artifact-testbed preset sets, and a policy that plans on every call: not "
                    "cache-d/cache-dq)"
                )
        self.last_call_s = observation.now_s
        arrivals = np.asarray(observation.model_arrival_qps) * TICK_S
        self.signal.update(observation.inflight, arrivals, observation.queue_len)

    def _solution(self, decision: ControllerDecision, delay: np.ndarray, wall_s: float):
        t = self.controller_table
        fallback = decision.row is None
        row = len(self.table.options) - 1 if fallback else decision.row
        option = self.table.options[row]
        members = (option.light, option.heavy)
        workers, batch_sizes = decision.workers, decision.batch_sizes
        if self.placement is not None:
            workers, batch_sizes = self.placement.apply(decision)
        capacity = min(
            (
                decision.workers[i]
                * decision.batch_sizes[i]
                / t.latency_s[i, ARTIFACT_BATCH_SIZES.index(decision.batch_sizes[i])]
                / share
                if decision.workers[i]
                else 0.0
            )
            for i, share in zip(members, (option.light_share, option.heavy_share))
            if share > 0
        )
        path = sum(
            t.latency_s[i, ARTIFACT_BATCH_SIZES.index(max(decision.batch_sizes[i], 1))] + delay[i]
            for i in members
        )
        return PlanSolution(
            option_index=row,
            workers=workers,
            batch_sizes=batch_sizes,
            fid=float(option.fid),
            status="infeasible_fallback" if fallback else "optimal",
            capacity_qps=float(capacity),
            path_latency_s=float(path),
            solve_time_s=wall_s,
        )


class ArtifactPlacement:
    """The model and batch size of each GPU as the artifact's reloading loop leaves them;
    `loaded`: the model of each GPU the last decision reloaded (the first Σ x)."""

    def __init__(self, n_workers: int) -> None:
        self.model: list[int | None] = [None] * n_workers
        self.batch = [0] * n_workers
        self.loaded: tuple[int, ...] = ()

    def apply(self, decision: ControllerDecision) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Load `decision` on the first Σ x GPUs, model by model in index order; return the
        GPUs and batch size per model over all GPUs (a model only spare GPUs keep: the batch
        size of the first of them)."""
        gpu = 0
        for m, count in enumerate(decision.workers):
            for _ in range(count):
                self.model[gpu], self.batch[gpu] = m, decision.batch_sizes[m]
                gpu += 1
        self.loaded = tuple(self.model[:gpu])
        n_models = len(decision.workers)
        workers, batch = [0] * n_models, list(decision.batch_sizes)
        for m, b in zip(self.model, self.batch):
            if m is not None:
                if not workers[m] and not decision.workers[m]:
                    batch[m] = b
                workers[m] += 1
        return tuple(workers), tuple(batch)


def _row_key(light: int, heavy: int | None, r: float, c: float) -> tuple:
    return light, heavy, round(r, 6), round(c, 6)


def _fallback_option(bundle: Bundle, n_models: int) -> CascadeOption:
    """The fallback as a two-stage plan: first model → last model at r = c = 0.5, with the
    bundle's FID of that row."""
    light, heavy = 0, n_models - 1
    c = bundle.cascades
    names = bundle.model_names
    match = c[
        (c["light"] == names[light])
        & (c["heavy"] == names[heavy])
        & np.isclose(c["router_ratio"], FALLBACK_RATIO)
        & np.isclose(c["disc_ratio"], FALLBACK_RATIO)
    ]
    if match.empty:
        raise ArtifactControllerError(
            f"bundle cascades: no row {names[light]} -> {names[heavy]} at router_ratio = "
            f"disc_ratio = {FALLBACK_RATIO}, the artifact's fallback configuration"
        )
    heavy_share = FALLBACK_RATIO + (1.0 - FALLBACK_RATIO) * FALLBACK_RATIO
    return CascadeOption(
        light, heavy, FALLBACK_RATIO, FALLBACK_RATIO, heavy_share, float(match["fid"].iloc[0])
    )
