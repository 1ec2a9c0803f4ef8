"""Proteus (Ahmad et al., ASPLOS'24; HADIS baseline §5.1): accuracy scaling without cascades.

An MILP picks a mix of model variants, workers and batch sizes; each query is served by one
model, drawn in proportion to the models' planned capacity (so every model stays under its
capacity whenever total capacity covers demand), or with `--option routing=workers` in
proportion to their workers: each worker equally likely, as HADIS §5.1 describes Proteus ("queries
are randomly routed to each worker with equal probability") and as the HADIS artifact's load
balancer routes (`RoutingPolicy.EQUAL`). Formulation (HiGHS):

    variables  s_m ∈ [0, 1]        share of demand served by model m
               w_{m,b} ∈ Z>=0      workers of model m at batch size b
               y_{m,b} ∈ {0, 1}    model m runs batch size b (at most one per model)
    min        Σ_m s_m · FID_m  +  P · (1 - Σ_m s_m)  +  ε · Σ w  +  δ · Σ j · y_{m,b_j}
                                                   (P > max FID; b_j = j-th batch size of m)
    s.t.       Σ_b μ_{m,b} w_{m,b} >= λ s_m      (throughput)
               w_{m,b} <= S · y_{m,b},  Σ_b y_{m,b} <= 1,  Σ w <= S,  Σ_m s_m <= 1
               y_{m,b} = 0 unless L_{m,b} + D_m <= SLO   (a query visits one model)

Minimising share-weighted FID is maximising normalised quality Σ s_m (FID_max - FID_m)/range.
The penalty P serves as much demand as possible first: Σ s_m < 1 means demand above capacity
(the plan is flagged infeasible). Workers left over join the best-quality model in use.

The optimum is unique, so any HiGHS version picks the same plan: among equal-quality plans the
fewest workers (ε), then the smallest batch sizes (δ, with δ · Σ j < ε), solved to an absolute
gap below δ. (Without δ and with a relative gap, highspy 1.15.1 and 1.16.0 picked different
batch sizes: Azure trace, seed 0, FID 24.808 vs 24.833.)

The MILP is feasible and bounded by construction (all shares and workers 0 is a solution, every
variable is bounded), so demand above capacity is never HiGHS-infeasible: it is the Σ s_m < 1
flag above. Any HiGHS status other than optimal is therefore a solver failure and raises
`policies.highs_solver.SolverError`; it never becomes a plan.
"""

from __future__ import annotations

import numpy as np

from policies.highs_solver import ModelStatus, SolverError, new_highs, run_checked
from policies.planning import (
    QUEUE_ALPHA_OPTION,
    PolicyOptionError,
    queue_delay_s,
    scaled_profiles,
    take_options,
)
from simulator.options import choice
from simulator.policy import Observation, Plan, PolicyContext, register_policy

WORKER_COST = 1e-4  # ε: among equal-quality plans prefer fewer workers
BATCH_INDEX_COST = 1e-6  # δ: then smaller batch sizes (δ · Σ_j j < ε for up to 13 sizes)
ABS_GAP = 1e-7  # below δ: ties are broken exactly
MIN_DEMAND_QPS = 0.01  # plan for at least this much demand: one worker on the chosen model
PROTEUS_OPTIONS = {
    "queue_alpha": QUEUE_ALPHA_OPTION,
    # a query's model: drawn in proportion to planned capacity, or to workers (HADIS §5.1)
    "routing": choice("capacity", ("capacity", "workers")),
}


def solve_proteus(
    fid: np.ndarray,
    batch_sizes: list[tuple[int, ...]],
    batch_latency_s: list[tuple[float, ...]],
    demand_qps: float,
    queue_delay: np.ndarray,
    slo_s: float,
    n_workers: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(share per model, workers per model, batch size per model; 0 = unused)."""
    n_models = len(fid)
    demand_qps = max(float(demand_qps), MIN_DEMAND_QPS)
    h = new_highs(mip_rel_gap=0.0, mip_abs_gap=ABS_GAP)
    penalty = float(np.max(fid)) * 10 + 1
    share = [h.addVariable(lb=0.0, ub=1.0, obj=float(fid[m]) - penalty) for m in range(n_models)]
    w_vars: dict[tuple[int, int], object] = {}
    y_vars: dict[tuple[int, int], object] = {}
    for m in range(n_models):
        for j, lat in enumerate(batch_latency_s[m]):
            if lat + queue_delay[m] > slo_s:
                continue
            w_vars[m, j] = h.addIntegral(lb=0, ub=n_workers, obj=WORKER_COST)
            y_vars[m, j] = h.addBinary(obj=BATCH_INDEX_COST * j)
            h.addConstr(w_vars[m, j] - n_workers * y_vars[m, j] <= 0)
        ys = [y_vars[m, j] for j in range(len(batch_sizes[m])) if (m, j) in y_vars]
        if ys:
            h.addConstr(sum(ys[1:], ys[0]) <= 1)
        capacity = [
            (b / lat) * w_vars[m, j]
            for j, (b, lat) in enumerate(zip(batch_sizes[m], batch_latency_s[m]))
            if (m, j) in w_vars
        ]
        if capacity:
            h.addConstr(sum(capacity[1:], capacity[0]) - demand_qps * share[m] >= 0)
        else:
            h.addConstr(share[m] <= 0)
    if w_vars:
        workers = list(w_vars.values())
        h.addConstr(sum(workers[1:], workers[0]) <= n_workers)
    h.addConstr(sum(share[1:], share[0]) <= 1)
    status = run_checked(h, "proteus MILP")
    if status != ModelStatus.kOptimal:
        raise SolverError(
            f"proteus MILP: HiGHS returned {h.modelStatusToString(status)!r} for a model that is "
            "feasible and bounded by construction"
        )
    solution = np.asarray(h.getSolution().col_value)
    s = np.array([solution[v.index] for v in share])
    workers = np.zeros(n_models, dtype=np.int64)
    batch = np.zeros(n_models, dtype=np.int64)
    for (m, j), var in w_vars.items():
        count = int(round(solution[var.index]))
        if count > 0:
            workers[m] += count
            batch[m] = batch_sizes[m][j]
    return s, workers, batch


class ProteusPolicy:
    uses_router = False
    uses_discriminator = False

    def __init__(self, context: PolicyContext) -> None:
        self.name = "proteus"
        self.context = context
        self.options = take_options("proteus", dict(context.options), PROTEUS_OPTIONS)
        bundle = context.bundle
        self.router_scores = bundle.router_score
        self.quality_scores = bundle.disc_score
        self.fid = bundle.models["fid_alone"].to_numpy(dtype=np.float64)
        profiles = scaled_profiles(bundle, context.time_scale)
        self.batch_sizes = [p.batch_sizes for p in profiles]
        self.batch_latency_s = [p.batch_latency_s for p in profiles]
        if len(self.fid) < 1:
            raise PolicyOptionError("proteus: the bundle has no models")

    def plan(self, observation: Observation) -> Plan:
        ctx = self.context
        share, workers, batch = solve_proteus(
            self.fid,
            self.batch_sizes,
            self.batch_latency_s,
            observation.demand_qps,
            queue_delay_s(observation, self.options["queue_alpha"]),
            ctx.slo_s,
            ctx.n_workers,
        )
        used = np.flatnonzero(workers > 0)
        if used.size == 0:  # nothing fits the SLO: all workers on the fastest model
            fastest = int(np.argmin([lat[0] for lat in self.batch_latency_s]))
            workers[fastest], batch[fastest] = ctx.n_workers, self.batch_sizes[fastest][-1]
            used = np.array([fastest])
        spare = ctx.n_workers - int(workers.sum())
        best = used[np.argmin(self.fid[used])]
        workers[best] += spare
        names = ctx.bundle.model_names
        if self.options["routing"] == "workers":
            weight = {names[m]: float(workers[m]) for m in used}
        else:
            weight = {names[m]: workers[m] * batch[m] / self._latency(m, batch[m]) for m in used}
        total = sum(weight.values())
        mix = {m: w / total for m, w in weight.items()}
        return Plan(
            workers={names[m]: int(workers[m]) for m in used},
            batch_size={names[m]: int(batch[m]) for m in used},
            mix=mix,
            fid=float(sum(self.fid[names.index(m)] * s for m, s in mix.items())),
            infeasible=bool(share.sum() < 1 - 1e-6),
        )

    def _latency(self, m: int, b: int) -> float:
        return self.batch_latency_s[m][self.batch_sizes[m].index(b)]


register_policy("proteus")(ProteusPolicy)
