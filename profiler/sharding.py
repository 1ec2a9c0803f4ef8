"""Profiling on several devices (HADIS offline profiling, issue item 8): latency as one task per
(model, batch size) and generation as one task per image shard, run on one worker process per
local device or on a Dask cluster. The output files are those of the serial steps:

* latency: the rows of every batch size of a model are merged into one profile (`load_s` = the
  median of the tasks' load times, each task loads the model once); all tasks of a model must
  have run on the same GPU type;
* generation: shard j owns a contiguous run of `generate_images`' fixed batches and runs
  `generate_images` on the model's folder restricted to its own images (`jobs`), so the
  batches, seeds and pixels are exactly the serial ones. Images are written atomically; an
  interrupted shard resumes after its finished images.

Local workers: one spawned process per `--devices` entry (`cuda:N` or `N` -> a process that sees
only GPU N through CUDA_VISIBLE_DEVICES; `cpu` -> a CPU process, repeatable for tests). Dask: a
scheduler address (each worker one thread and one GPU, e.g. `CUDA_VISIBLE_DEVICES=0 dask worker
ADDR --nthreads 1`; the work folder on a shared file system) or `local[:N]`, an in-process
cluster of N single-thread workers (tests, trying the Dask path).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import statistics
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from profiler.generate import generate_images, index_images
from profiler.latency import LatencyProfile, LatencyTiming, check_batch_sizes, profile_latency

# tiny pipelines seed torch's global RNG while building their weights: threads (in-process Dask
# workers) must not interleave that
_TINY_INIT_LOCK = threading.Lock()


class ShardingError(ValueError):
    """A device list, Dask address or task set that cannot be run or merged."""


# ----------------------------------------------------------------------------- pipelines


@dataclass(frozen=True)
class PipelineSource:
    """What a worker needs to build a pipeline on its own device: a local folder, a hub id
    (cache only under HF_HUB_OFFLINE=1) or `tiny:<seed>:<width>` (random init, fp32)."""

    model: str
    dtype: str = "fp16"
    guidance_scale: float | None = None  # bound into every call (e.g. 0 for distilled models)

    def __post_init__(self) -> None:
        from profiler.pipelines import PipelineError

        if self.model.startswith("tiny:"):
            parts = self.model.split(":")
            if len(parts) != 3 or not all(p.isdigit() for p in parts[1:]):
                raise PipelineError(f"model {self.model!r}: expected tiny:<seed>:<width>")

    def load(self, device: str):
        from profiler.pipelines import load_pipeline, tiny_pipeline

        if self.model.startswith("tiny:"):
            _, seed, width = self.model.split(":")
            with _TINY_INIT_LOCK:
                pipe = tiny_pipeline(int(seed), int(width)).to(device)
        else:
            pipe = load_pipeline(self.model, self.dtype, device)
        if self.guidance_scale is None:
            return pipe
        return functools.partial(pipe, guidance_scale=self.guidance_scale)


# ----------------------------------------------------------------------------- runners


class TaskRunner(Protocol):
    """Runs `fn(task, device)` for every task, on its workers; results in task order."""

    description: str  # recorded as the latency profile's `device`

    @property
    def n_workers(self) -> int: ...

    def map(self, fn: Callable[[object, str], object], tasks: Sequence[object]) -> list: ...


@dataclass(frozen=True)
class WorkerDevice:
    name: str  # as given: cpu, cuda:N
    visible: str  # CUDA_VISIBLE_DEVICES of the worker process ("" = no GPU)
    device: str  # torch device inside the worker


def parse_devices(text: str) -> tuple[WorkerDevice, ...]:
    """`cuda:0,cuda:1` / `0,1` / `cpu,cpu` -> one worker per entry; a GPU may appear once."""
    workers = []
    for entry in (e.strip() for e in text.split(",")):
        index = entry.removeprefix("cuda:")
        if entry == "cpu":
            workers.append(WorkerDevice("cpu", "", "cpu"))
        elif index.isdigit():
            workers.append(WorkerDevice(f"cuda:{int(index)}", str(int(index)), "cuda"))
        else:
            raise ShardingError(f"devices {text!r}: entry {entry!r} is not cpu, cuda:N or N")
    gpus = [w.name for w in workers if w.device == "cuda"]
    if len(set(gpus)) != len(gpus):
        raise ShardingError(f"devices {text!r}: a GPU is listed twice (timings would interfere)")
    return tuple(workers)


def _pin_visible_devices(visible: str) -> None:
    """Worker initializer: runs before the worker initialises CUDA."""
    os.environ["CUDA_VISIBLE_DEVICES"] = visible


class LocalDevices:
    """One spawned worker process per device; tasks go to whichever worker is free. Use as a
    context manager (the processes start on entry and stop on exit)."""

    def __init__(self, devices: Sequence[WorkerDevice]):
        if not devices:
            raise ShardingError("devices: none given")
        self.devices = tuple(devices)
        self.description = ",".join(d.name for d in self.devices)
        self._pools: list[ProcessPoolExecutor] = []

    @property
    def n_workers(self) -> int:
        return len(self.devices)

    def __enter__(self) -> LocalDevices:
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        self._pools = [
            ProcessPoolExecutor(1, context, _pin_visible_devices, (d.visible,))
            for d in self.devices
        ]
        return self

    def __exit__(self, *exc) -> None:
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools = []

    def map(self, fn, tasks):
        if not self._pools:
            raise ShardingError("LocalDevices.map outside its `with` block")
        results = [None] * len(tasks)
        pending = deque(enumerate(tasks))
        free = list(range(len(self._pools)))
        running = {}
        while pending or running:
            while free and pending:
                worker = free.pop(0)
                i, task = pending.popleft()
                future = self._pools[worker].submit(fn, task, self.devices[worker].device)
                running[future] = (i, worker)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i, worker = running.pop(future)
                results[i] = future.result()
                free.append(worker)
        return results


class DaskRunner:
    """Tasks on a Dask cluster: `address` = a scheduler (`tcp://host:8786`) or `local[:N]`
    (an in-process cluster of N single-thread workers). Every task runs on `device` of its
    worker. Use as a context manager (connects on entry, disconnects on exit)."""

    def __init__(self, address: str, device: str):
        self.address, self.device = address, device
        self.description = f"dask {address} ({device})"
        self._local_workers = None
        if address == "local" or address.startswith("local:"):
            count = address.removeprefix("local").removeprefix(":") or "1"
            if not count.isdigit() or int(count) < 1:
                raise ShardingError(f"dask {address!r}: expected local or local:<workers>")
            self._local_workers = int(count)
        self._client = self._cluster = None

    @property
    def n_workers(self) -> int:
        return len(self._client.nthreads())

    def __enter__(self) -> DaskRunner:
        from distributed import Client, LocalCluster

        if self._local_workers is not None:
            self._cluster = LocalCluster(
                n_workers=self._local_workers,
                threads_per_worker=1,
                processes=False,
                dashboard_address=None,
            )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.address, timeout=30)
            except OSError as exc:
                raise ShardingError(f"dask {self.address}: cannot connect ({exc})") from None
        threads = self._client.nthreads()
        busy = sorted(w for w, n in threads.items() if n != 1)
        if not threads or busy:
            self.__exit__()
            problem = f"worker {busy[0]} has several threads" if busy else "no workers"
            raise ShardingError(
                f"dask {self.address}: {problem}; start one single-thread worker per GPU"
            )
        return self

    def __exit__(self, *exc) -> None:
        for resource in (self._client, self._cluster):
            if resource is not None:
                resource.close()
        self._client = self._cluster = None

    def map(self, fn, tasks):
        if self._client is None:
            raise ShardingError("DaskRunner.map outside its `with` block")
        futures = self._client.map(fn, list(tasks), device=self.device, pure=False)
        return self._client.gather(futures)


def open_runner(devices: str | None, dask: str | None, device: str) -> TaskRunner | None:
    """The runner for `--devices` / `--dask` (None: run serially in this process)."""
    if devices and dask:
        raise ShardingError("--devices and --dask: give one, not both")
    if devices:
        return LocalDevices(parse_devices(devices))
    if dask:
        return DaskRunner(dask, device)
    return None


# ----------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class LatencyTask:
    name: str  # model name in the bundle
    source: PipelineSource
    steps: int
    resolution: int
    batch_size: int
    timing: LatencyTiming


def latency_tasks(
    models: Sequence[tuple[str, PipelineSource, int]],
    batch_sizes: Sequence[int],
    *,
    resolution: int,
    timing: LatencyTiming,
) -> list[LatencyTask]:
    """One task per (model, batch size); `models` = (name, source, steps) triples."""
    check_batch_sizes(batch_sizes)
    names = [name for name, _, _ in models]
    if len(set(names)) != len(names):
        raise ShardingError(f"models {names}: a name is listed twice")
    return [
        LatencyTask(name, source, steps, resolution, int(b), timing)
        for name, source, steps in models
        for b in sorted(batch_sizes)
    ]


def run_latency_task(task: LatencyTask, device: str) -> tuple[LatencyProfile, dict]:
    """(one-row profile, provenance of the worker: GPU, driver, CUDA, library versions)."""
    from profiler.provenance import device_provenance, library_versions

    profile = profile_latency(
        functools.partial(task.source.load, device),
        [task.batch_size],
        task.timing,
        device,
        model=task.name,
        steps=task.steps,
        resolution=task.resolution,
    )
    return profile, {**device_provenance(device), "libraries": library_versions()}


def merge_latency(
    results: Sequence[tuple[LatencyProfile, dict]],
) -> dict[str, tuple[LatencyProfile, dict]]:
    """{model: (profile with every batch size, provenance)}; a model's tasks must share a GPU
    type (the provenance of its smallest batch size is kept, and the largest CPU steal share;
    each batch size keeps its measured shape)."""
    by_model: dict[str, list[tuple[LatencyProfile, dict]]] = {}
    for profile, provenance in results:
        by_model.setdefault(profile.model, []).append((profile, provenance))
    merged = {}
    for model, parts in by_model.items():
        parts.sort(key=lambda part: part[0].rows[0].batch_size)
        gpus = sorted({str(provenance.get("gpu")) for _, provenance in parts})
        if len(gpus) != 1:
            raise ShardingError(f"model {model}: batch sizes were timed on different GPUs {gpus}")
        rows = tuple(row for profile, _ in parts for row in profile.rows)
        load_s = statistics.median(profile.load_s for profile, _ in parts)
        steals = [p.cpu_steal_share for p, _ in parts if p.cpu_steal_share is not None]
        steal = max(steals) if steals else None  # the most contended part's
        shapes = {b: r for profile, _ in parts for b, r in profile.shapes.items()}
        calls = next((p.shape_calls for p, _ in parts if p.shape_calls), "")
        merged[model] = (LatencyProfile(model, load_s, rows, steal, shapes, calls), parts[0][1])
    return merged


def profile_latency_on(
    runner: TaskRunner, tasks: Sequence[LatencyTask]
) -> dict[str, tuple[LatencyProfile, dict]]:
    return merge_latency(runner.map(run_latency_task, tasks))


# ----------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class GenerationShard:
    source: PipelineSource
    prompts: tuple[str, ...]
    out_dir: str
    images_per_prompt: int
    steps: int
    resolution: int
    batch_size: int
    seed: int
    index: int  # shard index, 0..count-1
    count: int

    def jobs(self) -> list[tuple[int, int]]:
        """(prompt_id, image_idx) of this shard: a contiguous run of `generate_images`'
        batches (`batch_size` consecutive images of the prompt-major list)."""
        n_jobs = len(self.prompts) * self.images_per_prompt
        n_chunks = -(-n_jobs // self.batch_size)
        lo = self.index * n_chunks // self.count * self.batch_size
        hi = min((self.index + 1) * n_chunks // self.count * self.batch_size, n_jobs)
        return [divmod(j, self.images_per_prompt) for j in range(lo, hi)]


def generation_shards(
    source: PipelineSource,
    prompts: Sequence[str],
    out_dir: str | Path,
    n_shards: int,
    *,
    images_per_prompt: int,
    steps: int,
    resolution: int,
    batch_size: int,
    seed: int,
) -> list[GenerationShard]:
    """At most `n_shards` non-empty shards of one model's images."""
    if n_shards < 1 or batch_size < 1 or images_per_prompt < 1:
        raise ShardingError(
            f"n_shards={n_shards}, batch_size={batch_size}, images_per_prompt="
            f"{images_per_prompt}: expected >= 1"
        )
    n_chunks = -(-len(prompts) * images_per_prompt // batch_size)
    count = max(1, min(n_shards, n_chunks))
    return [
        GenerationShard(
            source,
            tuple(prompts),
            str(out_dir),
            images_per_prompt,
            steps,
            resolution,
            batch_size,
            seed,
            index,
            count,
        )
        for index in range(count)
    ]


def run_generation_shard(shard: GenerationShard, device: str) -> int:
    """Generate the shard's missing images into `shard.out_dir` (the pipeline is loaded only when
    some are missing); returns how many it wrote."""
    out = Path(shard.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = shard.jobs()
    if set(jobs) <= set(index_images(out)):
        return 0
    result = generate_images(
        shard.source.load(device),
        shard.prompts,
        out,
        images_per_prompt=shard.images_per_prompt,
        steps=shard.steps,
        resolution=shard.resolution,
        batch_size=shard.batch_size,
        seed=shard.seed,
        device=device,
        jobs=jobs,
        progress=False,
    )
    return result.generated


def generate_on(runner: TaskRunner, shards: Sequence[GenerationShard]) -> int:
    """Run the shards on the runner's workers; returns the number of images written."""
    return sum(runner.map(run_generation_shard, shards))
