"""Workloads: request traces (arrival time + prompt id), their file formats and generators.

File formats
  * HADIS artifact: ``arrival_ms,prompt_idx`` per line, no header, **not sorted** (the reader
    sorts stably by arrival). Written with 3 decimals, i.e. microsecond resolution.
  * CSV: header ``arrival_s,prompt_idx``, rows sorted by arrival. Written with Python's shortest
    round-trip float repr, so a written trace reads back bit-identical (same `content_hash`).

Generators (vectorised numpy; each takes an explicit ``seed`` and uses one RNG stream for arrival
times and another for prompt ids, so changing the prompt pool never moves an arrival):
  * `poisson`, `constant`: fixed rate; `constant` is evenly spaced (the artifact's static runs).
  * `azure`: hourly shape min-max scaled to [min_qps, peak_qps], one hour per ``seconds_per_hour``.
  * `phases`: piecewise-constant Poisson (HADIS Fig. 8, P1-P4).
  * `alternating_pools`: fixed demand, phase k draws prompts from pools[k % len(pools)]
    (HADIS Fig. 12, easy/hard).

How the artifact built ``traces/maf/multi_dynamic_testbed/trace_1toNqps.txt`` (checked against
the files; the same construction is in its trace script): for hour h (one second) with scaled rate
r_h it emits n_h = round(r_h) arrivals -- a fixed count, not a Poisson one -- at cumulative
exponential gaps of mean 1/n_h s rounded to ms, starting at the second's beginning; an arrival
whose own gap is >= 1 s is dropped (it still advances the clock). Later arrivals spill into the
following seconds, which is why the files are unsorted (117-135 inversions each), why their
totals are within 0.4% of sum(round(r_h)), and why per-second counts vary about half as much as
Poisson counts would (variance/mean 0.54-0.71 around r_h). ``arrivals="artifact"`` reproduces
that construction (without the ms rounding); ``arrivals="poisson"`` (default) is a true
inhomogeneous Poisson process: Poisson(r_h * seconds_per_hour) arrivals uniform in each hour.
At the same rates a per-second count correlates with an independent realisation's only about
0.8 for peak 20 QPS (either process), so compare traces on 10-second windows, not seconds.

Spec strings (`parse_trace_spec`), or the path of a trace file:
  ``poisson:rate=8,duration=600``, ``constant:rate=8,duration=200``,
  ``azure:peak=24,min=1[,seconds_per_hour=1][,shape=PATH][,arrivals=poisson|artifact]``,
  ``phases:rates=2/6/10/6,phase_s=600``,
  ``alternating:rate=8,phase_s=300,pools=easy/hard[,n_phases=4]`` (pools named in a dict).

Numbers in spec strings and files are plain decimals (`simulator.limits.parse_number`: no
``1_0``, ``inf`` or ``nan``); rates and times are finite and >= 0, ``n_phases`` in [1, 10000].
Every trace is bounded in size before it is generated or read: its expected number of queries
by `T2ISIM_MAX_QUERIES` and its duration (last arrival) by `T2ISIM_MAX_SIM_S`
(`simulator.limits`).
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.atomic import atomic_write_text
from simulator.azure_shape import scale_to_qps, synthetic_azure_shape
from simulator.errors import InputError
from simulator.limits import (
    MAX_QUERIES,
    MAX_SIM_S,
    NON_NEGATIVE,
    POSITIVE,
    Interval,
    parse_number,
)

CSV_HEADER = "arrival_s,prompt_idx"
AZURE_SHAPE_COLUMNS = ["", "hour", "invocations"]
_HASH_TAG = b"t2isim.trace.v1\n"
N_PHASES = Interval(1, 10_000, integer=True)


class TraceError(InputError):
    """An unusable trace, trace file or trace spec; the message names file, line and field."""


# ----------------------------------------------------------------------------- the trace


@dataclass(frozen=True, eq=False)
class Trace:
    """Queries in arrival order: `arrival_s[i]` (float64, sorted, >= 0) asks for `prompt_idx[i]`.

    The arrays are copied and made read-only; compare traces with `content_hash`.
    """

    arrival_s: np.ndarray
    prompt_idx: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        label = f"trace {self.name!r}" if self.name else "trace"
        arrival = np.array(self.arrival_s, dtype=np.float64)
        prompts = np.array(self.prompt_idx)
        if arrival.ndim != 1 or prompts.ndim != 1 or arrival.shape != prompts.shape:
            raise TraceError(
                f"{label}: arrival_s {arrival.shape} and prompt_idx {prompts.shape} "
                "must be 1-D arrays of the same length"
            )
        if arrival.size == 0:
            raise TraceError(f"{label}: empty trace (no arrivals)")
        if not np.issubdtype(prompts.dtype, np.integer):
            raise TraceError(f"{label}: prompt_idx must hold integers, got dtype {prompts.dtype}")
        prompts = prompts.astype(np.int64)
        bad = np.flatnonzero(~np.isfinite(arrival) | (arrival < 0))
        if bad.size:
            i = bad[0]
            raise TraceError(
                f"{label}: arrival_s[{i}]={float(arrival[i])!r} is not a finite time >= 0"
            )
        _check_size(label, arrival.size, float(arrival.max()))
        back = np.flatnonzero(np.diff(arrival) < 0)
        if back.size:
            i = back[0] + 1
            raise TraceError(
                f"{label}: arrival_s[{i}]={float(arrival[i])!r} is before arrival_s[{i - 1}]="
                f"{float(arrival[i - 1])!r}; arrivals must be sorted"
            )
        negative = np.flatnonzero(prompts < 0)
        if negative.size:
            i = negative[0]
            raise TraceError(f"{label}: prompt_idx[{i}]={prompts[i]} is negative")
        arrival.setflags(write=False)
        prompts.setflags(write=False)
        object.__setattr__(self, "arrival_s", arrival)
        object.__setattr__(self, "prompt_idx", prompts)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    def content_hash(self) -> str:
        """sha256 of the little-endian float64 arrivals and int64 prompt ids (name excluded)."""
        digest = hashlib.sha256(_HASH_TAG)
        digest.update(len(self).to_bytes(8, "little"))
        digest.update(self.arrival_s.astype("<f8").tobytes())
        digest.update(self.prompt_idx.astype("<i8").tobytes())
        return digest.hexdigest()


def validate_prompt_ids(trace: Trace, n_prompts: int, source: str) -> None:
    """Raise TraceError naming `source` and the first query with prompt_idx >= n_prompts."""
    if n_prompts < 1:
        raise TraceError(f"{source}: n_prompts must be >= 1, got {n_prompts}")
    bad = np.flatnonzero(trace.prompt_idx >= n_prompts)
    if bad.size:
        i = bad[0]
        raise TraceError(
            f"{source}: query {i} (arrival_s={float(trace.arrival_s[i])!r}): prompt_idx "
            f"{trace.prompt_idx[i]} is outside [0, {n_prompts})"
        )


# ----------------------------------------------------------------------------- files


def read_trace(path: str | Path, n_prompts: int | None = None) -> Trace:
    """Read a CSV (header `arrival_s,prompt_idx`) or HADIS artifact trace, detected by line 1.

    With `n_prompts`, prompt ids outside [0, n_prompts) are reported with their line number.
    """
    path = Path(path)
    lines = _read_lines(path)
    first = lines[0].lstrip("\ufeff").strip()
    if first == CSV_HEADER:
        arrival_s, prompts = _parse_rows(path, lines, 1, "arrival_s", n_prompts)
        back = np.flatnonzero(np.diff(arrival_s) < 0)
        if back.size:
            i = back[0] + 1
            raise TraceError(
                f"{path}: line {i + 2}: arrival_s={float(arrival_s[i])!r} is before the previous "
                f"line's {float(arrival_s[i - 1])!r}; CSV traces must be sorted by arrival_s"
            )
    elif parse_number(first.split(",")[0]) is not None:
        arrival_ms, prompts = _parse_rows(path, lines, 0, "arrival_ms", n_prompts)
        order = np.argsort(arrival_ms, kind="stable")
        arrival_s, prompts = arrival_ms[order] / 1000.0, prompts[order]
    else:
        raise TraceError(
            f"{path}: line 1: unrecognised header {lines[0]!r}; expected {CSV_HEADER!r} "
            "or headerless artifact lines 'arrival_ms,prompt_idx'"
        )
    return Trace(arrival_s, prompts, name=path.name)


def write_trace_csv(trace: Trace, path: str | Path) -> Path:
    """Write `arrival_s,prompt_idx` rows in arrival order; same trace -> same bytes."""
    rows = (f"{t!r},{p}\n" for t, p in zip(trace.arrival_s.tolist(), trace.prompt_idx.tolist()))
    return _write(path, CSV_HEADER + "\n" + "".join(rows))


def write_artifact_trace(trace: Trace, path: str | Path) -> Path:
    """Write the HADIS artifact format (`arrival_ms,prompt_idx`, 3 decimals), in arrival order."""
    ms = (trace.arrival_s * 1000.0).tolist()
    return _write(path, "".join(f"{t:.3f},{p}\n" for t, p in zip(ms, trace.prompt_idx.tolist())))


def read_azure_shape(path: str | Path) -> np.ndarray:
    """Hourly invocations from the artifact's `original_invocations.csv` (`,hour,invocations`)."""
    path = Path(path)
    rows = list(csv.reader(_read_lines(path)))
    if [c.strip() for c in rows[0]] != AZURE_SHAPE_COLUMNS:
        raise TraceError(f"{path}: line 1: expected header ',hour,invocations', got {rows[0]}")
    if len(rows) < 3:
        raise TraceError(f"{path}: needs at least 2 hours, got {len(rows) - 1}")
    invocations = np.empty(len(rows) - 1)
    for k, row in enumerate(rows[1:]):
        where = f"{path}: line {k + 2}"
        if len(row) != 3:
            raise TraceError(f"{where}: expected 3 fields ',hour,invocations', got {len(row)}")
        if row[1].strip() != str(k):
            raise TraceError(
                f"{where}: field hour: expected {k} (consecutive from 0), got {row[1]!r}"
            )
        invocations[k] = _parse_time(where, "invocations", row[2])
    return invocations


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not a UTF-8 text file") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise TraceError(f"{path}: empty file")
    return lines


def _parse_rows(
    path: Path, lines: list[str], start: int, time_field: str, n_prompts: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Parse `time,prompt_idx` lines from `lines[start:]`; errors name path, line and field."""
    n = len(lines) - start
    if n == 0:
        raise TraceError(f"{path}: empty trace (header only)")
    MAX_QUERIES.check(n, str(path))
    times = np.empty(n, dtype=np.float64)
    prompts = np.empty(n, dtype=np.int64)
    for k, line in enumerate(lines[start:]):
        where = f"{path}: line {start + k + 1}"
        fields = line.split(",")
        if len(fields) != 2:
            raise TraceError(
                f"{where}: expected 2 fields '{time_field},prompt_idx', got {len(fields)}: {line!r}"
            )
        times[k] = _parse_time(where, time_field, fields[0])
        prompts[k] = _parse_prompt(where, fields[1], n_prompts)
    return times, prompts


def _parse_time(where: str, field: str, raw: str) -> float:
    value = parse_number(raw)
    if value is None:
        raise TraceError(f"{where}: field {field}: {raw.strip()!r} is not a finite decimal number")
    if not NON_NEGATIVE.contains(value):
        raise TraceError(f"{where}: field {field}: {raw.strip()!r} must be finite and >= 0")
    return float(value)


def _parse_prompt(where: str, raw: str, n_prompts: int | None) -> int:
    value = parse_number(raw)
    if not isinstance(value, int):
        raise TraceError(f"{where}: field prompt_idx: {raw.strip()!r} is not an integer")
    if value < 0 or (n_prompts is not None and value >= n_prompts):
        limit = "" if n_prompts is None else f", {n_prompts}"
        raise TraceError(f"{where}: field prompt_idx: {value} is outside [0{limit})")
    return value


def _write(path: str | Path, text: str) -> Path:
    """Write `text` atomically (complete or absent)."""
    atomic_write_text(path, text)
    return Path(path)


# ----------------------------------------------------------------------------- generators


def poisson(
    rate_qps: float,
    duration_s: float,
    *,
    n_prompts: int,
    seed: int,
    prompt_pool: np.ndarray | None = None,
) -> Trace:
    """Homogeneous Poisson arrivals at `rate_qps` over [0, duration_s)."""
    rate = _check_number(rate_qps, "poisson: rate_qps")
    duration = _check_number(duration_s, "poisson: duration_s", positive=True)
    _check_expected_size("poisson", np.array([rate]), duration)
    arrival_rng, prompt_rng = _rngs(seed)
    times = _piecewise_poisson(np.array([rate]), duration, arrival_rng)
    name = f"poisson(rate_qps={rate:g}, duration_s={duration:g})"
    return Trace(times, _draw_prompts(prompt_rng, times.size, n_prompts, prompt_pool), name)


def constant(
    rate_qps: float,
    duration_s: float,
    *,
    n_prompts: int,
    seed: int,
    prompt_pool: np.ndarray | None = None,
) -> Trace:
    """Evenly spaced arrivals k / rate_qps in [0, duration_s); only the prompts are random."""
    rate = _check_number(rate_qps, "constant: rate_qps")
    duration = _check_number(duration_s, "constant: duration_s", positive=True)
    _check_expected_size("constant", np.array([rate]), duration)
    count = math.ceil(rate * duration - 1e-9) if rate > 0 else 0
    times = np.arange(count, dtype=np.float64) / rate if count else np.empty(0)
    _, prompt_rng = _rngs(seed)
    name = f"constant(rate_qps={rate:g}, duration_s={duration:g})"
    return Trace(times, _draw_prompts(prompt_rng, count, n_prompts, prompt_pool), name)


def azure(
    peak_qps: float,
    min_qps: float,
    seconds_per_hour: float = 1.0,
    *,
    n_prompts: int,
    seed: int,
    shape: np.ndarray | None = None,
    arrivals: str = "poisson",
    prompt_pool: np.ndarray | None = None,
) -> Trace:
    """Azure-Functions-shaped demand: hourly `shape` min-max scaled to [min_qps, peak_qps] QPS.

    Hour h spans [h, h+1) * seconds_per_hour. `shape=None` uses `synthetic_azure_shape()`;
    `arrivals` is "poisson" or "artifact" (the artifact's fixed-count construction, see module doc).
    """
    peak = _check_number(peak_qps, "azure: peak_qps")
    low = _check_number(min_qps, "azure: min_qps")
    if low > peak:
        raise TraceError(f"azure: min_qps={low:g} exceeds peak_qps={peak:g}")
    window_s = _check_number(seconds_per_hour, "azure: seconds_per_hour", positive=True)
    if arrivals not in ARRIVAL_PROCESSES:
        raise TraceError(f"azure: arrivals {arrivals!r} is not one of {sorted(ARRIVAL_PROCESSES)}")
    hourly = synthetic_azure_shape() if shape is None else np.asarray(shape, dtype=np.float64)
    if hourly.ndim != 1 or hourly.size < 2 or not np.isfinite(hourly).all() or np.ptp(hourly) == 0:
        raise TraceError(
            "azure: shape must be a 1-D array of at least 2 finite hourly values, not all equal"
        )
    rates = scale_to_qps(hourly, low, peak)
    _check_expected_size("azure", rates, window_s)
    arrival_rng, prompt_rng = _rngs(seed)
    times = ARRIVAL_PROCESSES[arrivals](rates, window_s, arrival_rng)
    name = f"azure(peak_qps={peak:g}, min_qps={low:g}, seconds_per_hour={window_s:g}, {arrivals})"
    return Trace(times, _draw_prompts(prompt_rng, times.size, n_prompts, prompt_pool), name)


def phases(
    rates_qps: Sequence[float],
    phase_s: float,
    *,
    n_prompts: int,
    seed: int,
    prompt_pool: np.ndarray | None = None,
) -> Trace:
    """Piecewise-constant Poisson demand: `rates_qps[k]` during [k, k+1) * phase_s."""
    if len(rates_qps) == 0:
        raise TraceError("phases: rates_qps is empty")
    rates = np.array([_check_number(r, f"phases: rates_qps[{k}]") for k, r in enumerate(rates_qps)])
    window_s = _check_number(phase_s, "phases: phase_s", positive=True)
    _check_expected_size("phases", rates, window_s)
    arrival_rng, prompt_rng = _rngs(seed)
    times = _piecewise_poisson(rates, window_s, arrival_rng)
    name = f"phases(rates_qps={'/'.join(f'{r:g}' for r in rates)}, phase_s={window_s:g})"
    return Trace(times, _draw_prompts(prompt_rng, times.size, n_prompts, prompt_pool), name)


def alternating_pools(
    rate_qps: float,
    phase_s: float,
    pools: Sequence[np.ndarray],
    *,
    n_prompts: int,
    seed: int,
    n_phases: int = 4,
) -> Trace:
    """Fixed Poisson demand for `n_phases` phases; phase k draws from pools[k % len(pools)]."""
    rate = _check_number(rate_qps, "alternating_pools: rate_qps")
    window_s = _check_number(phase_s, "alternating_pools: phase_s", positive=True)
    n_phases = int(_check(N_PHASES, n_phases, "alternating_pools: n_phases"))
    _check_expected_size("alternating_pools", np.full(n_phases, rate), window_s)
    if len(pools) == 0:
        raise TraceError("alternating_pools: no prompt pools given")
    checked = [
        _check_pool(p, n_prompts, f"alternating_pools: pools[{k}]") for k, p in enumerate(pools)
    ]
    arrival_rng, prompt_rng = _rngs(seed)
    times = _piecewise_poisson(np.full(n_phases, rate), window_s, arrival_rng)
    pool_of = (np.minimum(times // window_s, n_phases - 1).astype(np.int64)) % len(checked)
    prompts = np.empty(times.size, dtype=np.int64)
    for k, pool in enumerate(checked):
        mine = pool_of == k
        prompts[mine] = pool[prompt_rng.integers(0, pool.size, int(mine.sum()))]
    name = f"alternating_pools(rate_qps={rate:g}, phase_s={window_s:g}, n_phases={n_phases})"
    return Trace(times, prompts, name)


def _piecewise_poisson(
    rates_qps: np.ndarray, window_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Sorted Poisson-process times with rate rates_qps[k] on [k, k+1) * window_s."""
    counts = rng.poisson(rates_qps * window_s)
    starts = np.repeat(np.arange(rates_qps.size) * window_s, counts)
    return np.sort(starts + rng.uniform(0.0, window_s, starts.size))


def _artifact_arrivals(
    rates_qps: np.ndarray, window_s: float, rng: np.random.Generator
) -> np.ndarray:
    """The artifact's construction: round(rate*window) arrivals per window at cumulative
    exponential gaps of mean window/count from the window start; a gap >= window is dropped."""
    counts = np.rint(rates_qps * window_s).astype(np.int64)
    filled = counts > 0
    gaps = rng.exponential(1.0, int(counts.sum())) * np.repeat(
        window_s / counts[filled], counts[filled]
    )
    clock = np.cumsum(gaps)
    first = (np.cumsum(counts) - counts)[filled]  # index of each window's first arrival
    clock -= np.repeat(clock[first] - gaps[first], counts[filled])  # restart at each window
    times = np.repeat(np.arange(rates_qps.size) * window_s, counts) + clock
    return np.sort(times[gaps < window_s])


ARRIVAL_PROCESSES: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "poisson": _piecewise_poisson,
    "artifact": _artifact_arrivals,
}


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent streams for arrival times and prompt ids."""
    _check_int(seed, "seed", 0)
    arrival, prompt = np.random.SeedSequence(int(seed)).spawn(2)
    return np.random.default_rng(arrival), np.random.default_rng(prompt)


def _draw_prompts(
    rng: np.random.Generator, count: int, n_prompts: int, pool: np.ndarray | None
) -> np.ndarray:
    if pool is None:
        _check_int(n_prompts, "n_prompts", 1)
        return rng.integers(0, n_prompts, count)
    pool = _check_pool(pool, n_prompts, "prompt_pool")
    return pool[rng.integers(0, pool.size, count)]


def _check_pool(pool: np.ndarray, n_prompts: int, what: str) -> np.ndarray:
    ids = np.asarray(pool)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise TraceError(f"{what}: must be a non-empty 1-D array of integer prompt ids")
    bad = np.flatnonzero((ids < 0) | (ids >= n_prompts))
    if bad.size:
        raise TraceError(f"{what}: prompt id {ids[bad[0]]} is outside [0, {n_prompts})")
    return ids.astype(np.int64)


def _check_int(value: object, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise TraceError(f"{what}: must be an integer >= {minimum}, got {value!r}")


def _check(interval: Interval, value: object, what: str) -> float | int:
    """`interval.check` raising TraceError."""
    try:
        return interval.check(value, what)
    except InputError as exc:
        raise TraceError(str(exc)) from None


def _check_number(value: object, what: str, positive: bool = False) -> float:
    """`value` (a number or a plain decimal string) as a finite float >= 0 (> 0 when
    `positive`); TraceError naming `what`, the value and the range otherwise."""
    return float(_check(POSITIVE if positive else NON_NEGATIVE, value, what))


def _check_size(where: str, n_queries: float, duration_s: float) -> None:
    """TraceError when a trace of `n_queries` over `duration_s` exceeds the size bounds."""
    try:
        MAX_SIM_S.check(duration_s, where)
        MAX_QUERIES.check(n_queries, where)
    except InputError as exc:
        raise TraceError(str(exc)) from None


def _check_expected_size(where: str, rates_qps: np.ndarray, window_s: float) -> None:
    """Bound a generator's trace (windows of `window_s` at `rates_qps`) before drawing it."""
    _check_size(where, float(np.sum(rates_qps) * window_s), rates_qps.size * window_s)


# ----------------------------------------------------------------------------- spec strings

_SPEC_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required keys, optional keys)
    "poisson": (("rate", "duration"), ()),
    "constant": (("rate", "duration"), ()),
    "azure": (("peak", "min"), ("seconds_per_hour", "shape", "arrivals")),
    "phases": (("rates", "phase_s"), ()),
    "alternating": (("rate", "phase_s", "pools"), ("n_phases",)),
}


def parse_trace_spec(
    spec: str, n_prompts: int, seed: int, pools: Mapping[str, np.ndarray] | None = None
) -> Trace:
    """Build the trace a spec string names (see module doc) and check its prompt ids."""
    kind, colon, body = spec.partition(":")
    if colon and kind in _SPEC_KEYS:
        try:
            trace = _build_from_spec(kind, _spec_params(kind, body), n_prompts, seed, pools or {})
        except TraceError as exc:
            raise TraceError(f"trace spec {spec!r}: {exc}") from None
    elif Path(spec).is_file():
        trace = read_trace(spec, n_prompts)
    elif colon and re.fullmatch(r"[A-Za-z_]\w*", kind):
        known = ", ".join(_SPEC_KEYS)
        raise TraceError(f"trace spec {spec!r}: unknown kind {kind!r}; known: {known}")
    else:
        raise TraceError(f"trace spec {spec!r}: not a known kind and no such trace file")
    validate_prompt_ids(trace, n_prompts, f"trace spec {spec!r}")
    return trace


def _spec_params(kind: str, body: str) -> dict[str, str]:
    required, optional = _SPEC_KEYS[kind]
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise TraceError(f"item {item!r} is not key=value")
        if key not in required + optional:
            allowed = ", ".join(required + optional)
            raise TraceError(f"unknown key {key!r} for {kind} (allowed: {allowed})")
        if key in params:
            raise TraceError(f"key {key!r} given twice")
        params[key] = value.strip()
    for key in required:
        if key not in params:
            raise TraceError(f"missing key {key!r} ({kind} needs {', '.join(required)})")
    return params


def _build_from_spec(
    kind: str, params: dict[str, str], n_prompts: int, seed: int, pools: Mapping[str, np.ndarray]
) -> Trace:
    def number(key: str, positive: bool = False) -> float:
        return _check_number(params[key], f"key {key!r}", positive)

    if kind in ("poisson", "constant"):
        generator = poisson if kind == "poisson" else constant
        return generator(number("rate"), number("duration", True), n_prompts=n_prompts, seed=seed)
    if kind == "azure":
        shape = read_azure_shape(params["shape"]) if "shape" in params else None
        sph = number("seconds_per_hour", True) if "seconds_per_hour" in params else 1.0
        return azure(
            number("peak"),
            number("min"),
            sph,
            n_prompts=n_prompts,
            seed=seed,
            shape=shape,
            arrivals=params.get("arrivals", "poisson"),
        )
    if kind == "phases":
        rates = [_check_number(r, "key 'rates'") for r in params["rates"].split("/")]
        return phases(rates, number("phase_s", True), n_prompts=n_prompts, seed=seed)
    names = params["pools"].split("/")
    missing = [name for name in names if name not in pools]
    if missing:
        raise TraceError(
            f"key 'pools': unknown pool {missing[0]!r} (given: {', '.join(pools) or 'none'})"
        )
    n_phases = _check(N_PHASES, params["n_phases"], "key 'n_phases'") if "n_phases" in params else 4
    return alternating_pools(
        number("rate"),
        number("phase_s", True),
        [pools[name] for name in names],
        n_prompts=n_prompts,
        seed=seed,
        n_phases=int(n_phases),
    )
