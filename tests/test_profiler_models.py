"""Profiler steps with tiny random-init models on CPU (skipped without torch / diffusers)."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from profiler.cpu_threads import CPU_WORKER_THREADS  # noqa: E402
from profiler.generate import (  # noqa: E402
    generate_images,
    image_grid,
    image_name,
    render,
    served_batch,
)
from profiler.latency import (  # noqa: E402
    LatencyError,
    LatencyTiming,
    profile_latency,
    read_latency_profile,
    write_latency_profile,
)
from profiler.pipelines import PipelineError, hub_offline, load_pipeline, tiny_pipeline  # noqa: E402
from profiler.provenance import cpu_ticks, steal_share  # noqa: E402

PROMPTS = ("a red cat", "a dog running next to a river", "a castle")


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


class _FakeOutput:
    images = np.zeros((1, 8, 8, 3), np.float32)


class _OomAbove:
    """A pipeline stand-in that runs out of memory above a batch size."""

    def __init__(self, limit: int, message: str):
        self.limit, self.message, self.calls = limit, message, []

    def __call__(self, prompt, **kwargs):
        self.calls.append(len(prompt))
        if len(prompt) > self.limit:
            raise RuntimeError(self.message)
        return _FakeOutput()


def test_latency_records_oom_as_infeasible_and_continues():
    fake = _OomAbove(2, "CUDA out of memory. Tried to allocate 2.00 GiB")
    profile = profile_latency(
        lambda: fake, [1, 2, 4, 8], LatencyTiming(1, 3), "cpu", model="fake", steps=1,
        resolution=8,
    )  # fmt: skip
    table = profile.table()
    assert table["feasible"].tolist() == [True, True, False, False]
    assert table.loc[2, "error"].startswith("CUDA out of memory")
    assert 8 in fake.calls  # the run went on after the OOM at 4
    feasible = table[table.feasible]
    assert (feasible.latency_p95_s >= feasible.latency_p50_s).all()
    assert (feasible.throughput_qps > 0).all() and profile.load_s >= 0


def test_latency_reraises_other_errors_and_checks_request():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        profile_latency(
            lambda: _OomAbove(0, "shape mismatch"),
            [1],
            LatencyTiming(0, 1),
            "cpu",
            model="x",
            steps=1,
            resolution=8,
        )
    with pytest.raises(LatencyError, match="distinct"):
        profile_latency(
            lambda: None, [1, 1], LatencyTiming(0, 1), "cpu", model="x", steps=1, resolution=8
        )


class _SlowAfterGap:
    """A pipeline stand-in that records each call's batch size and torch threads, and takes
    `delay_s`."""

    def __init__(self, delay_s: float):
        self.delay_s, self.calls, self.threads = delay_s, [], set()

    def __call__(self, prompt, **kwargs):
        self.calls.append(len(prompt))
        self.threads.add(torch.get_num_threads())
        time.sleep(self.delay_s)
        return _FakeOutput()


def test_latency_rounds_interleave_batch_sizes_and_report_the_rounds_spread():
    """Each round times every batch size in turn (the first after each size's warm-up); the
    rounds' medians give the spread (here the machine 'slows down' in the gap between rounds)."""
    fake, gaps = _SlowAfterGap(0.001), []

    def gap(seconds):
        gaps.append(seconds)
        fake.delay_s = 0.05

    timing = LatencyTiming(n_warmup=1, n_repeats=2, rounds=2, round_gap_s=5.0)
    profile = profile_latency(
        lambda: fake, [2, 1], timing, "cpu", model="f", steps=1, resolution=8, sleep=gap
    )
    # each size's first round after its warm-up, each later one after one untimed call
    assert fake.calls == [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2] and gaps == [5.0]
    table = profile.table()
    assert table["n_rounds"].tolist() == [2, 2] and table["n_repeats"].tolist() == [2, 2]
    assert (table["latency_rounds_p90_s"] > 0.04).all()
    assert (table["latency_rounds_p10_s"] < 0.5 * table["latency_rounds_p90_s"]).all()
    inside = table["latency_p50_s"].between(
        table["latency_rounds_p10_s"], table["latency_rounds_p90_s"]
    )
    assert inside.all()
    # the p05 of the timed calls: the fast round's (the machine 'slowed' after the gap)
    assert (table["latency_p05_s"] < 0.5 * table["latency_p50_s"]).all()
    assert table["idle_gap_s"].tolist() == [0.0, 0.0] and table["latency_idle_p50_s"].isna().all()


class _SlowAfterIdle(_SlowAfterGap):
    """Takes `cold_s` for the first call after an idle gap, `delay_s` back to back."""

    def __init__(self, delay_s: float, cold_s: float):
        super().__init__(delay_s)
        self.cold_s, self.idled = cold_s, False

    def __call__(self, prompt, **kwargs):
        saved, self.delay_s = self.delay_s, self.cold_s if self.idled else self.delay_s
        self.idled = False
        try:
            return super().__call__(prompt, **kwargs)
        finally:
            self.delay_s = saved


def test_latency_after_idle_times_each_repeat_after_the_gap_with_a_cpu_workers_threads():
    fake, gaps = _SlowAfterIdle(0.001, 0.02), []

    def idle(seconds):
        gaps.append(seconds)
        fake.idled = True

    before = torch.get_num_threads()
    timing = LatencyTiming(n_warmup=1, n_repeats=3, rounds=2, round_gap_s=4.0, idle_gap_s=0.25)
    profile = profile_latency(
        lambda: fake, [1, 2], timing, "cpu", model="f", steps=1, resolution=8, sleep=idle
    )
    # per round and size: a warm-up call, 3 back to back, 3 each after the idle gap
    assert fake.calls == ([1] * 7 + [2] * 7) * 2
    assert gaps == [0.25] * 6 + [4.0] + [0.25] * 6
    table = profile.table()
    assert table["idle_gap_s"].tolist() == [0.25, 0.25]
    assert (table["latency_p50_s"] < 0.01).all() and (table["latency_idle_p50_s"] > 0.015).all()
    # timed with a CPU worker's torch threads, and the caller's restored
    assert fake.threads == {CPU_WORKER_THREADS} and torch.get_num_threads() == before


class _TwoModes(_SlowAfterGap):
    """Takes `slow_s` every third call, `fast_s` otherwise: a two-mode batch time, a third of
    it in a far upper mode, which no lognormal has."""

    def __init__(self, fast_s: float, slow_s: float):
        super().__init__(fast_s)
        self.times_s = (slow_s, fast_s, fast_s)

    def __call__(self, prompt, **kwargs):
        self.delay_s = self.times_s[len(self.calls) % 3]
        return super().__call__(prompt, **kwargs)


def test_a_size_timed_often_enough_carries_the_shape_of_its_calls_after_idle(tmp_path):
    fake = _TwoModes(0.002, 0.030)
    timing = LatencyTiming(n_warmup=0, n_repeats=50, rounds=2, idle_gap_s=0.001)
    profile = profile_latency(
        lambda: fake, [1], timing, "cpu", model="f", steps=1, resolution=8, sleep=lambda s: None
    )
    # 100 calls after idle, a third of them slow: the median in the fast mode, the p80 in
    # the slow one (15 times the fast sleep; a loaded machine's jitter is far less)
    assert profile.shape_calls == "after idle" and set(profile.shapes) == {1}
    shape = profile.shapes[1]
    assert len(shape) == 101 and shape[50] == 1.0 and list(shape) == sorted(shape)
    assert shape[20] > 0.4 and shape[80] > 3
    path = write_latency_profile(profile, tmp_path / "f.csv", {})
    sidecar = read_latency_profile(path)[1]
    assert sidecar["shapes"] == {"1": list(shape)} and sidecar["shape_calls"] == "after idle"
    # back to back when not timed after idle; too few calls: no shape, no sidecar entry
    timing = LatencyTiming(n_warmup=0, n_repeats=100)
    profile = profile_latency(
        lambda: fake, [1], timing, "cpu", model="f", steps=1, resolution=8, sleep=lambda s: None
    )
    assert profile.shape_calls == "back to back" and profile.shapes[1][80] > 3
    few = profile_latency(
        lambda: fake, [1], LatencyTiming(0, 99), "cpu", model="f", steps=1, resolution=8
    )
    assert few.shapes == {} and few.shape_calls == ""
    sidecar = read_latency_profile(write_latency_profile(few, tmp_path / "g.csv", {}))[1]
    assert "shapes" not in sidecar and "shape_calls" not in sidecar


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"n_repeats": 0}, "n_repeats=0"),
        ({"rounds": 0}, "rounds=0"),
        ({"round_gap_s": -1.0}, "round_gap_s=-1"),
        ({"idle_gap_s": float("nan")}, "idle_gap_s=nan"),
        ({"idle_gap_s": 1e9}, "idle_gap_s=1000000000"),
    ],
)
def test_latency_timing_refuses_bad_counts_and_gaps(fields, problem):
    with pytest.raises(LatencyError, match=problem):
        LatencyTiming(**fields)


def test_latency_of_tiny_pipeline(pipe, tmp_path):
    profile = profile_latency(
        lambda: pipe, [1, 2], LatencyTiming(0, 1), "cpu", model="tiny", steps=1, resolution=32
    )
    assert profile.table()["feasible"].all()
    assert (profile.table()["latency_p50_s"] > 0).all()
    # the CPU share a hypervisor stole meanwhile goes to the sidecar (Linux: /proc/stat)
    if cpu_ticks():
        assert 0 <= profile.cpu_steal_share <= 1
        path = write_latency_profile(profile, tmp_path / "tiny.csv", {})
        assert read_latency_profile(path)[1]["cpu_steal_share"] == round(profile.cpu_steal_share, 4)


def test_steal_is_the_hypervisors_share_of_the_cpu_time_between_two_readings():
    import math

    before = [100, 0, 10, 500, 0, 0, 0, 40, 0, 0]
    after = [130, 0, 20, 520, 0, 0, 0, 80, 0, 0]  # +30 user, +10 system, +20 idle, +40 steal
    assert steal_share(before, after) == pytest.approx(0.4)
    assert math.isnan(steal_share([], after)) and math.isnan(steal_share(before, before))
    assert len(cpu_ticks()) in (0, *range(8, 12))


def test_a_served_batch_is_the_rendered_images_as_base64_pngs(pipe):
    """What `profile latency` times is what a diffusers replica answers: render + PNG encoding."""
    import base64
    import io

    from PIL import Image

    settings = dict(steps=1, resolution=32)
    pixels = render(pipe, PROMPTS[:2], [5, 6], **settings)
    images, encoded = served_batch(pipe, PROMPTS[:2], [5, 6], **settings)
    assert len(images) == len(encoded) == 2
    for k, png in enumerate(encoded):
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))))
        np.testing.assert_array_equal(decoded, pixels[k])
        np.testing.assert_array_equal(np.asarray(images[k]), pixels[k])


def test_generate_is_seeded_resumable_and_atomic(pipe, tmp_path):
    kwargs = dict(images_per_prompt=2, steps=1, resolution=32, batch_size=4, seed=7, progress=False)
    first = generate_images(pipe, PROMPTS, tmp_path / "a", **kwargs)
    assert (first.generated, first.skipped) == (6, 0)
    n_prompts, k, grid = image_grid(tmp_path / "a")
    assert (n_prompts, k) == (3, 2)
    # interrupted run: only part of the images exist; resuming fills in identical bytes
    (tmp_path / "b").mkdir()
    for name in (image_name(0, 0), image_name(2, 1)):
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    resumed = generate_images(pipe, PROMPTS, tmp_path / "b", **kwargs)
    assert (resumed.generated, resumed.skipped) == (4, 2)
    for row in grid:
        for path in row:
            assert (tmp_path / "b" / path.name).read_bytes() == path.read_bytes()
    assert not list((tmp_path / "b").glob(".*tmp"))
    again = generate_images(pipe, PROMPTS, tmp_path / "b", **kwargs)
    assert (again.generated, again.skipped) == (0, 6)
    other_seed = generate_images(pipe, PROMPTS, tmp_path / "c", **{**kwargs, "seed": 8})
    assert other_seed.generated == 6
    assert (tmp_path / "c" / image_name(0, 0)).read_bytes() != grid[0][0].read_bytes()


def test_load_pipeline_offline_missing_model(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline()
    with pytest.raises(PipelineError, match="cannot load"):
        load_pipeline("t2isim-test/no-such-model", "fp32", "cpu")
    with pytest.raises(PipelineError, match="dtype"):
        load_pipeline(str(tmp_path), "fp8", "cpu")


def test_load_pipeline_from_local_folder(pipe, tmp_path):
    def one_image(pipeline):
        generator = [torch.Generator("cpu").manual_seed(0)]
        return pipeline(
            prompt=["a cat"],
            num_inference_steps=1,
            height=32,
            width=32,
            generator=generator,
            output_type="np",
        ).images

    pipe.save_pretrained(tmp_path / "tiny")
    a = one_image(load_pipeline(str(tmp_path / "tiny"), "fp32", "cpu"))
    b = one_image(pipe)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_cuda_timing_uses_events_around_the_call_and_reports_seconds(monkeypatch):
    """No GPU here: a recording stand-in for torch.cuda checks the CUDA path's protocol —
    synchronise, record start, call, record end, wait for the end event, ms -> s."""
    from profiler.latency import timed_call_s

    log = []

    class FakeEvent:
        def __init__(self, enable_timing):
            assert enable_timing
            self.name = "start" if not any(e.startswith("new") for e in log) else "end"
            log.append(f"new {self.name}")

        def record(self):
            log.append(f"record {self.name}")

        def synchronize(self):
            log.append(f"wait {self.name}")

        def elapsed_time(self, other):
            assert (self.name, other.name) == ("start", "end")
            return 1250.0  # milliseconds, as torch.cuda.Event.elapsed_time

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: log.append(f"sync {device}"))
    seconds = timed_call_s(lambda: log.append("call"), "cuda:1")
    assert seconds == pytest.approx(1.25)
    assert log == [
        "new start",
        "new end",
        "sync cuda:1",
        "record start",
        "call",
        "record end",
        "wait end",
    ]


def test_cuda_provenance_reads_the_gpu_name_and_the_driver(monkeypatch, tmp_path):
    """No GPU here: stand-ins for torch.cuda and an `nvidia-smi` script on PATH."""
    from profiler.provenance import device_provenance

    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\n[ "$1" = "--query-gpu=driver_version" ] && echo "550.54.15"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    names = {0: "NVIDIA L40S", 1: "NVIDIA H100 80GB HBM3"}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: names[index])
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert device_provenance("cuda:1") == {
        "gpu": "NVIDIA H100 80GB HBM3",
        "driver": "550.54.15",
        "cuda": "12.4",
    }
    assert device_provenance("cuda")["gpu"] == "NVIDIA L40S"
    assert device_provenance("cpu")["driver"] is None
