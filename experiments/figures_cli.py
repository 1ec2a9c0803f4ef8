"""`t2isim figures`: compute every figure of the papers, write PNG + CSV and REPRODUCTION.md.

The output folder is checked before any work (an existing folder must be empty or hold
REPRODUCTION.md); each file is written atomically (`simulator.atomic`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simulator.atomic import check_output_folder
from simulator.errors import InputError

REPORT_FILE = "REPRODUCTION.md"
MAX_REPLICATE_SEEDS = 100


def parse_only(only: str | None) -> list[str] | None:
    """`--only fig07,fig11` -> names; None (every figure) when not given; an empty or blank
    list is an error, not 'everything'."""
    if only is None:
        return None
    names = [name.strip() for name in only.split(",")]
    if not all(names):
        raise InputError(f"--only {only!r}: expected comma-separated figure names, e.g. fig07")
    return names


def register(app: typer.Typer) -> None:
    @app.command()
    def figures(
        only: Annotated[
            str | None, typer.Option(help="Comma-separated figure names, e.g. fig07,fig11.")
        ] = None,
        bundle: Annotated[str, typer.Option(help="'default' or a bundle folder.")] = "default",
        quick: Annotated[bool, typer.Option(help="Short traces and coarse grids.")] = False,
        out: Annotated[
            Path | None,
            typer.Option(help="Output folder (default results/, or results/<bundle> for others)."),
        ] = None,
        seed: Annotated[int, typer.Option(min=0)] = 0,
        replicate_seeds: Annotated[
            int,
            typer.Option(
                min=0, max=MAX_REPLICATE_SEEDS,
                help="Recompute the claims with this many further seeds (robustness).",
            ),
        ] = 0,
        jobs: Annotated[int, typer.Option(min=1, help="Sweep worker processes.")] = 1,
        dask: Annotated[str | None, typer.Option(help="Dask scheduler for sweeps.")] = None,
    ) -> None:
        """Reproduce the papers' figures and write the reproduction report."""
        from rich.console import Console

        from experiments.figures.context import FigureContext
        from experiments.figures.report import (
            make_figures,
            replicate_verdicts,
            select_figures,
            write_report,
        )
        from experiments.inputs import resolve_bundle

        console = Console()
        from experiments.sweep import check_dask

        names = select_figures(parse_only(only))
        check_dask(dask)
        the_bundle = resolve_bundle(bundle)
        folder = out or (
            Path("results") if bundle == "default" else Path("results") / the_bundle.name
        )
        check_output_folder(folder, marker=REPORT_FILE)
        ctx = FigureContext(
            bundle, the_bundle, folder, quick=quick, seed=seed, jobs=jobs, dask=dask
        )
        claims = make_figures(
            ctx, names, on_figure=lambda n, s: console.print(f"{n}: {s:.1f} s")
        )
        replicas = None
        if replicate_seeds > 0:
            seeds = range(seed + 1, seed + 1 + replicate_seeds)
            replicas = replicate_verdicts(ctx, names, seeds)
        report = write_report(ctx, claims, replicas)
        console.print(f"{len(names)} figures and {report} written")
