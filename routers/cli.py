"""`t2isim routers ...`: evaluate routers on real per-prompt quality."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from simulator.atomic import (
    OutputPathError,
    atomic_file,
    atomic_folder,
    check_output_file,
    check_output_folder,
)
from simulator.errors import one_line
from simulator.limits import NON_NEGATIVE, LimitError

from .base import RouterError
from .data import RouterDataError, Split, load_routing_data, split_by_prompt
from .ecvl import EcvlConfigError, parse_ecvl_scenarios
from .edge_cloud import (
    CLOUD_COST_PER_REQUEST,
    EDGE_COST_PER_REQUEST,
    EdgeCloudCosts,
    simulate_edge_cloud,
)
from .evaluate import (
    DP_TARGETS,
    HEAVY_SHARES,
    SUMMARY_COLUMNS,
    RepeatsError,
    RouterResult,
    evaluate_router,
    repeat_seeds,
    repeated_summary_table,
    write_outputs,
)
from .features import FeatureError, MiniLMEncoder, resolve_feature_kind
from .metrics import MetricError
from .nn import TrainConfig
from .registry import RouterContext, UnknownRouterError, build_router, select_router_names

routers_app = typer.Typer(help="Prompt routers (RouteT2I, ECVL-Router, RouteLLM-style, HADIS).")


@routers_app.callback()
def routers_group() -> None:
    """Train, calibrate and evaluate prompt routers on per-prompt quality data."""


SUMMARY_LABELS = dict(
    zip(
        SUMMARY_COLUMNS[1:],
        ("APGR", "CPT(50%)", "ΔP@50%", "saving@ΔP50", "light share @≤10% drop"),
        strict=True,
    )
)


def _fmt(value: float, pct: bool = False) -> str:
    if value != value:  # NaN
        return "-"
    return f"{100 * value:.2f}" if pct else f"{value:.4g}"


def print_tables(console: Console, results: list[RouterResult], split: Split) -> None:
    """Tables laid out like RouteT2I's: quality per metric + ΔP, then cost saving per target."""
    test = split.test
    metrics = list(results[0].metrics_at_50)
    test_quality = Table(title="Routed quality on test at 50 % heavy share")
    test_quality.add_column("Router")
    for metric in metrics:
        test_quality.add_column(metric, justify="right")
    test_quality.add_column("ΔP(%)", justify="right")
    for label, model in (("Edge Model", test.light), ("Cloud Model", test.heavy)):
        means = [values[:, model].mean() for values in test.metrics().values()]
        test_quality.add_row(f"{label} ({test.model_names[model]})", *(_fmt(v) for v in means), "-")
    for r in results:
        test_quality.add_row(
            r.name, *(_fmt(r.metrics_at_50[m]) for m in metrics), _fmt(r.summary["dp_at_50"], True)
        )
    console.print(test_quality)

    saving = Table(
        title="Cost saving (%) under a given performance target ΔP (cloud calls saved vs random)"
    )
    saving.add_column("Router \\ ΔP")
    for target in DP_TARGETS:
        saving.add_column(f"{100 * target:.0f}%", justify="right")
    for r in results:
        saving.add_row(r.name, *(_fmt(r.savings[t], True) for t in DP_TARGETS))
    console.print(saving)

    summary = Table(title="Summary (routers.csv)")
    for column in ("router", *SUMMARY_LABELS.values()):
        summary.add_column(column, justify="left" if column == "router" else "right")
    for r in results:
        summary.add_row(r.name, *(_fmt(r.summary[c]) for c in SUMMARY_LABELS))
    console.print(summary)

    calibration = Table(title="Calibration: realised heavy share on test (target ->)")
    calibration.add_column("Router")
    for target in HEAVY_SHARES:
        calibration.add_column(f"{100 * target:.0f}%", justify="right")
    for r in results:
        calibration.add_row(r.name, *(_fmt(v, True) for v in r.calibration["realised_test"]))
    console.print(calibration)

    ecvl = [r for r in results if r.ecvl is not None]
    if ecvl:
        scenario = Table(
            title="ECVL-Router scenarios, own decision (RCS_heavy > RCS_light) on test"
        )
        columns = ("Router", "w solve,cost,latency", "MES q", "MES", "heavy share", "APSP", "CA")
        for column in (*columns, "AIL (s)", "RCS"):
            scenario.add_column(column, justify="left" if column == "Router" else "right")
        for r in ecvl:
            e = r.ecvl
            scenario.add_row(
                r.name,
                ",".join(f"{w:g}" for w in (e["w_solve"], e["w_cost"], e["w_latency"])),
                f"{e['mes_quantile']:g}",
                _fmt(e["mes"]),
                _fmt(e["heavy_share"]),
                _fmt(e["apsp"]),
                _fmt(e["ca"]),
                _fmt(e["ail_s"]),
                _fmt(e["rcs"]),
            )
        console.print(scenario)


def print_repeated_summary(
    console: Console, runs: list[list[RouterResult]], seeds: list[int]
) -> None:
    """Summary columns as mean ± sample std over the seeded splits (per-split rows: CSVs)."""
    table = repeated_summary_table(runs)
    summary = Table(
        title=f"Summary (routers.csv): mean ± std over {len(seeds)} splits, "
        f"seeds {seeds[0]}..{seeds[-1]}"
    )
    summary.add_column("router")
    for label in SUMMARY_LABELS.values():
        summary.add_column(label, justify="right")
    for row in table.itertuples(index=False):
        values = row._asdict()
        summary.add_row(
            values["router"],
            *(f"{_fmt(values[c])} ± {_fmt(values[f'{c}_std'])}" for c in SUMMARY_LABELS),
        )
    console.print(summary)


DataOpt = Annotated[str, typer.Option(help="default, hadis-artifact, agiqa-3k, or a wide FILE.csv")]
OutOpt = Annotated[Path, typer.Option(help="output folder")]
RoutersOpt = Annotated[str, typer.Option(help="all, or comma-separated router names")]
SeedOpt = Annotated[
    int, typer.Option(min=0, max=2**32 - 1, help="split, initialisation and tie-break seed")
]
PairOpt = Annotated[str | None, typer.Option(help="LIGHT,HEAVY model names or column indices")]
DataRootOpt = Annotated[Path, typer.Option(help="folder holding hadis-artifact/ and agiqa-3k/")]
FeaturesOpt = Annotated[str, typer.Option(help="auto, bow, hadis8, minilm, bow+hadis8")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="training epochs of learned routers")]
EcvlWeightsOpt = Annotated[
    str | None,
    typer.Option(
        help="ECVL scenario RCS weights, e.g. 'fast=0.4,0.1,0.5;quality=0.8,0.1,0.1' "
        "(solve, cost, latency; >= 0, sum 1)"
    ),
]
EcvlMesOpt = Annotated[
    str | None,
    typer.Option(help="ECVL scenario MES quantiles of heavy quality, e.g. 'fast=0.4;energy=0.2'"),
]
RepeatsOpt = Annotated[
    int, typer.Option(help="seeded splits (seed, seed+1, ...); > 1 reports mean and std")
]
DATA_ERRORS = (
    OutputPathError,
    RouterDataError,
    RouterError,
    UnknownRouterError,
    FeatureError,
    MetricError,
    RepeatsError,
    LimitError,
    EcvlConfigError,
)


def _consoles() -> tuple[Console, Console]:
    console = Console()
    if not console.is_terminal:  # files and pipes: wide enough for the 10-column tables
        console = Console(width=120)
    return console, Console(stderr=True, soft_wrap=True)  # errors stay on one line


def _prepare(
    console: Console,
    data: str,
    routers: str,
    seed: int,
    pair: str | None,
    data_root: Path,
    features: str,
    epochs: int,
    ecvl_weights: str | None,
    ecvl_mes: str | None,
) -> tuple[Split, list[str], RouterContext]:
    """Load and split the data, select the routers, print what will run."""
    ecvl_scenarios = parse_ecvl_scenarios(ecvl_weights, ecvl_mes)
    dataset = load_routing_data(data, data_root, pair)
    split = split_by_prompt(dataset, seed)
    has_features = dataset.batch.features is not None
    names, skipped = select_router_names(routers, has_features)
    ctx = RouterContext(
        reference=dataset,
        feature_kind=resolve_feature_kind(features, has_features),
        seed=seed,
        config=TrainConfig(epochs=epochs),
        encoder=MiniLMEncoder(dataset.batch.texts),
        ecvl_scenarios=ecvl_scenarios,
    )
    light, heavy = dataset.pair_names
    console.print(
        f"{dataset.name}: {light} -> {heavy}; prompts train/calib/test "
        f"{len(split.train)}/{len(split.calib)}/{len(split.test)}; features "
        f"{ctx.feature_kind}; seed {seed}"
        + (f"; skipped (no HADIS features): {', '.join(skipped)}" if skipped else ""),
        markup=False,
        highlight=False,
    )
    return split, names, ctx


@routers_app.command()
def evaluate(
    data: DataOpt,
    out: OutOpt,
    routers: RoutersOpt = "all",
    seed: SeedOpt = 0,
    pair: PairOpt = None,
    data_root: DataRootOpt = Path("../shared/data"),
    features: FeaturesOpt = "auto",
    epochs: EpochsOpt = 40,
    repeats: RepeatsOpt = 1,
    ecvl_weights: EcvlWeightsOpt = None,
    ecvl_mes: EcvlMesOpt = None,
) -> None:
    """Train routers on a train split, calibrate on a calibration split, report on test.

    With --repeats N > 1 every router is evaluated on N splits seeded seed, seed+1, ...; each
    split's run equals a plain run with that --seed.
    """
    console, err = _consoles()
    try:
        check_output_folder(out, marker="routers.csv")
        seeds = repeat_seeds(seed, repeats)
        split, names, ctx = _prepare(
            console, data, routers, seed, pair, data_root, features, epochs, ecvl_weights, ecvl_mes
        )
        splits = [split] + [split_by_prompt(ctx.reference, s) for s in seeds[1:]]
        runs = [
            [evaluate_router(build_router(name, replace(ctx, seed=s)), sp, s) for name in names]
            for s, sp in zip(seeds, splits, strict=True)
        ]
    except DATA_ERRORS as exc:
        err.print(f"error: {one_line(str(exc))}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    if repeats == 1:
        print_tables(console, runs[0], split)
    else:
        print_repeated_summary(console, runs, seeds)
    with atomic_folder(out, marker="routers.csv") as staging:
        written = write_outputs(runs, splits, staging)
    for path in written:
        console.print(f"wrote {out / path.name}", markup=False, highlight=False)


@routers_app.command("simulate-edge-cloud")
def simulate_edge_cloud_command(
    data: DataOpt,
    out: OutOpt,
    rho: Annotated[float, typer.Option(min=0.0, max=1.0, help="cloud-call budget ρ")] = 0.3,
    routers: RoutersOpt = "all",
    seed: SeedOpt = 0,
    pair: PairOpt = None,
    data_root: DataRootOpt = Path("../shared/data"),
    features: FeaturesOpt = "auto",
    epochs: EpochsOpt = 40,
    edge_cost: Annotated[float, typer.Option(help="$ per edge request")] = EDGE_COST_PER_REQUEST,
    cloud_cost: Annotated[float, typer.Option(help="$ per cloud request")] = CLOUD_COST_PER_REQUEST,
    ecvl_weights: EcvlWeightsOpt = None,
    ecvl_mes: EcvlMesOpt = None,
) -> None:
    """Edge-cloud routing under a cloud-call budget ρ: share, quality, ΔP, cost, latency."""
    console, err = _consoles()
    try:
        check_output_file(out / "edge_cloud.csv")
        costs = EdgeCloudCosts(
            NON_NEGATIVE.check(edge_cost, "--edge-cost"),
            NON_NEGATIVE.check(cloud_cost, "--cloud-cost"),
        )
        split, names, ctx = _prepare(
            console, data, routers, seed, pair, data_root, features, epochs, ecvl_weights, ecvl_mes
        )
        rows = [simulate_edge_cloud(build_router(n, ctx), split, rho, costs) for n in names]
    except DATA_ERRORS as exc:
        err.print(f"error: {one_line(str(exc))}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    table = Table(title=f"Edge-cloud routing on test, cloud-call budget ρ = {rho:g}")
    columns = ("router", "cloud_share_calib", "cloud_share_test", "budget_violated", "quality")
    columns += ("dp", "cloud_fee_per_request", "cost_per_request", "latency_s")
    for column in columns:
        table.add_column(column, justify="left" if column == "router" else "right")
    for row in rows:
        table.add_row(
            *(str(row[c]) if isinstance(row[c], str | bool) else _fmt(row[c]) for c in columns)
        )
    console.print(table)
    with atomic_file(out / "edge_cloud.csv") as staging:
        pd.DataFrame(rows, columns=list(columns[:1]) + ["rho"] + list(columns[1:])).to_csv(
            staging, index=False, float_format="%.6g"
        )
    console.print(f"wrote {out / 'edge_cloud.csv'}", markup=False, highlight=False)
