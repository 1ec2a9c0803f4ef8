"""benchmarks/shared_core_probe.py: a tiny batch's CPU time with its core quiet and shared, from
the command line (the ratio last; bad arguments one line and exit 2)."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

from tests.benchmark_scripts import run_benchmark  # noqa: E402


def run_script(*args: str):
    return run_benchmark("shared_core_probe.py", *args)


def test_the_probe_times_each_condition_and_prints_the_ratios_last():
    done = run_script("--blocks", "1", "--calls", "2", "--idle-s", "0.01")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    for model in ("heavy", "light"):
        for condition in ("back-to-back", "idle", "shared-idle", "neighbour-idle"):
            assert any(line.startswith(f"{model} {condition}: n=2 cpu") for line in lines)
    ratios = dict(field.split("=") for field in lines[-1].split())
    assert set(ratios) == {
        f"{k}_over_idle_cpu_{n}" for k in ("shared", "neighbour") for n in ("heavy", "light")
    }
    assert all(float(r) > 0 for r in ratios.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--blocks", "0"], "expected --blocks >= 1"),
        (["--idle-s", "-1"], "--idle-s >= 0"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    done = run_script(*args)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
