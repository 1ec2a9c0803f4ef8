"""The note under a validation's fidelity table (`serving.validate`): one sentence per
simulation beside DIR/sim, saying what it changed, and per diagnostic table written beside it.
Text only: every number it prints was computed by `serving.validate`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from serving.arrival_charge import applied_charge_ms
from serving.fidelity import EXPECTATION_FILE, EXPECTATION_LADDER
from serving.served_shapes import SERVED_SHAPES_FILE
from serving.service_times import SPEED_BIN_S
from simulator.bundle import HOPS, Bundle

PREEMPTION_FILE = "preemption_fit.csv"
SPEED_FILE = "speed_bins.csv"

# how each service-time model draws a batch's time, in the report's words
SERVICE_TIME_TEXT = {
    "deterministic": "each batch at its p50",
    "exponential": "exponential with the p50 as its mean",
    "lognormal": "lognormal through the profile's p50 and p95",
    "shifted-lognormal": "a floor plus a lognormal through the profile's p05, p50 and p95",
    "empirical": "each batch its p50 times a draw from the shape the profile measured",
}


@dataclass(frozen=True)
class Hops:
    """The per-hop overheads of a validation (`overheads` objects, ms): where the applied ones
    came from (`source`), and the measured ones, pooled and per real run."""

    source: str
    applied: dict
    measured: dict
    per_run: dict[str, dict]  # real run folder name -> its hops
    compared_source: str | None = None  # the compared simulation's, if there is one
    compared: dict | None = None


def hops_text(overheads: dict) -> str:
    """'dispatch 45.1 ms (p95 120.0), escalation ...' of an `overheads` object."""
    parts = []
    for hop in HOPS:
        median = overheads.get(f"{hop}_overhead_ms", 0.0)
        p95 = overheads.get(f"{hop}_overhead_p95_ms", median)
        parts.append(f"{hop} {median:.1f} ms (p95 {p95:.1f})")
    return ", ".join(parts)


def service_time_text(backend: str, service_time: str, alternatives: list[str]) -> str:
    """The sentence on a backend whose batch times vary: its workers' service-time model, and
    the models of the error_<model>_service columns."""
    compared = ", ".join(f"error {m} service: {SERVICE_TIME_TEXT[m]}" for m in alternatives)
    return (
        f"Service times: {SERVICE_TIME_TEXT[service_time]} for the {backend} backend's "
        f"workers, whose batch times vary; the same simulation with {compared}."
    )


def idle_latency_text(bundle: Bundle) -> str:
    """The sentence on the latency after idle and its error_back_to_back_latency column."""
    gaps = ", ".join(f"{m} {g:g} s" for m, g in zip(bundle.model_names, bundle.idle_gap_s) if g)
    return (
        "Latency after idle: a worker's batch after t s of idle takes the p50 plus "
        f"min(t / gap, 1) x (the p50 timed after the gap ({gaps}) - the p50); error back "
        "to back latency: the same simulation with the back-to-back p50 alone."
    )


def simulated_spread_text(sim_repeats: int) -> str:
    return (
        f"Simulated spread: over {sim_repeats} simulations, DIR/sim and replicates whose "
        "timing (hops, the order of a re-plan's swaps, batch-time noise) comes from other "
        "random streams (the same trace, seed, policy and mix draws, as in every real run; "
        "`replicate_redraws`). On expectations: their mean (± its standard error) "
        "against the real runs' mean, the error ± its standard error (both means "
        f"uncertain); {EXPECTATION_FILE}: the same over the first "
        f"{', '.join(map(str, EXPECTATION_LADDER))} of them, and with as many replicates "
        "that redraw all (the mix draws and worker choices too)."
    )


def compared_text(hops: Hops, served_latency: str | None, columns: set[str]) -> str:
    """The sentence on DIR/sim-compared (error_compared) and its variants in `columns`."""
    text = f"Compared simulation: hops ({hops.compared_source}) {hops_text(hops.compared)}"
    if served_latency is not None:
        text += f"; the latency profile in {served_latency}"
    if "compared_served_tails" in columns:
        text += (
            "; error compared served tails: the same with its served batches' own p95 "
            "and p05 where it has them, not the profile's shape scaled"
        )
    if "compared_empirical" in columns:
        text += (
            "; error compared empirical: the same p50s, each batch time and hop drawn "
            f"from the shapes its runs measured ({SERVED_SHAPES_FILE} beside it)"
        )
    return text + "."


def profile_rounds_text(profile_rounds: str | Path) -> str:
    return (
        "Error profile fast and slow: DIR/sim's hops with each latency row at the p10 "
        "and the p90 of its rounds' medians (the profile's timing tables in "
        f"{profile_rounds}): the simulation at the machine's fastest and slowest while "
        "it was profiled."
    )


def measured_hops_text(hops: Hops) -> str:
    per_run = "; ".join(f"{run} {hops_text(r)}" for run, r in hops.per_run.items())
    return f"Measured (mean of the real runs): {hops_text(hops.measured)}; per real run: {per_run}."


def leave_one_out_text(columns: set[str]) -> list[str]:
    """The sentences on the error_leave_one_out* columns among the table's `columns`."""
    parts = []
    if "error_leave_one_out" in columns:
        parts.append(
            "Error leave one out: each real run against a simulation with the hops measured "
            "in the other real runs (out of sample), the mean over the runs "
            "(DIR/leave_one_out.csv)."
        )
    if "error_leave_one_out_served" in columns:
        text = (
            "Error leave one out served: the same, with the service times the other runs' "
            "workers measured as the simulated workers' (`serving.service_times`; all runs': "
            "DIR/served_latency.csv); the policy plans with the bundle's profile, as the "
            "serving path's does."
        )
        if "error_leave_one_out_served_tails" in columns:
            text += (
                " Error leave one out served tails: with their own p95 and p05 too, not the "
                "profile's shape scaled (`served_tails`)."
            )
        if "error_leave_one_out_served_empirical" in columns:
            text += (
                " Error leave one out served empirical: the other runs' served p50s, each "
                "batch time and the dispatch and arrival hops drawn from the shapes those "
                f"runs measured (`serving.served_shapes`; all runs': DIR/{SERVED_SHAPES_FILE})."
            )
        parts.append(text)
    return parts


def arrival_charge_text(fit: dict, held_out: bool) -> str:
    """The report's sentence on the arrival charge's sensitivity columns."""
    measured = (
        f"{fit['charge_ms']:.2f} ms (standard error {fit['charge_se_ms']:.2f} ms)"
        if math.isfinite(fit["charge_ms"])
        else "not measurable (no batch's count of arrivals varies within its group)"
    )
    text = (
        "Error arrival charge: DIR/sim with every batch running at a query's arrival "
        f"prolonged by the arrival charge the real runs' batches give, {measured} per arrival "
        f"over {fit['batches']} batches (applied: {applied_charge_ms(fit):g} ms; "
        "`serving.arrival_charge`, per run in DIR/arrival_charge.csv)."
    )
    if held_out:
        text += (
            " Error leave one out arrival charge: each real run against the profile, the hops "
            "and the charge of the other runs (out of sample)."
        )
    return text


def preemption_text(fits: pd.DataFrame) -> str:
    """The note's sentence on `preemption_fit`'s table."""
    per_model = "; ".join(
        f"{f.model} {f.preemptions_p50:g} at the median, {f.slope_s * 1e3:.3f} ± "
        f"{f.slope_se_s * 1e3:.3f} ms of its CPU each, {f.intercept_s * 1e3:.3g} ms never "
        "preempted"
        for f in fits.itertuples()
    )
    return (
        f"Preemptions of a worker's thread per batch of one (DIR/{PREEMPTION_FILE}: its CPU "
        f"time, less the discriminator's charge, fitted on the count): {per_model}."
    )


def speed_text(speeds: pd.DataFrame) -> str:
    """The note's sentence on `speed_over_time`'s table: per model, the range of its bins'
    CPU p50 over all runs, and of their preemption rates."""
    per_model = "; ".join(
        f"{model} {rows.cpu_p50_s.min() * 1e3:.3g}–{rows.cpu_p50_s.max() * 1e3:.3g} ms "
        f"(×{rows.cpu_p50_s.max() / rows.cpu_p50_s.min():.2f} between bins), preempted "
        f"{rows.preemptions_per_ms.min():.2g}–{rows.preemptions_per_ms.max():.2g} times per ms"
        for model, rows in speeds.groupby("model", sort=True)
    )
    return (
        f"The workers' speed as the runs went (DIR/{SPEED_FILE}: batches of one in "
        f"{SPEED_BIN_S:g}-s bins of each run, the p50 CPU time less the discriminator's charge): "
        f"{per_model}."
    )


def bundle_hash_text(real_hashes: list[str], simulated_hash: str) -> str:
    """'' where the real runs served the simulated bundle; else the sentence naming both."""
    if real_hashes == [simulated_hash]:
        return ""
    return (
        f" The real runs were made with bundle content hash {', '.join(real_hashes)}, the "
        f"simulations with {simulated_hash}."
    )
