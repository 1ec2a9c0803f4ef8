"""benchmarks/background_cpu_probe.py: a tiny batch's CPU alone and beside an idle Ray + Serve
cluster, from the command line (the ratios last; bad arguments one line and exit 2)."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

from tests.benchmark_scripts import run_benchmark  # noqa: E402


def run_script(*args: str):
    return run_benchmark("background_cpu_probe.py", *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--pairs", "0"), "expected --pairs >= 1"),
        (("--idle-s", "-1"), "expected --pairs >= 1, --calls >= 1 and --idle-s >= 0"),
        (("--serve-stack", "nope"), "--serve-stack 'nope'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    done = run_script(*args)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_the_probe_times_each_pair_and_prints_the_ratios_last():
    pytest.importorskip("ray.serve")
    done = run_script("--pairs", "1", "--calls", "2", "--idle-s", "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-2].startswith("pair 1: heavy alone ") and " light alone " in lines[-2]
    ratios = dict(field.split("=") for field in lines[-1].split())
    assert set(ratios) == {"beside_over_alone_cpu_heavy", "beside_over_alone_cpu_light"}
    assert all(float(r) > 0 for r in ratios.values())
