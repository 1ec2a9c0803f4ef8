"""Compute, draw and report figures: NAME.csv + NAME.png per figure (no PNG for a table whose
module has `plot = None`) and REPRODUCTION.md. Figure modules only draw; this module saves."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pandas as pd

from experiments.figures import style, verdicts
from experiments.figures.context import Claim, FigureContext
from experiments.figures.provenance import record_provenance, report_context
from experiments.figures.registry import FIGURES, UnknownFigureError, figure_module
from experiments.figures.seeds import uncertainty_note
from simulator.atomic import atomic_file, atomic_write_text
from simulator.results import code_version


def select_figures(only: Sequence[str] | None) -> list[str]:
    """The figures `--only` names (all when empty), in report order."""
    known = FIGURES.names()
    if not only:
        return known
    unknown = [name for name in only if name not in known]
    if unknown:
        raise UnknownFigureError(
            f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return [name for name in known if name in only]


def make_figures(
    ctx: FigureContext,
    names: Sequence[str],
    on_figure: Callable[[str, float], None] | None = None,
) -> dict[str, list[Claim]]:
    """Compute each figure into ctx.out_dir (NAME.csv) and save what its `plot` draws
    (NAME.png); returns the claims per figure."""
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    claims: dict[str, list[Claim]] = {}
    for name in names:
        module = figure_module(name)
        start = time.perf_counter()
        data = module.compute(ctx)
        with atomic_file(ctx.out_dir / f"{name}.csv") as staging:
            data.to_csv(staging, index=False, float_format="%.6g")
        if module.plot is not None:
            save_figure(module, data, ctx.out_dir / f"{name}.png")
        claims[name] = list(module.claims(data))
        record_provenance(
            ctx.out_dir,
            {name: module.__name__},
            report_context(ctx.bundle_spec, ctx.quick, ctx.seed),
        )
        if on_figure is not None:
            on_figure(name, time.perf_counter() - start)
    return claims


def save_figure(module: ModuleType, data: pd.DataFrame, path: Path) -> Path:
    """The figure `module.plot(data)` draws, written atomically as a PNG in the paper's
    savefig settings (`style.save`) and closed."""
    with atomic_file(path) as staging:
        figure = module.plot(data)
        if not isinstance(figure, style.Figure):
            raise TypeError(
                f"{module.__name__}.plot returned {type(figure).__name__}, not a matplotlib "
                "Figure (see experiments/figures/context.py)"
            )
        style.save(figure, staging)
    return path


def replicate_verdicts(
    ctx: FigureContext, names: Sequence[str], seeds: Sequence[int]
) -> dict[tuple[str, str], list[str]]:
    """Recompute each figure's claims with other seeds (traces and simulations re-drawn; no
    files written): (figure, claim) -> the verdict under each seed, in `seeds` order."""
    verdicts: dict[tuple[str, str], list[str]] = {}
    for seed in seeds:
        other = replace(ctx, seed=seed, _runs={}, _traces={})
        for name in names:
            module = figure_module(name)
            for claim in module.claims(module.compute(other)):
                verdicts.setdefault((claim.figure, claim.claim), []).append(claim.verdict)
    return verdicts


def verdict_summary(counts: dict[str, int]) -> list[str]:
    """Header lines: the claims per category, evidence and not-evidence apart."""
    evidence = sum(counts[v] for v in verdicts.EVIDENCE)
    rest = [v for v in verdicts.VERDICTS if v not in verdicts.EVIDENCE]
    return [
        f"Verdicts on {evidence} claims that are evidence: "
        + ", ".join(f"{counts[v]} {v}" for v in verdicts.EVIDENCE)
        + ".",
        "Not counted as evidence: " + ", ".join(f"{counts[v]} {v}" for v in rest) + ".",
    ]


def report_libraries() -> dict[str, str]:
    """Versions of the libraries that compute the report's numbers."""
    names = ("highspy", "numpy", "scipy", "pandas", "simpy", "pyarrow")
    return {name: metadata.version(name) for name in names}


def figure_notes(module: ModuleType, csv: Path) -> list[str]:
    """Report lines under a figure's heading: the preset it used (its module's `PRESET`; the
    `default` preset when it names none) and, from a module with `report_lines(data)`, its
    table rendered from the CSV it wrote."""
    preset = getattr(module, "PRESET", "default")
    lines = [f"Preset: `{preset}` (`simulator/presets.py`, docs/PRESETS.md).", ""]
    if hasattr(module, "report_lines"):
        lines += [*module.report_lines(pd.read_csv(csv)), ""]
    return lines


def write_report(
    ctx: FigureContext,
    claims: dict[str, list[Claim]],
    replicas: dict[tuple[str, str], list[str]] | None = None,
) -> Path:
    """REPRODUCTION.md: the verdict rules and counts, then every claim with the paper's number,
    ours and a verdict (and, with `replicas`, in how many of the other seeds the verdict is the
    same)."""
    counts = verdicts.counts(c.verdict for name in claims for c in claims[name])
    source = ctx.bundle.meta.get("provenance", {}).get("source", "?")
    lines = [
        "# Reproduction report",
        "",
        f"Generated by `t2isim figures --bundle {ctx.bundle_spec}"
        f"{' --quick' if ctx.quick else ''}` ({code_version()}).",
        f"Bundle: `{ctx.bundle.name}` — {source}.",
        f"Mode: {'quick (short traces, coarse grids)' if ctx.quick else 'full'}; seed {ctx.seed}; "
        f"{ctx.base.n_workers} workers, SLO {ctx.base.slo_s:g} s unless a figure says otherwise.",
        "Libraries (pinned in pyproject.toml where they change results): "
        + ", ".join(f"{name} {version}" for name, version in report_libraries().items())
        + ".",
        "Modelling choices: each figure names the preset it used (`simulator/presets.py`, "
        "docs/PRESETS.md); tab02 shows the headline metrics under each alternative of each "
        "choice.",
        uncertainty_note(ctx),
        "",
        *verdict_summary(counts),
        "",
        verdicts.RULES,
    ]
    for name, figure_claims in claims.items():
        module = figure_module(name)
        shown = f"Table: [{name}.csv]({name}.csv)"  # a table module: plot = None
        if module.plot is not None:
            shown = f"![{name}]({name}.png)"
        lines += [f"## {name}: {module.TITLE}", "", shown, ""]
        lines += figure_notes(module, ctx.out_dir / f"{name}.csv")
        if not figure_claims:
            lines += ["No headline claim is attached to this figure.", ""]
            continue
        header = "| claim | paper | ours | verdict |" + (
            " same in other seeds |" if replicas else ""
        )
        lines += [header + " note |", "|---|---|---|---|" + ("---|" if replicas else "") + "---|"]
        for c in figure_claims:
            same = ""
            if replicas:
                other = replicas.get((c.figure, c.claim), [])
                same = f" {sum(v == c.verdict for v in other)}/{len(other)} |"
            lines.append(f"| {c.claim} | {c.paper} | {c.ours} | {c.verdict} |{same} {c.note} |")
        lines.append("")
    path = ctx.out_dir / "REPRODUCTION.md"
    atomic_write_text(path, "\n".join(lines))
    return path
