"""Simulator vs real serving on the same inputs and seed (the way Vidur, Frontier and
LLMServingSim validate): `repeats` real runs (serve + load generator, a fresh Serve instance
each) and one simulated run, then a fidelity table with each error beside the real runs' own
run-to-run spread (`serving.fidelity`), and a PNG overlaying their timeseries.

DIR/real-1 ... real-N and DIR/sim are ordinary run folders; DIR/fidelity.csv holds one row per
metric: real mean, real spread (sample std; for shares in percentage points), simulated value,
error (relative % for latencies, throughput and completions; percentage points for shares) and
whether it meets the goal (issue 14: |p50| <= 5%, |p99| <= 10%, violation ratio within 1 pp or
the real spread, the same plan in >= 90% of plan epochs).

The per-hop overheads of the serving stack (`simulator.bundle.HOPS`) are measured from the real
runs' own timestamps, query by query, and the plan hop from their plans' and swaps' log
(`serving.hops`), and applied to the simulation the
table compares with (`--overheads measured`, the default), or taken from the bundle or from a
file (DIR/overheads.json of an earlier validation, for an out-of-sample check): DIR/sim is that
simulation, DIR/sim-no-overhead the one without (and DIR/sim-measured-overheads the in-sample
one, when the applied overheads are not measured), DIR/overheads.csv the values per real run
and DIR/overheads.json their mean (a bundle.json `overheads` object). With two real runs or
more, each is also held out: compared with a simulation that applies the hops of the other runs
only (DIR/leave_one_out.csv; the table's `error_leave_one_out`, the mean over the runs), so the
hops are never fitted on the run they are judged against. `compare_overheads` and
`compare_served_latency` (another experiment's overheads.json and served_latency.csv, or any
latency table in the bundle's shape) add DIR/sim-compared, a prediction from measurements made
elsewhere (`error_compared`). DIR/plan_inputs.csv sets the planners' inputs side by side at
each re-plan (`serving.plan_agreement`). Every run folder holds its batches (`batches.csv`, the
simulations' too), and DIR/parting.csv where each real run's batches and DIR/sim's first part,
worker by worker, and where the real runs part from each other and the simulated replicates
from DIR/sim (`serving.batch_parting`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from serving.arrival_charge import (
    ARRIVAL_CHARGE_FILE,
    applied_charge_ms,
    arrival_charge_fit,
)
from serving.batch_parting import (
    PARTING_FILE,
    ROUTING_FILE,
    first_workers,
    parting_text,
    routing_text,
    simulated_batches,
    validation_parting,
    validation_routing,
)
from serving.fidelity import (
    EXPECTATION_FILE,
    completed_latency_s,
    expectation_ladder,
    fidelity_table,
    held_out_errors,
    markdown,
    read_real_run,
    real_run_dirs,
    run_metrics,
)
from serving.fidelity_note import (
    PREEMPTION_FILE,
    SPEED_FILE,
    Hops,
    arrival_charge_text,
    bundle_hash_text,
    compared_text,
    hops_text,
    idle_latency_text,
    leave_one_out_text,
    measured_hops_text,
    preemption_text,
    profile_rounds_text,
    service_time_text,
    simulated_spread_text,
    speed_text,
)
from serving.hops import (
    applied_overheads,
    pooled_overheads_ms,
    run_hops_ms,
    with_overheads,
)
from serving.loadgen import planner_log_writer
from serving.plan_agreement import (
    agreement_shares,
    agreement_text,
    plan_inputs_table,
    plan_inputs_text,
    same_plan_share,
)
from serving.plan_replay import PLAN_REPLAY_FILE, plan_replay_table, plan_replay_text
from serving.planner_inputs import OBSERVATIONS_FILE
from serving.profile_rounds import rounds_bundles
from serving.query_classes import CLASSES_FILE, query_classes_table, query_classes_text
from serving.served_shapes import (
    SERVED_SHAPES_FILE,
    compared_shapes,
    served_shapes,
    with_shapes,
)
from serving.service_times import (
    BATCHES_FILE,
    compared_latency,
    compared_latency_served_tails,
    discriminator_charge_s,
    preemption_fit,
    read_batches,
    served_latency_table,
    speed_over_time,
    with_served_latency,
)
from serving.setup import SIM_REPEATS, SIMULATOR_MODELS, ServeSetup
from serving.stack import recorded_stack
from simulator.atomic import atomic_folder
from simulator.bundle import (
    ARRIVAL_CHARGE_FIELD,
    Bundle,
)
from simulator.config import REPLICATE_REDRAWS, ROUTING_MOMENTS, SimConfig
from simulator.errors import InputError
from simulator.json_input import read_json_object
from simulator.results import write_run
from simulator.service_shape import EMPIRICAL_SERVICE

FIDELITY_FILE = "fidelity.csv"  # written last: a folder that has it holds a whole report
REPORT_FILE = "fidelity.md"


def plot_overlay(real_ts: list[pd.DataFrame], sim_ts: pd.DataFrame, path: Path, title: str):
    """Completions per second, SLO violation ratio per arrival second and workers per model:
    each real run (thin) and the simulated one (thick, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    workers = [c for c in sim_ts.columns if c.startswith("workers_")]
    completions = [c for c in sim_ts.columns if c.startswith("completions_")]
    for k, ts in enumerate([*real_ts, sim_ts]):
        is_sim = k == len(real_ts)
        style = {"lw": 2.0, "ls": "--", "color": "black"} if is_sim else {"lw": 0.8, "alpha": 0.7}
        label = "simulated" if is_sim else f"real {k + 1}"
        axes[0].plot(ts["second"], ts[completions].sum(axis=1), label=label, **style)
        axes[1].plot(ts["second"], ts["slo_violation_ratio"], label=label, **style)
        if is_sim or k == 0:
            for j, c in enumerate(workers):
                color = "black" if is_sim else f"C{j}"
                axes[2].step(
                    ts["second"],
                    ts[c],
                    where="post",
                    color=color,
                    ls="--" if is_sim else "-",
                    label=f"{label} {c[8:]}",
                )
    axes[0].set_ylabel("completions / s")
    axes[1].set_ylabel("SLO violation ratio")
    axes[2].set_ylabel("workers")
    axes[2].set_xlabel("second")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=6, ncol=2)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@dataclasses.dataclass(frozen=True)
class _RealRuns:
    """A validation's real runs: their folders, each one's (queries, timeseries, summary), the
    batches their workers served (None: a run that did not record them), the hops measured in
    each (`run_hops_ms`) and its metrics (`run_metrics`)."""

    dirs: list[Path]
    runs: list[tuple[pd.DataFrame, pd.DataFrame, dict]]
    batches: list[pd.DataFrame] | None
    hops: list[dict]
    metrics: list[dict]

    @classmethod
    def read(cls, dirs: list[Path], model_names, plan_interval_s: float) -> _RealRuns:
        runs = [read_real_run(d) for d in dirs]  # bad input: before anything is written
        return cls(
            dirs,
            runs,
            read_batches(dirs, model_names),
            [run_hops_ms(d, q, summary, plan_interval_s) for d, (q, _, summary) in zip(dirs, runs)],
            [run_metrics(q, summary, model_names) for q, _, summary in runs],
        )

    def without(self, k: int) -> _RealRuns:
        """The other runs than run `k` (its leave-one-out calibration)."""

        def drop(items):
            return None if items is None else items[:k] + items[k + 1 :]

        return _RealRuns(*(drop(getattr(self, f.name)) for f in dataclasses.fields(self)))

    @property
    def queries(self) -> list[pd.DataFrame]:
        return [q for q, _, _ in self.runs]

    @property
    def timeseries(self) -> list[pd.DataFrame]:
        return [ts for _, ts, _ in self.runs]

    def arrivals_and_batches(self) -> list[tuple[np.ndarray, pd.DataFrame]]:
        """Each run's arrivals and batches, for the arrival charge (`serving.arrival_charge`);
        none without batches."""
        return [(q["arrival_s"].to_numpy(), b) for q, b in zip(self.queries, self.batches or [])]


@dataclasses.dataclass
class _Simulations:
    """A validation's simulations, all of one trace, seed and policy, each with its own hops,
    bundle (`base`) and service-time model; a named one (`folder`) is written as a run folder
    in `out` and listed in `written`."""

    out: Path
    setup: ServeSetup
    trace: object
    bundle: Bundle
    config: SimConfig  # the service-time model validate judges (`simulation_config`)
    log: object
    written: list[str] = dataclasses.field(default_factory=list)

    def run(self, overheads_ms: dict, folder=None, base=None, replicate=0, service=None):
        """One simulation: its workers serve by `base` (default: the bundle), its policy plans
        with the bundle, as the serving path's controller does whatever its workers take."""
        from simulator.run import run_simulation

        base = self.bundle if base is None else base
        sim = run_simulation(
            with_overheads(base, overheads_ms),
            self.trace,
            self.setup.policy,
            self.config if service is None else service,
            self.setup.options,
            replicate=replicate,
            planner_bundle=with_overheads(self.bundle, overheads_ms),
        )
        if folder is not None:
            self.written.append(folder)
            write_run(
                self.out / folder,
                sim.queries,
                sim.timeseries,
                sim.summary,
                sim.config,
                sim.raw.planner_wall_s,
                extras=[
                    planner_log_writer(sim.raw, base.model_names, self.config.tick_s),
                    _batches_writer(sim.raw, base.model_names),
                ],
            )
            self.log(
                f"{folder}: p50 {_seconds(sim.summary['p50_latency_s'])}, violations "
                f"{sim.summary['slo_violation_ratio']:.3f}"
            )
        return sim

    def metrics(self, overheads_ms: dict, folder=None, base=None, replicate=0, service=None):
        """`run`'s metrics (`run_metrics`)."""
        sim = self.run(overheads_ms, folder, base, replicate, service)
        return run_metrics(sim.queries, sim.summary, self.bundle.model_names)


def _batches_writer(raw, model_names):
    """A `write_run` extra: the simulation's batches as DIR/batches.csv."""

    def write(staging: Path) -> None:
        table = simulated_batches(raw, model_names)
        table.to_csv(staging / BATCHES_FILE, index=False, float_format="%.9g")

    return write


def _compared_bundles(
    served_latency: str | None, bundle: Bundle, tails_vary: bool
) -> tuple[Bundle, Bundle | None, Bundle | None]:
    """The bundle with another validation's served latency (`compared_latency`; without one,
    `bundle`), with those batches' own tails where batch times vary, and with their measured
    shapes where it has them (None where not)."""
    if served_latency is None:
        return bundle, None, None
    compared = compared_latency(served_latency, bundle)
    if not tails_vary:
        return compared, None, None
    shapes = compared_shapes(served_latency, bundle)
    shaped = None
    if shapes is not None and (shapes["kind"] == "latency").any():
        shaped = with_shapes(compared, shapes)
    return compared, compared_latency_served_tails(served_latency, bundle), shaped


def _write_batch_tables(
    out: Path, bundle: Bundle, real: _RealRuns, config: SimConfig, uses_disc: bool, tails: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From the real runs' served batches: DIR/served_latency.csv, the batches' and hops'
    measured shapes (DIR/served_shapes.csv, where batch times vary: `tails`), the preemption
    fit and the workers' speed over time; returns the last two (empty without batches)."""
    fits = speeds = pd.DataFrame()
    if real.batches is None:
        return fits, speeds
    all_batches = pd.concat(real.batches, ignore_index=True)
    served = served_latency_table(bundle, all_batches, config, uses_disc)
    served.to_csv(out / "served_latency.csv", index=False, float_format="%.6g")
    if tails:
        shapes = served_shapes(bundle, real.batches, real.queries, config, uses_disc)
        if len(shapes):
            shapes.to_csv(out / SERVED_SHAPES_FILE, index=False, float_format="%.10g")
    runs = {d.name: b for d, b in zip(real.dirs, real.batches)}
    charges = {run: discriminator_charge_s(b, config, uses_disc) for run, b in runs.items()}
    fits = preemption_fit(all_batches, np.concatenate(list(charges.values())))
    if len(fits):
        fits.to_csv(out / PREEMPTION_FILE, index=False, float_format="%.6g")
    speeds = speed_over_time(runs, charges)
    if len(speeds):
        speeds.to_csv(out / SPEED_FILE, index=False, float_format="%.6g")
    return fits, speeds


# leave_one_out.csv's `latency` (what the held-out simulation's profile and hops were) -> the
# fidelity table's column of its mean error
LEAVE_ONE_OUT_COLUMNS = {
    "profile": "error_leave_one_out",
    "served": "error_leave_one_out_served",
    "served_tails": "error_leave_one_out_served_tails",
    "served_empirical": "error_leave_one_out_served_empirical",
    "profile_arrival_charge": "error_leave_one_out_arrival_charge",
}


def _leave_one_out(
    sims: _Simulations, real: _RealRuns, config: SimConfig, uses_disc: bool, tails: bool
) -> pd.DataFrame:
    """Each real run against simulations calibrated on the other runs only: their hops with
    the profile, with their served batch times (with their own tails and with their measured
    shapes, where batch times vary: `tails`) and with their arrival charge. One row per run and
    simulation (`LEAVE_ONE_OUT_COLUMNS`' `latency`), its hops and errors."""
    bundle, judged = sims.bundle, sims.config
    empirical = dataclasses.replace(judged, service_time=EMPIRICAL_SERVICE)
    rows = []
    for k, d in enumerate(real.dirs):
        rest = real.without(k)
        hops = pooled_overheads_ms(rest.hops)
        runs = {"profile": (hops, bundle, judged)}
        if rest.batches is not None:
            served = pd.concat(rest.batches)
            for name, own_tails in (("served", False), ("served_tails", True)):
                if tails or not own_tails:
                    base = with_served_latency(bundle, served, config, uses_disc, own_tails)
                    runs[name] = (hops, base, judged)
            if tails:  # the other runs' measured shapes of batches and hops
                shapes = served_shapes(bundle, rest.batches, rest.queries, config, uses_disc)
                if (shapes["kind"] == "latency").any():
                    shaped = with_shapes(runs["served"][1], shapes)
                    runs["served_empirical"] = (hops, shaped, empirical)
            fit = arrival_charge_fit(rest.arrivals_and_batches())
            charged = {**hops, ARRIVAL_CHARGE_FIELD: applied_charge_ms(fit)}
            runs["profile_arrival_charge"] = (charged, bundle, judged)
        for latency, (overheads_ms, base, service) in runs.items():
            other = sims.run(overheads_ms, base=base, service=service)
            plans = same_plan_share(real.runs[k][1], other.timeseries, config.plan_interval_s)
            metrics = {
                **run_metrics(other.queries, other.summary, bundle.model_names),
                "same_plan": plans,
            }
            errors = held_out_errors(metrics, real.metrics[k])
            rows.append({"run": d.name, "latency": latency, **overheads_ms, **errors})
    return pd.DataFrame(rows)


def _sensitivities(
    sims: _Simulations,
    applied: dict,
    measured: dict,
    compared: dict | None,
    compared_bundles: tuple[Bundle, Bundle | None, Bundle | None],
    charge_fit: dict | None,
) -> dict[str, dict]:
    """The metrics of the simulations beside DIR/sim with one input changed, by their column
    in the fidelity table (error_<name>): the measured hops where other hops were applied
    (DIR/sim-measured-overheads), the compared hops and latency (DIR/sim-compared, with its own
    tails and its measured shapes: `_compared_bundles`), the arrival charge (`charge_fit`),
    each other service-time model (`ServeSetup.compared_service_times`), the batches' time
    after idle left out, where the hops include an arrival hop, each new query counted and
    routed by the other `route_at` (since session 41; validate's own, the default, has been
    `ingress` since session 46, as the real ingress counts and routes), and where the
    plan hop outlasts the route hop, a re-plan's routing and workers switched together at the
    plan hop (`plan_switch=together`, the simulator's rule before session 42), and where the
    hops have a configure hop, its workers all configured at the plan hop
    (`plan_switch=routing-first`, the rule of session 42)."""
    bundle, judged, setup = sims.bundle, sims.config, sims.setup
    others = {}
    if applied != measured:  # the in-sample comparison too
        others["measured_overheads"] = sims.metrics(measured, "sim-measured-overheads")
    if compared is not None:
        compared_bundle, tails_bundle, shaped_bundle = compared_bundles
        others["compared"] = sims.metrics(compared, "sim-compared", compared_bundle)
        if tails_bundle is not None:
            others["compared_served_tails"] = sims.metrics(compared, base=tails_bundle)
        if shaped_bundle is not None:  # its batches' and hops' measured shapes
            empirical = dataclasses.replace(judged, service_time=EMPIRICAL_SERVICE)
            others["compared_empirical"] = sims.metrics(
                compared, base=shaped_bundle, service=empirical
            )
    if charge_fit is not None:  # DIR/sim with the arrival charge
        charged = {**applied, ARRIVAL_CHARGE_FIELD: applied_charge_ms(charge_fit)}
        others["arrival_charge"] = sims.metrics(charged)
    shaped = bool(bundle.latency_shape)  # the profile's measured shapes of batch times
    for model in setup.compared_service_times(setup.config, shaped):
        service = dataclasses.replace(judged, service_time=model)
        others[f"{model}_service"] = sims.metrics(applied, service=service)
    if judged.idle_latency and bundle.has_idle_latency:
        back_to_back = dataclasses.replace(judged, idle_latency=False)
        others["back_to_back_latency"] = sims.metrics(applied, service=back_to_back)
    if applied.get("arrival_overhead_ms", 0.0) > 0:  # the other counting of new queries
        other = next(moment for moment in ROUTING_MOMENTS if moment != judged.route_at)
        counted = dataclasses.replace(judged, route_at=other)
        others[f"route_at_{other}"] = sims.metrics(applied, service=counted)
    route_ms = applied.get("route_overhead_ms", 0.0)
    if applied.get("configure_overhead_ms", 0.0) > 0 and judged.plan_switch == "per-swap":
        at_once = dataclasses.replace(judged, plan_switch="routing-first")
        others["plan_switch_routing_first"] = sims.metrics(applied, service=at_once)
    if applied.get("plan_overhead_ms", 0.0) > route_ms and judged.plan_switch != "together":
        together = dataclasses.replace(judged, plan_switch="together")
        others["plan_switch_together"] = sims.metrics(applied, service=together)
    return others


def _note_parts(
    sims: _Simulations,
    hops: Hops,
    others: dict,
    columns: set[str],
    *,
    sim_repeats: int,
    compare_served_latency: str | None,
    profile_rounds: str | None,
    charge_fit: dict | None,
) -> list[str]:
    """The note's sentences on the hops and on each simulation beside DIR/sim (`others`, the
    table's `columns`), in the report's order (`serving.fidelity_note`)."""
    setup, bundle, judged = sims.setup, sims.bundle, sims.config
    config = setup.config
    parts = [
        f"Per-hop overheads applied to the simulation ({hops.source}): {hops_text(hops.applied)}."
    ]
    if judged.service_time != config.service_time:
        alternatives = setup.compared_service_times(config, bool(bundle.latency_shape))
        parts.append(service_time_text(setup.backend, judged.service_time, alternatives))
    if "back_to_back_latency" in others:
        parts.append(idle_latency_text(bundle))
    if "route_at_ingress" in others:
        parts.append(
            "Error route at ingress: each new query counted and routed once its arrival hop has "
            "passed, as the real ingress does when it receives it (DIR/sim at its trace time; "
            "both reach the worker after the same dispatch hop; since session 41)."
        )
    if "route_at_arrival" in others:
        parts.append(
            "Error route at arrival: each new query counted and routed at its trace time "
            "(DIR/sim once its arrival hop has passed, as the real ingress does when it "
            "receives it, since session 46; both reach the worker after the same dispatch hop)."
        )
    if "plan_switch_routing_first" in others:
        parts.append(
            "Error plan switch routing first: a re-plan's workers all configured at the plan "
            "hop (DIR/sim configures them one by one, in a random order, a configure hop apart "
            "after the route hop, as the real controller's `configure` calls reach them; since "
            "session 43)."
        )
    if "plan_switch_together" in others:
        parts.append(
            "Error plan switch together: a re-plan's routing and its workers switched together "
            "at the plan hop (DIR/sim routes by it after the route hop, as the real ingress "
            "after `set_plan`, and a worker it gives a new model holds the queries sent for "
            "it until its configuration, as a real worker until its `configure`; since "
            "session 42)."
        )
    if sim_repeats > 1:
        parts.append(simulated_spread_text(sim_repeats))
    if hops.compared is not None:
        parts.append(compared_text(hops, compare_served_latency, set(others)))
    if profile_rounds is not None:
        parts.append(profile_rounds_text(profile_rounds))
    parts.append(measured_hops_text(hops))
    parts += leave_one_out_text(columns)
    if charge_fit is not None:
        parts.append(arrival_charge_text(charge_fit, "error_leave_one_out" in columns))
    return parts


def run_validation(
    setup: ServeSetup,
    trace_spec: str,
    out_dir: str | Path,
    repeats: int = 3,
    port: int = 8000,
    num_cpus: int | None = None,
    log=print,
    overheads: str | dict = "measured",
    reuse_real: bool = False,
    compare_overheads: str | dict | None = None,
    compare_served_latency: str | None = None,
    sim_repeats: int = SIM_REPEATS,
    profile_rounds: str | None = None,
    quiet: bool = True,
    compare_overheads_file: str | None = None,
) -> pd.DataFrame:
    """The real runs (or, with `reuse_real`, those already in `out_dir`), the simulated runs
    without and with the per-hop overheads (`overheads`: see `serving.hops.overheads_spec`)
    and the fidelity report in `out_dir`; with `compare_overheads` (the same kinds) and/or
    `compare_served_latency` (another validation's served_latency.csv), one more simulation
    with those hops and service times (DIR/sim-compared; the other's measured in other runs,
    it is out of sample), its errors in their own column (error_compared); where that
    served_latency.csv carries its batches' own p95 and p05, one more with them in place of the
    profile's shape (error_compared_served_tails, `service_times.served_tails`), and where a
    served_shapes.csv lies beside it, one more drawing its batches' and hops' measured shapes
    (error_compared_empirical, `serving.served_shapes`). `sim_repeats`
    simulations in all (DIR/sim and its replicates, `run_simulation(replicate=k)`) give the
    simulator's own spread (`simulated_spread`) and its mean, compared with the real runs'
    on expectations (`expected_error`; by their number in EXPECTATION_FILE). Every
    simulation gives the workers the backend's service-time model
    (`ServeSetup.simulation_config`); one more simulation per model of
    `ServeSetup.compared_service_times` reports it as error_<model>_service,
    and where it gives a batch after idle the bundle's idle latency, one more without it as
    error_back_to_back_latency.
    With `profile_rounds` (the folder of the
    bundle's `profile latency` timing tables), two more simulations with DIR/sim's hops and the
    profile at the p10 and p90 of its rounds' medians (`serving.profile_rounds`):
    error_profile_fast and error_profile_slow. `quiet`: no progress bar of the real runs'
    replays; `compare_overheads_file`: the file `compare_overheads` was
    read from, which the report names."""
    from experiments.inputs import resolve_trace

    # a fresh report replaces the folder whole or not at all (a run that fails or is
    # interrupted leaves the older report as it was); a re-report rewrites it in place
    folder = (
        contextlib.nullcontext(Path(out_dir))
        if reuse_real
        else atomic_folder(out_dir, marker=FIDELITY_FILE)
    )
    with folder as out:
        bundle, policy, config = setup.build()
        sim_config = setup.simulation_config(config)
        trace = resolve_trace(trace_spec, bundle, config.seed)
        # served tails: only where batch times vary (at the p50 alone they cannot matter)
        tails_vary = sim_config.service_time != "deterministic"
        # checked before the real runs
        compared_bundles = _compared_bundles(compare_served_latency, bundle, tails_vary)
        rounds = {} if profile_rounds is None else rounds_bundles(profile_rounds, bundle)
        real_dirs = (
            _reused_real_runs(out, setup, trace_spec)
            if reuse_real
            else _real_runs(setup, trace_spec, out, repeats, port, num_cpus, log, quiet)
        )
        names = bundle.model_names
        real = _RealRuns.read(real_dirs, names, config.plan_interval_s)
        for done in (FIDELITY_FILE, REPORT_FILE):  # a re-report interrupted is not complete
            (out / done).unlink(missing_ok=True)
        sims = _Simulations(out, setup, trace, bundle, sim_config, log)
        base = sims.run({}, "sim-no-overhead")
        measured = pooled_overheads_ms(real.hops)
        applied = applied_overheads(overheads, bundle, measured)
        sim = sims.run(applied, "sim")
        replicate_runs = [sims.run(applied, replicate=k) for k in range(1, sim_repeats)]
        replicates = [run_metrics(r.queries, r.summary, names) for r in (sim, *replicate_runs)]
        compared = None
        if compare_overheads is not None or compare_served_latency is not None:
            compared = applied if compare_overheads is None else compare_overheads
            compared = applied_overheads(compared, bundle, measured)
        charge_runs = real.arrivals_and_batches()
        charge_fit = arrival_charge_fit(charge_runs) if charge_runs else None
        others = {
            "no_overhead": run_metrics(base.queries, base.summary, names),
            **_sensitivities(sims, applied, measured, compared, compared_bundles, charge_fit),
            **{f"profile_{end}": sims.metrics(applied, base=b) for end, b in rounds.items()},
        }
        pd.DataFrame([{"run": d.name, **r} for d, r in zip(real.dirs, real.hops)]).to_csv(
            out / "overheads.csv", index=False, float_format="%.6g"
        )
        (out / "overheads.json").write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")
        table = fidelity_table(
            real.metrics,
            run_metrics(sim.queries, sim.summary, names),
            [same_plan_share(ts, sim.timeseries, config.plan_interval_s) for ts in real.timeseries],
            others,
            replicates,
            [
                same_plan_share(ts, sim.timeseries, config.plan_interval_s, True)
                for ts in real.timeseries
            ],
            np.concatenate([completed_latency_s(q) for q in real.queries]),
        )
        _expectations(sims, applied, real.metrics, replicates).to_csv(
            out / EXPECTATION_FILE, index=False, float_format="%.6g"
        )
        held_out = out / "leave_one_out.csv"
        for stale in (
            held_out,
            out / "served_latency.csv",
            out / PREEMPTION_FILE,
            out / SPEED_FILE,
            out / ARRIVAL_CHARGE_FILE,
            out / SERVED_SHAPES_FILE,
            out / PARTING_FILE,
            out / ROUTING_FILE,
        ):
            stale.unlink(missing_ok=True)
        if charge_fit is not None:
            per_run_fits = [arrival_charge_fit([run]) for run in charge_runs]
            pd.DataFrame(
                [{"run": d.name, **f} for d, f in zip(real.dirs, per_run_fits)]
                + [{"run": "all", **charge_fit}]
            ).to_csv(out / ARRIVAL_CHARGE_FILE, index=False, float_format="%.6g")
        uses_disc = policy.uses_discriminator
        fits, speeds = _write_batch_tables(out, bundle, real, config, uses_disc, tails_vary)
        if len(real.dirs) > 1:
            errors = _leave_one_out(sims, real, config, uses_disc, tails_vary)
            errors.to_csv(held_out, index=False, float_format="%.6g")
            for latency, column in LEAVE_ONE_OUT_COLUMNS.items():
                kept = errors[errors["latency"] == latency]
                if len(kept):
                    table[column] = [
                        kept[m].mean() if m in kept else math.nan for m in table["metric"]
                    ]
        compared_source = overheads if compare_overheads is None else compare_overheads
        hops = Hops(
            _source(overheads),
            applied,
            measured,
            {d.name: r for d, r in zip(real.dirs, real.hops)},
            compare_overheads_file or _source(compared_source),
            compared,
        )
        parts = _note_parts(
            sims,
            hops,
            others,
            set(table.columns),
            sim_repeats=sim_repeats,
            compare_served_latency=compare_served_latency,
            profile_rounds=profile_rounds if rounds else None,
            charge_fit=charge_fit,
        )
        if len(fits):
            parts.append(preemption_text(fits))
        if len(speeds):
            parts.append(speed_text(speeds))
        if real.batches is not None:
            parts += _partings(out, real, (sim, *replicate_runs), trace.arrival_s, names)
        sims_ts = [s.timeseries for s in (sim, *replicate_runs)]
        shares = agreement_shares(real.timeseries, sims_ts, config.plan_interval_s)
        parts.append(agreement_text(shares, len(real.dirs), len(sims_ts)))
        inputs = plan_inputs_table(real.timeseries, sim.timeseries, config.plan_interval_s)
        inputs.to_csv(out / "plan_inputs.csv", index=False, float_format="%.6g")
        if len(inputs):
            parts.append(plan_inputs_text(inputs))
        parts += _plan_replay(out, real.dirs, bundle, setup, config)
        classes = query_classes_table(real.queries, sim.queries)
        (out / CLASSES_FILE).unlink(missing_ok=True)
        if len(classes):
            classes.to_csv(out / CLASSES_FILE, index=False, float_format="%.6g")
            parts.append(query_classes_text(classes))
        hashes = sorted({summary["hashes"]["bundle"][:12] for _, _, summary in real.runs})
        # the simulated bundle's hash before the overheads are added
        note = " ".join(parts) + bundle_hash_text(hashes, bundle.content_hash()[:12])
        _remove_stale_runs(out, {d.name for d in real.dirs} | set(sims.written))
        title = (
            f"{setup.policy} on {setup.bundle}, trace {trace_spec}, {config.n_workers} "
            f"workers, time scale {config.time_scale:g}, {len(real.dirs)} real runs"
        )
        plot_overlay(real.timeseries, sim.timeseries, out / "timeseries.png", title)
        (out / REPORT_FILE).write_text(markdown(table, title, note))
        table.to_csv(out / FIDELITY_FILE, index=False, float_format="%.6g")  # the last
        return table


def _expectations(sims: _Simulations, overheads_ms: dict, real: list[dict], replicates: list[dict]):
    """EXPECTATION_FILE: the comparison on expectations by the number of simulations, with
    `replicates` (DIR/sim's and its replicates' metrics) and, as a sensitivity, with as many
    replicates redrawing what the default keeps (`SimConfig.replicate_redraws`)."""
    redraws = sims.config.replicate_redraws
    ladders = [expectation_ladder(real, replicates, redraws)]
    for other in REPLICATE_REDRAWS:
        if other != redraws and len(replicates) > 1:
            config = dataclasses.replace(sims.config, replicate_redraws=other)
            runs = [
                sims.metrics(overheads_ms, replicate=k, service=config)
                for k in range(1, len(replicates))
            ]
            ladders.append(expectation_ladder(real, [replicates[0], *runs], other))
    return pd.concat(ladders, ignore_index=True)


def _partings(out: Path, real: _RealRuns, sims: tuple, arrival_s, names) -> list[str]:
    """DIR/parting.csv and DIR/routing.csv (`serving.batch_parting`): where each real run and
    DIR/sim (`sims[0]`; the others, its replicates) first part, batch by batch and query by
    query, and where each side's own runs do; the note's sentences."""
    batches = [simulated_batches(s.raw, names) for s in sims]
    runs = {d.name: b for d, b in zip(real.dirs, real.batches)}
    parting = validation_parting(runs, batches[0], batches[1:])
    parting.to_csv(out / PARTING_FILE, index=False, float_format="%.6g")
    real_workers = {
        d.name: first_workers(q, b) for d, q, b in zip(real.dirs, real.queries, real.batches)
    }
    sim_workers = [first_workers(s.queries, b) for s, b in zip(sims, batches)]
    routing = validation_routing(real_workers, sim_workers[0], arrival_s, sim_workers[1:])
    routing.to_csv(out / ROUTING_FILE, index=False, float_format="%.6g")
    return [parting_text(parting, "DIR/sim"), routing_text(routing, "DIR/sim")]


def _plan_replay(out: Path, real_dirs: list[Path], bundle, setup, config) -> list[str]:
    """DIR/plan_replay.csv (`serving.plan_replay`) where every real run recorded its policy's
    inputs (observations.csv, since session 45): whether each run's plans follow from them,
    and what decided a real run's first plan other than DIR/sim's; the note's sentence."""
    from simulator.run import build_policy

    (out / PLAN_REPLAY_FILE).unlink(missing_ok=True)
    if not all((d / OBSERVATIONS_FILE).is_file() for d in real_dirs):
        return []
    table = plan_replay_table(
        real_dirs,
        out / "sim",
        lambda: build_policy(bundle, setup.policy, config, setup.options),
        bundle.model_names,
        config.n_workers,
        config.slo_s,
        within_s=config.tick_s / 2,
    )
    table.to_csv(out / PLAN_REPLAY_FILE, index=False, float_format="%.6g")
    return [plan_replay_text(table)]


def _remove_stale_runs(out: Path, written: set[str]) -> None:
    """Remove the run folders (`real-N`, `sim*`) an earlier report left in `out` that this one
    did not write (fewer repeats, another overheads mode), so the folder holds one report."""
    for d in out.iterdir():
        stale = d.name not in written and (d.name.startswith("real-") or d.name.startswith("sim"))
        if stale and d.is_dir():
            shutil.rmtree(d)


def _source(overheads: str | dict) -> str:
    return overheads if isinstance(overheads, str) else "given"


def _seconds(value: float | None) -> str:
    return "none (no query completed)" if value is None else f"{value:.3f} s"


def _real_runs(
    setup, trace_spec, out: Path, repeats, port, num_cpus, log, quiet: bool
) -> list[Path]:
    """`repeats` replays of the trace, each on a fresh Ray and Serve (no state carries over)
    by a load generator in a process of its own (`run_loadgen_apart`), with its progress bar
    unless `quiet`."""
    from serving.loadgen import run_loadgen_apart
    from serving.server import ServeSession

    dirs = []
    for k in range(1, repeats + 1):
        with ServeSession(setup, port=port, num_cpus=num_cpus) as session:
            summary = run_loadgen_apart(trace_spec, session.url, out / f"real-{k}", quiet)
            session.check()
        dirs.append(out / f"real-{k}")
        log(
            f"real {k}: p50 {_seconds(summary['p50_latency_s'])}, violations "
            f"{summary['slo_violation_ratio']:.3f}, failed {summary['failed']}, swaps "
            f"{summary['swap_s']}, latest send {summary['send_lag_max_ms']:g} ms after its "
            f"trace time; served after {session.ready_text()}"
        )
    return dirs


def _reused_real_runs(out: Path, setup: ServeSetup, trace_spec: str) -> list[Path]:
    """The real run folders already in `out`, checked to be replays of this policy, options,
    trace, settings and serving stack (a setting a run predates at its default); `load_s` may
    differ (to simulate another swap cost: a real run's is its measured swaps, `swap_s` in its
    summary), and so may the `SIMULATOR_MODELS` settings, which the serving path never
    reads."""
    dirs = real_run_dirs(out)
    if not dirs:
        raise InputError(f"--reuse-real: {out} holds no real-N run folder")
    wanted = json.loads(json.dumps({"options": setup.options, "sim": setup.config.to_dict()}))
    ignored = ("load_s", *SIMULATOR_MODELS)
    for name in ignored:
        wanted["sim"].pop(name)
    defaults = json.loads(json.dumps(type(setup.config)().to_dict()))
    for d in dirs:
        config = read_json_object(d / "config.json", keys=("sim",))
        summary = read_json_object(d / "summary.json")
        config["sim"] = {**defaults, **config["sim"]}
        for name in ignored:
            config["sim"].pop(name)
        same = (
            config.get("policy") == setup.policy
            and config.get("policy_options") == wanted["options"]
            and config["sim"] == wanted["sim"]
            and summary.get("trace_spec") == trace_spec
        )
        if not same:
            raise InputError(
                f"--reuse-real: {d} is not a replay of this policy, options, settings and trace"
            )
        stack = recorded_stack(config.get("serving", {}).get("stack"))
        if stack != setup.stack:
            raise InputError(
                f"--reuse-real: {d} was served by the {stack!r} Serve stack, not {setup.stack!r}"
            )
    return dirs
