"""The serving stack's per-hop overheads (`simulator.bundle.HOPS`) as a validation measures
them from a real run's own timestamps (the plan hop from its plans' and swaps' log), pools them
over the runs, and applies them to a
simulation's bundle (`--overheads`: measured, the bundle's, none, or an overheads.json)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from serving.fidelity import read_real_run
from serving.loadgen import SWAPS_FILE
from serving.served_shapes import sent_once_hops
from simulator.bundle import HOPS, MAX_OVERHEAD_MS, Bundle, BundleError, check_overheads
from simulator.config import SimConfig
from simulator.errors import InputError
from simulator.json_input import read_json_object

OVERHEAD_MODES = ("measured", "bundle", "none")  # or the path of an overheads.json


def hop_overheads_ms(real: pd.DataFrame) -> dict[str, float]:
    """The serving stack's per-hop overheads in one real run (a bundle.json `overheads`
    object, ms), from the run's own timestamps: `hops_s`, a completed query's latency less the
    time the server measured it spend where the simulator models time (`serving.loadgen`). No
    simulation enters, so the queueing of either driver, and whether their plans agree, does
    not either. Over the queries never sent again (resent or retried): the dispatch hop is the
    median and 95th percentile of `hops_s` for queries served by one model; for two it is
    dispatch plus escalation: the median less the dispatch median, the p95 at the dispatch
    hop's spread (the same Ray handle call). The arrival hop is the median and 95th percentile
    of `counted_after_s` over every query the ingress counted. NaN for a hop no query took, and
    for a run folder without the column (made before the serving path recorded it)."""
    hops, visits = sent_once_hops(real)

    def percentile_ms(n_visits: int, q: float) -> float:
        x = hops[visits == n_visits]
        return float(np.percentile(x, q)) * 1e3 if x.size else math.nan

    dispatch = percentile_ms(1, 50)
    spread = percentile_ms(1, 95) / dispatch if dispatch > 0 else 1.0
    escalation = percentile_ms(2, 50) - dispatch
    counted = real.get("counted_after_s", pd.Series(dtype=np.float64)).to_numpy(np.float64)
    counted = counted[~np.isnan(counted)]
    arrival, arrival_p95 = (
        np.percentile(counted, [50, 95]) * 1e3 if counted.size else (math.nan, math.nan)
    )
    return {
        "dispatch_overhead_ms": dispatch,
        "dispatch_overhead_p95_ms": dispatch * spread,
        "escalation_overhead_ms": escalation,
        "escalation_overhead_p95_ms": escalation * spread,
        "arrival_overhead_ms": float(arrival),
        "arrival_overhead_p95_ms": float(arrival_p95),
    }


def plan_hop_ms(run_dir: Path, summary: dict, plan_interval_s: float) -> dict[str, float]:
    """The route, plan and configure hops in one real run (an `overheads` object's fields for
    them, ms). The route hop: the median delay from a re-plan's tick to the ingress's
    `set_plan` (routing by it from then on). The plan hop: from a re-plan's tick to its
    workers' configuration, where the simulator's workers switch. The configure hop (only
    where the run logged its swaps): the median over the swaps at re-plans of the delay from
    their plan's `set_plan` to the worker's `configure`, over the swap's rank k in its plan
    (the k-th to be configured): the step of `plan_switch=per-swap`. Over the re-plans
    (`plans.csv`, those made at a tick: planned at plan_interval_s / 2 or later, not the
    replay's first): where the run logged its swaps (`swaps.csv`, since session 41), the median
    over their swaps of the delay from the plan's tick to the worker's `configure` (each swap
    belongs to the latest plan planned at or before its request); else the median delay to the
    ingress's `set_plan` plus the median over the swaps from the plan's request to the
    worker's `configure` (the summary's `configure_delay_s`; before session 39, `swap_s`'s
    `reconfigure_mean_s`, their mean over its swaps), which counts the `set_plan` call twice:
    the request comes before it, and the `configure` calls after it returns (on session 41's
    runs, 0-7 ms more than their swaps' own delays). Without swaps, the delay to `set_plan`
    alone; NaN for a run without re-plans or a folder without `plans.csv` (made before
    session 13)."""
    path = run_dir / "plans.csv"
    if not path.is_file():
        return _switch_hops_ms(math.nan, math.nan)
    plans = _read_columns(path, ["planned_s", "applied_s"])
    replans = plans[plans["planned_s"] >= plan_interval_s / 2]
    if not len(replans):
        return _switch_hops_ms(math.nan, math.nan)
    route_ms = float(np.median(replans["applied_s"] - replans["planned_s"])) * 1e3
    swaps_path = run_dir / SWAPS_FILE
    if swaps_path.is_file():
        swaps = _read_columns(swaps_path, ["requested_s", "configured_s"])
        delays = _swap_delays(replans, swaps)
        if delays is not None:  # swaps at re-plans: their own delays
            after_tick_s, step_s = delays
            return _switch_hops_ms(route_ms, after_tick_s * 1e3, step_s * 1e3)
        return _switch_hops_ms(route_ms, route_ms)
    return _switch_hops_ms(route_ms, route_ms + _configure_delay_s(summary) * 1e3)


def _switch_hops_ms(
    route_ms: float, plan_ms: float, configure_ms: float = math.nan
) -> dict[str, float]:
    hops = {"route": route_ms, "plan": plan_ms, "configure": configure_ms}
    return {f"{hop}_overhead{q}_ms": ms for hop, ms in hops.items() for q in ("", "_p95")}


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        return pd.read_csv(path, usecols=columns).astype(np.float64)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot read {' and '.join(columns)} ({problem})") from None


def _swap_delays(replans: pd.DataFrame, swaps: pd.DataFrame) -> tuple[float, float] | None:
    """Over `swaps` made at `replans` (sorted by `planned_s`; each swap the latest planned at
    or before its request): the median seconds from their plan's tick to the worker's
    `configure`, and the median of the seconds from their plan's `set_plan` (`applied_s`) to
    it over the swap's rank among its plan's swaps by `configure`; None where none was."""
    swaps = swaps.dropna()
    planned_s = replans["planned_s"].to_numpy()
    plan = np.searchsorted(planned_s, swaps["requested_s"].to_numpy(), side="right") - 1
    at_replan = plan >= 0
    if not at_replan.any():
        return None
    plan = plan[at_replan]
    configured_s = swaps["configured_s"].to_numpy()[at_replan]
    rank = pd.Series(configured_s).groupby(plan).rank(method="first").to_numpy()
    after_set_s = configured_s - replans["applied_s"].to_numpy()[plan]
    return float(np.median(configured_s - planned_s[plan])), float(np.median(after_set_s / rank))


def _configure_delay_s(summary: dict) -> float:
    """A run's typical delay from a plan's request to a swap's `configure` (0: no swaps)."""
    logged = summary.get("configure_delay_s") or {}
    if logged.get("count"):
        return float(logged["median"])
    swaps = [v for v in (summary.get("swap_s") or {}).values() if "reconfigure_mean_s" in v]
    count = sum(v["count"] for v in swaps)
    return sum(v["count"] * v["reconfigure_mean_s"] for v in swaps) / count if count else 0.0


def run_hops_ms(
    run_dir: Path, queries: pd.DataFrame, summary: dict, plan_interval_s: float
) -> dict[str, float]:
    """Every hop one real run measures (`hop_overheads_ms`, `plan_hop_ms`), ms."""
    return {**hop_overheads_ms(queries), **plan_hop_ms(run_dir, summary, plan_interval_s)}


def measured_overheads_ms(run_dirs: list[Path]) -> dict[str, float]:
    """The hops validate measures in the real run folders `run_dirs` (one experiment's): each
    run's at the plan interval its config.json records, pooled (`pooled_overheads_ms`). A
    function of the runs alone, so another experiment's calibration can take them whatever
    state that experiment's report is in."""
    per_run = []
    for run_dir in run_dirs:
        queries, _, summary = read_real_run(run_dir)
        sim = read_json_object(run_dir / "config.json", keys=("sim",))["sim"]
        interval_s = float(sim.get("plan_interval_s", SimConfig().plan_interval_s))
        per_run.append(run_hops_ms(run_dir, queries, summary, interval_s))
    return pooled_overheads_ms(per_run)


def pooled_overheads_ms(per_run: list[dict[str, float]]) -> dict[str, float]:
    """One `overheads` object: each field the mean over the real runs that measured it, to
    0.1 ms, at most the bundle's MAX_OVERHEAD_MS (a run whose queueing differs from the
    simulated one's measures that, not a hop); a hop with a median <= 0 (or none measured)
    gets none."""
    pooled = {}
    for hop in HOPS:
        for field in (f"{hop}_overhead_ms", f"{hop}_overhead_p95_ms"):
            values = [v for r in per_run if (v := r.get(field, math.nan)) == v]  # not NaN
            pooled[field] = (
                round(min(float(np.mean(values)), MAX_OVERHEAD_MS), 1) if values else 0.0
            )
        if pooled[f"{hop}_overhead_ms"] <= 0:
            pooled[f"{hop}_overhead_ms"] = pooled[f"{hop}_overhead_p95_ms"] = 0.0
        elif pooled[f"{hop}_overhead_p95_ms"] <= pooled[f"{hop}_overhead_ms"]:
            pooled[f"{hop}_overhead_p95_ms"] = pooled[f"{hop}_overhead_ms"]
    return pooled


def calibration_overheads(
    calibration: dict[str, float], others: dict[str, dict[str, float]]
) -> tuple[dict[str, float], list[str]]:
    """The hops a calibration column applies: the calibration experiment's `overheads`
    object; where its runs measured no plan hop (a policy that never re-plans), the route,
    plan and configure hops are each the median over `others` (other experiments' pooled
    `overheads`, by name) that measured a plan hop (> 0), of those that measured it. Also the
    names those medians took (none where the calibration's own are kept). `others` must leave
    out the experiment judged: every number then comes from runs other than its own."""
    hops = dict(calibration)
    if hops.get("plan_overhead_ms", 0.0) > 0:
        return hops, []
    sources = sorted(n for n, o in others.items() if o.get("plan_overhead_ms", 0.0) > 0)
    if sources:
        for hop in ("route", "plan", "configure"):
            values = [v for n in sources if (v := others[n].get(f"{hop}_overhead_ms", 0.0)) > 0]
            median_ms = round(float(np.median(values)), 1) if values else 0.0
            hops[f"{hop}_overhead_ms"] = hops[f"{hop}_overhead_p95_ms"] = median_ms
    return hops, sources


def with_overheads(bundle: Bundle, overheads: dict[str, float]) -> Bundle:
    """`bundle` with this `overheads` object (ms) in its meta."""
    check_overheads(overheads)
    return dataclasses.replace(bundle, meta={**bundle.meta, "overheads": dict(overheads)})


def overheads_spec(spec: str, flag: str = "--overheads") -> str | dict[str, float]:
    """`--overheads` (or `flag`, which errors name): one of OVERHEAD_MODES, or the path of a
    JSON `overheads` object (such as DIR/overheads.json of an earlier validation)."""
    if spec in OVERHEAD_MODES:
        return spec
    path = Path(spec)
    if not path.is_file():
        raise InputError(
            f"{flag} {spec!r}: expected {', '.join(OVERHEAD_MODES)} or an overheads.json file"
        )
    try:
        data = read_json_object(path)
        check_overheads(data)
    except (ValueError, UnicodeDecodeError, BundleError) as exc:
        problem = str(exc).removeprefix("bundle.json: column overheads.").splitlines()[0]
        raise InputError(f"{flag} {spec}: {problem}") from None
    return data


def applied_overheads(spec, bundle: Bundle, measured: dict[str, float]) -> dict[str, float]:
    """The `overheads` object the compared simulation runs with."""
    if isinstance(spec, dict):
        return dict(spec)
    if spec == "measured":
        return dict(measured)
    if spec == "bundle":
        return dict(bundle.meta.get("overheads", {}))
    return {}
