"""Session 23's preemption test: the least-squares fit of a batch's CPU on its preemption count
(`serving.service_times.preemption_fit`), the rule fixed before its run, and the script on the
committed run of that session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from script_module import load_script

from serving.service_times import preemption_fit

ROOT = Path(__file__).resolve().parents[1]
SESSION23 = ROOT / "results" / "validation" / "session23"
SCRIPT = ROOT / "benchmarks" / "preemption_fit.py"


def test_the_fit_recovers_a_line_and_skips_what_it_cannot_fit():
    count = np.array([0, 2, 4, 6, 8, 10], dtype=float)
    light = pd.DataFrame(
        {
            "model": "L",
            "batch_size": 1,
            "cpu_s": 0.010 + 0.0002 * count + 0.001,
            "preemptions": count,
        }
    )
    others = pd.DataFrame(
        {
            "model": ["L", "L", "H", "H", "F", "F", "F"],
            "batch_size": [2, 1, 1, 1, 1, 1, 1],  # a batch of 2; an unmeasured one
            "cpu_s": [0.5, np.nan, 0.03, 0.03, 0.02, 0.02, 0.02],  # H: two batches only
            "preemptions": [1.0, 3.0, 1.0, 2.0, 5.0, 5.0, 5.0],  # F: counts never vary
        }
    )
    batches = pd.concat([light, others], ignore_index=True)
    charge_s = np.where(batches["model"] == "L", 0.001, 0.0)  # the discriminator's
    fits = preemption_fit(batches, charge_s).set_index("model")
    assert list(fits.index) == ["L"]
    row = fits.loc["L"]
    assert row["batches"] == 6 and row["preemptions_p50"] == 5.0
    assert row["slope_s"] == pytest.approx(0.0002) and row["intercept_s"] == pytest.approx(0.010)
    assert row["slope_se_s"] == pytest.approx(0.0, abs=1e-12)  # an exact line
    assert row["cpu_p50_s"] == pytest.approx(0.011)
    none = preemption_fit(batches.drop(columns="preemptions"), charge_s)  # a run before them
    assert none.empty and "slope_s" in none.columns


def test_the_rule_fixed_before_the_run():
    reading = load_script(SCRIPT, "preemption_fit_script").reading
    idle = 0.010
    assert reading(0.0101, 0.0006, 0.0010, idle) == "preemption"  # within 5%, 60% explained
    assert reading(0.0101, 0.0004, 0.0010, idle) == "inconclusive"  # 40% explained
    assert reading(0.0106, 0.0020, 0.0010, idle) == "not preemption"  # 6% over, unpreempted
    assert reading(0.0094, 0.0020, 0.0010, idle) == "inconclusive"  # 6% under the profile


@pytest.mark.skipif(not SESSION23.is_dir(), reason="session 23's committed run is absent")
def test_the_script_on_session_23s_run_gives_its_reading():
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(SESSION23 / "tiny-diffusers-static"),
            "--bundle",
            str(SESSION23 / "tiny-profile" / "bundle"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "preemption_readings=tiny-heavy:preemption,tiny-light:preemption"
    assert "704 batches of one" in lines[0] and "preempted 15 times" in lines[0]


def test_a_folder_without_the_fit_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--bundle", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    assert "preemption_fit.csv: no such file" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
