"""`t2isim sweep SPEC.yaml`: run a parameter sweep into a results store, or show its status.

Mounted by `experiments/cli.py` with `register(app)`; errors are reported by the app's
`experiments.cli_errors.OneLineErrors` group (input errors exit 2, a failed run exits 1).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from experiments.progress import progress_bar

if TYPE_CHECKING:
    from experiments.sweep import SweepStatus

out = Console()
MISSING_SHOWN = 20  # --status lists at most this many missing runs


def sweep(
    spec_file: Annotated[Path, typer.Argument(help="Sweep spec (YAML).")],
    store: Annotated[
        Path | None,
        typer.Option("--out", help="Results store folder (default results/sweeps/<spec stem>)."),
    ] = None,
    bundle: Annotated[
        str | None, typer.Option(help="Override the spec's bundle: 'default' or a folder.")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(min=1, help="Local worker processes (default: all cores).")
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(help="Dask scheduler tcp://HOST:8786, or 'local' (in-process cluster)."),
    ] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Print done / total and what is missing; run nothing.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Expand a sweep spec into runs and execute those not yet in the results store."""
    from dataclasses import replace

    from experiments.inputs import resolve_bundle
    from experiments.sweep import (
        check_dask,
        check_store,
        default_store,
        load_spec,
        open_backend,
        plan_runs,
        run_sweep,
        sweep_status,
    )

    store = store or default_store(spec_file)
    check_store(store)
    check_dask(dask)
    spec = load_spec(spec_file)
    if bundle is not None:
        spec = replace(spec, bundle=bundle)
    the_bundle = resolve_bundle(spec.bundle)
    runs = plan_runs(spec, the_bundle, the_bundle.content_hash())
    if status:
        _print_status(sweep_status(runs, store), store)
        return
    with open_backend(the_bundle, jobs=jobs, dask=dask) as backend:
        before = sweep_status(runs, store)
        for line in _corrupt_lines(before, "re-running"):
            out.print(line, highlight=False, soft_wrap=True, markup=False)
        done = "{task.completed:.0f}/{task.total:.0f}"
        with progress_bar(quiet, "sweep", len(runs), done, completed=before.done) as update:
            counted = itertools.count(before.done + 1)
            on_done = None if update is None else lambda row: update(next(counted))
            report = run_sweep(runs, store, backend, on_done)
    out.print(
        f"{report.total} runs: {report.ran} ran, {report.skipped} already stored "
        f"({backend.description}) -> {store}"
    )


def _print_status(status: SweepStatus, store: Path) -> None:
    lines = [f"{status.done} / {status.total} runs done in {store}"]
    if status.stale:
        lines.append(f"{status.stale} stored rows belong to no run of this spec (older code?)")
    lines += _corrupt_lines(status, "not done")
    lines += [f"missing: {point.label()}" for point in status.missing[:MISSING_SHOWN]]
    if len(status.missing) > MISSING_SHOWN:
        lines.append(f"... and {len(status.missing) - MISSING_SHOWN} more missing")
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True, markup=False)


def _corrupt_lines(status: SweepStatus, verdict: str) -> list[str]:
    """One line per corrupt part file (at most MISSING_SHOWN)."""
    lines = [
        f"corrupt part {key}.parquet ({problem}): {verdict}"
        for key, problem in list(status.corrupt.items())[:MISSING_SHOWN]
    ]
    if len(status.corrupt) > MISSING_SHOWN:
        lines.append(f"... and {len(status.corrupt) - MISSING_SHOWN} more corrupt parts")
    return lines


def register(app: typer.Typer) -> None:
    """Add the `sweep` command to `app`."""
    app.command("sweep")(sweep)
