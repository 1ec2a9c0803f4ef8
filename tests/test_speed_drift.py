"""profiler/speed_drift.py and benchmarks/machine_drift.py: a fixed call timed in bins, on a
scripted clock (closed-form counts and medians), and the benchmark's command line."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from profiler.speed_drift import DRIFT_COLUMNS, DriftError, drift_ratio, time_in_bins

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "machine_drift.py"


class ScriptedClock:
    """Time moves only while the timed call runs, by the next of `durations_s`."""

    def __init__(self, durations_s: list[float]) -> None:
        self.now_s, self.durations_s = 0.0, list(durations_s)

    def __call__(self) -> float:
        return self.now_s

    def call(self) -> None:
        self.now_s += self.durations_s.pop(0)


def test_calls_fall_in_the_bin_they_start_in():
    # bin 0 (0-1 s): calls start at 0, 0.3, 0.6, 0.9; bin 1 (1-2 s): at 1.2, 1.5 (0.6 long)
    clock = ScriptedClock([0.3, 0.3, 0.3, 0.3, 0.3, 0.6, 0.1])
    bins = time_in_bins(clock.call, seconds=2.0, bin_s=1.0, clock=clock)
    assert list(bins.columns) == list(DRIFT_COLUMNS)
    assert bins["calls"].tolist() == [4, 2]
    assert bins["start_s"].tolist() == [0.0, 1.0]
    assert bins["median_ms"].tolist() == pytest.approx([300.0, 450.0])
    assert clock.durations_s == [0.1]  # the last bin stops at 2.1 s: one call over
    assert drift_ratio(bins) == pytest.approx(1.5)


def test_a_call_longer_than_a_bin_still_counts_once_in_the_next():
    clock = ScriptedClock([2.5, 0.2])
    bins = time_in_bins(clock.call, seconds=2.0, bin_s=1.0, clock=clock)
    assert bins["calls"].tolist() == [1, 1]
    assert drift_ratio(bins) == pytest.approx(2500 / 200)


@pytest.mark.parametrize(
    ("seconds", "bin_s", "message"),
    [(0.5, 1.0, "shorter than one"), (10, 0.0, "bin > 0"), (math.inf, 1.0, "finite")],
)
def test_impossible_requests_are_refused(seconds, bin_s, message):
    with pytest.raises(DriftError, match=message):
        time_in_bins(lambda: None, seconds, bin_s)


def test_no_bins_has_no_ratio():
    with pytest.raises(DriftError, match="no bins"):
        drift_ratio(pd.DataFrame(columns=list(DRIFT_COLUMNS)))


def run_script(*args: str) -> subprocess.CompletedProcess:
    root = str(SCRIPT.parents[1])
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        timeout=300,
    )


def test_the_benchmark_times_a_tiny_pipeline_and_prints_the_ratio_last(tmp_path):
    out = tmp_path / "bins.csv"
    done = run_script("--seconds", "2", "--bin-s", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("drift_ratio=") and " steal_max=" in last
    bins = pd.read_csv(out)
    assert list(bins.columns) == list(DRIFT_COLUMNS) and len(bins) == 2
    assert (bins["calls"] >= 1).all()
    assert float(last.split()[0].split("=")[1]) == pytest.approx(drift_ratio(bins), abs=0.006)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "stabilityai/sdxl-turbo"], "expected tiny:<seed>:<width>"),
        (["--steps", "0"], "expected steps >= 1"),
        (["--resolution", "30"], "multiple of 8"),
        (["--seconds", "1", "--bin-s", "2"], "shorter than one"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    done = run_script(*args)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
