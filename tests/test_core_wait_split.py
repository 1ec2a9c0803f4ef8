"""`benchmarks/core_wait_split.py`: the share of a batch's service another replica was serving
too (hand-computed intervals), the groups, and the script on session 24's committed runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "core_wait_split.py"
SESSION24 = ROOT / "results" / "validation" / "session24" / "tiny-diffusers-static"


def test_the_overlap_share_and_the_groups_by_hand():
    script = load_script(SCRIPT, "core_wait_split_script")
    batches = pd.DataFrame(
        {
            "worker": [0, 1, 0, 1, 0],
            "model": ["L", "H", "L", "L", "H"],
            # worker 0: [0, 10], [20, 30], [40, 44]; worker 1: [5, 25], [41, 42]
            "start_s": [0.0, 5.0, 20.0, 41.0, 40.0],
            "service_s": [10.0, 20.0, 10.0, 1.0, 4.0],
            "batch_size": [1, 1, 1, 2, 1],
            "cpu_s": [5.0, 10.0, 10.0, 1.0, 2.0],
            "preemptions": [1, 2, 3, 4, 5],
        }
    )
    share = script.other_busy_share(batches)
    np.testing.assert_allclose(share, [0.5, (5 + 5) / 20, 0.5, 1.0, 0.25])
    ones = script.split(batches)
    assert list(ones["group"]) == ["other busy", "other busy", "other busy", "partial"]
    assert list(ones["wall_per_cpu"]) == [2.0, 2.0, 1.0, 2.0]


@pytest.mark.skipif(not SESSION24.is_dir(), reason="session 24's runs are not committed here")
def test_the_script_on_session_24s_runs():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(SESSION24)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("core_wait_bound_pct=")
    bounds = {
        k.rsplit("/", 1)[1]: float(v) for k, v in (p.split(":") for p in last[20:].split(","))
    }
    assert set(bounds) == {"tiny-light", "tiny-heavy"}
    assert all(0.0 <= b < 5.0 for b in bounds.values())  # session 24: 2.1% and 2.1%


def test_a_folder_without_runs_is_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .endswith(f"{tmp_path}: no real-*/batches.csv (a diffusers validation's folder)")
    )
