"""Batch latency of a text-to-image pipeline (HADIS §4.2 offline profiling).

Per batch size: `n_warmup` untimed calls, then `n_repeats` timed calls, each synchronised with the
device (CUDA events on GPU, `time.perf_counter` around a synchronise elsewhere). With `rounds` > 1
the timed calls come in rounds `round_gap_s` apart, each round timing every batch size in turn, so
that every row samples the same stretch of time (a shared machine's speed drifts over minutes).
With `idle_gap_s` > 0 each round also times `n_repeats` calls of each size after that long idle
(a serving worker between batches runs slower than one timed back to back). A CPU pipeline runs
with the diffusers backend's worker thread count (`profiler.cpu_threads`), as it is served.
Reported: p05, p50, p95, mean over all timed calls, throughput = batch_size / p50, the spread of
the rounds' medians (p10, p90: how far the machine's speed moved while the row was timed) and
the p50 after the idle gap (`latency_idle_p50_s`, NaN when not timed). An
out-of-memory error at a batch size is recorded as infeasible (the memory is released) and the
run goes on with the next batch size. The sidecar records the CPU share a hypervisor stole
meanwhile (`cpu_steal_share`, Linux) and, for each batch size timed at least
`MIN_SHAPE_SAMPLES` times, the measured shape of its calls (`shapes`: quantiles over the
median, `simulator.empirical_shape`): of the calls after idle where they were timed (as a
serving worker's batch runs between arrivals), else of the back-to-back ones (`shape_calls`).
`profile all` puts them in the bundle's `shapes.csv`, for `--service-time empirical`.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.cpu_threads import worker_threads
from profiler.provenance import cpu_ticks, steal_share
from simulator.bundle import (
    IDLE_LATENCY_COLUMNS,
    MAX_IDLE_GAP_S,
    P05_LATENCY_COLUMN,
    REQUIRED_COLUMNS,
)
from simulator.empirical_shape import (
    MIN_SHAPE_SAMPLES,
    SHAPE_LEVELS,
    shape_ratios,
    shape_rows,
)
from simulator.errors import InputError
from simulator.json_input import read_json_object

PROFILE_PROMPT = "a photograph of an astronaut riding a horse"
LATENCY_COLUMNS = (
    "model",
    "batch_size",
    "feasible",
    "latency_p05_s",
    "latency_p50_s",
    "latency_p95_s",
    "latency_mean_s",
    "throughput_qps",
    "n_repeats",
    "n_rounds",
    "latency_rounds_p10_s",
    "latency_rounds_p90_s",
    "idle_gap_s",
    "latency_idle_p50_s",
    "error",
)
# the bundle's optional latency columns, with their values when not timed (tables timed before
# the idle gap or the p05 existed lack them)
OPTIONAL_COLUMNS = {
    **dict(zip(IDLE_LATENCY_COLUMNS, (0.0, math.nan), strict=True)),
    P05_LATENCY_COLUMN: math.nan,
}


class LatencyError(InputError):
    """Bad profiling request (batch sizes, repeat counts) or an unreadable latency table."""


@dataclass(frozen=True)
class LatencyRow:
    model: str
    batch_size: int
    feasible: bool
    latency_p50_s: float
    latency_p95_s: float
    latency_mean_s: float
    throughput_qps: float
    n_repeats: int  # timed calls per round
    n_rounds: int
    latency_rounds_p10_s: float  # p10 and p90 of the rounds' medians
    latency_rounds_p90_s: float
    error: str
    idle_gap_s: float = 0.0  # 0: not timed after an idle gap
    latency_idle_p50_s: float = math.nan  # p50 of the calls after `idle_gap_s` idle
    latency_p05_s: float = math.nan  # the lower tail of the back-to-back calls


@dataclass(frozen=True)
class LatencyTiming:
    """How `profile_latency` times each batch size: `n_warmup` untimed calls before its first
    round (one before each later round, none when `n_warmup` is 0, so that the back-to-back
    calls follow a call, not the round gap), then `rounds` rounds `round_gap_s` apart of
    `n_repeats` timed calls back to back and, with `idle_gap_s` > 0, `n_repeats` more each
    after `idle_gap_s` idle."""

    n_warmup: int = 2
    n_repeats: int = 10
    rounds: int = 1
    round_gap_s: float = 0.0
    idle_gap_s: float = 0.0

    def __post_init__(self) -> None:
        if self.n_warmup < 0 or self.n_repeats < 1:
            raise LatencyError(
                f"n_warmup={self.n_warmup}, n_repeats={self.n_repeats}: need >= 0 and >= 1"
            )
        for name in ("round_gap_s", "idle_gap_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= MAX_IDLE_GAP_S):
                raise LatencyError(f"{name}={value}: need seconds in [0, {MAX_IDLE_GAP_S:g}]")
        if self.rounds < 1:
            raise LatencyError(f"rounds={self.rounds}: need >= 1")


@dataclass(frozen=True)
class LatencyProfile:
    model: str
    load_s: float
    rows: tuple[LatencyRow, ...]
    # the CPU share the hypervisor took while this was timed (`profiler.provenance.steal_share`;
    # None where unknown): a profile timed on a contended VM is slower than the model
    cpu_steal_share: float | None = None
    # batch size -> the measured shape of its calls, for sizes timed >= MIN_SHAPE_SAMPLES times
    shapes: dict[int, tuple[float, ...]] = field(default_factory=dict)
    shape_calls: str = ""  # which calls the shapes are of: SHAPE_CALLS's

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rows], columns=list(LATENCY_COLUMNS))


SHAPE_CALLS = ("after idle", "back to back")


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError saying 'out of memory' (other backends)."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def _synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device.startswith("mps"):
        torch.mps.synchronize()


def timed_call_s(fn: Callable[[], object], device: str) -> float:
    """Seconds one call of `fn` takes on `device`, synchronised (CUDA events on GPU)."""
    import torch

    if device.startswith("cuda"):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        _synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    _synchronize(device)
    t0 = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - t0


def _release_memory(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def check_batch_sizes(batch_sizes: Sequence[int]) -> None:
    if not batch_sizes:
        raise LatencyError("batch sizes: none given")
    if any(int(b) < 1 for b in batch_sizes) or len(set(batch_sizes)) != len(batch_sizes):
        raise LatencyError(f"batch sizes {list(batch_sizes)}: expected distinct integers >= 1")


def _row(
    model: str,
    batch_size: int,
    rounds_s: list[np.ndarray],
    idle_gap_s: float,
    idle_s: list[np.ndarray],
) -> LatencyRow:
    times_s = np.concatenate(rounds_s)
    p05, p50, p95 = np.percentile(times_s, [5, 50, 95])
    round_p10, round_p90 = np.percentile([np.median(r) for r in rounds_s], [10, 90])
    idle_p50 = float(np.median(np.concatenate(idle_s))) if idle_s else float("nan")
    return LatencyRow(
        model,
        batch_size,
        True,
        float(p50),
        float(p95),
        float(times_s.mean()),
        batch_size / float(p50),
        len(rounds_s[0]),
        len(rounds_s),
        float(round_p10),
        float(round_p90),
        "",
        idle_gap_s if idle_s else 0.0,
        idle_p50,
        float(p05),
    )


def profile_latency(
    pipeline_factory: Callable[[], object],
    batch_sizes: Sequence[int],
    timing: LatencyTiming,
    device: str,
    *,
    model: str,
    steps: int,
    resolution: int,
    prompt: str = PROFILE_PROMPT,
    sleep: Callable[[float], None] = time.sleep,
) -> LatencyProfile:
    """Load the pipeline once (timed: `load_s`), then time each batch size's batch as a
    serving worker answers it (`profiler.generate.served_batch`: text encoding, `steps`
    denoising steps, VAE decode, PNG encoding of each image) as `timing` says."""
    check_batch_sizes(batch_sizes)
    with worker_threads(device):
        sizes = sorted(int(b) for b in batch_sizes)
        return _profile(
            pipeline_factory, sizes, timing, device, model, steps, resolution, prompt, sleep
        )


def _profile(
    factory: Callable[[], object],
    sizes: list[int],
    timing: LatencyTiming,
    device: str,
    model: str,
    steps: int,
    resolution: int,
    prompt: str,
    sleep: Callable[[float], None],
) -> LatencyProfile:
    from profiler.generate import served_batch

    ticks = cpu_ticks()
    _synchronize(device)
    t0 = time.perf_counter()
    pipe = factory()
    _synchronize(device)
    load_s = time.perf_counter() - t0

    def call(b: int) -> object:
        return served_batch(
            pipe, [prompt] * b, range(b), steps=steps, resolution=resolution, device=device
        )

    def after_idle(b: int) -> float:
        sleep(timing.idle_gap_s)
        return timed_call_s(functools.partial(call, b), device)

    timed: dict[int, list[np.ndarray]] = {}  # batch size -> its rounds' times
    idle: dict[int, list[np.ndarray]] = {}  # batch size -> its rounds' times after idle
    out_of_memory: dict[int, str] = {}
    for round_index in range(timing.rounds):
        if round_index:
            sleep(timing.round_gap_s)
        for batch_size in sizes:
            if batch_size in out_of_memory:
                continue
            try:
                for _ in range(timing.n_warmup if round_index == 0 else min(timing.n_warmup, 1)):
                    call(batch_size)
                one_call = functools.partial(call, batch_size)
                times_s = [timed_call_s(one_call, device) for _ in range(timing.n_repeats)]
                if timing.idle_gap_s:
                    idle_s = [after_idle(batch_size) for _ in range(timing.n_repeats)]
                    idle.setdefault(batch_size, []).append(np.array(idle_s))
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                _release_memory(device)
                out_of_memory[batch_size] = (str(exc).splitlines() or ["out of memory"])[0]
                continue
            timed.setdefault(batch_size, []).append(np.array(times_s))
    nan = float("nan")
    rows = tuple(
        _row(model, b, timed[b], timing.idle_gap_s, idle.get(b, []))
        if b not in out_of_memory
        else LatencyRow(model, b, False, nan, nan, nan, 0.0, 0, 0, nan, nan, out_of_memory[b])
        for b in sizes
    )
    pipe = None  # drop the model before releasing memory for the next one
    _release_memory(device)
    steal = steal_share(ticks, cpu_ticks())
    calls = idle if timing.idle_gap_s else timed
    samples = {b: np.concatenate(calls[b]) for b in sizes if b in calls}
    shapes = {b: shape_ratios(x) for b, x in samples.items() if len(x) >= MIN_SHAPE_SAMPLES}
    return LatencyProfile(
        model,
        load_s,
        rows,
        None if math.isnan(steal) else steal,
        shapes,
        SHAPE_CALLS[0 if timing.idle_gap_s else 1] if shapes else "",
    )


def write_latency_profile(profile: LatencyProfile, path: str | Path, meta: dict) -> Path:
    """Write `<name>.csv` (all rows, infeasible included) and `<name>.json` (load_s, steps,
    resolution, provenance) side by side."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile.table().to_csv(path, index=False, float_format="%.10g")
    sidecar = {"model": profile.model, "load_s": profile.load_s, **meta}
    if profile.cpu_steal_share is not None:
        sidecar["cpu_steal_share"] = round(profile.cpu_steal_share, 4)
    if profile.shapes:
        sidecar["shapes"] = {str(b): list(r) for b, r in sorted(profile.shapes.items())}
        sidecar["shape_calls"] = profile.shape_calls
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return path


def read_latency_profile(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """(rows, sidecar) as written by `write_latency_profile`."""
    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    if not path.is_file() or not sidecar_path.is_file():
        raise LatencyError(f"{path}: latency profile (.csv + .json) not found")
    table = pd.read_csv(path, keep_default_na=True)
    missing = [c for c in LATENCY_COLUMNS if c not in table.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise LatencyError(f"{path}: column {missing[0]}: missing")
    for column, absent in OPTIONAL_COLUMNS.items():
        if column not in table.columns:
            table[column] = absent
    return table[list(LATENCY_COLUMNS)], read_json_object(sidecar_path, LatencyError)


def bundle_latency_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Feasible rows in the bundle's `latency.csv` shape, with its idle columns
    (`IDLE_LATENCY_COLUMNS`) where any row was timed after an idle gap and its p05 where the
    table has one.
    Measured latencies are made monotone in batch size by a reverse running minimum: a batch of
    b can always be padded to a larger profiled size b', so its effective latency is min over
    b' >= b (timing noise of tiny models otherwise breaks the bundle's monotonicity check)."""
    feasible = table[table["feasible"].astype(bool)].sort_values(["model", "batch_size"])
    if feasible.empty:
        raise LatencyError("latency profile: no feasible batch size")
    columns = list(REQUIRED_COLUMNS["latency"])
    if "idle_gap_s" in feasible.columns and (feasible["idle_gap_s"] > 0).any():
        columns += IDLE_LATENCY_COLUMNS
    if P05_LATENCY_COLUMN in feasible.columns and feasible[P05_LATENCY_COLUMN].notna().all():
        columns.append(P05_LATENCY_COLUMN)
    parts = []
    for _, rows in feasible.groupby("model", sort=False):
        rows = rows.copy()
        for column in (c for c in columns if c.startswith("latency_")):
            rows[column] = np.minimum.accumulate(rows[column].to_numpy()[::-1])[::-1]
        parts.append(rows[columns])
    return pd.concat(parts, ignore_index=True)


SIDECAR_SHAPE_KEYS = ("shapes", "shape_calls")  # what the bundle carries as shapes.csv rows


def sidecar_shape_rows(model: str, sidecar: dict, batch_sizes: Sequence[int]) -> pd.DataFrame:
    """The `shapes.csv` rows of a latency profile's sidecar (`write_latency_profile`), for the
    batch sizes the bundle keeps; empty where it has none. A malformed entry is a
    LatencyError naming the model and batch size."""
    where = f"latency profile of {model!r}"
    shapes = sidecar.get("shapes", {})
    if not isinstance(shapes, dict) or not all(str(k).isdigit() for k in shapes):
        raise LatencyError(f"{where}: shapes: expected {{batch size: [ratio, ...]}}")
    parts = []
    for size, ratios in sorted(shapes.items(), key=lambda kv: int(kv[0])):
        if int(size) not in batch_sizes:
            continue
        numbers = isinstance(ratios, list) and all(
            isinstance(r, int | float) and not isinstance(r, bool) for r in ratios
        )
        if not numbers or len(ratios) != len(SHAPE_LEVELS):
            raise LatencyError(
                f"{where}: shape of batch size {size}: expected a list of "
                f"{len(SHAPE_LEVELS)} numbers (one per level 0, 0.01, ..., 1)"
            )
        parts.append(shape_rows("latency", model, int(size), tuple(float(r) for r in ratios)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# the two ends of a profile's rounds' spread: its rows at the machine's fastest and slowest
ROUNDS_ENDS = {"fast": "latency_rounds_p10_s", "slow": "latency_rounds_p90_s"}


def rounds_latency_rows(table: pd.DataFrame, end: str) -> pd.DataFrame:
    """The profile at one end of its rounds' spread, in the bundle's shape: each feasible row's
    p50 replaced by its rounds' p10 ("fast") or p90 ("slow"), its p05, p95 and p50 after idle
    scaled by the same ratio (the p05 at most and the p95 at least the new p50), then
    `bundle_latency_rows`."""
    column = ROUNDS_ENDS[end]
    ratio = table[column] / table["latency_p50_s"]
    moved = table.assign(
        latency_p50_s=table[column],
        latency_p95_s=(table["latency_p95_s"] * ratio).clip(lower=table[column]),
    )
    if "latency_idle_p50_s" in table.columns:
        moved["latency_idle_p50_s"] = table["latency_idle_p50_s"] * ratio
    if P05_LATENCY_COLUMN in table.columns:
        moved[P05_LATENCY_COLUMN] = (table[P05_LATENCY_COLUMN] * ratio).clip(upper=table[column])
    return bundle_latency_rows(moved)
