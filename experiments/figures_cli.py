"""`t2isim figures`: compute every figure of the papers, write PNG + CSV and REPRODUCTION.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
        seed: Annotated[int, typer.Option()] = 0,
        replicate_seeds: Annotated[
            int,
            typer.Option(help="Recompute the claims with this many further seeds (robustness)."),
        ] = 0,
        jobs: Annotated[int, typer.Option(help="Sweep worker processes.")] = 1,
        dask: Annotated[str | None, typer.Option(help="Dask scheduler for sweeps.")] = None,
    ) -> None:
        """Reproduce the papers' figures and write the reproduction report."""
        from rich.console import Console

        from experiments.cli import input_errors, sweep_errors
        from experiments.figures.context import FigureContext
        from experiments.figures.report import (
            make_figures,
            replicate_verdicts,
            select_figures,
            write_report,
        )
        from experiments.inputs import resolve_bundle

        console = Console()
        with input_errors(), sweep_errors():
            names = select_figures([n.strip() for n in only.split(",")] if only else None)
            the_bundle = resolve_bundle(bundle)
            folder = out or (
                Path("results") if bundle == "default" else Path("results") / the_bundle.name
            )
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
