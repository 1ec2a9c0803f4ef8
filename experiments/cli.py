"""The `t2isim` command line (typer). Thin shells over the library; every input error is one
line on stderr and exit code 2 (`experiments/cli_errors.py`), every output is checked before
any work starts and written atomically (`simulator/atomic.py`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from experiments.cli_config import config_options
from experiments.cli_errors import OneLineErrors, input_errors
from experiments.cli_values import parse_key_values
from experiments.progress import progress_bar
from simulator.atomic import atomic_file, check_output_file, check_output_folder
from simulator.errors import InputError

app = typer.Typer(
    cls=OneLineErrors,
    help="Simulate, profile and plan text-to-image diffusion serving (HADIS, RouteT2I, ECVL).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bundle_app = typer.Typer(help="Inspect and export profile bundles.", no_args_is_help=True)
import_app = typer.Typer(help="Import measurements from other projects.", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")
app.add_typer(import_app, name="import")
out = Console()
err = Console(stderr=True)


def _register_policies() -> None:
    import policies  # noqa: F401  (registers the adaptive policies)


# ----------------------------------------------------------------------------- simulate


@app.command()
@config_options
def simulate(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write.")],
    config: Mapping[str, object],
    policy: Annotated[str, typer.Option(help="Policy name (see `t2isim policies`).")] = "hadis",
    bundle: Annotated[str, typer.Option(help="'default' or a bundle folder.")] = "default",
    trace: Annotated[
        str, typer.Option(help="Spec (poisson:rate=8,duration=600 ...) or trace file.")
    ] = "azure:peak=24,min=1",
    option: Annotated[
        list[str] | None, typer.Option(help="Policy option key=value (repeatable).")
    ] = None,
    router: Annotated[
        str | None,
        typer.Option(help="Trained router (routers/) as hardness score; = --option router=NAME."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Named settings (simulator/presets.py, e.g. artifact-testbed); options given "
            "explicitly override the preset's values."
        ),
    ] = None,
    plot: Annotated[bool, typer.Option(help="Also write timeseries.png.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar or table.")] = False,
) -> None:
    """Replay a trace through the simulated cluster under a policy; write the run folder."""
    from experiments.inputs import resolve_bundle, resolve_trace
    from simulator.config import SimConfig
    from simulator.results import write_run
    from simulator.run import run_simulation

    with input_errors():
        check_output_folder(out_dir, marker="summary.json")
        _register_policies()
        fields = dict(config)  # the settings given, checked (experiments/cli_config.py)
        options = parse_key_values(option or [], "--option")
        if router is not None:
            options["router"] = router
        if preset is not None:
            from simulator.presets import get_preset

            given = {p for p in ctx.params if ctx.get_parameter_source(p).name == "COMMANDLINE"}
            fields, policy, options = get_preset(preset).apply(fields, policy, options, given)
        sim = SimConfig(**fields)
        the_bundle = resolve_bundle(bundle)
        the_trace = resolve_trace(trace, the_bundle, sim.seed)
        label = f"simulating {policy}"
        with progress_bar(quiet, label, 1.0, "{task.percentage:>5.1f}% sim time") as update:
            progress = None if update is None else lambda done, horizon: update(done / horizon)
            result = run_simulation(the_bundle, the_trace, policy, sim, options, progress=progress)
        result.summary["bundle_source"] = bundle
        result.summary["trace_spec"] = trace
        extras = []
        if plot:
            from experiments.plots import plot_run

            extras.append(
                lambda staging: plot_run(
                    result.timeseries, result.summary, staging / "timeseries.png"
                )
            )
        write_run(
            out_dir,
            result.queries,
            result.timeseries,
            result.summary,
            result.config,
            result.raw.planner_wall_s,
            extras=extras,
        )
    if not quiet:
        _print_summary(result.summary, out_dir)


def _print_summary(summary: dict, out_dir: Path) -> None:
    table = Table(title=f"{summary['policy']} — {out_dir}", show_header=False)
    for key in (
        "arrivals",
        "ok",
        "timeouts",
        "drops",
        "slo_violation_ratio",
        "fid",
        "fid_method",
        "fid_table",
        "fid_planned",
        "p50_latency_s",
        "p99_latency_s",
        "heavy_share",
        "gpu_seconds",
    ):
        value = summary.get(key)
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    for label, share in summary["plan_share"].items():
        table.add_row(f"plan {label}", f"{share:.1%}")
    out.print(table)


@app.command("policies")
def list_policies() -> None:
    """List the registered policy names."""
    from simulator.policy import policy_names

    _register_policies()
    for name in policy_names():
        out.print(name)


# ----------------------------------------------------------------------------- traces


class TraceFormat(StrEnum):
    csv = "csv"
    artifact = "artifact"


@app.command("trace")
def make_trace(
    spec: Annotated[str, typer.Argument(help="Trace spec, e.g. poisson:rate=8,duration=600.")],
    out_file: Annotated[Path, typer.Option("--out", help="File to write.")],
    bundle: Annotated[str, typer.Option(help="Bundle whose prompts are drawn.")] = "default",
    seed: Annotated[int, typer.Option()] = 0,
    fmt: Annotated[TraceFormat, typer.Option("--format")] = TraceFormat.csv,
) -> None:
    """Generate a trace file from a spec."""
    from experiments.inputs import resolve_bundle, resolve_trace
    from simulator.workloads import write_artifact_trace, write_trace_csv

    with input_errors():
        check_output_file(out_file)
        trace = resolve_trace(spec, resolve_bundle(bundle), seed)
        writer = write_trace_csv if fmt is TraceFormat.csv else write_artifact_trace
        writer(trace, out_file)
    duration = float(trace.arrival_s[-1])
    out.print(f"{len(trace)} queries over {duration:.1f} s -> {out_file}")


# ----------------------------------------------------------------------------- bundles


@bundle_app.command("info")
def bundle_info(bundle: Annotated[str, typer.Argument(help="'default' or a folder.")]) -> None:
    """Print the bundle's provenance, models, latency and table sizes."""
    from experiments.inputs import resolve_bundle

    with input_errors():
        b = resolve_bundle(bundle)
    prov = b.meta.get("provenance", {})
    out.print(f"[bold]{b.name}[/bold]  source: {prov.get('source')}  gpu: {prov.get('gpu')}")
    table = Table("model", "steps", "load_s", "fid_alone", "batch sizes", "latency p50 (s)")
    for row in b.models.itertuples():
        sizes = b.profiled_batch_sizes(row.model)
        lat = ", ".join(f"{b.batch_latency_s(row.model, s):.3g}" for s in sizes)
        table.add_row(
            row.model,
            str(row.steps),
            f"{row.load_s:g}",
            f"{row.fid_alone:.2f}",
            ",".join(map(str, sizes)),
            lat,
        )
    out.print(table)
    sizes = Table("table", "rows", "columns")
    for name in ("models", "latency", "prompts", "scores", "cascades"):
        df = getattr(b, name)
        sizes.add_row(name, str(len(df)), ", ".join(df.columns))
    out.print(sizes)
    out.print(f"pairs: {', '.join(f'{a}->{h}' for a, h in b.pairs())}")


class TableName(StrEnum):
    models = "models"
    latency = "latency"
    prompts = "prompts"
    scores = "scores"
    cascades = "cascades"


class TableFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    json = "json"


@bundle_app.command("export")
def bundle_export(
    bundle: Annotated[str, typer.Argument(help="'default' or a folder.")],
    table: Annotated[TableName, typer.Option(help="Which table.")],
    fmt: Annotated[TableFormat, typer.Option("--format")] = TableFormat.csv,
    out_file: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
) -> None:
    """Write one table of a bundle."""
    from experiments.inputs import resolve_bundle

    with input_errors():
        if fmt is TableFormat.parquet and out_file is None:
            raise InputError("--format parquet needs --out FILE")
        if out_file is not None:
            check_output_file(out_file)
        df = getattr(resolve_bundle(bundle), table.value)
    if out_file is None:
        sys.stdout.write(_table_text(df, fmt))
        return
    with atomic_file(out_file) as staging:
        if fmt is TableFormat.parquet:
            df.to_parquet(staging, index=False)
        else:
            staging.write_text(_table_text(df, fmt), encoding="utf-8")


def _table_text(df, fmt: TableFormat) -> str:
    if fmt is TableFormat.csv:
        return df.to_csv(index=False, float_format="%.10g")
    return df.to_json(orient="records", indent=1) + "\n"


@bundle_app.command("write")
def bundle_write(
    bundle: Annotated[str, typer.Argument(help="'default' or a folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the bundle to.")],
) -> None:
    """Write a (validated) bundle as a folder, e.g. the embedded default to edit it."""
    from experiments.inputs import resolve_bundle
    from simulator.bundle import write_bundle

    with input_errors():
        check_output_folder(out_dir, marker="bundle.json")
        write_bundle(resolve_bundle(bundle), out_dir)
    out.print(f"bundle written to {out_dir}")


@bundle_app.command("fid-error")
def bundle_fid_error(
    artifact: Annotated[Path, typer.Argument(help="Checkout of the HADIS artifact.")],
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write the JSON record (the committed one: "
            "simulator/data/fid_estimator_error.json).",
        ),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", help="k of the k-fold (>= 2).")] = 5,
) -> None:
    """Out-of-sample error of the FID estimators on the artifact's measured FIDs (slow: the
    exact estimator is refitted once per fold)."""
    from simulator import fid_error

    with input_errors():
        if out_file is not None:
            check_output_file(out_file)
        summary = fid_error.summarise(fid_error.measure(artifact, k=folds))
        if out_file is not None:
            with atomic_file(out_file) as staging:
                staging.write_text(fid_error.record_text(fid_error.error_record(summary, folds)))
    for row in summary.itertuples():
        out.print(
            f"{row.estimator:6} {row.set:15} n={row.n:4d} mean |error| {row.mean_abs_fid:.3f} "
            f"max {row.max_abs_fid:.3f} bias {row.bias_fid:+.3f} FID"
        )
    if out_file is not None:
        out.print(f"record written to {out_file}")


@import_app.command("hadis-artifact")
def import_hadis(
    artifact: Annotated[Path, typer.Argument(help="Checkout of the HADIS artifact.")],
    out_dir: Annotated[Path, typer.Argument(help="Bundle folder to write.")],
) -> None:
    """Turn a HADIS artifact checkout into a profile bundle."""
    from simulator.artifact import import_hadis_artifact
    from simulator.bundle import write_bundle

    with input_errors():
        check_output_folder(out_dir, marker="bundle.json")
        bundle = import_hadis_artifact(artifact)
        write_bundle(bundle, out_dir)
    out.print(
        f"imported {bundle.n_prompts} prompts, {len(bundle.model_names)} models, "
        f"{len(bundle.cascades)} cascade rows -> {out_dir}"
    )


@app.command()
def calibrate(
    artifact: Annotated[Path, typer.Argument(help="Checkout of the HADIS artifact.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Where to write the fitted parameters.")
    ] = None,
    draws: Annotated[
        int,
        typer.Option(
            "--draws", min=1, help="Bootstrap draws of the fit for --draws-out (slow: ~10 s each)."
        ),
    ] = 20,
    draws_out: Annotated[
        Path | None,
        typer.Option(
            "--draws-out",
            help="Where to write the fit's bootstrap draws (the committed ones: "
            "simulator/data/default_model_draws.json; bundle replicates use them).",
        ),
    ] = None,
) -> None:
    """Fit the default bundle's generative model to the artifact's measurements."""
    from simulator.default_bundle import calibrate as fit
    from simulator.default_bundle import calibration_draws, save_draws, save_params

    with input_errors():
        for path in (out_file, draws_out):
            if path is not None:
                check_output_file(path)
        params = fit(artifact)
        if out_file is not None:
            with atomic_file(out_file) as staging:
                save_params(params, staging)
        if draws_out is not None:
            record = calibration_draws(artifact, draws, params)
            with atomic_file(draws_out) as staging:
                save_draws(record, staging)
    for key, value in params.get("fit", {}).items():
        shown = [round(v, 4) for v in value] if isinstance(value, list) else value
        out.print(f"{key}: {shown}")
    if out_file is not None:
        out.print(f"parameters written to {out_file}")
    if draws_out is not None:
        out.print(f"{draws} calibration draws written to {draws_out}")


def _register_commands() -> None:
    from experiments import figures_cli, sweep_cli
    from serving import cli as serving_cli

    sweep_cli.register(app)
    figures_cli.register(app)
    serving_cli.register(app, bundle_app)


_register_commands()

OPTIONAL_APPS = {
    "profile": ("profiler.cli", "profile_app"),
    "routers": ("routers.cli", "routers_app"),
}


def mount_optional(names: tuple[str, ...] = tuple(OPTIONAL_APPS)) -> None:
    """Mount the sub-apps of the optional parts (imported only when asked for: they are slow
    to import)."""
    for name in names:
        module, attr = OPTIONAL_APPS[name]
        app.add_typer(getattr(__import__(module, fromlist=[attr]), attr), name=name)


def main() -> None:
    first = sys.argv[1] if len(sys.argv) > 1 else "--help"
    if first in OPTIONAL_APPS:
        mount_optional((first,))
    elif first in ("--help", "-h"):
        mount_optional()
    app()


if __name__ == "__main__":
    main()
