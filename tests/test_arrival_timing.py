"""benchmarks/arrival_timing.py: the committed HADIS experiment re-simulated with its arrivals'
timing moved by milliseconds; one line per way, and a last line a script can read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "arrival_timing.py"
EXPERIMENT = ROOT / "results" / "validation" / "hadis-constant"  # 720 queries: quick


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600
    )


def test_the_last_line_gives_each_ways_p50():
    if not (EXPERIMENT / "real-1" / "queries.parquet").is_file():
        pytest.skip("no committed hadis-constant validation experiment")
    done = run("--experiment", EXPERIMENT.name, "--draws", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len([line for line in lines if "send times" in line]) == 3  # one per real run
    values = dict(part.split("=") for part in lines[-1].split())
    assert set(values) == {
        "p50_exact_s",
        "p50_sent_s",
        "p50_jitter_1ms_mean_s",
        "p50_hop_mean_s",
    }
    assert all(0 < float(v) < 60 for v in values.values())
    # the measured arrival hop's replicates: the experiment's real runs recorded it
    measured = json.loads((EXPERIMENT / "overheads.json").read_text())
    assert measured["arrival_overhead_ms"] > 0 and "arrival hop" in done.stdout


def test_an_unknown_experiment_is_one_line_and_a_nonzero_exit():
    done = run("--experiment", "no-such-experiment")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no-such-experiment" in done.stderr
