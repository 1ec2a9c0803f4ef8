"""`t2isim serve`, `t2isim loadgen` and `t2isim validate` (registered by `register(app)`).

The serving settings are the simulator's `SimConfig` fields: the common ones as options named
as in `t2isim simulate`, any other with `--set FIELD=VALUE`. Input errors (a bad value, an
unreachable URL, a used port) are one line and exit 2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from experiments.cli_values import parse_key_values
from simulator.errors import InputError

CHAOS_KINDS = ("kill-replica",)


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


def _setup(
    bundle,
    policy,
    option,
    workers,
    slo,
    time_scale,
    seed,
    plan_interval,
    load_s,
    sets,
    backend,
    discriminator,
    dispatch,
    sim_dispatch=None,
):
    from serving.setup import ServeSetup
    from simulator.config import SimConfig

    fields = dict(
        n_workers=workers,
        slo_s=slo,
        time_scale=time_scale,
        seed=seed,
        plan_interval_s=plan_interval,
        load_s=load_s,
    )
    if sim_dispatch is not None:
        fields["dispatch"] = sim_dispatch
    extra = parse_key_values(sets or [], "--set")
    unknown = sorted(set(extra) - set(SimConfig.field_names()))
    if unknown:
        raise InputError(
            f"--set {unknown[0]}: not a SimConfig field; known: "
            f"{', '.join(SimConfig.field_names())}"
        )
    fields.update(extra)
    setup = ServeSetup(
        bundle,
        policy,
        parse_key_values(option or [], "--option"),
        SimConfig(**fields).to_dict(),
        backend,
        dispatch,
        None if discriminator is None else str(discriminator),
    )
    setup.build()  # every input error before Ray starts
    return setup


Bundle = Annotated[str, typer.Option(help="'default' or a bundle folder.")]
Policy = Annotated[str, typer.Option(help="Policy name (see `t2isim policies`).")]
Option = Annotated[list[str] | None, typer.Option(help="Policy option key=value (repeatable).")]
Workers = Annotated[int, typer.Option(help="Workers (replicas in all).")]
Slo = Annotated[float, typer.Option(help="Latency SLO in seconds.")]
TimeScale = Annotated[float, typer.Option(help="Multiplier of execution times.")]
Seed = Annotated[int, typer.Option(help="Master seed.")]
PlanInterval = Annotated[float, typer.Option(help="Seconds between plans.")]
LoadS = Annotated[float | None, typer.Option(help="Model swap seconds (default: the bundle's).")]
Backend = Annotated[
    str,
    typer.Option(
        help="emulated (sleeps the bundle's latencies) or diffusers (the profiled pipelines "
        "and CLIP discriminator; tiny models on CPU, real ones one GPU per replica)."
    ),
]
Discriminator = Annotated[
    Path | None,
    typer.Option(
        help="diffusers: the profiler's discriminator checkpoint (default: "
        "discriminator.pt of the work folder holding the bundle)."
    ),
]
Port = Annotated[int, typer.Option(help="HTTP port of the ingress.")]
NumCpus = Annotated[int | None, typer.Option(help="CPUs of the local Ray cluster.")]


def serve(
    bundle: Bundle = "default",
    policy: Policy = "hadis",
    option: Option = None,
    workers: Workers = 16,
    slo: Slo = 60.0,
    time_scale: TimeScale = 1.0,
    seed: Seed = 0,
    plan_interval: PlanInterval = 5.0,
    load_s: LoadS = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any SimConfig field=value.")
    ] = None,
    backend: Backend = "emulated",
    discriminator: Discriminator = None,
    dispatch: Annotated[
        str,
        typer.Option(
            help="Replica choice within a model: p2c (less loaded of two random), jsq, random."
        ),
    ] = "p2c",
    host: Annotated[str, typer.Option(help="HTTP host.")] = "127.0.0.1",
    port: Port = 8000,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster (default: start a local one).")
    ] = None,
    num_cpus: NumCpus = None,
    chaos: Annotated[
        str | None,
        typer.Option(
            help="kill-replica@SECONDS: kill a replica that long after the first arrival."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until ^C).")
    ] = None,
) -> None:
    """Serve a policy on Ray Serve: POST /v1/images/generations (OpenAI images shape)."""
    from serving.server import ServeSession

    kill_s = parse_chaos(chaos)
    setup = _setup(
        bundle,
        policy,
        option,
        workers,
        slo,
        time_scale,
        seed,
        plan_interval,
        load_s,
        set_,
        backend,
        discriminator,
        dispatch,
    )
    with ServeSession(
        setup, host=host, port=port, ray_address=ray_address, num_cpus=num_cpus, chaos_kill_s=kill_s
    ) as session:
        typer.echo(f"serving {policy} at {session.url}/v1/images/generations", err=True)
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            time.sleep(0.5)
            session.check()


def loadgen(
    trace: Annotated[str, typer.Argument(help="Trace spec or file (as `simulate --trace`).")],
    url: Annotated[str, typer.Option(help="The server, e.g. http://127.0.0.1:8000.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write.")],
) -> None:
    """Replay a trace open loop against a server; write a run folder like `simulate`."""
    from serving.loadgen import run_loadgen
    from simulator.atomic import check_output_folder

    check_output_folder(out_dir, marker="summary.json")
    summary = run_loadgen(trace, url, out_dir)
    typer.echo(
        f"{summary['arrivals']} queries: ok {summary['ok']}, timeouts {summary['timeouts']}, "
        f"drops {summary['drops']} (failed {summary['failed']}); p50 "
        f"{summary['p50_latency_s']} s, p99 {summary['p99_latency_s']} s -> {out_dir}"
    )


def validate(
    out_dir: Annotated[Path, typer.Option("--out", help="Report folder to write.")],
    bundle: Bundle = "default",
    policy: Policy = "hadis",
    trace: Annotated[str, typer.Option(help="Trace spec or file.")] = "azure:peak=24,min=1",
    option: Option = None,
    workers: Workers = 16,
    slo: Slo = 60.0,
    time_scale: TimeScale = 1.0,
    seed: Seed = 0,
    plan_interval: PlanInterval = 5.0,
    load_s: LoadS = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Any SimConfig field=value.")
    ] = None,
    backend: Backend = "emulated",
    discriminator: Discriminator = None,
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
    reuse_real: Annotated[
        bool,
        typer.Option(help="Re-simulate and re-report the real-N runs already in --out."),
    ] = False,
) -> None:
    """Real runs (serve + loadgen) vs the simulator on the same inputs: fidelity table + PNG."""
    from serving.validate import overheads_spec, run_validation

    if repeats < 1:
        raise InputError(f"--repeats {repeats}: must be >= 1")
    spec = overheads_spec(overheads)
    setup = _setup(
        bundle,
        policy,
        option,
        workers,
        slo,
        time_scale,
        seed,
        plan_interval,
        load_s,
        set_,
        backend,
        discriminator,
        dispatch="jsq",  # the real runs dispatch as the simulated one
        sim_dispatch="jsq",
    )
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
    )
    typer.echo((Path(out_dir) / "fidelity.md").read_text())


def register(app: typer.Typer) -> None:
    """Add `serve`, `loadgen` and `validate` to `app`."""
    app.command("serve")(serve)
    app.command("loadgen")(loadgen)
    app.command("validate")(validate)
