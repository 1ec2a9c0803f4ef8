"""`benchmarks/arrival_charge_table.py`: the table and its last line from a re-reported
folder, and a folder without the charge as one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "arrival_charge_table.py"


def run(*folders: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, folders)], capture_output=True, text=True
    )


def test_the_table_and_the_held_out_shift(tmp_path):
    for name, (loo, charged) in {"a": (-20.0, -19.5), "b": (-10.0, -7.0)}.items():
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame(
            {"run": ["real-1", "all"], "charge_ms": [1.0, 1.5], "charge_se_ms": [0.3, 0.2]}
        ).to_csv(folder / "arrival_charge.csv", index=False)
        pd.DataFrame(
            {
                "metric": ["p50_latency_s", "p99_latency_s"],
                "error": [-21.0, 0.0],
                "error_arrival_charge": [-20.0, 0.0],
                "error_leave_one_out": [loo, 0.0],
                "error_leave_one_out_arrival_charge": [charged, 0.0],
            }
        ).to_csv(folder / "fidelity.csv", index=False)
    done = run(tmp_path / "a", tmp_path / "b")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"| {tmp_path / 'a'} | 1.50 ± 0.20 | -21.0% | -20.0% | -20.0% | -19.5% |" in lines
    assert lines[-1] == "arrival_charge_p50_shift_pts=+0.50..+3.00"


def test_a_folder_without_the_charge_is_one_line_exit_2(tmp_path):
    done = run(tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no arrival_charge.csv (re-report it with `validate`)"
    ]
