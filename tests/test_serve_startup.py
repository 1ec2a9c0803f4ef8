"""benchmarks/serve_startup.py from the command line: bad arguments are one line and exit 2
before any Ray starts; a short run times each step of a session and prints its last line."""

from __future__ import annotations

import re

import pytest

from tests.benchmark_scripts import run_benchmark

SCRIPT = "serve_startup.py"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rounds", "0"), "expected --rounds, --workers and --num-cpus >= 1"),
        (("--workers", "0"), "expected --rounds, --workers and --num-cpus >= 1"),
        (("--stacks", "lean,nope"), "--serve-stack 'nope': expected one of"),
        (("--stacks", "lean,lean"), "--stacks 'lean,lean': a stack named twice"),
        (("--workers", "1"), "static-cascade: 2 stages need >= 2 workers, got 1"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    done = run_benchmark(SCRIPT, *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_a_short_run_times_each_step_and_prints_the_totals_last():
    pytest.importorskip("ray.serve")
    done = run_benchmark(SCRIPT, "--stacks", "lean", "--rounds", "1", "--workers", "2")
    assert done.returncode == 0, done.stderr
    # Ray's driver prints the killed Serve controller's retried tasks as "(raylet) ..." lines
    # whenever its listener thread gets them, after the script's last line at times
    lines = [line for line in done.stdout.strip().splitlines() if "(raylet)" not in line]
    steps = re.fullmatch(
        r"round 1 lean: ray ([\d.]+), serve ([\d.]+), deployments ([\d.]+), "
        r"serve stop ([\d.]+), ray stop ([\d.]+) s",
        lines[0],
    )
    assert steps, lines[0]
    seconds = [float(s) for s in steps.groups()]
    assert all(s > 0 for s in seconds)
    last = re.fullmatch(r"start_s_lean=([\d.]+) stop_s_lean=([\d.]+)", lines[-1])
    assert last, lines[-1]  # one stack: no ratio
    assert float(last[1]) == pytest.approx(sum(seconds[:3]), abs=0.02)
    assert float(last[2]) == pytest.approx(sum(seconds[3:]), abs=0.02)
