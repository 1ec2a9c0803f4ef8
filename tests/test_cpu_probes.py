"""benchmarks/replica_cpu_probe.py (a tiny batch's CPU in this process, a Ray actor and a Serve
replica), benchmarks/background_cpu_probe.py (alone and beside an idle Ray + Serve cluster) and
benchmarks/load_history_probe.py (before, during and after load on every core) and
benchmarks/poke_probe.py (a replica's batch with and without a call reaching it meanwhile), from
the command line: the ratios last, bad arguments one line and exit 2."""

from __future__ import annotations

import pytest

pytest.importorskip("diffusers")

from tests.benchmark_scripts import run_benchmark  # noqa: E402

REPLICA, BACKGROUND = "replica_cpu_probe.py", "background_cpu_probe.py"
LOAD, POKE = "load_history_probe.py", "poke_probe.py"
MODELS = ("heavy", "light")


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        (REPLICA, ("--blocks", "0"), "expected --blocks >= 1"),
        (REPLICA, ("--idle-s", "-1"), "--calls >= 1, --idle-s >= 0 and --ping-qps > 0"),
        (REPLICA, ("--ping-qps", "0"), "--ping-qps > 0"),
        (BACKGROUND, ("--pairs", "0"), "expected --pairs >= 1"),
        (BACKGROUND, ("--idle-s", "-1"), "expected --pairs >= 1, --calls >= 1 and --idle-s >= 0"),
        (REPLICA, ("--serve-stack", "nope"), "--serve-stack 'nope'"),
        (BACKGROUND, ("--serve-stack", "nope"), "--serve-stack 'nope'"),
        (LOAD, ("--cycles", "0"), "expected --cycles >= 1"),
        (LOAD, ("--rest-s", "-1"), "--idle-s, --load-s, --rest-s >= 0"),
        (POKE, ("--triples", "0"), "expected --blocks >= 1, --triples >= 1"),
        (POKE, ("--poke-after-s", "-1"), "--poke-after-s >= 0"),
        (POKE, ("--serve-stack", "nope"), "--serve-stack 'nope'"),
        (POKE, ("--switch-interval-s", "0"), "--switch-interval-s 0: expected seconds > 0"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(script, args, message):
    done = run_benchmark(script, *args)
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]


def _ratios(done) -> dict[str, float]:
    """The last line's `name=ratio` fields, the run checked to have ended well."""
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    ratios = {k: float(v) for k, v in (field.split("=") for field in last.split())}
    assert all(r > 0 for r in ratios.values())
    return ratios


@pytest.mark.slow
def test_the_replica_probe_times_each_place_and_prints_the_ratios_last():
    pytest.importorskip("ray.serve")
    done = run_benchmark(REPLICA, "--blocks", "1", "--calls", "1", "--idle-s", "0")
    assert set(_ratios(done)) == {
        f"{p}_over_process_cpu_{n}" for p in ("actor", "serve") for n in MODELS
    } | {f"pinged_over_serve_cpu_{n}" for n in MODELS}
    lines = done.stdout.splitlines()
    for model in MODELS:
        assert f"block 1 {model}: pinged over serve " in done.stdout
        for place in ("process", "actor", "serve", "pinged"):
            assert any(line.startswith(f"{model} {place}: n=1 cpu") for line in lines)


@pytest.mark.slow
def test_the_background_probe_times_each_pair_and_prints_the_ratios_last():
    pytest.importorskip("ray.serve")
    done = run_benchmark(BACKGROUND, "--pairs", "1", "--calls", "2", "--idle-s", "0")
    assert set(_ratios(done)) == {f"beside_over_alone_cpu_{n}" for n in MODELS}
    pair = done.stdout.strip().splitlines()[-2]
    assert pair.startswith("pair 1: heavy alone ") and " light alone " in pair


@pytest.mark.slow
def test_the_load_probe_times_each_segment_and_prints_the_ratios_last():
    done = run_benchmark(
        LOAD, "--cycles", "1", "--calls", "1", "--idle-s", "0", "--load-s", "0", "--rest-s", "0"
    )
    assert set(_ratios(done)) == {
        f"{segment}_over_before_cpu_{n}"
        for segment in ("during", "after", "rested")
        for n in MODELS
    }
    for model in MODELS:
        line = next(x for x in done.stdout.splitlines() if x.startswith(f"cycle 1 {model}: "))
        assert "before " in line and "during " in line and "rested " in line


@pytest.mark.slow
def test_the_poke_probe_times_quiet_poked_and_elsewhere_batches_and_prints_the_ratios_last():
    pytest.importorskip("ray.serve")
    done = run_benchmark(POKE, "--blocks", "1", "--triples", "2", "--idle-s", "0.05")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    ratios = {k: float(v) for k, v in (field.split("=") for field in last.split())}
    assert all(v > 0 for k, v in ratios.items() if not k.startswith("landed"))
    assert all(0 <= v <= 1 for k, v in ratios.items() if k.startswith("landed"))
    fields = [f"{k}_over_quiet_{m}" for k in ("poked", "elsewhere") for m in ("wall", "cpu")]
    assert set(ratios) == {f"{f}_{n}" for f in [*fields, "landed_share"] for n in MODELS}
    for model in MODELS:
        assert f"block 1 {model}: poked over quiet wall " in done.stdout
        assert f"{model}: n=2 triples, wall p50 quiet " in done.stdout
