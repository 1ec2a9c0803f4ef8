"""Run metrics: per-query outcomes, a per-second timeseries and the summary.

Outcome of a query (exactly one each; conservation is asserted):
* ``drop``    — dropped by a worker, or not done by late_factor x SLO (default 2x);
* ``timeout`` — done, but end-to-end latency (completion - arrival) > SLO;
* ``ok``      — done within the SLO.

FID is computed or estimated up to four ways; ``fid`` is the served one when the bundle
carries per-image features, else the exact one when it has a generative model, else the table
one (``fid_method`` says which):
* ``fid_served`` (bundles with `features.npz`, i.e. the profiler's): the FID of the features of
  the images actually served: each completed query's (prompt, final model) images, repeats
  included, against the reference statistics (`simulator.served_features`); no table or fitted
  model in between, for any routing, router, mix or cascade length.
* ``fid_table`` (a, realised): per plan epoch, the cascade table of the pair in force evaluated
  at the router and discriminator ratios realised on the epoch's completed queries (r = share
  bypassed by the router, c = share whose light-model score is below τ, the table's own
  semantics), bilinear on the table's r x c grid; epochs weighted by completed queries. Mix
  plans (no cascade), cascades of three or more stages (no table), and policies whose scores
  carry no information (`informative_scores = False`), use the share-weighted single-model FIDs
  of the served models (an approximation: FID is not linear).
* ``fid_planned`` (b, the artifact's method): time average of the planned configurations' FIDs.
* ``fid_exact`` (c, default bundle only): the FID of the multiset of served (prompt, model)
  images under the bundle's generative model — exact under that fitted model for any routing,
  router or policy; three-model cascades and mixes of three or four models extrapolate the fit.

Every policy of one run (and of one figure's comparison) is scored by the same estimator:
``fid_method`` is "served" on a bundle with per-image features, "exact" on a bundle built by
`build_default_bundle` from the committed parameters or a replicate's (`default:replicate=K`)
and "table" on any other (the imported artifact, hand-made bundles). Their
out-of-sample errors against FIDs the HADIS artifact measured on real images are in
`simulator.fid_error` (table tab03 of the report): mean absolute
0.05 FID (exact) and 0.05 (table) on held-out cascade rows, 0.10 (exact) and 1.03 (table: the
linear blend scores random mixes too high) on the artifact's random-routing FIDs; ``served``
has none (0: it is the FID of the served images' own features).

The profiler writes its per-image features into the bundle (`features.npz`), so a run on a
profiled bundle reports ``fid_served``; it equals the cascade table's FID when the served set
is one of the table's (each prompt once, tests/test_served_fid.py). ``fid_served`` is a
summary key only on such bundles.

The timeseries scores each plan epoch by the summary's estimator too: ``realised_fid`` is the
FID of the images of the queries that arrived in the epoch and completed, by ``fid_method``
(a column of its own): served or exact, the epoch's own image set (not a share of the run's:
FID is not linear, so the run's ``fid`` is not an average of them); table, the epoch's
``fid_table`` term. ``realised_fid_table`` keeps the table estimate on every bundle. An epoch
with no image (or, served, a single one) is NaN.

Dropped queries return no image, so every FID covers the completed queries only (HADIS §5.1:
FID of the generated images against the reference set); drops count in the SLO-violation
ratio. Counting a dropped query as, say, the fastest model's image would not penalise dropping:
mixing images of two models lowers FID (on the default bundle's Azure run DiffServe, 39% of
queries violating, goes from 25.21 to 24.71 that way while HADIS stays at 25.20).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
from scipy.interpolate import RegularGridInterpolator

from simulator.bundle import Bundle
from simulator.cascade import stage_shares
from simulator.config import SimConfig
from simulator.core import PlanState, escalates
from simulator.engine import RawRun
from simulator.policy import Plan, Policy

OUTCOMES = ("ok", "timeout", "drop")
OK, TIMEOUT, DROP = range(3)
# (prompt_idx, model_idx, group, n_groups) of served images -> FID per group (NaN: none)
GroupsFid = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


class ConservationError(AssertionError):
    pass


def classify(raw: RawRun, config: SimConfig) -> np.ndarray:
    """Outcome code per query (OK, TIMEOUT, DROP)."""
    latency = raw.completion_s - raw.arrival_s
    done = (
        ~raw.dropped
        & np.isfinite(raw.completion_s)
        & (latency <= config.late_factor * config.slo_s)
    )
    outcome = np.full(len(raw.arrival_s), DROP, dtype=np.int8)
    outcome[done & (latency <= config.slo_s)] = OK
    outcome[done & (latency > config.slo_s)] = TIMEOUT
    return outcome


def check_conservation(raw: RawRun, outcome: np.ndarray) -> None:
    """Every query ends in exactly one outcome; completed and dropped are disjoint."""
    n = len(raw.arrival_s)
    counts = np.bincount(outcome, minlength=3)
    if counts.sum() != n or len(outcome) != n:
        raise ConservationError(f"{counts.sum()} outcomes for {n} arrivals")
    both = raw.dropped & np.isfinite(raw.completion_s)
    if both.any():
        raise ConservationError(f"{int(both.sum())} queries both dropped and completed")
    finished = raw.dropped | np.isfinite(raw.completion_s)
    if (~finished & (outcome != DROP)).any():
        raise ConservationError("an unfinished query was not counted as dropped")


class FidTable:
    """Cascade-table FID lookups: bilinear on a full r x c grid, nearest row otherwise."""

    def __init__(self, bundle: Bundle) -> None:
        self.fid_alone = dict(zip(bundle.models["model"], bundle.models["fid_alone"]))
        self._pair: dict[tuple[str, str], object] = {}
        for (light, heavy), rows in bundle.cascades.groupby(["light", "heavy"], sort=False):
            r = np.sort(rows["router_ratio"].unique())
            c = np.sort(rows["disc_ratio"].unique())
            if len(rows) == len(r) * len(c) and len(r) > 1 and len(c) > 1:
                grid = rows.pivot_table(index="router_ratio", columns="disc_ratio", values="fid")
                self._pair[(light, heavy)] = RegularGridInterpolator(
                    (r, c), grid.loc[r, c].to_numpy(), bounds_error=False, fill_value=None
                )
            else:
                self._pair[(light, heavy)] = rows[["router_ratio", "disc_ratio", "fid"]].to_numpy()

    def cascade_fid(self, light: str, heavy: str, router_ratio: float, disc_ratio: float) -> float:
        table = self._pair.get((light, heavy))
        if table is None:  # a pair outside the table: the nominal heavy share interpolates
            share = router_ratio + (1 - router_ratio) * disc_ratio
            return (1 - share) * self.fid_alone[light] + share * self.fid_alone[heavy]
        point = (min(max(router_ratio, 0.0), 1.0), min(max(disc_ratio, 0.0), 1.0))
        if isinstance(table, RegularGridInterpolator):
            return float(table([point])[0])
        nearest = np.argmin((table[:, 0] - point[0]) ** 2 + (table[:, 1] - point[1]) ** 2)
        return float(table[nearest, 2])

    def mix_fid(self, shares: dict[str, float]) -> float:
        total = sum(shares.values())
        return sum(self.fid_alone[m] * s for m, s in shares.items()) / total

    def planned_fid(self, plan: Plan) -> float:
        if plan.fid is not None:
            return float(plan.fid)
        if plan.stages is None:
            return self.mix_fid(dict(plan.mix))
        if len(plan.stages) == 2:
            return self.cascade_fid(plan.light, plan.heavy, plan.router_ratio, plan.disc_ratio)
        _, returned = stage_shares(plan.router_ratio, plan.disc_ratios)
        return self.mix_fid(dict(zip(plan.stages, returned)))


def epoch_of(raw: RawRun) -> np.ndarray:
    """Index of the plan in force when each query arrived."""
    applied = np.array([p.applied_s for p in raw.plans])
    return np.maximum(np.searchsorted(applied, raw.arrival_s, side="right") - 1, 0)


def table_fid_per_epoch(
    raw: RawRun, outcome: np.ndarray, bundle: Bundle, policy: Policy, fids: FidTable
) -> tuple[np.ndarray, np.ndarray]:
    """(FID per epoch, completed queries per epoch) by method (a), the table."""
    epoch = epoch_of(raw)
    completed = outcome != DROP
    n_epochs = len(raw.plans)
    fid = np.full(n_epochs, np.nan)
    weight = np.bincount(epoch[completed], minlength=n_epochs)
    names = bundle.model_names
    router = np.asarray(policy.router_scores, dtype=np.float64)
    quality = np.asarray(policy.quality_scores, dtype=np.float64)
    informative = getattr(policy, "informative_scores", True)
    for k, record in enumerate(raw.plans):
        if weight[k] == 0:
            continue
        mask = completed & (epoch == k)
        plan = record.plan
        if plan.stages is not None and len(plan.stages) == 2 and informative:
            state = PlanState.from_plan(plan, bundle.model_index, router, quality)
            light = state.first
            r = float(raw.bypassed[mask].mean())
            c = float(escalates(quality[raw.prompt_idx[mask], light], state.tau_of[light]).mean())
            fid[k] = fids.cascade_fid(plan.light, plan.heavy, r, c)
        else:
            served = np.bincount(raw.final_model[mask], minlength=len(names))
            fid[k] = fids.mix_fid({names[m]: n for m, n in enumerate(served) if n > 0})
    return fid, weight


def images_fid_of(bundle: Bundle) -> tuple[str, GroupsFid | None]:
    """(estimator, FID of groups of served (prompt, model) images) of a bundle's headline FID,
    whatever a run completes: "served" (per-image features), "exact" (a generative model) or
    "table" (no such function: None) — one estimator for every run on it."""
    from simulator.default_bundle import generative_model, served_fid_groups

    if bundle.features is not None:
        return "served", bundle.features.fid_groups
    model = generative_model(bundle)
    return ("exact", partial(served_fid_groups, *model)) if model is not None else ("table", None)


def images_fid_per_epoch(raw: RawRun, outcome: np.ndarray, fid_of: GroupsFid) -> np.ndarray:
    """FID per epoch of the images its completed queries were served (prompt, final model), by
    `fid_of`; NaN for an epoch without images or too few for the estimator."""
    done = outcome != DROP
    return fid_of(raw.prompt_idx[done], raw.final_model[done], epoch_of(raw)[done], len(raw.plans))


@dataclass(frozen=True, eq=False)
class EpochFid:
    """Per plan epoch: the FID by the run's estimator `method`, by the table, and the
    completed queries (the table's weights in the summary's ``fid_table``)."""

    method: str
    fid: np.ndarray
    table: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(
        cls, raw: RawRun, outcome: np.ndarray, bundle: Bundle, policy: Policy, fids: FidTable
    ) -> EpochFid:
        method, fid_of = images_fid_of(bundle)
        table, weight = table_fid_per_epoch(raw, outcome, bundle, policy, fids)
        fid = table if fid_of is None else images_fid_per_epoch(raw, outcome, fid_of)
        return cls(method, fid, table, weight)


def plan_intervals(raw: RawRun, horizon_s: float) -> np.ndarray:
    """Seconds each plan was in force within [0, horizon_s]."""
    starts = np.array([min(p.applied_s, horizon_s) for p in raw.plans])
    ends = np.append(starts[1:], horizon_s)
    return np.maximum(ends - starts, 0.0)


def queries_frame(raw: RawRun, outcome: np.ndarray, bundle: Bundle) -> pd.DataFrame:
    names = list(bundle.model_names)
    return pd.DataFrame(
        {
            "query_id": np.arange(len(raw.arrival_s), dtype=np.int64),
            "prompt_id": raw.prompt_idx,
            "arrival_s": raw.arrival_s,
            "start_s": raw.start_s,
            "first_done_s": raw.first_done_s,
            "completion_s": raw.completion_s,
            "latency_s": raw.completion_s - raw.arrival_s,
            "first_model": pd.Categorical.from_codes(raw.first_model, categories=names),
            "final_model": pd.Categorical.from_codes(raw.final_model, categories=names),
            "bypassed": raw.bypassed,
            "escalated": raw.escalated,
            "outcome": pd.Categorical.from_codes(outcome, categories=list(OUTCOMES)),
        }
    )


def timeseries_frame(
    raw: RawRun,
    outcome: np.ndarray,
    bundle: Bundle,
    fids: FidTable,
    epoch_fid: EpochFid,
    tick_s: float,
) -> pd.DataFrame:
    """One row per simulated second: demand, outcomes by arrival second, completions and
    workers per model, the plan in force (thresholds, planned and realised FID: by the run's
    estimator, named in `fid_method`, and by the table) and the planner's inputs (demand and
    queue per model, the controller's estimates at the last tick's end)."""
    n_s = int(np.floor(raw.arrival_s[-1])) + 1 if len(raw.arrival_s) else 1
    second = np.minimum(raw.arrival_s.astype(np.int64), n_s - 1)
    arrivals = np.bincount(second, minlength=n_s)
    frame = {"second": np.arange(n_s), "arrivals": arrivals}
    for code, name in ((OK, "ok"), (TIMEOUT, "timeouts"), (DROP, "drops")):
        frame[name] = np.bincount(second[outcome == code], minlength=n_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["slo_violation_ratio"] = np.where(
            arrivals > 0, (frame["timeouts"] + frame["drops"]) / np.maximum(arrivals, 1), 0.0
        )
    # completions per model: first stage and (if different) final stage, by completion second
    for m, name in enumerate(bundle.model_names):
        first = raw.first_done_s[(raw.first_model == m) & np.isfinite(raw.first_done_s)]
        final_mask = (raw.final_model == m) & (raw.first_model != m) & np.isfinite(raw.completion_s)
        t = np.concatenate([first, raw.completion_s[final_mask]]).astype(np.int64)
        frame[f"completions_{name}"] = np.bincount(t[t < n_s], minlength=n_s)
    applied = np.array([p.applied_s for p in raw.plans])
    in_force = np.maximum(np.searchsorted(applied, np.arange(n_s), side="right") - 1, 0)
    plans = [p.plan for p in raw.plans]
    for name in bundle.model_names:
        per_plan = np.array([p.workers.get(name, 0) for p in plans])
        frame[f"workers_{name}"] = per_plan[in_force]
    labels = np.array([p.label for p in plans], dtype=object)
    frame["plan"] = labels[in_force]
    frame["router_ratio"] = np.array([p.router_ratio for p in plans])[in_force]
    frame["disc_ratio"] = np.array([p.disc_ratio for p in plans])[in_force]
    # the planner's inputs in force at each second: the estimates of the last tick that ended
    tick_end = (np.arange(len(raw.demand_log)) + 1) * tick_s
    latest = np.searchsorted(tick_end, np.arange(n_s), side="right") - 1
    frame["demand_estimate_qps"] = _in_force(raw.demand_log, latest)
    queues = np.asarray(raw.queue_log, dtype=np.float64).reshape(-1, len(bundle.model_names))
    for m, name in enumerate(bundle.model_names):
        frame[f"queue_estimate_{name}"] = _in_force(queues[:, m], latest)
    frame["planned_fid"] = np.array([fids.planned_fid(p) for p in plans])[in_force]
    frame["realised_fid"] = epoch_fid.fid[in_force]
    frame["realised_fid_table"] = epoch_fid.table[in_force]
    frame["fid_method"] = epoch_fid.method
    frame["infeasible"] = np.array([p.infeasible for p in plans])[in_force]
    return pd.DataFrame(frame)


def _in_force(log, latest: np.ndarray) -> np.ndarray:
    """Per second, the value of `log` (one per tick) at the latest tick ended (`latest`, -1:
    none yet, 0)."""
    values = np.asarray(log, dtype=np.float64)
    if not len(values):
        return np.zeros(len(latest))
    return np.where(latest >= 0, values[np.maximum(latest, 0)], 0.0)


def summarise(
    raw: RawRun,
    outcome: np.ndarray,
    bundle: Bundle,
    fids: FidTable,
    epoch_fid: EpochFid,
) -> dict:
    n = len(raw.arrival_s)
    counts = np.bincount(outcome, minlength=3)
    completed = outcome != DROP
    latency = (raw.completion_s - raw.arrival_s)[completed]
    table, weight = epoch_fid.table, epoch_fid.weight
    valid = np.isfinite(table) & (weight > 0)
    fid = float(np.average(table[valid], weights=weight[valid])) if valid.any() else None
    fid_exact = exact_fid(raw, completed, bundle)
    fid_served = served_fid(raw, completed, bundle)
    method = epoch_fid.method
    headline = {"served": fid_served, "exact": fid_exact, "table": fid}[method]
    horizon = float(raw.arrival_s[-1]) if n else 0.0
    seconds = plan_intervals(raw, horizon)
    planned = np.array([fids.planned_fid(p.plan) for p in raw.plans])
    plan_share: dict[str, float] = {}
    for record, span in zip(raw.plans, seconds):
        plan_share[record.plan.label] = plan_share.get(record.plan.label, 0.0) + span
    total = seconds.sum()
    heavy_visit = (raw.bypassed | raw.escalated)[completed]
    return {
        "policy": raw.policy_name,
        "arrivals": int(n),
        "ok": int(counts[OK]),
        "timeouts": int(counts[TIMEOUT]),
        "drops": int(counts[DROP]),
        "slo_violation_ratio": float((counts[TIMEOUT] + counts[DROP]) / n) if n else 0.0,
        "fid": _round(headline),
        "fid_method": method,
        "fid_table": _round(fid),
        "fid_exact": _round(fid_exact),
        **({"fid_served": _round(fid_served)} if bundle.features is not None else {}),
        "fid_planned": _round(
            float(np.sum(planned * seconds) / total) if total > 0 else planned[0]
        ),
        "p50_latency_s": _round(float(np.percentile(latency, 50))) if latency.size else None,
        "p99_latency_s": _round(float(np.percentile(latency, 99))) if latency.size else None,
        "mean_latency_s": _round(float(latency.mean())) if latency.size else None,
        "heavy_share": _round(float(heavy_visit.mean())) if heavy_visit.size else 0.0,
        "router_bypass_share": _round(float(raw.bypassed[completed].mean()))
        if completed.any()
        else 0.0,
        "escalation_share": _round(float(raw.escalated[completed].mean()))
        if completed.any()
        else 0.0,
        "gpu_seconds": _round(raw.busy_s),
        "simulated_s": _round(raw.end_s),
        "plans": len(raw.plans),
        "plan_share": {k: _round(v / total) for k, v in sorted(plan_share.items()) if v > 0}
        if total > 0
        else {raw.plans[0].plan.label: 1.0},
        "infeasible_plan_share": _round(
            float(sum(s for r, s in zip(raw.plans, seconds) if r.plan.infeasible) / total)
        )
        if total > 0
        else 0.0,
    }


def exact_fid(raw: RawRun, completed: np.ndarray, bundle: Bundle) -> float | None:
    """FID of the served images under the bundle's generative model (default bundle only)."""
    from simulator.default_bundle import generative_fid

    fid_of = generative_fid(bundle)
    if fid_of is None or not completed.any():
        return None
    return fid_of(raw.prompt_idx[completed], raw.final_model[completed])


def served_fid(raw: RawRun, completed: np.ndarray, bundle: Bundle) -> float | None:
    """FID of the features of the served images (bundles with per-image features only)."""
    if bundle.features is None:
        return None
    return bundle.features.fid(raw.prompt_idx[completed], raw.final_model[completed])


def _round(x: float | None, digits: int = 9) -> float | None:
    return None if x is None else round(float(x), digits)


def compute_metrics(
    raw: RawRun, bundle: Bundle, policy: Policy, config: SimConfig
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(queries, timeseries, summary) of a run; raises ConservationError if outcomes leak."""
    outcome = classify(raw, config)
    check_conservation(raw, outcome)
    fids = FidTable(bundle)
    epoch_fid = EpochFid.of(raw, outcome, bundle, policy, fids)
    queries = queries_frame(raw, outcome, bundle)
    timeseries = timeseries_frame(raw, outcome, bundle, fids, epoch_fid, config.tick_s)
    summary = summarise(raw, outcome, bundle, fids, epoch_fid)
    return queries, timeseries, summary
