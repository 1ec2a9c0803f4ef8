"""`t2isim sweep`: grid expansion, spec errors, the resumable store, executors agree, status."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from bundle_factory import make_bundle
from typer.testing import CliRunner

from experiments.inputs import prompt_pools, resolve_trace
from experiments.sweep import (
    COORDINATES,
    SweepSpecError,
    done_keys,
    expand_grid,
    load_spec,
    mix_hardness,
    open_backend,
    parse_spec,
    plan_runs,
    read_store,
    run_sweep,
    sweep_status,
)
from experiments.sweep_cli import register
from simulator.bundle import write_bundle
from simulator.limits import LimitError
from simulator.results import sha256_json
from simulator.workloads import read_trace, write_trace_csv

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "experiments" / "sweeps").glob("*.yaml"))
TINY_TRACE = "poisson:rate={load},duration=20"


@pytest.fixture(scope="module")
def bundle():
    return make_bundle(n_prompts=200)


@pytest.fixture(scope="module")
def bundle_dir(bundle, tmp_path_factory):
    return write_bundle(bundle, tmp_path_factory.mktemp("bundle") / "b")


def tiny_spec(bundle_dir, **changes) -> dict:
    """4 runs: 2 policies x 2 loads, 4 workers, 20 s of Poisson arrivals."""
    spec = {
        "bundle": str(bundle_dir),
        "trace": TINY_TRACE,
        "grid": {"policy": ["hadis", "clipper-light"], "load": [1, 2], "n_workers": 4},
        "sim": {"slo_s": 20},
    }
    spec.update(changes)
    return spec


@pytest.fixture
def tiny_runs(bundle, bundle_dir):
    """Planned per test: the key holds the code version, which must not drift before the run."""
    return plan_runs(parse_spec(tiny_spec(bundle_dir), "tiny.yaml"), bundle, bundle.content_hash())


def run_inline(bundle, runs, store):
    with open_backend(bundle, jobs=1) as backend:
        return run_sweep(runs, store, backend)


# ----------------------------------------------------------------------------- grid


def test_grid_expands_workloads_axes_and_placeholders(bundle_dir):
    spec = parse_spec(
        {
            "trace": {"steady": "poisson:rate={load},duration=30",
                      "even": "constant:rate={load},duration=30"},
            "grid": {"policy": ["hadis", "proteus"], "load": [1, 2.5],
                     "slo_multiplier": [0.5, 1.5], "seed": [0, 1, 2]},
            "sim": {"slo_s": 20, "n_workers": 6},
        },
        "grid.yaml",
    )
    points = expand_grid(spec)
    assert len(points) == 2 * 2 * 2 * 2 * 3
    assert [p.workload for p in points[:24]] == ["steady"] * 24
    first = points[0]
    assert (first.policy, first.load, first.slo_multiplier, first.config.seed) == (
        "hadis", 1, 0.5, 0)
    assert first.trace_spec == "poisson:rate=1,duration=30"
    assert {p.trace_spec for p in points if p.workload == "even"} == {
        "constant:rate=1,duration=30", "constant:rate=2.5,duration=30"}
    assert {p.config.slo_s for p in points} == {10.0, 30.0}
    assert {p.config.n_workers for p in points} == {6}
    assert points[1].config.seed == 1 and points[3].load == 2.5  # seed varies fastest
    assert points[6].slo_multiplier == 1.5 and points[12].policy == "proteus"


def test_scalar_axis_is_one_value_and_options_go_to_their_policy(bundle_dir):
    spec = parse_spec(
        tiny_spec(bundle_dir, policy_options={"hadis": {"queue_alpha": 2.0}}), "t.yaml")
    points = expand_grid(spec)
    assert len(points) == 4
    assert {p.config.n_workers for p in points} == {4}
    options = {p.policy: dict(p.policy_options) for p in points}
    assert options == {"hadis": {"queue_alpha": 2.0}, "clipper-light": {}}


def test_options_and_seed_change_the_run_key(bundle, bundle_dir, tiny_runs):
    with_options = plan_runs(
        parse_spec(tiny_spec(bundle_dir, policy_options={"hadis": {"queue_alpha": 2.0}}),
                   "t.yaml"),
        bundle, bundle.content_hash())
    keys = [run.key for run in tiny_runs]
    changed = [a.key != b.key for a, b in zip(tiny_runs, with_options)]
    assert changed == [p.policy == "hadis" for p in (run.point for run in tiny_runs)]
    assert len(set(keys)) == 4
    reseeded = tiny_spec(bundle_dir)
    reseeded["grid"]["seed"] = 3
    other = plan_runs(parse_spec(reseeded, "t.yaml"), bundle, bundle.content_hash())
    assert not set(keys) & {run.key for run in other}


def test_hardness_mix_keeps_arrivals_and_couples_fractions(bundle):
    pools = prompt_pools(bundle)
    base = resolve_trace("poisson:rate=20,duration=100", bundle, seed=3)
    mixes = {h: mix_hardness(base, h, pools, seed=3) for h in (0.0, 0.3, 0.6, 1.0)}
    hard = {h: np.isin(t.prompt_idx, pools["hard"]) for h, t in mixes.items()}
    for trace in mixes.values():
        np.testing.assert_array_equal(trace.arrival_s, base.arrival_s)
    assert np.isin(mixes[0.0].prompt_idx, pools["easy"]).all() and hard[1.0].all()
    assert not (hard[0.3] & ~hard[0.6]).any()  # hard at 0.3 stays hard at 0.6
    assert abs(hard[0.3].mean() - 0.3) < 0.06 and abs(hard[0.6].mean() - 0.6) < 0.06
    again = mix_hardness(base, 0.3, pools, seed=3)
    assert again.content_hash() == mixes[0.3].content_hash()
    assert mix_hardness(base, 0.3, pools, seed=4).content_hash() != again.content_hash()


def test_hardness_axis_gives_distinct_traces(bundle, bundle_dir):
    spec = parse_spec(tiny_spec(bundle_dir, grid={"policy": "clipper-light", "load": 2,
                                                  "hardness": [0.2, 0.8]}), "h.yaml")
    runs = plan_runs(spec, bundle, bundle.content_hash())
    assert [(r.point.hardness, r.point.redraw_prompts) for r in runs] == [(0.2, True),
                                                                           (0.8, True)]
    assert runs[0].hashes["trace"] != runs[1].hashes["trace"]
    assert runs[0].hashes["config"] == runs[1].hashes["config"]


def test_hardness_placeholder_substitutes_and_keeps_the_prompts(bundle, bundle_dir, tmp_path):
    for h in (0.2, 0.8):
        trace = resolve_trace(f"poisson:rate={h * 10},duration=20", bundle, seed=0)
        write_trace_csv(trace, tmp_path / f"mix_{h}.csv")
    spec = parse_spec(tiny_spec(bundle_dir, trace=str(tmp_path / "mix_{hardness}.csv"),
                                grid={"policy": "clipper-light", "hardness": [0.2, 0.8]}), "p.yaml")
    runs = plan_runs(spec, bundle, bundle.content_hash())
    assert [(r.point.hardness, r.point.redraw_prompts) for r in runs] == [(0.2, False),
                                                                            (0.8, False)]
    for run in runs:
        expected = read_trace(tmp_path / f"mix_{run.point.hardness}.csv").content_hash()
        assert run.hashes["trace"] == expected


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_specs_are_valid(path):
    assert expand_grid(load_spec(path))


def test_any_simconfig_field_is_an_axis_and_a_store_coordinate(bundle, bundle_dir, tmp_path):
    spec = parse_spec(tiny_spec(bundle_dir, grid={"policy": "clipper-light", "load": 2,
                                                  "n_workers": 4, "queue": ["fifo", "edf"],
                                                  "tick_s": [0.5, 1]}), "q.yaml")
    points = expand_grid(spec)
    assert [(p.config.tick_s, p.config.queue) for p in points] == [
        (0.5, "fifo"), (0.5, "edf"), (1, "fifo"), (1, "edf")]  # GRID_AXES order
    assert points[0].label() == ("workload=trace policy=clipper-light slo_s=20 load=2 "
                                 "n_workers=4 tick_s=0.5 queue=fifo seed=0")
    runs = plan_runs(spec, bundle, bundle.content_hash())
    assert len({run.key for run in runs}) == 4
    run_inline(bundle, runs, tmp_path)
    frame = read_store(tmp_path)
    assert sorted(zip(frame.queue, frame.tick_s)) == [("edf", 0.5), ("edf", 1.0), ("fifo", 0.5),
                                                      ("fifo", 1.0)]
    assert [json.loads(c)["sim"]["queue"] for c in frame.config] == frame.queue.tolist()


def test_unswept_fields_add_no_store_column(tiny_runs):
    assert list(tiny_runs[0].point.coordinates()) == list(COORDINATES)


# ----------------------------------------------------------------------------- the runs bound


def test_grid_size_is_bounded_before_expanding(bundle_dir):
    huge = tiny_spec(bundle_dir, grid={"policy": ["hadis", "clipper-light"],
                                       "load": list(range(1, 1001)), "seed": list(range(1000)),
                                       "n_workers": list(range(1, 1001))})
    start = time.perf_counter()
    with pytest.raises(LimitError) as info:
        parse_spec(huge, "huge.yaml")
    assert str(info.value) == (
        "huge.yaml: grid: 2e+09 runs in a sweep exceeds the bound of 10000 "
        "(set T2ISIM_MAX_SWEEP_RUNS to raise it)")
    assert time.perf_counter() - start < 5  # refused from the axes' lengths, not by expanding


def test_runs_bound_is_raised_by_its_variable(bundle, bundle_dir, monkeypatch):
    spec = parse_spec(tiny_spec(bundle_dir), "t.yaml")  # 4 runs
    monkeypatch.setenv("T2ISIM_MAX_SWEEP_RUNS", "3")
    with pytest.raises(LimitError, match="t.yaml: grid: 4 runs in a sweep exceeds the bound of 3"):
        plan_runs(spec, bundle, bundle.content_hash())
    monkeypatch.setenv("T2ISIM_MAX_SWEEP_RUNS", "4")
    assert len(plan_runs(spec, bundle, bundle.content_hash())) == 4


# ----------------------------------------------------------------------------- bad specs


@pytest.mark.parametrize(
    "change, message",
    [
        ({"grids": {}}, "unknown key 'grids'"),
        ({"grid": {"policy": []}}, "grid.policy: empty list"),
        ({"grid": {"policy": ["nope"]}}, "unknown policy 'nope'"),
        ({"grid": {"policy": "hadis", "gpus": [1]}}, "unknown axis 'gpus'"),
        ({"grid": {"load": [1]}}, "missing axis 'policy'"),
        ({"grid": {"policy": "hadis", "load": [1], "slo_s": [1], "slo_multiplier": [1]}},
         "slo_s or slo_multiplier"),
        ({"grid": {"policy": "hadis", "load": [1], "hardness": [1.5]}}, "grid.hardness: 1.5"),
        ({"grid": {"policy": "hadis", "load": [1], "n_workers": [0]}},
         "grid: n_workers (--workers): 0 is not an integer >= 1"),
        ({"grid": {"policy": "hadis", "load": [1], "queue": ["lifo"]}},
         "grid: queue (--queue): 'lifo' is not one of fifo, edf"),
        ({"grid": {"policy": "hadis", "load": [-1]}}, "grid.load: -1 is not a finite number >= 0"),
        ({"grid": {"policy": "hadis", "load": [1, 1]}}, "duplicate values"),
        ({"grid": {"policy": "hadis"}}, "{load} needs grid.load"),
        ({"trace": "poisson:rate=1,duration=20"}, "grid.load is swept but the spec has no"),
        ({"trace": "poisson:rate={rate},duration=20"}, "unknown placeholder {rate}"),
        ({"trace": []}, "trace: expected a spec string"),
        ({"sim": {"slo": 3}}, "unknown SimConfig field 'slo'"),
        ({"sim": {"slo_s": "fast"}}, "sim: slo_s (--slo): 'fast' is not a finite number >= 0.001"),
        ({"sim": {"dispatch": "lifo"}},
         "sim: dispatch (--dispatch): 'lifo' is not one of random, jsq, central"),
        ({"sim": {"tick_s": 0}},
         "sim: tick_s (--tick-s): 0 is not a finite number in [0.01, 3600]"),
        ({"sim": {"n_workers": 3}}, "sim.n_workers: also a grid axis"),
        ({"policy_options": {"proteus": {}}}, "'proteus' is not in grid.policy"),
    ],
)
def test_bad_spec_is_one_line_input_error(bundle_dir, change, message):
    with pytest.raises(SweepSpecError, match=None) as info:
        parse_spec(tiny_spec(bundle_dir, **change), "bad.yaml")
    text = str(info.value)
    assert isinstance(info.value, ValueError)
    assert text.startswith("bad.yaml: ") and message in text and "\n" not in text


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trace": {"a": TINY_TRACE, "b": TINY_TRACE}}, "are the same run"),
        ({"trace": "zigzag:rate={load}"}, "workload 'trace': trace spec 'zigzag:rate=1'"),
        ({"policy_options": {"hadis": {"warp": 9}}}, "policy_options.hadis: hadis: unknown"),
    ],
)
def test_bad_runs_fail_while_planning(bundle, bundle_dir, change, message):
    spec = parse_spec(tiny_spec(bundle_dir, **change), "bad.yaml")
    with pytest.raises(SweepSpecError) as info:
        plan_runs(spec, bundle, bundle.content_hash())
    assert message in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("trace: x\ngrid:\n  policy: [hadis\n  load: 1\n")
    with pytest.raises(SweepSpecError, match=r"broken.yaml: line \d+: "):
        load_spec(path)


# ----------------------------------------------------------------------------- store and resume


def test_rows_carry_coordinates_summary_and_key(bundle, tiny_runs, tmp_path):
    report = run_inline(bundle, tiny_runs, tmp_path)
    assert (report.total, report.ran, report.skipped) == (4, 4, 0)
    frame = read_store(tmp_path)
    assert len(frame) == 4 and set(frame.run_key) == {run.key for run in tiny_runs}
    assert set(COORDINATES) <= set(frame.columns)
    for column in ("fid", "slo_violation_ratio", "arrivals", "hash.trace", "wall_s",
                   "plan_share.light", "plan_share.light->heavy"):
        assert column in frame.columns
    hashes = frame.filter(like="hash.").rename(columns=lambda c: c.removeprefix("hash."))
    assert [sha256_json(h) for h in hashes.to_dict("records")] == frame.run_key.tolist()
    configs = [json.loads(c) for c in frame.config]
    assert [sha256_json(c) for c in configs] == frame["hash.config"].tolist()
    assert [c["sim"]["n_workers"] for c in configs] == [4] * 4
    light = frame[frame.policy == "clipper-light"]
    assert (light["plan_share.light"] == 1.0).all()
    assert (light["plan_share.light->heavy"] == 0).all()
    assert frame.load.tolist() == [1.0, 2.0, 1.0, 2.0] and frame.slo_s.eq(20.0).all()
    assert frame.hardness.isna().all() and frame.slo_multiplier.isna().all()
    assert set(frame.trace_spec) == {"poisson:rate=1,duration=20", "poisson:rate=2,duration=20"}
    assert (frame.arrivals[frame.load == 2].to_numpy() > frame.arrivals[frame.load == 1]).all()


def test_resume_skips_stored_runs_and_redoes_a_deleted_one(bundle, tiny_runs, tmp_path):
    with open_backend(bundle, jobs=1) as backend:
        first = run_sweep(tiny_runs, tmp_path, backend)
        again = run_sweep(tiny_runs, tmp_path, backend)
        assert (first.ran, again.ran, again.skipped) == (4, 0, 4)
        victim = tiny_runs[2].key
        (tmp_path / "parts" / f"{victim}.parquet").unlink()
        assert done_keys(tmp_path) == {run.key for run in tiny_runs} - {victim}
        redone: list[str] = []
        report = run_sweep(tiny_runs, tmp_path, backend, lambda row: redone.append(row["run_key"]))
    assert (report.ran, report.skipped, redone) == (1, 3, [victim])
    assert not list((tmp_path / "parts").glob(".*"))  # no staging files left behind


class Interrupt(Exception):
    pass


def test_interrupted_sweep_keeps_finished_rows_and_resumes(bundle, tiny_runs, tmp_path):
    def interrupt_after_two(row):
        if len(done_keys(tmp_path)) == 2:
            raise Interrupt

    with open_backend(bundle, jobs=1) as backend:
        with pytest.raises(Interrupt):
            run_sweep(tiny_runs, tmp_path, backend, interrupt_after_two)
        assert done_keys(tmp_path) == {run.key for run in tiny_runs[:2]}
        report = run_sweep(tiny_runs, tmp_path, backend)
    assert (report.ran, report.skipped) == (2, 2)


def without_wall_time(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_s")


def test_pool_and_dask_agree_with_inline(bundle, tiny_runs, tmp_path):
    run_inline(bundle, tiny_runs, tmp_path / "inline")
    expected = without_wall_time(read_store(tmp_path / "inline"))
    for name, options in (("pool", {"jobs": 2}), ("dask", {"dask": "local"})):
        with open_backend(bundle, **options) as backend:
            report = run_sweep(tiny_runs, tmp_path / name, backend)
        assert report.ran == 4
        pd.testing.assert_frame_equal(without_wall_time(read_store(tmp_path / name)), expected)


def test_status_counts_missing_and_stale(tiny_runs, bundle, bundle_dir, tmp_path):
    run_inline(bundle, tiny_runs, tmp_path)
    status = sweep_status(tiny_runs[:3], tmp_path)
    assert (status.total, status.done, status.missing, status.stale) == (3, 3, [], 1)
    longer = tiny_spec(bundle_dir)
    longer["grid"]["load"] = [1, 2, 3]
    runs = plan_runs(parse_spec(longer, "t.yaml"), bundle, bundle.content_hash())
    status = sweep_status(runs, tmp_path)
    assert (status.total, status.done) == (6, 4)
    assert {p.load for p in status.missing} == {3}


# ----------------------------------------------------------------------------- command


@pytest.fixture(scope="module")
def cli():
    from experiments.cli_errors import OneLineErrors

    app = typer.Typer(cls=OneLineErrors)  # errors reported as `t2isim` reports them
    app.callback()(lambda: None)  # a group, so `sweep` is a subcommand as in `t2isim`
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_cli_status_then_run_then_status(cli, bundle_dir, tmp_path):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(bundle_dir)))
    store = tmp_path / "store"
    before = cli("sweep", spec_file, "--out", store, "--status")
    assert before.exit_code == 0, before.output
    lines = before.output.splitlines()
    assert lines[0] == f"0 / 4 runs done in {store}"
    assert sum(line.startswith("missing: ") for line in lines) == 4
    assert "missing: workload=trace policy=hadis slo_s=20 load=1 n_workers=4 seed=0" in lines
    assert not store.exists()
    run = cli("sweep", spec_file, "--out", store, "--jobs", "1", "--quiet")
    assert run.exit_code == 0, run.output
    assert "4 runs: 4 ran, 0 already stored" in run.output
    after = cli("sweep", spec_file, "--out", store, "--status")
    assert after.output.splitlines() == [f"4 / 4 runs done in {store}"]


def test_cli_refuses_a_grid_over_the_runs_bound(cli, bundle_dir, tmp_path, monkeypatch):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(bundle_dir)))
    monkeypatch.setenv("T2ISIM_MAX_SWEEP_RUNS", "2")
    result = cli("sweep", spec_file, "--out", tmp_path / "store", "--jobs", "1", "--quiet")
    assert result.exit_code == 2
    assert result.output == (f"error: {spec_file}: grid: 4 runs in a sweep exceeds the bound of "
                             "2 (set T2ISIM_MAX_SWEEP_RUNS to raise it)\n")
    assert not (tmp_path / "store").exists()


def test_cli_bad_spec_exits_2_with_one_line(cli, bundle_dir, tmp_path):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(bundle_dir, grid={"policy": ["nope"]})))
    result = cli("sweep", spec_file, "--status")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {spec_file}: grid.policy: unknown policy 'nope'")
    assert result.output.count("\n") == 1
    missing = cli("sweep", tmp_path / "absent.yaml", "--status")
    assert missing.exit_code == 2 and "absent.yaml" in missing.output


def test_code_change_during_a_sweep_is_one_line_exit_1(cli, bundle_dir, tmp_path, monkeypatch):
    """Runs planned under one code version but executed under another are refused, in
    `t2isim sweep` and in `t2isim figures` (whose figures run sweeps), without a traceback."""
    import experiments.sweep
    from experiments.cli import app

    monkeypatch.setattr(experiments.sweep, "code_version", lambda: "t2isim planned-version")
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(bundle_dir)))
    result = cli("sweep", spec_file, "--out", tmp_path / "store", "--jobs", "1", "--quiet")
    assert result.exit_code == 1
    assert result.output.startswith("error: run [") and result.output.count("\n") == 1
    assert "code_version t2isim planned-version ->" in result.output
    figures = CliRunner().invoke(
        app,
        ["figures", "--only", "fig11", "--quick", "--bundle", str(bundle_dir), "--jobs", "1",
         "--out", str(tmp_path / "figures")],
    )
    assert figures.exit_code == 1, figures.output
    assert figures.output.startswith("error: run [") and "Traceback" not in figures.output
