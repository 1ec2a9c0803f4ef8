"""benchmarks/replica_cpu_probe.py: a tiny batch's CPU in this process, a Ray actor and a Serve
replica, from the command line (the ratios last; bad arguments one line and exit 2)."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

from tests.benchmark_scripts import run_benchmark  # noqa: E402


def run_script(*args: str):
    return run_benchmark("replica_cpu_probe.py", *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--blocks", "0"), "expected --blocks >= 1"),
        (("--idle-s", "-1"), "expected --blocks >= 1, --calls >= 1 and --idle-s >= 0"),
        (("--serve-stack", "nope"), "--serve-stack 'nope'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    done = run_script(*args)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_the_probe_times_each_place_and_prints_the_ratios_last():
    pytest.importorskip("ray.serve")
    done = run_script("--blocks", "1", "--calls", "1", "--idle-s", "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    for model in ("heavy", "light"):
        for place in ("process", "actor", "serve"):
            assert any(line.startswith(f"{model} {place}: n=1 cpu") for line in lines)
    ratios = dict(field.split("=") for field in lines[-1].split())
    assert set(ratios) == {
        f"{p}_over_process_cpu_{n}" for p in ("actor", "serve") for n in ("heavy", "light")
    }
    assert all(float(r) > 0 for r in ratios.values())
