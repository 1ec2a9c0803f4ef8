"""benchmarks/device_wheels.sh and device_tiny_validation.sh: shell that parses, and the wheel
recipe's bad input as one line and exit 2 (the recipe itself downloads, so it is run by hand:
session 22's tarball and this one list the same 6,580 files)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", ["device_wheels.sh", "device_tiny_validation.sh"])
def test_the_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(BENCHMARKS / script)], capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_missing_package_list_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        ["bash", str(BENCHMARKS / "device_wheels.sh"), str(tmp_path / "none.txt"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert (
        done.stdout.strip()
        == f"error: {tmp_path / 'none.txt'}: no such file (the device image's package names)"
    )
    assert not (tmp_path / "site.tar.xz").exists()
