"""`t2isim serve`, `t2isim loadgen`, `t2isim validate`, `t2isim bundle served-latency` and
`t2isim bundle arrival-charge` (registered by `register`).

The serving settings are the simulator's `SimConfig` fields, one option per field from its
metadata as in `t2isim simulate` (`experiments/cli_config.py`), except those the real path sets
itself (`serving.setup.REAL_PATH_SETS`: given, they are refused). Serve and validate share
their setup options (`setup_options`). Input errors (a bad value, an unreachable URL, a used
port) are one line and exit 2, before Ray starts.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import signal
import threading
import time
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer

from experiments.cli_config import config_options
from experiments.cli_values import parse_key_values
from serving.setup import REAL_PATH_SETS, SIM_REPEATS, ServeSetup
from serving.stack import DEFAULT_STACK
from simulator.config import SimConfig
from simulator.errors import InputError

CHAOS_KINDS = ("kill-replica",)
RAY_ADDRESS_ENV = "RAY_ADDRESS"  # the cluster `ray.init` joins by default, and `serve`


def parse_chaos(spec: str | None) -> float | None:
    """`kill-replica@SECONDS` -> seconds after the first arrival (None: no fault)."""
    if spec is None:
        return None
    kind, at, seconds = spec.partition("@")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if kind not in CHAOS_KINDS or not at or not value >= 0:
        raise InputError(f"--chaos {spec!r}: expected kill-replica@SECONDS with SECONDS >= 0")
    return value


Bundle = Annotated[str, typer.Option(help="'default' or a bundle folder.")]
Policy = Annotated[str, typer.Option(help="Policy name (see `t2isim policies`).")]
Option = Annotated[list[str] | None, typer.Option(help="Policy option key=value (repeatable).")]
Backend = Annotated[
    str,
    typer.Option(
        help="emulated (sleeps the bundle's latencies) or diffusers (the profiled pipelines "
        "and CLIP discriminator; tiny models on CPU, real ones one GPU per worker)."
    ),
]
Discriminator = Annotated[
    Path | None,
    typer.Option(
        help="diffusers: the profiler's discriminator checkpoint (default: "
        "discriminator.pt of the work folder holding the bundle)."
    ),
]
ServeStackName = Annotated[
    str,
    typer.Option(
        help="Ray Serve's own configuration: lean (Serve's HAProxy front, its throughput mode "
        "in the replicas, less background work; serving/stack.py) or shipped (as shipped)."
    ),
]


def _serve_setup(
    config: Mapping[str, object],
    dispatch: str,
    sim_dispatch: str | None,
    bundle: Bundle = "default",
    policy: Policy = "hadis",
    option: Option = None,
    backend: Backend = "emulated",
    discriminator: Discriminator = None,
    serve_stack: ServeStackName = DEFAULT_STACK,
) -> ServeSetup:
    """The checked `ServeSetup` of the options serve and validate share (every input error
    before Ray starts)."""
    sim = dict(config) if sim_dispatch is None else {**config, "dispatch": sim_dispatch}
    setup = ServeSetup(
        bundle,
        policy,
        parse_key_values(option or [], "--option"),
        SimConfig(**sim).to_dict(),
        backend,
        dispatch,
        None if discriminator is None else str(discriminator),
        serve_stack,
    )
    setup.build()
    return setup


SHARED = [
    p for p in inspect.signature(_serve_setup).parameters.values()
    if p.default is not inspect.Parameter.empty
]


DISPATCH_OPTION = inspect.Parameter(
    "dispatch",
    inspect.Parameter.KEYWORD_ONLY,
    default="p2c",
    annotation=Annotated[
        str,
        typer.Option(
            help="Replica choice within a model: p2c (less loaded of two random), jsq, random."
        ),
    ],
)


def setup_options(dispatch: str | None = None) -> Callable:
    """Give a command (which takes `setup`) the options serve and validate share — bundle,
    policy, options, backend, discriminator and every `SimConfig` field the real path takes,
    from the fields' metadata as `t2isim simulate` (the `REAL_PATH_SETS` fields refused) —
    and hand it their checked `ServeSetup`. `dispatch` None: a `--dispatch` option chooses
    workers (the simulated `dispatch` stays at its default); else that mode, for the real runs
    and the simulated `dispatch` alike."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(command, include_extras=True)
        shared_hints = typing.get_type_hints(_serve_setup, include_extras=True)
        keyword = inspect.Parameter.KEYWORD_ONLY
        own = [
            p.replace(kind=keyword, annotation=hints[p.name])
            for p in inspect.signature(command).parameters.values()
            if p.name != "setup"
        ]
        shared = [p.replace(kind=keyword, annotation=shared_hints[p.name]) for p in SHARED]
        if dispatch is None:
            shared.append(DISPATCH_OPTION)

        @functools.wraps(command)
        def with_setup(config: Mapping[str, object], **params: object) -> None:
            values = {p.name: params.pop(p.name) for p in SHARED}
            mode = params.pop(DISPATCH_OPTION.name) if dispatch is None else dispatch
            setup = _serve_setup(config, mode, dispatch, **values)
            return command(setup=setup, **params)

        config = inspect.Parameter("config", keyword)
        parameters = [*own, config, *shared]
        with_setup.__signature__ = inspect.Signature(parameters)
        with_setup.__annotations__ = {p.name: p.annotation for p in [*own, *shared]}
        return config_options(with_setup, excluded=REAL_PATH_SETS)

    return decorate


Port = Annotated[int, typer.Option(help="HTTP port of the ingress.")]
NumCpus = Annotated[int | None, typer.Option(help="CPUs of the local Ray cluster.")]


@setup_options()
def serve(
    setup: ServeSetup,
    host: Annotated[str, typer.Option(help="HTTP host.")] = "127.0.0.1",
    port: Port = 8000,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster (default: the one RAY_ADDRESS names, as Ray's; if none, "
            "start a local one)."
        ),
    ] = None,
    num_cpus: Annotated[
        int | None,
        typer.Option(help="CPUs of the local Ray cluster (refused with an address to join)."),
    ] = None,
    chaos: Annotated[
        str | None,
        typer.Option(
            help="kill-replica@SECONDS: kill a worker's replica that long after the first arrival."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until ^C).")
    ] = None,
) -> None:
    """Serve a policy on Ray Serve: POST /v1/images/generations (OpenAI images shape). Stops
    after --duration, on ^C or on SIGTERM, shutting Serve (and a Ray it started) down."""
    from serving.server import ServeSession

    kill_s = parse_chaos(chaos)
    if duration is not None and not duration > 0:
        raise InputError(f"--duration {duration:g}: expected seconds > 0 (or none: until ^C)")
    source = "--ray-address"
    if ray_address is None and os.environ.get(RAY_ADDRESS_ENV):
        ray_address, source = os.environ[RAY_ADDRESS_ENV], RAY_ADDRESS_ENV
    stop = threading.Event()
    with ServeSession(
        setup,
        host=host,
        port=port,
        ray_address=ray_address,
        num_cpus=num_cpus,
        chaos_kill_s=kill_s,
        ray_address_source=source,
    ) as session:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # after ray.init's own handler
        typer.echo(
            f"serving {setup.policy} at {session.url}/v1/images/generations, ready after "
            f"{session.ready_text()}",
            err=True,
        )
        end = None if duration is None else time.monotonic() + duration
        reported = 0
        while not stop.wait(0.5) and (end is None or time.monotonic() < end):
            session.check()
            for at_s, model in session.controller.killed[reported:]:
                typer.echo(f"chaos: killed a {model} worker's replica at {at_s:.1f} s", err=True)
                reported += 1


Quiet = Annotated[bool, typer.Option(help="No progress bar.")]


def replay_progress(quiet: bool):
    """A replay's progress bar factory for `run_loadgen`: answered of the trace's queries,
    with the sent count beside it (none when quiet or stderr is not a terminal)."""
    from experiments.progress import progress_bar

    return lambda total: progress_bar(
        quiet, "replaying", total, "{task.completed:.0f}/{task.total:.0f} answered",
        "{task.fields[sent]} sent", sent=0,
    )


def loadgen(
    trace: Annotated[str, typer.Argument(help="Trace spec or file (as `simulate --trace`).")],
    url: Annotated[str, typer.Option(help="The server, e.g. http://127.0.0.1:8000.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write.")],
    quiet: Quiet = False,
) -> None:
    """Replay a trace open loop against a server; write a run folder like `simulate`."""
    from serving.loadgen import run_loadgen
    from simulator.atomic import check_output_folder

    check_output_folder(out_dir, marker="summary.json")
    summary = run_loadgen(trace, url, out_dir, replay_progress(quiet))
    typer.echo(
        f"{summary['arrivals']} queries: ok {summary['ok']}, timeouts {summary['timeouts']}, "
        f"drops {summary['drops']} (failed {summary['failed']}); p50 "
        f"{_seconds(summary['p50_latency_s'])}, p99 {_seconds(summary['p99_latency_s'])} "
        f"-> {out_dir}"
    )


def _seconds(value: object) -> str:
    """A latency of the run's summary, as `simulate` shows it (4 significant digits)."""
    return f"{value:.4g} s" if isinstance(value, float) else "n/a (none completed)"


@setup_options(dispatch="jsq")  # the real runs dispatch as the simulated one
def validate(
    out_dir: Annotated[Path, typer.Option("--out", help="Report folder to write.")],
    setup: ServeSetup,
    trace: Annotated[str, typer.Option(help="Trace spec or file.")] = "azure:peak=24,min=1",
    repeats: Annotated[int, typer.Option(help="Real runs (>= 1; spread needs >= 2).")] = 3,
    port: Port = 8000,
    num_cpus: NumCpus = None,
    overheads: Annotated[
        str,
        typer.Option(
            help="Per-hop overheads of the compared simulation: measured (from the real "
            "runs), bundle, none, or an overheads.json file."
        ),
    ] = "measured",
    compare_overheads: Annotated[
        str | None,
        typer.Option(
            help="Also simulate with these per-hop overheads (as --overheads) and report that "
            "simulation's errors in their own column (error_compared)."
        ),
    ] = None,
    compare_served_latency: Annotated[
        str | None,
        typer.Option(
            help="Also simulate with another latency table as the profile (in error_compared): "
            "another validation's served_latency.csv (the service times its workers measured) "
            "or a profile in the bundle's latency shape."
        ),
    ] = None,
    reuse_real: Annotated[
        bool,
        typer.Option(help="Re-simulate and re-report the real-N runs already in --out."),
    ] = False,
    sim_repeats: Annotated[
        int,
        typer.Option(
            help="Simulations whose spread and mean are the simulator's own (the compared "
            "one and replicates with other random streams; the mean is compared on "
            "expectations; >= 1, spread needs >= 2)."
        ),
    ] = SIM_REPEATS,
    profile_rounds: Annotated[
        str | None,
        typer.Option(
            help="Also simulate with the latency profile at the p10 and at the p90 of its "
            "rounds' medians (the folder of the bundle's `profile latency --rounds` timing "
            "tables, e.g. a work folder's latency/): error_profile_fast, error_profile_slow."
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Real runs (serve + loadgen) vs the simulator on the same inputs: fidelity table + PNG."""
    from serving.hops import overheads_spec
    from serving.validate import run_validation

    if repeats < 1:
        raise InputError(f"--repeats {repeats}: must be >= 1")
    if sim_repeats < 1:
        raise InputError(f"--sim-repeats {sim_repeats}: must be >= 1")
    spec = overheads_spec(overheads)
    compared = None
    if compare_overheads is not None:
        compared = overheads_spec(compare_overheads, "--compare-overheads")
    run_validation(
        setup,
        trace,
        out_dir,
        repeats,
        port,
        num_cpus,
        log=lambda s: typer.echo(s, err=True),
        overheads=spec,
        reuse_real=reuse_real,
        compare_overheads=compared,
        compare_served_latency=compare_served_latency,
        sim_repeats=sim_repeats,
        profile_rounds=profile_rounds,
        quiet=quiet,
        compare_overheads_file=compare_overheads if isinstance(compared, dict) else None,
    )
    typer.echo((Path(out_dir) / "fidelity.md").read_text())


# the arguments of the `bundle` commands that read real runs
RealRuns = Annotated[list[Path], typer.Argument(help="Real run folders (`t2isim loadgen`).")]
BundleOut = Annotated[Path, typer.Option("--out", help="Bundle folder to write.")]
RunsBundle = Annotated[
    str | None, typer.Option(help="The bundle the runs served (default: as they name it).")
]


def served_latency(
    runs: RealRuns,
    out_dir: BundleOut,
    bundle: RunsBundle = None,
    served_tails: Annotated[
        bool,
        typer.Option(
            "--served-tails",
            help="The batches' own p95 and p05 for each size with enough served batches "
            "(default: the profile's p95/p50 and p05/p50 around the served median).",
        ),
    ] = False,
    served_shapes: Annotated[
        bool,
        typer.Option(
            "--served-shapes",
            help="Also the batches' and the dispatch and arrival hops' measured shapes "
            "(shapes.csv) where enough were served; simulate with --service-time empirical.",
        ),
    ] = False,
) -> None:
    """The runs' bundle with the latency profile their workers measured (batches.csv)."""
    from serving.service_times import served_bundle
    from simulator.atomic import check_output_folder
    from simulator.bundle import write_bundle

    check_output_folder(out_dir, marker="bundle.json")
    served, table = served_bundle(runs, bundle, served_tails, served_shapes)
    write_bundle(served, out_dir)
    for r in table.itertuples():
        cpu = "" if math.isnan(r.served_cpu_p50_s) else f", {r.served_cpu_p50_s * 1e3:.3g} ms CPU"
        if not math.isnan(r.served_preemptions_p50):
            cpu += f", preempted {r.served_preemptions_p50:.3g} times"
        typer.echo(
            f"{r.model} batch {r.batch_size}: {r.profiled_p50_s * 1e3:.3g} ms profiled -> "
            f"{r.latency_p50_s * 1e3:.3g} ms served (x{r.ratio:.3f}, {r.served_batches} batches"
            f"{cpu})"
        )
    if served_shapes:
        shaped = [f"{m} batch {b}" for m, b in served.latency_shape] + list(served.hop_shape)
        typer.echo(f"measured shapes: {', '.join(shaped) or 'none (too few served)'}")
    typer.echo(f"bundle written to {out_dir}")


def arrival_charge(
    runs: RealRuns,
    out_dir: BundleOut,
    bundle: RunsBundle = None,
) -> None:
    """The runs' bundle with the arrival charge their batches give (overheads.arrival_charge_ms:
    each arrival prolongs the batches running then)."""
    from serving.arrival_charge import arrival_charge_bundle
    from simulator.atomic import check_output_folder
    from simulator.bundle import write_bundle

    check_output_folder(out_dir, marker="bundle.json")
    charged, fit = arrival_charge_bundle(runs, bundle)
    write_bundle(charged, out_dir)
    typer.echo(
        f"arrival charge {fit['charge_ms']:.3g} ms per arrival (standard error "
        f"{fit['charge_se_ms']:.2g} ms) over {fit['batches']} batches of {fit['runs']} runs"
    )
    typer.echo(f"bundle written to {out_dir}")


def register(app: typer.Typer, bundle_app: typer.Typer) -> None:
    """Add `serve`, `loadgen` and `validate` to `app`, `served-latency` and `arrival-charge`
    to `bundle_app`."""
    app.command("serve")(serve)
    app.command("loadgen")(loadgen)
    app.command("validate")(validate)
    bundle_app.command("served-latency")(served_latency)
    bundle_app.command("arrival-charge")(arrival_charge)
