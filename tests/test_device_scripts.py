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


def test_the_committed_image_list_names_what_the_image_has_and_not_what_travels():
    lines = (BENCHMARKS / "device_image_packages.txt").read_text().splitlines()
    names = [n for n in lines if not n.startswith("#")]
    assert all(n and n == n.strip() and " " not in n for n in names)
    assert {"torch", "grpcio", "numpy", "pandas"} <= set(names)  # the image's (session 22)
    assert not {"ray", "diffusers", "open-clip-torch", "simpy", "highspy"} & set(names)
