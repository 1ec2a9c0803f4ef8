"""Latency and generation as tasks on several workers (2 local CPU processes, an in-process Dask
cluster): the same files as the serial steps."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from profiler.latency import LatencyError, LatencyProfile, LatencyRow, LatencyTiming
from profiler.sharding import (
    DaskRunner,
    GenerationShard,
    LocalDevices,
    PipelineSource,
    ShardingError,
    WorkerDevice,
    generate_on,
    generation_shards,
    latency_tasks,
    merge_latency,
    open_runner,
    parse_devices,
    profile_latency_on,
    run_generation_shard,
)

PROMPTS = ("a cat", "a red car next to a river", "an old man running", "a castle", "a boat")
SETTINGS = {"images_per_prompt": 2, "steps": 1, "resolution": 32, "batch_size": 3, "seed": 7}
SOURCE = PipelineSource("tiny:1:8", "fp32")


def _shards(n: int, out="out") -> list[GenerationShard]:
    return generation_shards(SOURCE, PROMPTS, out, n, **SETTINGS)


# ----------------------------------------------------------------------------- pure parts


def test_shards_partition_the_fixed_batches():
    jobs = [(p, i) for p in range(len(PROMPTS)) for i in range(2)]
    for n in (1, 2, 3, 4, 9):
        shards = _shards(n)
        assert len(shards) == min(n, 4)  # 10 images in batches of 3 -> 4 batches
        parts = [s.jobs() for s in shards]
        assert [j for part in parts for j in part] == jobs  # disjoint, in order, complete
        for part in parts[:-1]:
            assert len(part) % 3 == 0  # whole batches: same composition as the serial run


def test_device_lists_and_runner_choice():
    assert parse_devices("cuda:0, 1,cpu,cpu") == (
        WorkerDevice("cuda:0", "0", "cuda"),
        WorkerDevice("cuda:1", "1", "cuda"),
        WorkerDevice("cpu", "", "cpu"),
        WorkerDevice("cpu", "", "cpu"),
    )
    with pytest.raises(ShardingError, match="listed twice"):
        parse_devices("cuda:1,1")
    with pytest.raises(ShardingError, match="entry 'gpu0'"):
        parse_devices("gpu0")
    with pytest.raises(ShardingError, match="give one, not both"):
        open_runner("cpu", "local", "cpu")
    with pytest.raises(ShardingError, match="local:<workers>"):
        DaskRunner("local:0", "cpu")
    assert open_runner(None, None, "cpu") is None
    assert isinstance(open_runner("cpu,cpu", None, "cpu"), LocalDevices)
    with pytest.raises(ValueError, match="tiny:<seed>:<width>"):
        PipelineSource("tiny:x")


def test_merge_latency_orders_rows_and_refuses_mixed_gpus():
    def part(b, load_s, gpu):
        row = LatencyRow("m", b, True, 0.1 * b, 0.1 * b, 0.1 * b, 10.0, 3, 1, 0.1 * b, 0.1 * b, "")
        return LatencyProfile("m", load_s, (row,)), {"gpu": gpu}

    merged, provenance = merge_latency(
        [part(4, 3.0, "L40S"), part(1, 1.0, "L40S"), part(2, 9, "L40S")]
    )["m"]
    assert [r.batch_size for r in merged.rows] == [1, 2, 4]
    assert merged.load_s == 3.0 and provenance == {"gpu": "L40S"}
    # each task's measured shape stays with its batch size
    shaped = LatencyProfile("m", 1.0, part(2, 1.0, "L40S")[0].rows, None, {2: (1.0,)}, "after idle")
    merged, _ = merge_latency([part(1, 1.0, "L40S"), (shaped, {"gpu": "L40S"})])["m"]
    assert merged.shapes == {2: (1.0,)} and merged.shape_calls == "after idle"
    with pytest.raises(ShardingError, match="different GPUs"):
        merge_latency([part(1, 1.0, "L40S"), part(2, 1.0, "H100")])
    with pytest.raises(LatencyError, match="distinct integers"):
        latency_tasks([("m", SOURCE, 1)], [1, 1], resolution=32, timing=LatencyTiming(0, 1))


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """Images and latency rows of the serial steps."""
    pytest.importorskip("diffusers")
    from profiler.generate import generate_images
    from profiler.latency import profile_latency

    out = tmp_path_factory.mktemp("serial") / "m"
    generate_images(SOURCE.load("cpu"), PROMPTS, out, progress=False, **SETTINGS)
    profile = profile_latency(
        lambda: SOURCE.load("cpu"), [1, 2], LatencyTiming(0, 1), "cpu", model="m", steps=1,
        resolution=32,
    )
    return out, profile


def _assert_same_images(a, b):
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 10
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _assert_same_rows(a: LatencyProfile, b: LatencyProfile):
    def shape(profile):
        return [(r.model, r.batch_size, r.feasible, r.n_repeats, r.error) for r in profile.rows]

    assert shape(a) == shape(b)
    assert all(r.latency_p50_s > 0 and r.throughput_qps > 0 for r in b.rows)
    assert a.table().columns.tolist() == b.table().columns.tolist()


# 2 spawned CPU processes each import torch + diffusers (~20 s on 2 cores): marked slow
@pytest.mark.parametrize("runner", [pytest.param("cpu,cpu", marks=pytest.mark.slow), "local:2"])
def test_workers_write_the_serial_files(serial, tmp_path, runner):
    serial_dir, serial_profile = serial
    tasks = latency_tasks([("m", SOURCE, 1)], [2, 1], resolution=32, timing=LatencyTiming(0, 1))
    with open_runner(*((runner, None) if runner.startswith("cpu") else (None, runner)), "cpu") as r:
        assert r.n_workers == 2
        written = generate_on(r, generation_shards(SOURCE, PROMPTS, tmp_path / "m", 2, **SETTINGS))
        profile, provenance = profile_latency_on(r, tasks)["m"]
    assert written == 10
    assert not [p for p in tmp_path.iterdir() if p.name != "m"]  # scratch folders removed
    _assert_same_images(serial_dir, tmp_path / "m")
    _assert_same_rows(serial_profile, profile)
    assert provenance["gpu"].startswith("cpu") and "torch" in provenance["libraries"]


def test_a_subset_of_jobs_has_the_serial_pixels(serial, tmp_path):
    from profiler.generate import GenerationError, generate_images

    serial_dir, _ = serial
    pipe = SOURCE.load("cpu")
    jobs = [(1, 1), (3, 0), (4, 1)]  # parts of three different batches
    result = generate_images(pipe, PROMPTS, tmp_path, jobs=jobs, progress=False, **SETTINGS)
    assert (result.generated, result.skipped) == (3, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00001_1.png",
        "00003_0.png",
        "00004_1.png",
    ]
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (serial_dir / path.name).read_bytes(), path.name
    again = generate_images(pipe, PROMPTS, tmp_path, jobs=jobs[:2], progress=False, **SETTINGS)
    assert (again.generated, again.skipped) == (0, 2)
    with pytest.raises(GenerationError, match=r"job \(5, 0\): outside 5 prompts x 2 images"):
        generate_images(pipe, PROMPTS, tmp_path, jobs=[(5, 0)], progress=False, **SETTINGS)


def test_a_shard_resumes_and_keeps_finished_images(serial, tmp_path):
    serial_dir, _ = serial
    out = tmp_path / "m"
    first, second = _shards(2, str(out))  # first: images 0..5 (2 batches), second: 6..9
    # an interrupted run of shard 0 finished 2 images and was killed while writing a third
    out.mkdir()
    for name in ("00000_0.png", "00000_1.png"):
        shutil.copy(serial_dir / name, out / name)
    finished = {name: (out / name).stat().st_mtime_ns for name in ("00000_0.png", "00000_1.png")}
    (out / ".00001_0.png.tmp").write_bytes(b"partial")
    assert run_generation_shard(first, "cpu") == 4
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == finished  # kept
    unloadable = dataclasses.replace(first, source=PipelineSource(str(tmp_path / "no-model")))
    assert run_generation_shard(unloadable, "cpu") == 0  # complete: nothing loaded or written
    assert run_generation_shard(second, "cpu") == 4
    _assert_same_images(serial_dir, out)  # the partial write was replaced atomically
    assert [Path(p).name for p in tmp_path.iterdir()] == ["m"]


def test_cli_generate_and_latency_on_dask(serial, tmp_path):
    from typer.testing import CliRunner

    from profiler.cli import profile_app
    from profiler.latency import read_latency_profile
    from profiler.layout import WorkLayout

    serial_dir, serial_profile = serial
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    layout = WorkLayout(tmp_path / "work")
    common = ["--model", "tiny:1:8", "--name", "m", "--steps", "1", "--resolution", "32"]
    common += ["--work", str(layout.root), "--dask", "local:2", "--device", "cpu"]
    runner = CliRunner()
    result = runner.invoke(
        profile_app,
        ["generate", *common, "--prompts", str(prompts), "--images-per-prompt", "2"]
        + ["--batch-size", "3", "--seed", "7"],
    )
    assert result.exit_code == 0, result.output
    assert "generated 10 in 2 shards" in result.output
    _assert_same_images(serial_dir, layout.images("m"))
    args = ["latency", *common, "--batch-sizes", "2,1", "--warmup", "0", "--repeats", "1"]
    result = runner.invoke(profile_app, [*args, "--rounds", "2"])
    assert result.exit_code == 0, result.output
    table, sidecar = read_latency_profile(layout.latency_csv("m"))
    assert table["batch_size"].tolist() == [1, 2] and table["feasible"].all()
    assert table["n_rounds"].tolist() == [2, 2]
    assert sidecar["device"] == "dask local:2 (cpu)" and sidecar["steps"] == 1
    result = runner.invoke(profile_app, [*args, "--devices", "cpu"])
    assert result.exit_code == 2 and "not both" in result.output


def test_run_all_on_dask_with_multi_metric(tmp_path):
    """The whole tiny workflow with latency and generation as Dask tasks, RouteT2I scores on."""
    pytest.importorskip("open_clip")
    from profiler.layout import WorkLayout
    from profiler.multimetric import load_metric_config
    from profiler.workflow import run_all, tiny_plan, write_smooth_images
    from simulator.bundle import load_bundle

    layout = WorkLayout(tmp_path)
    write_smooth_images(layout.real_images, 8, 32, seed=0)
    base = tiny_plan(layout, n_prompts=4, seed=0)
    config = load_metric_config(logit_scale=10.0)
    plan = dataclasses.replace(
        base,
        models=base.models[:2],
        prompt_features=lambda texts: np.ones((len(texts), 8), np.int64),
        batch_sizes=(1, 2),
        timing=LatencyTiming(0, 1),
        multi_metric=config,
    )
    with DaskRunner("local:2", "cpu") as runner:
        path = run_all(plan, layout, "sharded", runner, prune_models=False)
    bundle = load_bundle(path)
    assert set(bundle.model_names) == {"tiny-light", "tiny-mid"}
    assert bundle.meta["multi_metric"]["logit_scale"] == 10.0
    q = bundle.scores[list(config.columns)].to_numpy()
    assert q.shape == (8, 10) and np.all((q > 0) & (q < 1))
    assert bundle.meta["latency_profiles"]["tiny-mid"]["device"] == "dask local:2 (cpu)"
    for model in bundle.model_names:
        assert len(list(layout.images(model).glob("*.png"))) == 8
