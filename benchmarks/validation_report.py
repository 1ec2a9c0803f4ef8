"""The validation of the simulator against the real serving path (`results/VALIDATION.md`): one
`t2isim validate` per experiment (3 real runs each), then a report of the issue-14 goals per
experiment and each experiment's fidelity table, under hand-written notes.

    python benchmarks/validation_report.py --run [--only NAME,...]   # real runs + report
        [--tiny-rounds N] [--skip-after]    # a shorter tiny check on other hardware
        [--tiny-beside-stack]               # the tiny profile also re-timed beside the stack
    python benchmarks/validation_report.py                           # re-report (--reuse-real)

Emulated experiments: the default bundle, 16 replicas, time scale 0.1, on the default (lean)
Serve stack (`serving.stack`). Each one's simulation
applies the per-hop overheads measured in its own real runs from their timestamps (the time
the stack adds besides the workers' queues and service, which the simulator models; no
simulation enters the measurement), and a second simulation applies another experiment's
(`CALIBRATION`'s; its plan hop, which a static cascade cannot measure, the median of the other
experiments': `write_calibration_hops`), to show how the hops carry over between loads.
Diffusers experiments: the tiny models of `t2isim profile all --tiny` on 2 CPU replicas;
`--run` profiles them first on this machine (`profile_tiny`, into DIR/tiny-profile, which the
re-report reads; the latency timed in rounds spread over minutes, whose spread each
experiment also simulates: `validate --profile-rounds`) and after them re-takes that latency
profile (`reprofile_tiny`) and measures how steady the machine's speed is
(`benchmarks/machine_drift.py`): the report shows both under the tiny goals.
The last line
is `goals_met=N/M` over the goals the experiments report (emulated: p50, p99, violations, same
plan; diffusers: p50) with each experiment's own hops, then `held_out_hops_goals_met=N/M` with
each real run judged against a simulation of the other runs' hops, `served_goals_met=N/M` with
the other runs' hops and the service times their workers measured as the latency profile (the
experiments whose real runs recorded their batches), and `calibration_goals_met=N/M` with
another experiment's measurements, made at another load (the experiments that compare with one:
emulated ones with `CALIBRATION`'s hops; the tiny one with `TINY_CALIBRATION`'s hops and the
service times its workers measured as the latency profile), and
`calibration_shapes_goals_met=N/M` with the same calibration's service times drawn from the
shapes its runs measured (the tiny goal's named second protocol, session 31).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from profiler.cpu_threads import CPU_WORKER_THREADS
from profiler.latency import bundle_latency_rows, read_latency_profile
from profiler.provenance import cpu_ticks, steal_share
from profiler.speed_drift import drift_ratio
from serving.batch_parting import (
    PARTING_FILE,
    earliest_partings,
    parting_groups,
    partings_summary,
)
from serving.fidelity import (
    EXPECTATION_FILE,
    TINY_P50_GOAL_PCT,
    goal_met,
    real_run_dirs,
    value_se_text,
)
from serving.hops import calibration_overheads, measured_overheads_ms
from serving.overhead_ledger import OVERHEAD_LEDGER, overhead_glance_row, overhead_ledger_lines
from serving.setup import SIM_REPEATS
from serving.validation_figures import (
    PREREGISTERED,
    offline_profile_rows,
    read_preregistered,
)

EMULATED = (
    "--bundle default --backend emulated --workers 16 --time-scale 0.1 --repeats 3 --num-cpus 2"
)
# HADIS at 16 s takes one of two plans at 30 s (set 13): its real runs' p50 spread, 8.6% of the
# mean over set 13's 24 runs, puts the mean's standard error within half the p50 goal (2.5%)
# at 12 runs (8.6 / sqrt(12) = 2.48%); since session 47
BIMODAL = EMULATED.replace("--repeats 3", "--repeats 12")
TINY_PROFILE = "tiny-profile"  # under DIR: bundle/ and discriminator.pt of `profile all --tiny`
# under DIR/TINY_PROFILE, measured after the tiny experiments (`reprofile_tiny`, `measure_drift`)
LATENCY_AFTER = "latency_after.csv"
MACHINE_DRIFT = "machine_drift.csv"
# the timing tables themselves (`profiler.latency`: each row's rounds' spread), before and after
LATENCY_TABLES, LATENCY_TABLES_AFTER = "latency", "latency-after"
# with --tiny-beside-stack, before the runs: the tiny profile re-timed beside the experiment's
# stack on the emulated backend (`beside_emulated_stack`), the simulation's second profile
LATENCY_BESIDE, LATENCY_TABLES_BESIDE = "latency_beside_stack.csv", "latency-beside-stack"
# the emulated stack's start (Ray, Serve, the workers' emulated loads) before the profile times
STACK_SETTLE_S = 45.0
BESIDE_REPLAY_S = 900  # the emulated replay's length: longer than the profile it runs beside
BESIDE_PORT = 8651
# the tiny profile's timed calls in rounds spread over about 1.5 minutes per model: a bare
# process's speed here moved x1.3-1.6 between 10-s bins within 2 minutes (session 18), and
# back-to-back repeats sample one moment of it
TINY_LATENCY_ROUNDS = 20
TINY_LATENCY_ROUND_GAP_S = 4.0
# and each round's calls again after 0.1 s idle: a replica at 2-8 QPS idles about 0.1-0.5 s
# before a batch, and a bare process's batch after 0.1 s idle ran 15-50% slower than back to
# back, about as slow as after 0.3 s (session 20's probes); fixed before the set it is judged on
TINY_LATENCY_IDLE_GAP_S = 0.1
TINY = (
    f"--bundle {{dir}}/{TINY_PROFILE}/bundle --backend diffusers --workers 2 --repeats 3 "
    "--num-cpus 2 --port 8631"
)
STATIC = "--policy static-cascade --option light=SDXL-Lightning --option heavy=SD3.5-Large-Turbo"
TINY_STATIC = "--policy static-cascade --option light=tiny-light --option heavy=tiny-heavy"
AZURE = "azure:peak=24,min=1,seconds_per_hour=0.2"  # the Azure shape in 69 s, 977 queries
CONSTANT = "constant:rate=12,duration=60"
# 8 QPS: the heavy replica (0.44 of queries: 0.2 bypassed + 0.3 of the rest escalated) is 47-65%
# busy at the batch-1 latency of tiny-heavy in one-thread tiny profiles here (135-186 ms)
TINY_POISSON = "poisson:rate=8,duration=60"
# half the load: its hops and served service times predict TINY_POISSON's (out of sample)
TINY_CALIBRATION_TRACE = "poisson:rate=4,duration=60"
CALIBRATION = "static-azure"
TINY_CALIBRATION = "tiny-diffusers-calibration"
# under DIR: each emulated experiment's calibration hops (`calibration_hops`), what its
# --compare-overheads reads, and the experiments whose plan hops each one's took
CALIBRATION_HOPS = "calibration-hops"
CALIBRATION_SOURCES = "sources.csv"


@dataclass(frozen=True)
class Experiment:
    setup: str  # bundle, backend, workers ... ({dir}: the experiments' folder)
    policy: str
    trace: str
    # whose overheads.json (and, diffusers, served_latency.csv) the second simulation applies
    compare_with: str | None = CALIBRATION

    @property
    def diffusers(self) -> bool:
        return "--backend diffusers" in self.setup


EXPERIMENTS = {
    "static-azure": Experiment(EMULATED, STATIC, AZURE, None),
    "static-constant": Experiment(EMULATED, STATIC, CONSTANT),
    "proteus-azure": Experiment(EMULATED, "--policy proteus", AZURE),
    "proteus-constant": Experiment(EMULATED, "--policy proteus", CONSTANT),
    "hadis-constant": Experiment(EMULATED, "--policy hadis", CONSTANT),
    "hadis-azure": Experiment(EMULATED, "--policy hadis", AZURE),
    # the Azure shape at full length (the figures' default trace): 4,912 queries
    "hadis-azure-full": Experiment(EMULATED, "--policy hadis", "azure:peak=24,min=1"),
    # HADIS's main baseline and its two ablations (since session 38)
    "diffserve-azure": Experiment(EMULATED, "--policy diffserve", AZURE),
    "diffserve-constant": Experiment(EMULATED, "--policy diffserve", CONSTANT),
    "router-only-azure": Experiment(EMULATED, "--policy router-only", AZURE),
    "disc-only-azure": Experiment(EMULATED, "--policy disc-only", AZURE),
    # an SLO that queries violate (chosen on simulations alone, session 38): drops and timeouts
    "hadis-azure-slo16": Experiment(f"{BIMODAL} --slo 16", "--policy hadis", AZURE),
    "proteus-azure-slo16": Experiment(f"{EMULATED} --slo 16", "--policy proteus", AZURE),
    TINY_CALIBRATION: Experiment(TINY, TINY_STATIC, TINY_CALIBRATION_TRACE, None),
    "tiny-diffusers-static": Experiment(TINY, TINY_STATIC, TINY_POISSON, TINY_CALIBRATION),
}
GOAL_METRICS = ("p50_latency_s", "p99_latency_s", "slo_violation_ratio", "same_plan_share")


def command(name: str, folder: Path, reuse: bool) -> list[str]:
    """The `t2isim validate` command of one experiment; a diffusers one charges the
    discriminator's measured cost (`measured_disc_cost_s`) and simulates the profile at both
    ends of its rounds' spread where its timing tables are kept (`--profile-rounds`). It
    compares with the experiment it names when that one has been run (`run_order` runs it
    first)."""
    e = EXPERIMENTS[name]
    args = ["t2isim", "validate", *e.setup.format(dir=folder).split(), *e.policy.split()]
    if e.diffusers and (disc_s := measured_disc_cost_s(folder / TINY_PROFILE)) is not None:
        args += ["--disc-cost", f"{disc_s:.6g}"]
    args += ["--trace", e.trace, "--out", str(folder / name)]
    if e.diffusers and (folder / TINY_PROFILE / LATENCY_TABLES).is_dir():
        args += ["--profile-rounds", str(folder / TINY_PROFILE / LATENCY_TABLES)]
    source = folder / (e.compare_with or "")
    beside = folder / TINY_PROFILE / LATENCY_BESIDE
    if compares(folder, name):
        if e.diffusers:
            args += ["--compare-overheads", str(source / "overheads.json")]
            args += ["--compare-served-latency", str(source / "served_latency.csv")]
        else:
            args += ["--compare-overheads", str(folder / CALIBRATION_HOPS / f"{name}.json")]
    elif e.diffusers and beside.is_file():  # the profile beside the stack, as the second one
        args += ["--compare-served-latency", str(beside)]
    return args + (["--reuse-real"] if reuse else [])


def compares(folder: Path, name: str) -> bool:
    """Whether experiment `name` has a calibration to compare with that has been run."""
    source = EXPERIMENTS[name].compare_with
    return source is not None and (folder / source / "overheads.json").is_file()


def write_calibration_hops(folder: Path, name: str) -> None:
    """DIR/CALIBRATION_HOPS/<name>.json, the hops emulated experiment `name`'s calibration
    column applies (`serving.hops.calibration_overheads`): `CALIBRATION`'s, and where its runs
    measured no plan hop (the static cascade never re-plans), the median route, plan and
    configure hops of the other emulated experiments with real runs in DIR (not `name`, not
    the calibration; with `--run`, the runs there so far); its row in
    DIR/CALIBRATION_HOPS/CALIBRATION_SOURCES names them (since session 40; the route hop since
    session 42, the configure hop since 43). Each experiment's hops are measured from its real
    runs (`measured_overheads_ms`, as its own validate does), not read from its last report,
    so a re-report gives the same columns however often and in whatever order it runs (since
    session 43)."""
    others = {
        other: measured_overheads_ms(runs)
        for other, e in EXPERIMENTS.items()
        if other not in (name, CALIBRATION)
        and not e.diffusers
        and (runs := real_run_dirs(folder / other))
    }
    calibration = measured_overheads_ms(real_run_dirs(folder / CALIBRATION))
    hops, sources = calibration_overheads(calibration, others)
    out = folder / CALIBRATION_HOPS
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(hops, indent=2, sort_keys=True) + "\n")
    table = out / CALIBRATION_SOURCES
    rows = pd.read_csv(table) if table.is_file() else pd.DataFrame()
    row = {
        "experiment": name,
        "calibration": CALIBRATION,
        "route_overhead_ms": hops.get("route_overhead_ms", 0.0),
        "plan_overhead_ms": hops.get("plan_overhead_ms", 0.0),
        "configure_overhead_ms": hops.get("configure_overhead_ms", 0.0),
        "plan_hop_from": ";".join(sources),
    }
    if len(rows):
        rows = rows[rows["experiment"] != name]
    rows = pd.concat([rows, pd.DataFrame([row])]).sort_values("experiment")
    rows.to_csv(table, index=False)


def measured_disc_cost_s(work: Path) -> float | None:
    """The discriminator's cost per image as profiled with the tiny models (the p50 at batch
    size 1 of the bundle's `discriminator_latency`), None for a bundle without it. The
    simulator's default, 7 ms, is HADIS's GPU figure, not this CPU's."""
    path = work / "bundle" / "bundle.json"
    timing = json.loads(path.read_text()).get("discriminator_latency") if path.is_file() else None
    if not timing or 1 not in timing["batch_size"]:
        return None
    return float(timing["latency_p50_s"][timing["batch_size"].index(1)])


def run_order(names: list[str]) -> list[str]:
    """`names`, each after the experiment whose overheads it compares with (when also run)."""
    order: list[str] = []

    def visit(name: str) -> None:
        source = EXPERIMENTS[name].compare_with
        if source in names and source not in order:
            visit(source)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    return order


def profile_tiny(
    work: Path,
    rounds: int = TINY_LATENCY_ROUNDS,
    round_gap_s: float = TINY_LATENCY_ROUND_GAP_S,
    idle_gap_s: float = TINY_LATENCY_IDLE_GAP_S,
    repeats: int | None = None,
) -> None:
    """`t2isim profile all --tiny` on this machine, with the torch threads of one CPU replica
    (`OMP_NUM_THREADS` = `CPU_WORKER_THREADS`: replicas share the cores, and a profile made with
    more threads measures their contention instead), the latency timed in `rounds` rounds
    `round_gap_s` apart and after `idle_gap_s` idle (`repeats` calls each per round, default
    the tiny plan's; 100 or more over the rounds carry their shape into the bundle), each
    prompt's bundle score that of its
    first image (`--prompt-score
    first-image`: the image the real path renders for it, so both drivers judge the same
    image); keeps in `work` what the diffusers backend serves and the report reads: bundle/,
    discriminator.pt and the timing tables (LATENCY_TABLES), not the images."""
    work.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work.parent, prefix=f".{work.name}-") as tmp:
        scratch, keep = Path(tmp) / "work", Path(tmp) / "keep"
        env = {**os.environ, "OMP_NUM_THREADS": str(CPU_WORKER_THREADS)}
        args = ["t2isim", "profile", "all", "--tiny", "--out", str(scratch)]
        args += ["--prompt-score", "first-image"]  # the image a one-image request renders
        args += ["--latency-rounds", str(rounds), "--latency-round-gap-s", f"{round_gap_s:g}"]
        args += ["--latency-idle-gap-s", f"{idle_gap_s:g}"]
        args += ["--latency-repeats", str(repeats)] if repeats else []
        print(" ".join(args), f"(OMP_NUM_THREADS={CPU_WORKER_THREADS})", flush=True)
        subprocess.run(args, check=True, env=env)
        shutil.copytree(scratch / "bundle", keep / "bundle")
        shutil.copytree(scratch / "latency", keep / LATENCY_TABLES)
        shutil.copy2(scratch / "discriminator.pt", keep / "discriminator.pt")
        if work.exists():
            shutil.rmtree(work)
        keep.rename(work)
    print((work / "bundle" / "latency.csv").read_text(), flush=True)


def reprofile_tiny(
    work: Path,
    rounds: int = TINY_LATENCY_ROUNDS,
    round_gap_s: float = TINY_LATENCY_ROUND_GAP_S,
    idle_gap_s: float = TINY_LATENCY_IDLE_GAP_S,
    into: tuple[str, str] = (LATENCY_AFTER, LATENCY_TABLES_AFTER),
    repeats: int | None = None,
) -> None:
    """The offline profile re-timed: each tiny model's `t2isim profile latency` again (the
    bundle's source model, steps, resolution and dtype; `profile all --tiny`'s batch sizes,
    warm-up and repeats, or `repeats`; `profile_tiny`'s rounds and idle gap), into
    work/`into[0]` in the bundle's shape (`bundle_latency_rows`: p50 and p95 made monotone as
    the bundle's are) and the timing tables into work/`into[1]`: after the runs (its
    repeatability) or beside the emulated stack (`beside_emulated_stack`)."""
    from profiler.layout import WorkLayout
    from profiler.workflow import tiny_plan

    profiles = json.loads((work / "bundle" / "bundle.json").read_text())["latency_profiles"]
    env = {**os.environ, "OMP_NUM_THREADS": str(CPU_WORKER_THREADS)}
    tables = []
    with tempfile.TemporaryDirectory(dir=work, prefix=".after-") as tmp:
        layout = WorkLayout(Path(tmp))
        plan = tiny_plan(layout)
        for name, p in profiles.items():
            args = ["t2isim", "profile", "latency", "--model", p["source_model"], "--name", name]
            args += ["--steps", str(p["steps"]), "--resolution", str(p["resolution"])]
            args += ["--batch-sizes", ",".join(map(str, plan.batch_sizes))]
            args += ["--dtype", p["dtype"], "--warmup", str(plan.timing.n_warmup)]
            args += ["--repeats", str(repeats or plan.timing.n_repeats), "--device", plan.device]
            args += ["--rounds", str(rounds), "--round-gap-s", f"{round_gap_s:g}"]
            args += ["--idle-gap-s", f"{idle_gap_s:g}", "--work", tmp]
            print(" ".join(args), f"(OMP_NUM_THREADS={CPU_WORKER_THREADS})", flush=True)
            subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
            tables.append(pd.read_csv(layout.latency_csv(name)))
        if (work / into[1]).exists():
            shutil.rmtree(work / into[1])
        shutil.copytree(layout.root / "latency", work / into[1])
    again = bundle_latency_rows(pd.concat(tables))  # as the bundle holds a profile
    again.to_csv(work / into[0], index=False)
    print(again.to_string(index=False), flush=True)


@contextlib.contextmanager
def beside_emulated_stack(folder: Path, name: str) -> Iterator[None]:
    """While inside: experiment `name`'s serving stack with the emulated backend (its bundle,
    policy, workers and arrival rate; workers that sleep the profile instead of computing)
    serving a BESIDE_REPLAY_S replay, STACK_SETTLE_S after its start: the machine as a served
    run keeps it (the stack's processes, hops and answers) without the pipelines' own work.
    The replay is interrupted on exit (SIGTERM: it writes nothing)."""
    e = EXPERIMENTS[name]
    setup = e.setup.format(dir=folder).replace("--backend diffusers", "--backend emulated")
    setup = re.sub(r"--repeats \d+", "--repeats 1", setup)
    setup = re.sub(r"--port \d+", f"--port {BESIDE_PORT}", setup)
    trace = re.sub(r"duration=\d+", f"duration={BESIDE_REPLAY_S}", e.trace)
    with tempfile.TemporaryDirectory(prefix="beside-stack-") as tmp:
        args = ["t2isim", "validate", *setup.split(), *e.policy.split(), "--trace", trace]
        args += ["--out", str(Path(tmp) / "run"), "--quiet"]
        print(" ".join(args), "(in the background)", flush=True)
        stack = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(STACK_SETTLE_S)
            if stack.poll() is not None:
                said = stack.stderr.read().decode(errors="replace").strip().splitlines()
                why = said[-1] if said else "no output"
                raise SystemExit(f"the emulated stack ended early (exit {stack.returncode}): {why}")
            yield
        finally:
            stack.send_signal(signal.SIGTERM)
            stack.communicate(timeout=120)


def measure_drift(work: Path) -> None:
    """This machine's speed drift (`benchmarks/machine_drift.py`, 120 s in 10 s bins) into
    work/MACHINE_DRIFT."""
    script = Path(__file__).resolve().parent / "machine_drift.py"
    args = [sys.executable, str(script), "--out", str(work / MACHINE_DRIFT)]
    print(" ".join(args), flush=True)
    subprocess.run(args, check=True)


def rounds_spread_ms(folder: Path) -> dict[tuple[str, int], str]:
    """(model, batch size) -> "p10-p90 of its rounds' medians in ms (rounds)" from the timing
    tables in `folder` ({} where there are none)."""
    spread = {}
    for path in sorted(folder.glob("*.csv")):
        table, _ = read_latency_profile(path)
        for r in table[table["feasible"].astype(bool)].itertuples():
            spread[(r.model, int(r.batch_size))] = (
                f"{r.latency_rounds_p10_s * 1e3:.1f}–{r.latency_rounds_p90_s * 1e3:.1f} "
                f"({r.n_rounds})"
            )
    return spread


# the simulations a diffusers experiment's fidelity table also reports, beside the judged one
ALTERNATIVE_SIMULATIONS = {
    "error_back_to_back_latency": "with the back-to-back p50 alone (no latency after idle)",
    "error_shifted-lognormal_service": "with shifted-lognormal service times (a floor through "
    "the profile's p05)",
}


def profile_band_lines(folder: Path, names: list[str]) -> list[str]:
    """The p50 error each diffusers experiment's simulation has with the profile at either end
    of its rounds' spread (`validate --profile-rounds`: error_profile_fast and _slow), next to
    the one judged; nothing for experiments that lack them."""
    lines = []
    for name in names:
        path = folder / name / "fidelity.csv"
        if not (EXPERIMENTS[name].diffusers and path.is_file()):
            continue
        p50 = pd.read_csv(path).set_index("metric").loc["p50_latency_s"]
        if "error_profile_fast" not in p50.index:
            continue
        also = [
            f"{p50[column]:+.1f}% {text}"
            for column, text in ALTERNATIVE_SIMULATIONS.items()
            if p50.get(column, math.nan) == p50.get(column, math.nan)
        ]
        lines.append(
            f"- {name}: {p50['error']:+.1f}% with the profile's p50 (judged), "
            f"{p50['error_profile_fast']:+.1f}% with every row at its rounds' p10, "
            f"{p50['error_profile_slow']:+.1f}% at their p90"
            + "".join(f"; {a}" for a in also)
            + "."
        )
    if not lines:
        return []
    return [
        "The profile's own spread carried into the simulation (the same hops as the judged "
        "one; each latency row at the p10 and at the p90 of the medians of the rounds it was "
        "timed in, `validate --profile-rounds`): the p50 errors the machine's speed while it was "
        "profiled allows.",
        "",
        *lines,
        "",
    ]


def tiny_profile_lines(work: Path) -> list[str]:
    """The report's lines on how far the tiny profile can be trusted: the profile re-taken
    after the runs against the one the simulations used, each with the spread of its rounds'
    medians, and the machine's speed drift."""
    lines = []
    if (work / LATENCY_AFTER).is_file():
        used = pd.read_csv(work / "bundle" / "latency.csv")
        both = used.merge(
            pd.read_csv(work / LATENCY_AFTER), on=["model", "batch_size"], suffixes=("", "_after")
        )
        idle = {"latency_idle_p50_s", "latency_idle_p50_s_after"} <= set(both.columns)
        spread_used = rounds_spread_ms(work / LATENCY_TABLES)
        spread_after = rounds_spread_ms(work / LATENCY_TABLES_AFTER)
        lines += [
            "The offline profile re-taken after the runs (`t2isim profile latency`, as `profile "
            "all --tiny` times it, made monotone in the batch size as the bundle's is), against "
            "the bundle's the simulations used. Rounds: the p10 to p90 of the medians of the "
            "rounds a row was timed in (their number in brackets), that is how far the "
            "machine's speed moved while it was timed (before the monotone rule)"
            + ("; after idle: the p50 of the calls timed after the idle gap" if idle else "")
            + ":",
            "",
            "| model | batch size | p50 used (ms) | rounds used (ms) | p50 re-taken (ms) | "
            "rounds re-taken (ms) | change |"
            + (" after idle used (ms) | after idle re-taken (ms) |" if idle else ""),
            "|---|---|---|---|---|---|---|" + ("---|---|" if idle else ""),
        ]
        for r in both.itertuples():
            change = (r.latency_p50_s_after / r.latency_p50_s - 1) * 100
            key = (r.model, int(r.batch_size))
            line = (
                f"| {r.model} | {r.batch_size} | {r.latency_p50_s * 1e3:.1f} | "
                f"{spread_used.get(key, '—')} | {r.latency_p50_s_after * 1e3:.1f} | "
                f"{spread_after.get(key, '—')} | {change:+.1f}% |"
            )
            if idle:
                line += (
                    f" {r.latency_idle_p50_s * 1e3:.1f} | {r.latency_idle_p50_s_after * 1e3:.1f} |"
                )
            lines.append(line)
        lines.append("")
    if (work / MACHINE_DRIFT).is_file():
        bins = pd.read_csv(work / MACHINE_DRIFT)
        bin_s = bins["start_s"].diff().median() if len(bins) > 1 else math.nan
        lines += [
            f"The machine's speed after the runs (`benchmarks/machine_drift.py`: tiny-light's "
            f"batch of one back to back in a bare process, one torch thread, {len(bins)} bins "
            f"of {bin_s:g} s): bin medians {bins['median_ms'].min():.1f} to "
            f"{bins['median_ms'].max():.1f} ms (x{drift_ratio(bins):.2f}), CPU stolen at most "
            f"{bins['steal_share'].max():.1%}.",
            "",
        ]
    return lines


# the simulations a goal is judged on besides DIR/sim (own hops, in sample): fidelity.csv
# column -> its label; both out of sample
HELD_OUT = {
    "error_leave_one_out": "held-out hops",
    "error_leave_one_out_served": "held-out hops and service times",
    "error_compared": "calibration",
    # the tiny goal's named second protocol since session 31 (pre-registered, met in 2 of 2)
    "error_compared_empirical": "calibration with measured shapes",
}
COUNT_NAMES = (
    "goals_met",
    "held_out_hops_goals_met",
    "served_goals_met",
    "calibration_goals_met",
    "calibration_shapes_goals_met",
)


def verdicts(name: str, table: pd.DataFrame) -> dict[str, dict[str, bool]]:
    """Per goal metric that experiment `name` is judged on, per source its fidelity table has
    (own hops "error", then HELD_OUT's), whether the goal is met. An emulated experiment's
    own hops are judged on expectations where its table has them (`on_expectations`). The
    same plan is judged on DIR/sim for every source: only that simulation's plans are logged
    per epoch."""
    rows = table.set_index("metric")
    e = EXPERIMENTS[name]
    sources = [c for c in ("error", *HELD_OUT) if c in rows.columns]
    judged = {}
    for metric in ("p50_latency_s",) if e.diffusers else GOAL_METRICS:
        r = rows.loc[metric]
        if metric == "same_plan_share":
            judged[metric] = dict.fromkeys(sources, bool(r.goal_met))
        elif e.diffusers:
            judged[metric] = {c: bool(abs(r[c]) <= TINY_P50_GOAL_PCT) for c in sources}
        else:
            judged[metric] = {c: bool(goal_met(metric, r[c], r.real_spread)) for c in sources}
            if on_expectations(r):
                judged[metric]["error"] = bool(r.expected_goal_met)
    return judged


def on_expectations(row: pd.Series) -> bool:
    """Whether a fidelity-table row judges its own hops on expectations (since session 47:
    the mean of DIR/sim and its replicates against the real runs' mean, `expected_error`),
    not on DIR/sim alone: a table written before has no such column."""
    return bool(pd.notna(row.get("expected_error")))


def goals_row(name: str, table: pd.DataFrame) -> tuple[list[str], list[list[int]]]:
    """One line of a goals table: the experiment, then per goal its error with the hops of
    its own runs (the real spread) and whether it meets the goal, then the same for each of
    HELD_OUT that the table has (diffusers: the p50 goal; p99 and violations without a
    verdict). Returns the cells and [goals met, goals judged] per source: own hops, then
    HELD_OUT's ([0, 0] for one the table lacks)."""
    rows = table.set_index("metric")
    judged = verdicts(name, table)
    sources = ["error", *HELD_OUT]
    present = [c in rows.columns for c in sources]
    counts = [[0, len(judged) if ok else 0] for ok in present]
    cells = [name]
    for metric in GOAL_METRICS:
        r = rows.loc[metric]
        ok_by_source = judged.get(metric, {})
        if metric == "same_plan_share":
            ok = bool(ok_by_source.get("error", False))
            text = f"{r.real_mean * 100:.0f}%" + (said(ok) if ok_by_source else "")
            if "same_plan_thresholds_share" in rows.index:  # reported, no verdict
                text += f" (thresholds too: {rows.loc['same_plan_thresholds_share'].real_mean:.0%})"
            cells.append(text)
            for count, shown in zip(counts, present):
                count[0] += ok and shown
            continue
        texts = []
        for k, (column, shown) in enumerate(zip(sources, present)):
            if not shown:
                continue
            ok = ok_by_source.get(column, False)
            counts[k][0] += ok
            text = f"{r[column]:+.1f}"
            if column == "error":
                sim_spread = r.get("simulated_spread", math.nan)
                shown_sim = f", sim ±{sim_spread:.2g}" if sim_spread == sim_spread else ""
                level = r.get("real_level", math.nan)
                shown_sim += f"; at the real p{level:.3g}" if level == level else ""
                text += f" {r.unit} (±{r.real_spread:.2g}{shown_sim})"
                if on_expectations(r):
                    expected = value_se_text(r.to_dict(), "expected_error", "+.1f", r.unit)
                    text = f"{expected} on expectations (one simulation {text})"
            else:
                text = f"{HELD_OUT[column]} {text}"
            texts.append(text + (said(ok) if ok_by_source else ""))
        cells.append(", ".join(texts))
    return cells, counts


GOAL_TEXTS = {
    "p50_latency_s": "emulated, 16 replicas: abs(p50 error) <= 5%",
    "p99_latency_s": "emulated: abs(p99 error) <= 10%",
    "slo_violation_ratio": "emulated: violation ratio within 1 pp or the real spread",
    "same_plan_share": "emulated: the same plan in >= 90% of plan epochs",
}
SECOND_PROTOCOL = "error_compared_empirical"  # the tiny goal's named second protocol's column


def glance_lines(folder: Path, names: list[str]) -> list[str]:
    """The issue's goals at a glance: per emulated goal, how many of the committed
    experiments meet it under each source (own hops, then HELD_OUT's); the tiny p50 goal
    with the offline profile in the committed tables and in the pre-registered ledger; the
    named second protocol in the ledger. A goal is "met" only where every judgement of it
    in the committed tables meets it."""
    tallies: dict[str, dict[str, list[int]]] = {}  # metric -> source -> [met, judged]
    tiny_errors: dict[str, float] = {}  # diffusers experiment -> p50 error, own hops
    for name in names:
        path = folder / name / "fidelity.csv"
        if not path.is_file():
            continue
        table = pd.read_csv(path)
        judged = verdicts(name, table)
        if EXPERIMENTS[name].diffusers:
            tiny_errors[name] = float(table.set_index("metric").loc["p50_latency_s", "error"])
            continue
        for metric, by_source in judged.items():
            if metric == "same_plan_share":  # judged on DIR/sim alone, whatever the source
                by_source = {"error": by_source["error"]}
            for source, ok in by_source.items():
                tally = tallies.setdefault(metric, {}).setdefault(source, [0, 0])
                tally[0] += ok
                tally[1] += 1
    lines = [
        "## The goals at a glance (generated)",
        "",
        "| goal (issue 14) | status | evidence |",
        "|---|---|---|",
    ]
    names_of = {"error": "own hops", **HELD_OUT}
    for metric, text in GOAL_TEXTS.items():
        by_source = tallies.get(metric, {})
        if not by_source:
            continue
        met = all(m == n for m, n in by_source.values())
        evidence = "; ".join(f"{names_of[c]} {m} of {n}" for c, (m, n) in by_source.items())
        lines.append(f"| {text} | {'met' if met else 'not met'} | experiments meeting it: "
                     f"{evidence} |")
    ledger = read_preregistered(folder) if (folder / PREREGISTERED).is_file() else None
    if tiny_errors:
        evidence = "committed tables: " + ", ".join(
            f"{name} {error:+.1f}%" for name, error in tiny_errors.items()
        )
        if ledger is not None:
            offline = ledger[offline_profile_rows(ledger) & (ledger.machine == "local")]
            low, sets = sets_low(offline)
            evidence += (
                f"; pre-registered here: met in {int(offline.goal_met.sum())} of "
                f"{len(offline)}, {low} of {sets} sets low (sign test p = "
                f"{sign_test_p(low, sets):.2g})"
            )
        met = all(abs(error) <= TINY_P50_GOAL_PCT for error in tiny_errors.values())
        lines.append(
            f"| tiny diffusers, 2 CPU replicas, offline profile (`profile all --tiny`): "
            f"abs(p50 error) <= {TINY_P50_GOAL_PCT:g}% | {'met' if met else 'not met'} | "
            f"{evidence} |"
        )
    if ledger is not None:
        second = ledger[ledger.judged_column == SECOND_PROTOCOL]
        if len(second):
            errors = ", ".join(f"{e:+.1f}%" for e in second.p50_error_pct)
            met = bool(second.goal_met.all())
            lines.append(
                "| tiny diffusers, the named second protocol (a calibration replay's served "
                f"times with their measured shapes): abs(p50 error) <= {TINY_P50_GOAL_PCT:g}% | "
                f"{'met' if met else 'not met'} | pre-registered: met in "
                f"{int(second.goal_met.sum())} of {len(second)} ({errors}) |"
            )
    lines += [
        overhead_glance_row(folder / OVERHEAD_LEDGER),
        "",
        "Own hops: the simulation with the hops measured in the experiment's own real runs, "
        f"its p50, p99 and violations judged on expectations (the mean over it and its "
        f"replicates, {SIM_REPEATS} simulations, against the real runs' mean) where its table "
        "has them (since session 47); "
        "the other sources are out of sample (below, \"Goals per experiment\"); the same plan "
        "is judged on the first alone, the only simulation whose plans are logged per epoch. "
        "The ledgers' rows are in \"Pre-registered tiny experiments\" and \"The serving "
        "path's overhead runs\".",
        "",
    ]
    return lines


def sets_low(rows: pd.DataFrame) -> tuple[int, int]:
    """(sets whose mean p50 error is below 0, sets) among ledger rows: the experiments of one
    set share a profile, so the set is the independent unit of the sign test."""
    set_means = rows.groupby(["session", "set"]).p50_error_pct.mean()
    return int((set_means < 0).sum()), len(set_means)


def sign_test_p(negative: int, n: int) -> float:
    """Two-sided p of at least this many of `n` signs alike, when each is a fair coin."""
    extreme = max(negative, n - negative)
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(extreme, n + 1)) / 2**n)


def preregistered_lines(path: Path) -> list[str]:
    """The tally of the pre-registered tiny experiments (`PREREGISTERED`), per machine, of
    the offline profile's rows: how many met the p50 goal; how many sets (the experiments of
    one set share a profile, so the set is the independent unit) erred low on average, with a
    sign test's p; the errors' median and range; the same with the held-out served service
    times; then per named choice (rows judged on `NAMED_CHOICE_COLUMNS`) how many met
    it and their errors; then one line per experiment."""
    if not path.is_file():
        return []
    everything = read_preregistered(path.parent)
    offline = offline_profile_rows(everything)
    ledger = everything[offline]
    lines = [
        "## Pre-registered tiny experiments (generated from "
        f"`results/validation/{PREREGISTERED}`)",
        "",
        f"Each judged on |p50 error| <= {TINY_P50_GOAL_PCT:g}% by a "
        "rule written down before it ran (each session's notes in "
        "`results/validation/HISTORY.md`). local: the 2-core VM "
        "this project is developed and tested on; device: a lent GPU machine's CPUs, the "
        "validation pinned to 2 of its cores. The sets before session 20, judged as they came "
        "but not registered in writing before they ran, are in the notes only. The tally "
        "per machine counts the offline profile's rows (`profile all --tiny`, in the variant "
        "each protocol names); a row judged on a named choice (a profile beside an emulated "
        "stack, a served calibration with or without its measured shapes, the arrival charge, "
        "the other runs' served times and shapes) is tallied apart, as it shares its "
        "set's runs.",
        "",
    ]
    for machine, rows in ledger.groupby("machine", sort=False):
        errors, served = rows.p50_error_pct, rows.held_out_served_pct
        low, sets = sets_low(rows)
        spread = (
            f"median {errors.median():+.1f}%, range {errors.min():+.1f}% to {errors.max():+.1f}%"
            if len(rows) > 1
            else f"error {errors.iloc[0]:+.1f}%"
        )
        lines.append(
            f"- {machine}: met in {int(rows.goal_met.sum())} of {len(rows)}; {low} of {sets} "
            f"sets erred low (sign test p = {sign_test_p(low, sets):.2g}); {spread}. With "
            "held-out served service times: met in "
            f"{int((served.abs() <= TINY_P50_GOAL_PCT).sum())} of {len(rows)}, median "
            f"{served.median():+.1f}%."
        )
    for (machine, protocol), rows in everything[~offline].groupby(
        ["machine", "protocol"], sort=False
    ):
        errors = ", ".join(f"{e:+.1f}%" for e in rows.p50_error_pct)
        lines.append(
            f"- {machine}, {protocol} (a named choice, judged beside the offline profile's row "
            f"of its set): met in {int(rows.goal_met.sum())} of {len(rows)} ({errors})."
        )
    lines += [
        "",
        "| session | set | registered (UTC) | machine | protocol | experiment | p50 error | "
        "real spread | held-out served | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in everything.itertuples():
        lines.append(
            f"| {r.session} | {r.set} | {r.registered_utc} | {r.machine} | {r.protocol} | "
            f"{r.experiment} ({r.load_qps:g} qps, {r.real_runs} runs) | {r.p50_error_pct:+.1f}% | "
            f"±{r.real_spread_pct:.1f}% | {r.held_out_served_pct:+.1f}% | "
            f"{said(r.goal_met).strip()} |"
        )
    return [*lines, ""]


def said(ok: bool) -> str:
    return " yes" if ok else " no"


def parting_lines(folder: Path, names: list[str]) -> list[str]:
    """A table of where each experiment's runs first part (its `parting.csv`,
    `serving.batch_parting`): each real run from the simulation, the later real runs from the
    first, the simulated replicates from the simulation; none where no experiment has one."""
    rows = []
    for name in names:
        path = folder / name / PARTING_FILE
        if not path.is_file():
            continue
        groups = parting_groups(pd.read_csv(path))
        cells = [_partings_cell(groups[g]) for g in ("real", "among_real", "replicates")]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "## Where the runs part, batch by batch (generated)",
        "",
        "| experiment | real runs from the simulation | later real runs from real-1 | "
        "simulated replicates from the simulation |",
        "|---|---|---|---|",
        *rows,
        "",
        "Each cell: per run, the earliest start (s) at which some worker's batches stop "
        "matching (the same model and size, starting within half a batch of each other; "
        "'never': every worker's matched to the end); "
        f"{PARTING_FILE} in each experiment's folder has the worker, what each side served "
        "there and how closely the batches before kept time. Real runs that part from each "
        "other where the replicates never do are randomness the simulator does not draw.",
        "",
    ]


def _partings_cell(rows: pd.DataFrame) -> str:
    times = earliest_partings(rows).values()
    return partings_summary(rows) or (
        ", ".join(f"{s:.2f}" if s == s else "never" for s in times) or "-"
    )


def expectation_lines(folder: Path, names: list[str]) -> list[str]:
    """A table of each emulated experiment's comparison on expectations over the first k of
    its simulations (its `expectation.csv`): how far the verdict moves with their number."""
    ladders = {
        name: pd.read_csv(folder / name / EXPECTATION_FILE)
        for name in names
        if not EXPERIMENTS[name].diffusers and (folder / name / EXPECTATION_FILE).is_file()
    }
    if not ladders:
        return []
    counts = sorted({int(k) for ladder in ladders.values() for k in ladder.replicates})
    rows = []
    for name, ladder in ladders.items():
        if "redraws" not in ladder:  # a table written before session 47's sensitivity
            ladder = ladder.assign(redraws="all")
        for (redraws, metric), rows_of in ladder.groupby(["redraws", "metric"], sort=False):
            at = rows_of.set_index("replicates")
            by_count = at.to_dict("index")
            cells = [
                value_se_text(by_count[k], "expected_error", "+.2f", "") if k in at.index else ""
                for k in counts
            ]
            rows.append(f"| {name} | {redraws} | {metric} | " + " | ".join(cells) + " |")
    return [
        "## On expectations, by the number of simulations (generated)",
        "",
        "| experiment | replicates redraw | metric | "
        + " | ".join(f"{k} simulations" for k in counts)
        + " |",
        "|---|---|---|" + "---|" * len(counts),
        *rows,
        "",
        "Each cell: the error of the mean over the first k simulations (DIR/sim, then its "
        "replicates) against the real runs' mean (% for latencies, pp for violations), ± "
        f"its standard error (both means uncertain); `{EXPECTATION_FILE}` in each "
        f"experiment's folder. Validate's default is {SIM_REPEATS} (`SIM_REPEATS`). The "
        "replicates redraw the timing (hops, the order of a re-plan's swaps, batch-time "
        "noise: validate's judgement since session 47) or all (the mix draws and worker "
        "choices too, which the serving path's ingress draws from the seed's stream in every "
        "real run: a spread the real runs cannot show), `SimConfig.replicate_redraws`.",
        "",
    ]


LATE_SEND_MS = 20.0  # a send this late after its trace time: the client's loop stood still


def send_lag_lines(folder: Path, names: list[str]) -> list[str]:
    """A table of how late each experiment's real runs sent their queries after their trace
    times (`send_lag_max_ms` in each run's summary.json; runs before session 44 did not record
    it), with the count of runs that sent one more than LATE_SEND_MS late; none where no run
    recorded it."""
    rows, late, recorded = [], 0, 0
    for name in names:
        lags = [
            json.loads((d / "summary.json").read_text()).get("send_lag_max_ms")
            for d in real_run_dirs(folder / name)
        ]
        known = [lag for lag in lags if lag is not None]
        if not known:
            continue
        recorded += len(known)
        late += sum(lag > LATE_SEND_MS for lag in known)
        cells = ", ".join("not recorded" if lag is None else f"{lag:.1f}" for lag in lags)
        rows.append(f"| {name} | {cells} |")
    if not rows:
        return []
    return [
        "## The load generator's sends (generated)",
        "",
        "| experiment | latest send after its trace time, per real run (ms) |",
        "|---|---|",
        *rows,
        "",
        f"{late} of {recorded} real runs sent a query more than {LATE_SEND_MS:g} ms after its "
        "trace time. Since session 44 `validate` replays each run by a load generator in a "
        "process of its own (`serving.loadgen.run_loadgen_apart`); before, in its own process "
        "(Ray's driver, with the controller's thread), 14 of 39 emulated runs did "
        "(`results/validation/HISTORY.md`, session 44).",
        "",
    ]


def report(folder: Path, names: list[str], notes: str) -> tuple[str, list[list[int]]]:
    """VALIDATION.md: the notes, a goals table per backend and every fidelity table; and
    [goals met, goals judged] per hop source (own, then HELD_OUT's)."""
    tables = {False: [], True: []}  # diffusers? -> goals table lines
    sections, counts = [], [[0, 0] for _ in range(1 + len(HELD_OUT))]
    for name in names:
        diffusers = EXPERIMENTS[name].diffusers
        path = folder / name / "fidelity.csv"
        if not path.is_file():
            tables[diffusers].append(f"| {name} | not run | | | |")
            continue
        cells, row_counts = goals_row(name, pd.read_csv(path))
        counts = [[a + b for a, b in zip(c, r)] for c, r in zip(counts, row_counts)]
        tables[diffusers].append("| " + " | ".join(cells) + " |")
        text = (folder / name / "fidelity.md").read_text().replace("## ", f"### {name}: ", 1)
        sections += [text, f"`{' '.join(command(name, folder, False))}`", ""]
    header = "| experiment | p50 error | p99 error | violations error | same plan |"
    title, _, rest = notes.partition("\n")
    lines = [title, "", *glance_lines(folder, names), rest.strip(), ""]
    if tables[False]:
        lines += [
            "## Goals per experiment, emulated backend (generated)",
            "",
            header,
            "|---|---|---|---|---|",
            *tables[False],
            "",
            "Each cell: on expectations (since session 47, where the table has them), the "
            "error of the mean over the simulation and its replicates "
            f"({SIM_REPEATS} simulations) against the real runs' mean, ± the error's standard "
            "error (both means uncertain), the verdict this one's; beside it, the error of "
            "the one simulation (DIR/sim) with the hops measured in the experiment's own "
            "real runs (from their timestamps), the real runs' spread (sample std, same unit) "
            "and the simulator's own (`sim`: over the simulation and its replicates, whose "
            "timing comes from other random streams, `replicate_redraws`) and, for a "
            "latency quantile, where the simulated value sits among the real runs' latencies "
            "(pooled: the error in probability; 50 for an exact p50), "
            "whether it meets the goal (|p50| <= 5%, |p99| <= 10%, violations within 1 pp or the "
            "spread, the same plan, flow and workers, in >= 90% of plan epochs, with the "
            "share whose thresholds agree too beside it, without a verdict; the hops are "
            "fitted on the runs "
            "they are compared with); then, out of sample, the error with held-out hops (each "
            "real run against a simulation with the hops of the other runs, the mean over the "
            "runs), with held-out hops and service times (the latency profile as the other "
            "runs' workers measured it; runs that recorded their batches), and with the "
            f"calibration's hops ({CALIBRATION}'s, another load and policy; since session 40 "
            "with the plan hop, which the static cascade never measures, at the median of "
            f"the other experiments': `{CALIBRATION_HOPS}/{CALIBRATION_SOURCES}`), each with "
            "its verdict.",
            "",
            *expectation_lines(folder, names),
            *parting_lines(folder, names),
            *send_lag_lines(folder, names),
        ]
    if tables[True]:
        lines += [
            "## Goals per experiment, tiny diffusers backend (generated)",
            "",
            header,
            "|---|---|---|---|---|",
            *tables[True],
            "",
            "As above; the calibration is the hops and the served service times of the "
            "experiment each one names, run at another load (`--compare-overheads` and "
            "`--compare-served-latency` in its command below). The goal is |p50| <= "
            f"{TINY_P50_GOAL_PCT:g}% (the other columns have none).",
            "",
            *profile_band_lines(folder, names),
            *tiny_profile_lines(folder / TINY_PROFILE),
            *preregistered_lines(folder / PREREGISTERED),
        ]
    lines += [
        *overhead_ledger_lines(folder / OVERHEAD_LEDGER),
        "## Fidelity tables (generated)",
        "",
        *sections,
    ]
    return "\n".join(lines) + "\n", counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="do the real runs (else re-report)")
    parser.add_argument("--only", help="comma-separated experiments (default: all)")
    parser.add_argument("--dir", type=Path, default=Path("results/validation"))
    parser.add_argument("--notes", type=Path, default=Path("results/validation/NOTES.md"))
    parser.add_argument("--out", type=Path, default=Path("results/VALIDATION.md"))
    parser.add_argument(
        "--tiny-rounds",
        type=int,
        default=TINY_LATENCY_ROUNDS,
        help="rounds the tiny profile times each row in (fewer: a shorter run elsewhere)",
    )
    parser.add_argument(
        "--tiny-repeats",
        type=int,
        help="calls the tiny profile times each row per round (default: the tiny plan's 3); "
        "100 or more over the rounds put the calls' measured shape in the bundle, and "
        "validate simulates with it too (error_empirical_service)",
    )
    parser.add_argument(
        "--skip-after",
        action="store_true",
        help="with --run: skip re-taking the tiny profile and the drift probe after the runs",
    )
    parser.add_argument(
        "--tiny-beside-stack",
        action="store_true",
        help="with --run: re-time the tiny profile beside the emulated stack before the runs "
        "and simulate with it too (error_compared where no calibration is compared)",
    )
    args = parser.parse_args()
    if args.tiny_rounds < 1:
        parser.error(f"--tiny-rounds {args.tiny_rounds}: expected at least 1")
    if args.tiny_repeats is not None and args.tiny_repeats < 1:
        parser.error(f"--tiny-repeats {args.tiny_repeats}: expected at least 1")
    tiny_timing = {"rounds": args.tiny_rounds, "repeats": args.tiny_repeats}
    names = list(EXPERIMENTS) if not args.only else args.only.split(",")
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        sys.exit(f"--only {unknown[0]}: expected some of {', '.join(EXPERIMENTS)}")
    profiled = False
    for name in run_order(names):
        if not (args.run or (args.dir / name / "real-1").is_dir()):
            continue
        if args.run and EXPERIMENTS[name].diffusers and not profiled:
            profile_tiny(args.dir / TINY_PROFILE, **tiny_timing)
            profiled = True
            if args.tiny_beside_stack:
                with beside_emulated_stack(args.dir, name):
                    beside = (LATENCY_BESIDE, LATENCY_TABLES_BESIDE)
                    reprofile_tiny(args.dir / TINY_PROFILE, **tiny_timing, into=beside)
        if not EXPERIMENTS[name].diffusers and compares(args.dir, name):
            write_calibration_hops(args.dir, name)
        print(" ".join(command(name, args.dir, not args.run)), flush=True)
        before, ticks = os.getloadavg(), cpu_ticks()
        subprocess.run(command(name, args.dir, not args.run), check=True)
        print(
            f"{name}: load average {before[0]:.2f} before, {os.getloadavg()[0]:.2f} after; "
            f"CPU stolen by the hypervisor {steal_share(ticks, cpu_ticks()):.1%}"
        )
    if profiled and not args.skip_after:
        reprofile_tiny(args.dir / TINY_PROFILE, **tiny_timing)
        measure_drift(args.dir / TINY_PROFILE)
    notes = args.notes.read_text() if args.notes.is_file() else "# Validation\n"
    text, counts = report(args.dir, names, notes)
    args.out.write_text(text)
    print(" ".join(f"{name}={met}/{total}" for name, (met, total) in zip(COUNT_NAMES, counts)))


if __name__ == "__main__":
    main()
