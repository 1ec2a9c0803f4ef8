"""benchmarks/serve_overhead.py from the command line: bad arguments are one line and exit 2
before any Ray starts; a short run prints the goal's last line and appends its row to the
overhead ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.overhead_ledger import OVERHEAD_LEDGER, read_overhead_ledger
from tests.benchmark_scripts import run_benchmark

SCRIPT = "serve_overhead.py"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rates", "25,x"), "--rates '25,x': expected comma-separated whole QPS >= 1"),
        (("--rates", "0"), "expected comma-separated whole QPS >= 1"),
        (("--seconds", "0"), "expected --seconds > 0"),
        (("--idle-seconds", "-1"), "--idle-seconds >= 0"),
        (("--workers", "0"), "--workers >= 1"),
        (("--dispatch", "nope"), "--dispatch 'nope': expected one of p2c, jsq, random"),
        (("--serve-stack", "nope"), "--serve-stack 'nope': expected one of"),
        (("--ledger", "x.csv"), "--ledger needs --session"),
        (("--ledger", "x.csv", "--session", "1", "--rates", "50"), "100 among the rates"),
        (("--ledger", "x.csv", "--session", "1", "--serve-stack", "shipped"), "default stack"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    done = run_benchmark(SCRIPT, *args, timeout_s=120)
    assert done.returncode == 2
    assert message in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("malformed", "lacks columns"),
        ("folder", "not a file, so no overhead ledger"),
        ("nowhere", "does not exist"),
    ],
)
def test_a_ledger_that_cannot_take_the_run_is_refused_before_it(tmp_path, where, message):
    ledger = tmp_path / OVERHEAD_LEDGER
    if where == "malformed":
        ledger.write_text("session,utc\n1,10:00\n")
    elif where == "folder":
        ledger.mkdir()
    else:
        ledger = tmp_path / "absent" / OVERHEAD_LEDGER
    done = run_benchmark(SCRIPT, "--ledger", str(ledger), "--session", "1", timeout_s=120)
    assert done.returncode == 2
    assert message in done.stderr.splitlines()[-1]
    assert "rate=" not in done.stdout


def test_a_short_run_appends_its_row(tmp_path):
    ledger = tmp_path / OVERHEAD_LEDGER
    args = ("--rates", "100", "--seconds", "1", "--warmup-seconds", "0", "--workers", "2")
    args += ("--idle-seconds", "0.5")
    done = run_benchmark(SCRIPT, *args, "--ledger", str(ledger), "--session", "7", "--note", "t")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    if Path("/proc/self/stat").is_file():  # the floor, before the first rate's line
        idle = next(i for i, line in enumerate(lines) if line.startswith("idle: CPU per second"))
        assert " workers " in lines[idle] and " (total " in lines[idle]
        assert idle < next(i for i, line in enumerate(lines) if line.startswith("rate=100 qps"))
    last = lines[-1]
    assert last.startswith("overhead_p99_ms=") and " max_qps=" in last
    row = read_overhead_ledger(ledger).iloc[0]
    assert (row.session, row.note) == (7, "t")
    assert f"overhead_p99_ms={row.overhead_p99_ms:.1f} " in last + " "
    assert 0 <= row.overhead_p50_ms <= row.overhead_p99_ms
    assert row.cpu_ms_per_query > 0


def test_cpu_per_query_counts_each_process_since_the_first_reading():
    from tests.benchmark_scripts import ROOT
    from tests.script_module import load_script

    script = load_script(ROOT / "benchmarks" / SCRIPT, "serve_overhead_script")
    before = {(10, 1): ("workers", 2.0), (11, 1): ("workers", 5.0), (12, 1): ("ingress", 1.0)}
    # pid 11 exited (its 5 s are not taken off), pid 13 started (all of it counts), pid 12 was
    # reused by another process (a new start time: all of its CPU counts)
    after = {(10, 1): ("workers", 2.5), (12, 9): ("ingress", 0.25), (13, 4): ("workers", 0.5)}
    assert script.cpu_ms_per_query(before, after, 10) == {"workers": 100.0, "ingress": 25.0}
    assert script.cpu_seconds_by_process()  # this process at least, on Linux
