"""Parameter sweeps: a YAML spec expands to a grid of simulation runs, run in a local process
pool or on a Dask cluster, stored one row per run and resumed by run key.

Spec (YAML; relative paths resolve against the current directory, like the CLI's)::

    bundle: default                       # 'default' or a bundle folder
    trace: "poisson:rate={load},duration=600"   # or a mapping workload name -> spec
                                          # (one string: the workload is named 'trace')
    grid:                                 # lists (a scalar means a one-element list)
      policy: [hadis, proteus]            # required; registered policy names
      slo_s: [30, 60]                     # or slo_multiplier: [0.5, 1.0] x the base sim.slo_s
      load: [4, 8]                        # substituted for {load} in every trace spec
      hardness: [0.1, 0.5]                # fraction of queries drawn from the hard pool
      n_workers: [8, 16]
      queue: [fifo, edf]                  # any other SimConfig field is an axis too
      replicate: [0, 1]                   # default bundle replicates (bundle: default only)
      seed: [0, 1]
    sim: {plan_interval_s: 5}             # fixed SimConfig fields (not also grid axes)
    policy_options: {hadis: {planner: faithful}}   # per policy name

Every SimConfig field can be set under `sim:` or swept as a grid axis, with the check and the
error of `t2isim simulate --FLAG` (`simulator.config.check_field`: a bad value is a
`ConfigError` naming the field and its flag, inside the spec's file and section). The grid may
expand to at most `T2ISIM_MAX_SWEEP_RUNS` runs (10,000 by default), checked before any run is
built.

Hardness: when `hardness` is swept and a trace spec has no `{hardness}` placeholder, the spec's
arrivals are kept and every query's prompt is redrawn: query i is hard iff u_i < hardness, then
drawn uniformly from the hard pool, else from the easy pool (`experiments.inputs.prompt_pools`,
the top / bottom 30% by router score). The uniforms u_i and the pool picks come from one RNG
stream of the run's seed, so the hard queries at 0.3 stay hard at 0.5 (common random numbers).
A spec with `{hardness}` gets the value substituted instead and keeps its own prompts.

Replicate: the axis `replicate` runs each point on the default bundle's replicate K
(`default:replicate=K`, `experiments.inputs.resolve_bundle`: latent draw K under calibration
draw K; 0 is the nominal bundle) instead of the spec's bundle, which must be `default`. The
run's trace is drawn on its replicate (its pools), its key has the replicate's bundle hash,
and a worker builds the replicate from its spec (cached per process).

Run key: sha256 of the run's provenance hashes {config, bundle, trace, code_version}, exactly as
`simulator.run.run_simulation` puts them in `summary["hashes"]` (so a run folder's summary.json
yields the same key); config covers the policy, its options and every SimConfig field.

Store: `STORE/parts/<run_key>.parquet`, one row per run, each written to a temporary file and
renamed into place — an interrupted or concurrent sweep never leaves a half-written row, and a
rerun skips the keys present. A part counts as done only when it reads back as one row with the
store's key and coordinate columns and its own run key (`part_problem`); a corrupt part (empty,
random bytes, another schema) is reported by `--status` and re-run by a resumed sweep.
`read_store` merges the parts. Columns: `run_key`, the grid
coordinates (`COORDINATES`; NaN for axes not swept; then any other SimConfig field swept, named
as the field), every scalar summary key, `plan_share.<label>`
(0 where a run never used that plan), `hash.<name>`, `config` (the resolved policy, options and
SimConfig as JSON; `hash.config` is its sha256_json) and `wall_s` (the only column that differs
between reruns and executors).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from simulator.atomic import atomic_file, check_output_folder
from simulator.bundle import Bundle
from simulator.config import ConfigError, SimConfig, check_field
from simulator.errors import InputError, RunFailure
from simulator.limits import FRACTION, MAX_SWEEP_RUNS, NON_NEGATIVE, POSITIVE, LimitError
from simulator.results import code_version, sha256_json
from simulator.workloads import Trace

SWEEP_AXES = {"slo_multiplier": POSITIVE, "load": NON_NEGATIVE, "hardness": FRACTION}  # not
# SimConfig fields: x the base slo_s, substituted for {load}, the hard-prompt fraction
COORDINATE_FIELDS = ("slo_s", "n_workers", "seed")  # SimConfig fields always in a store row
GRID_AXES = (  # the product's order: the last varies fastest
    "policy", "slo_s", "slo_multiplier", "load", "hardness", "n_workers",
    *(name for name in SimConfig.field_names() if name not in COORDINATE_FIELDS), "replicate",
    "seed",
)
SPEC_KEYS = ("bundle", "trace", "grid", "sim", "policy_options")
COORDINATES = (
    "workload", "policy", "slo_s", "slo_multiplier", "load", "hardness", "n_workers", "seed",
    "trace_spec",
)  # also the store's sort order
PLACEHOLDERS = ("load", "hardness")
HARDNESS_STREAM = 0x4A5D  # SeedSequence entropy tag of the hardness-mix stream
DEFAULT_STORE_ROOT = Path("results/sweeps")
SINGLE_WORKLOAD = "trace"  # the workload name of a spec whose `trace` is one string


class SweepSpecError(InputError):
    """A bad sweep spec; the message names the file and the field."""


class SweepError(RunFailure):
    """A run whose provenance hashes disagree with its planned key (code edited during the
    sweep, or other code on a Dask worker)."""


# ----------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SweepSpec:
    source: str  # the spec file, for messages and the default store name
    bundle: str
    traces: Mapping[str, str]  # workload name -> trace spec template
    grid: Mapping[str, tuple]  # axis -> values, axes in GRID_AXES order
    sim: Mapping[str, object] = field(default_factory=dict)
    policy_options: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SweepSpecError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise SweepSpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SweepSpecError(f"{path}: {where}{problem}") from None
    except RecursionError:
        raise SweepSpecError(f"{path}: invalid YAML (nested too deeply to read)") from None
    return parse_spec(data, str(path))


def parse_spec(data: object, source: str) -> SweepSpec:
    """Validate a spec mapping (as loaded from YAML); SweepSpecError names the field."""

    def fail(message: str) -> SweepSpecError:
        return SweepSpecError(f"{source}: {message}")

    if not isinstance(data, Mapping):
        raise fail("a sweep spec must be a mapping with keys " + ", ".join(SPEC_KEYS))
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: {', '.join(SPEC_KEYS)})")
    for key in ("trace", "grid"):
        if key not in data:
            raise fail(f"missing key {key!r}")
    bundle = data.get("bundle", "default")
    if not isinstance(bundle, str) or not bundle:
        raise fail(f"bundle: expected 'default' or a folder path, got {bundle!r}")
    traces = _parse_traces(data["trace"], fail)
    grid = _parse_grid(data["grid"], fail)
    sim = _parse_sim(data.get("sim") or {}, grid, fail)
    policy_options = _parse_policy_options(data.get("policy_options") or {}, grid, fail)
    for name, template in traces.items():
        used = set(re.findall(r"\{(\w*)\}", template))
        for placeholder in sorted(used):
            if placeholder not in PLACEHOLDERS:
                raise fail(f"trace {name!r}: unknown placeholder {{{placeholder}}} "
                           f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")
            if placeholder not in grid:
                raise fail(f"trace {name!r}: {{{placeholder}}} needs grid.{placeholder}")
        if "load" in grid and "load" not in used:
            raise fail(f"trace {name!r}: grid.load is swept but the spec has no {{load}}")
    spec = SweepSpec(source, bundle, traces, grid, sim, policy_options)
    expand_grid(spec)  # every SimConfig of the grid is valid
    return spec


def _parse_traces(value: object, fail) -> dict[str, str]:
    if isinstance(value, str):
        traces = {SINGLE_WORKLOAD: value}
    elif isinstance(value, Mapping) and value:
        traces = dict(value)
    else:
        raise fail("trace: expected a spec string or a non-empty mapping name -> spec")
    for name, spec in traces.items():
        if not isinstance(name, str) or not isinstance(spec, str) or not spec:
            raise fail(f"trace {name!r}: expected a non-empty spec string, got {spec!r}")
    return traces


def _parse_grid(value: object, fail) -> dict[str, tuple]:
    import policies  # noqa: F401  (registers the adaptive policies)
    from simulator.policy import policy_names

    if not isinstance(value, Mapping):
        raise fail("grid: expected a mapping axis -> list of values")
    unknown = [k for k in value if k not in GRID_AXES]
    if unknown:
        raise fail(f"grid: unknown axis {unknown[0]!r} (allowed: {', '.join(GRID_AXES)})")
    if "policy" not in value:
        raise fail("grid: missing axis 'policy'")
    if "slo_s" in value and "slo_multiplier" in value:
        raise fail("grid: give slo_s or slo_multiplier, not both")
    grid: dict[str, tuple] = {}
    for axis in GRID_AXES:
        if axis not in value:
            continue
        raw = value[axis]
        values = tuple(raw) if isinstance(raw, list) else (raw,)
        if not values:
            raise fail(f"grid.{axis}: empty list")
        values = tuple(_axis_value(axis, v, fail) for v in values)
        if len(set(values)) != len(values):
            raise fail(f"grid.{axis}: duplicate values in {list(values)}")
        grid[axis] = values
    known = policy_names()
    for name in grid["policy"]:
        if name not in known:
            raise fail(f"grid.policy: unknown policy {name!r}; known: {', '.join(known)}")
    return grid


def _axis_value(axis: str, v: object, fail) -> object:
    """`v` as a value of `axis`: a policy name, a number of a sweep axis (as given: a load is
    substituted as written), or a SimConfig field's value (`check_field`)."""
    if axis == "policy":
        if not isinstance(v, str):
            raise fail(f"grid.policy: {v!r} is not a policy name")
        return v
    if axis == "replicate":
        from experiments.inputs import MAX_REPLICATE

        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_REPLICATE:
            raise fail(f"grid.replicate: {v!r}; allowed: an integer 0..{MAX_REPLICATE} "
                       "(a replicate of the default bundle)")
        return v
    if axis in SWEEP_AXES:
        try:
            number = SWEEP_AXES[axis].check(v, f"grid.{axis}")
        except LimitError as exc:
            raise fail(str(exc)) from None
        return v if isinstance(v, int | float) else number
    try:
        return check_field(axis, v)
    except ConfigError as exc:
        raise fail(f"grid: {exc}") from exc


def _parse_sim(value: object, grid: Mapping[str, tuple], fail) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise fail("sim: expected a mapping of SimConfig fields")
    sim = {}
    for key, v in value.items():
        if key not in SimConfig.field_names():
            raise fail(f"sim: unknown SimConfig field {key!r}")
        if key in grid:
            raise fail(f"sim.{key}: also a grid axis; set it in one place")
        try:
            sim[key] = check_field(key, v)
        except ConfigError as exc:
            raise fail(f"sim: {exc}") from exc
    return sim


def _parse_policy_options(value: object, grid: Mapping[str, tuple], fail) -> dict[str, dict]:
    if not isinstance(value, Mapping):
        raise fail("policy_options: expected a mapping policy -> {option: value}")
    for name, options in value.items():
        if name not in grid["policy"]:
            raise fail(f"policy_options: {name!r} is not in grid.policy")
        if not isinstance(options, Mapping):
            raise fail(f"policy_options.{name}: expected a mapping option -> value")
    return {name: dict(options) for name, options in value.items()}


# ----------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class RunPoint:
    """One grid point: everything a run needs except the bundle and the built trace."""

    workload: str
    trace_spec: str  # placeholders substituted
    policy: str
    config: SimConfig
    policy_options: Mapping[str, object]
    load: float | None = None
    hardness: float | None = None  # hard-prompt fraction
    slo_multiplier: float | None = None
    redraw_prompts: bool = False  # apply `hardness` by redrawing the trace's prompts
    swept: tuple[str, ...] = ()  # SimConfig fields swept beyond COORDINATE_FIELDS
    replicate: int | None = None  # the default bundle's replicate, when swept

    def coordinates(self) -> dict[str, object]:
        nan = float("nan")
        return {
            "workload": self.workload,
            "policy": self.policy,
            "slo_s": float(self.config.slo_s),
            "slo_multiplier": nan if self.slo_multiplier is None else float(self.slo_multiplier),
            "load": nan if self.load is None else float(self.load),
            "hardness": nan if self.hardness is None else float(self.hardness),
            "n_workers": self.config.n_workers,
            "seed": self.config.seed,
            "trace_spec": self.trace_spec,
            **{name: getattr(self.config, name) for name in self.swept},
            **({} if self.replicate is None else {"replicate": self.replicate}),
        }

    def label(self) -> str:
        """`policy=hadis slo_s=30 load=4 ...`: the coordinates that vary in a sweep."""
        parts = [f"workload={self.workload}", f"policy={self.policy}",
                 f"slo_s={self.config.slo_s:g}"]
        optional = (("slo_multiplier", self.slo_multiplier), ("load", self.load),
                    ("hardness", self.hardness))
        for name, value in optional:
            if value is not None:
                parts.append(f"{name}={value:g}")
        parts.append(f"n_workers={self.config.n_workers}")
        parts += [f"{name}={getattr(self.config, name)}" for name in self.swept]
        if self.replicate is not None:
            parts.append(f"replicate={self.replicate}")
        parts.append(f"seed={self.config.seed}")
        return " ".join(parts)


def grid_size(spec: SweepSpec) -> int:
    """How many runs the grid expands to: workloads x the product of the axes' lengths."""
    return len(spec.traces) * math.prod(len(values) for values in spec.grid.values())


def expand_grid(spec: SweepSpec) -> list[RunPoint]:
    """The grid's points: workloads (in spec order) x the axes in GRID_AXES order. LimitError
    before anything is built when there are more than `T2ISIM_MAX_SWEEP_RUNS`."""
    MAX_SWEEP_RUNS.check(grid_size(spec), f"{spec.source}: grid")
    if "replicate" in spec.grid and spec.bundle != "default":
        raise SweepSpecError(
            f"{spec.source}: grid.replicate: needs bundle 'default' (replicates redraw the "
            f"default bundle's latent model and calibration), got {spec.bundle!r}"
        )
    axes = list(spec.grid)
    config_axes = [a for a in axes if a in SimConfig.field_names()]
    swept = tuple(a for a in config_axes if a not in COORDINATE_FIELDS)
    base_slo_s = float(spec.sim.get("slo_s", SimConfig.slo_s))
    points = []
    for workload, template in spec.traces.items():
        for values in itertools.product(*(spec.grid[a] for a in axes)):
            at = dict(zip(axes, values))
            trace_spec = template
            for name in PLACEHOLDERS:
                if name in at:
                    trace_spec = trace_spec.replace("{" + name + "}", str(at[name]))
            sim = dict(spec.sim)
            sim.update({k: at[k] for k in config_axes})
            if "slo_multiplier" in at:
                sim["slo_s"] = base_slo_s * at["slo_multiplier"]
            try:
                config = SimConfig(**sim)
            except (ConfigError, TypeError) as exc:
                raise SweepSpecError(f"{spec.source}: sim: {exc}") from None
            points.append(
                RunPoint(
                    workload=workload,
                    trace_spec=trace_spec,
                    policy=at["policy"],
                    config=config,
                    policy_options=spec.policy_options.get(at["policy"], {}),
                    load=at.get("load"),
                    hardness=at.get("hardness"),
                    slo_multiplier=at.get("slo_multiplier"),
                    redraw_prompts="hardness" in at and "{hardness}" not in template,
                    swept=swept,
                    replicate=at.get("replicate"),
                )
            )
    return points


def mix_hardness(trace: Trace, hard_fraction: float, pools: Mapping[str, np.ndarray],
                 seed: int) -> Trace:
    """`trace`'s arrivals with prompts redrawn: hard with probability `hard_fraction` (see the
    module doc; coupled across fractions), else easy."""
    rng = np.random.default_rng(np.random.SeedSequence([HARDNESS_STREAM, int(seed)]))
    n = len(trace)
    u = rng.random(n)
    easy, hard = pools["easy"], pools["hard"]
    easy_pick = easy[rng.integers(0, easy.size, n)]
    hard_pick = hard[rng.integers(0, hard.size, n)]
    prompts = np.where(u < hard_fraction, hard_pick, easy_pick)
    return Trace(trace.arrival_s, prompts, f"{trace.name}, hard_fraction={hard_fraction:g}")


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedRun:
    point: RunPoint
    trace: Trace
    hashes: Mapping[str, str]  # config, bundle, trace, code_version
    bundle_spec: str | None = None  # the run's own bundle (a replicate), else the sweep's

    @property
    def key(self) -> str:
        return sha256_json(dict(self.hashes))


def resolved_config(point: RunPoint) -> dict:
    """The run's configuration as `run_simulation` resolves (and hashes) it."""
    return {
        "policy": point.policy,
        "policy_options": dict(point.policy_options),
        "sim": point.config.to_dict(),
    }


def run_hashes(point: RunPoint, trace_hash: str, bundle_hash: str, version: str) -> dict:
    """The provenance hashes `run_simulation` will report for this run."""
    return {
        "config": sha256_json(resolved_config(point)),
        "bundle": bundle_hash,
        "trace": trace_hash,
        "code_version": version,
    }


def plan_runs(spec: SweepSpec, bundle: Bundle, bundle_hash: str) -> list[PlannedRun]:
    """Build every grid point's trace and key (on the point's replicate of the default bundle
    when `replicate` is swept); SweepSpecError if two points are the same run."""
    from experiments.inputs import prompt_pools, replicate_spec, resolve_bundle, resolve_trace

    points = expand_grid(spec)
    _check_policy_options(spec, points, bundle)
    version = code_version()
    bundles: dict[int | None, tuple[Bundle, str, dict]] = {
        None: (bundle, bundle_hash, prompt_pools(bundle))
    }
    traces: dict[tuple[int | None, str, int, float | None], tuple[Trace, str]] = {}
    runs: list[PlannedRun] = []
    seen: dict[str, RunPoint] = {}
    for point in points:
        if point.replicate not in bundles:
            replicate = resolve_bundle(replicate_spec(point.replicate))
            bundles[point.replicate] = replicate, replicate.content_hash(), prompt_pools(replicate)
        run_bundle, run_bundle_hash, pools = bundles[point.replicate]
        redraw_at = point.hardness if point.redraw_prompts else None
        cache_key = (point.replicate, point.trace_spec, point.config.seed, redraw_at)
        if cache_key not in traces:
            try:
                trace = resolve_trace(point.trace_spec, run_bundle, point.config.seed)
            except InputError as exc:
                raise SweepSpecError(f"{spec.source}: workload {point.workload!r}: {exc}") from None
            if redraw_at is not None:
                trace = mix_hardness(trace, redraw_at, pools, point.config.seed)
            traces[cache_key] = trace, trace.content_hash()
        trace, trace_hash = traces[cache_key]
        run = PlannedRun(
            point,
            trace,
            run_hashes(point, trace_hash, run_bundle_hash, version),
            None if point.replicate is None else replicate_spec(point.replicate),
        )
        if run.key in seen:
            raise SweepSpecError(
                f"{spec.source}: grid points [{seen[run.key].label()}] and [{point.label()}] "
                "are the same run"
            )
        seen[run.key] = point
        runs.append(run)
    return runs


def _check_policy_options(spec: SweepSpec, points: Sequence[RunPoint], bundle: Bundle) -> None:
    """Build each policy that has options once (at its first grid point), so a bad option
    fails before any run starts."""
    from simulator.run import build_policy

    for name in spec.policy_options:
        point = next(p for p in points if p.policy == name)
        try:
            build_policy(bundle, name, point.config, point.policy_options)
        except InputError as exc:
            raise SweepSpecError(f"{spec.source}: policy_options.{name}: {exc}") from None


# ----------------------------------------------------------------------------- one run


def execute_run(bundle: Bundle, run: PlannedRun) -> dict[str, object]:
    """Simulate one planned run (in a worker) on `bundle`, or on its own replicate bundle
    (built in this process, cached), and return its store row."""
    import policies  # noqa: F401  (registers the adaptive policies in this process)
    from experiments.inputs import resolve_bundle
    from simulator.run import run_simulation

    if run.bundle_spec is not None:
        bundle = resolve_bundle(run.bundle_spec)
    start = time.perf_counter()
    result = run_simulation(
        bundle, run.trace, run.point.policy, run.point.config, run.point.policy_options,
        bundle_hash=run.hashes["bundle"],
    )
    wall_s = time.perf_counter() - start
    ran = result.summary["hashes"]
    if ran != dict(run.hashes):
        changed = ", ".join(f"{k} {run.hashes[k]} -> {v}" for k, v in ran.items()
                            if v != run.hashes[k])
        raise SweepError(
            f"run [{run.point.label()}] ran with other inputs than planned ({changed}): the code "
            "changed during the sweep or differs on the worker; rerun the sweep"
        )
    return summary_row(run, result.summary, wall_s)


def summary_row(run: PlannedRun, summary: Mapping[str, object], wall_s: float) -> dict:
    """The store row: key, coordinates, scalar summary keys, plan shares, hashes, wall time."""
    row: dict[str, object] = {"run_key": run.key, **run.point.coordinates()}
    for key, value in summary.items():
        if key == "plan_share":
            row.update({f"plan_share.{label}": share for label, share in value.items()})
        elif key == "hashes":
            row.update({f"hash.{name}": h for name, h in value.items()})
        elif key not in row:
            row[key] = value
    row["config"] = json.dumps(resolved_config(run.point), sort_keys=True)
    row["wall_s"] = wall_s
    return row


# ----------------------------------------------------------------------------- the store


def default_store(spec_path: str | Path) -> Path:
    return DEFAULT_STORE_ROOT / Path(spec_path).stem


def _parts_dir(store: str | Path) -> Path:
    return Path(store) / "parts"


def check_store(store: str | Path) -> Path:
    """Refuse (InputError) a store path that is a file or an unrelated folder (no parts/)."""
    return check_output_folder(store, marker="parts")


PART_COLUMNS = ("run_key", *COORDINATES, "config", "wall_s")


def part_problem(path: Path) -> str | None:
    """Why the part file `path` is not a valid stored row (None if it is): unreadable as
    Parquet, not exactly one row, missing store columns, or a run key other than its name."""
    try:
        metadata = pq.read_metadata(path)
        if metadata.num_rows != 1:
            return f"{metadata.num_rows} rows, expected 1"
        missing = [c for c in PART_COLUMNS if c not in metadata.schema.names]
        if missing:
            return f"missing column {missing[0]!r}"
        key = pq.read_table(path, columns=["run_key"]).column("run_key")[0].as_py()
    except (OSError, pa.ArrowException) as exc:
        return f"not a readable Parquet file ({str(exc).splitlines()[0][:80]})"
    return None if key == path.stem else f"holds run_key {key!r}"


def scan_parts(store: str | Path) -> tuple[set[str], dict[str, str]]:
    """(run keys with a valid part, {run key: problem} of the corrupt parts)."""
    parts = _parts_dir(store)
    done: set[str] = set()
    corrupt: dict[str, str] = {}
    for path in sorted(parts.glob("*.parquet")) if parts.is_dir() else ():
        problem = part_problem(path)
        if problem is None:
            done.add(path.stem)
        else:
            corrupt[path.stem] = problem
    return done, corrupt


def done_keys(store: str | Path) -> set[str]:
    """Run keys with a valid row in the store (corrupt parts are not done)."""
    return scan_parts(store)[0]


def write_row(store: str | Path, row: Mapping[str, object]) -> Path:
    """Write one run's row as `parts/<run_key>.parquet`, atomically."""
    path = _parts_dir(store) / f"{row['run_key']}.parquet"
    with atomic_file(path) as staging:
        pq.write_table(pa.Table.from_pylist([dict(row)]), staging)
    return path


def read_store(store: str | Path, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """All rows of the store (or those of `keys`), sorted by coordinates then key."""
    wanted = done_keys(store) if keys is None else done_keys(store) & set(keys)
    tables = [pq.read_table(_parts_dir(store) / f"{key}.parquet") for key in sorted(wanted)]
    if not tables:
        return pd.DataFrame(columns=["run_key", *COORDINATES])
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    shares = [c for c in frame.columns if c.startswith("plan_share.")]
    frame[shares] = frame[shares].fillna(0.0)
    return frame.sort_values([*COORDINATES, "run_key"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- status


@dataclass(frozen=True)
class SweepStatus:
    total: int
    done: int
    missing: list[RunPoint]
    stale: int  # rows in the store that no run of the spec has (older code, edited spec)
    corrupt: dict[str, str] = field(default_factory=dict)  # run key -> problem (to re-run)


def sweep_status(runs: Sequence[PlannedRun], store: str | Path) -> SweepStatus:
    have, corrupt = scan_parts(store)
    planned = {run.key for run in runs}
    missing = [run.point for run in runs if run.key not in have]
    return SweepStatus(len(runs), len(runs) - len(missing), missing, len(have - planned), corrupt)


# ----------------------------------------------------------------------------- execution


class InlineExecutor(Executor):
    """Runs each task at submit, in this process (`jobs=1`: no worker start-up)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future


@dataclass(frozen=True)
class Backend:
    """Where runs execute: a concurrent.futures executor and the bundle as its tasks get it
    (the Bundle itself, or a Dask future of the bundle scattered to every worker)."""

    executor: Executor
    bundle_ref: object
    description: str
    slots: int  # runs kept in flight: finished rows are stored while the rest wait to start


DASK_SCHEMES = ("tcp://", "tls://", "inproc://", "ws://", "wss://")


def check_dask(dask: str | None) -> str | None:
    """`--dask`: None, 'local' or a scheduler address; InputError otherwise (checked before
    any work)."""
    if dask is None or dask == "local" or dask.startswith(DASK_SCHEMES):
        return dask
    raise InputError(f"--dask {dask!r}: expected 'local' or a scheduler address tcp://HOST:PORT")


@contextlib.contextmanager
def open_backend(bundle: Bundle, jobs: int | None = None, dask: str | None = None
                 ) -> Iterator[Backend]:
    """A local process pool of `jobs` (default: all cores; 1 runs inline), or a Dask cluster:
    `dask="tcp://HOST:8786"` connects to a scheduler (its workers need this code installed),
    `dask="local"` starts an in-process LocalCluster (one thread; for tests and debugging)."""
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {jobs}")
    if dask is None:
        if jobs == 1:
            yield Backend(InlineExecutor(), bundle, "inline", slots=1)
            return
        with _process_pool(jobs) as pool:
            yield Backend(pool, bundle, f"process pool of {jobs}", slots=2 * jobs)
        return
    check_dask(dask)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--dask needs dask and distributed (pip install 't2isim[dask]')") from None
    with contextlib.ExitStack() as stack:
        if dask == "local":
            cluster = stack.enter_context(
                LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                             dashboard_address=None, silence_logs=logging.CRITICAL)
            )
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(dask))
        bundle_ref = client.scatter(bundle, broadcast=True)
        threads = sum(client.nthreads().values())
        yield Backend(client.get_executor(), bundle_ref, f"dask {client.scheduler.address}",
                      slots=2 * max(threads, 1))


@contextlib.contextmanager
def _process_pool(jobs: int) -> Iterator[Executor]:
    """A spawn-context process pool whose workers never outlive the sweep: on an error or an
    interrupt (SIGINT/SIGTERM, see experiments/cli_errors.py) they are terminated at once
    instead of finishing their runs, and a worker whose parent died (SIGKILL) exits by itself."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        yield pool
    except BaseException:
        # ProcessPoolExecutor has no public way to stop running tasks (Python < 3.14)
        for process in list((pool._processes or {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


PARENT_POLL_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    """Pool-worker initializer: a daemon thread exits the worker when its parent is gone."""
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


@dataclass(frozen=True)
class SweepReport:
    total: int
    skipped: int  # already in the store
    ran: int


def run_sweep(
    runs: Sequence[PlannedRun],
    store: str | Path,
    backend: Backend,
    on_done: Callable[[dict], None] | None = None,
) -> SweepReport:
    """Run the runs whose key is not in `store`, writing each row as it completes. On a failed
    run the pending ones are cancelled and the error is raised; finished rows stay stored."""
    have = done_keys(store)
    todo = [run for run in runs if run.key not in have]
    queue = iter(todo)
    pending: set[Future] = set()

    def refill() -> None:
        for run in itertools.islice(queue, backend.slots - len(pending)):
            pending.add(backend.executor.submit(execute_run, backend.bundle_ref, run))

    try:
        refill()
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                row = future.result()
                write_row(store, row)
                if on_done is not None:
                    on_done(row)
            refill()
    finally:
        for future in pending:
            future.cancel()
    return SweepReport(len(runs), len(runs) - len(todo), len(todo))
