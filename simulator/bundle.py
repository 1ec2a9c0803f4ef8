"""Profile bundle: the contract between the profiler (writer) and the simulator (reader).

A bundle is a folder::

    bundle.json   schema_version, name, provenance {source, gpu, libraries}, time_unit "s",
                  router {features, weights} (how prompts.router_score was computed),
                  optional overheads {dispatch_overhead_ms, escalation_overhead_ms,
                  arrival_overhead_ms, route_overhead_ms, plan_overhead_ms,
                  configure_overhead_ms, and their spread
                  <hop>_overhead_p95_ms} (see `HOPS`;
                  an absent one is 0, an absent p95 the median: no spread), and
                  arrival_charge_ms (see `ARRIVAL_CHARGE_FIELD`; absent: 0, none)
    models.csv    model, steps, load_s, fid_alone   (one row per model, light -> heavy)
    latency.csv   model, batch_size, latency_p50_s, latency_p95_s (profiled batch sizes only),
                  optional idle_gap_s, latency_idle_p50_s: the p50 after that long idle (one
                  gap per model; 0 and empty for a model not timed so; see `IDLE_LATENCY_COLUMNS`);
                  optional latency_p05_s, the lower tail (`P05_LATENCY_COLUMN`)
    prompts.csv   prompt_id (0..N-1), text, the 8 HADIS router features, router_score, [label]
    scores.csv    prompt_id, model, disc_score, [clip_score, other quality signals]
    cascades.csv  light, heavy, router_ratio, disc_ratio, heavy_share, latency_s, fid
    features.npz  optional (profiler): per prompt, model and image the feature vector, and the
                  reference statistics; runs then score the FID of the images they served
                  (`simulator.served_features`)
    shapes.csv    optional: measured shapes of batch times and hops, each its quantiles over
                  its median (`simulator.empirical_shape`; the simulator draws batch times
                  from them with service_time "empirical", and hops whenever a hop has one)

`load_bundle` validates everything and raises `BundleError` naming file, row and column.
The loaded `Bundle` carries dense numpy views (latency lookup, score matrix) so the simulator's
hot loop never touches pandas.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.atomic import atomic_folder
from simulator.csv_input import read_csv_table
from simulator.empirical_shape import SHAPES_FILE, check_shapes, shapes_by_key
from simulator.errors import InputError
from simulator.json_input import read_json_object
from simulator.served_features import FEATURES_FILE, FeaturesError, ServedFeatures

SCHEMA_VERSION = 1
ROUTER_FEATURES = (
    "prompt_length",
    "token_rarity",
    "num_objects",
    "abstractness",
    "attribute_density",
    "spatial_relations",
    "action_verbs",
    "named_entities",
)
TABLE_FILES = {
    "models": "models.csv",
    "latency": "latency.csv",
    "prompts": "prompts.csv",
    "scores": "scores.csv",
    "cascades": "cascades.csv",
}
REQUIRED_COLUMNS = {
    "models": ("model", "steps", "load_s", "fid_alone"),
    "latency": ("model", "batch_size", "latency_p50_s", "latency_p95_s"),
    "prompts": ("prompt_id", "text", *ROUTER_FEATURES, "router_score"),
    "scores": ("prompt_id", "model", "disc_score"),
    "cascades": (
        "light",
        "heavy",
        "router_ratio",
        "disc_ratio",
        "heavy_share",
        "latency_s",
        "fid",
    ),
}

# The serving stack's wall-clock cost of a query's hops, measured on a real serving path
# (`t2isim validate`), not GPU time, so never multiplied by the time scale: dispatch = the
# first model's round trip (client -> ingress -> model, and the answer back), applied when the
# query arrives; escalation = each further model's (its result -> queued at the next model);
# arrival = from a query's time in the trace to the controller counting it (the load
# generator's send lag and the way to the ingress, on the controller's tick clock): it delays
# the demand estimate's arrival count, not the query, whose way in is in its dispatch hop;
# route = from a re-plan's tick to the ingress routing by it (the controller's counter read and
# solve, the ingress's `set_plan`): new queries follow the plan from then on
# (`SimConfig.plan_switch`); plan = from a re-plan's tick to its workers' configuration (the
# same, then each worker's `configure` call): its workers switch that long after the tick that
# made it (the medians alone; `Controller`); configure = the step between a re-plan's swaps
# after its route hop (`SimConfig.plan_switch=per-swap`): its k-th swap to reach its worker
# switches k steps after the ingress routes by the plan (the median alone).
# Each is a median and an optional 95th percentile (a lognormal per hop, as service times).
HOPS = ("dispatch", "escalation", "arrival", "route", "plan", "configure")
# The host's cores shared by the serving stack and the workers (CPU replicas): each query's
# arrival at the stack prolongs every batch running at that moment by this much (its per-query
# work competing for the cores; measured by `serving.arrival_charge`; 0: no such sharing)
ARRIVAL_CHARGE_FIELD = "arrival_charge_ms"
OVERHEAD_FIELDS = (
    *(f"{hop}_overhead{q}_ms" for hop in HOPS for q in ("", "_p95")),
    ARRIVAL_CHARGE_FIELD,
)
MAX_OVERHEAD_MS = 60_000.0
# A worker that idled before a batch may run it slower than one timed back to back (caches,
# clocks and threads gone cold; `profile latency --idle-gap-s`): a model's batch of b after
# idle_gap_s or more of idle takes latency_idle_p50_s, after less a linear ramp from its p50
IDLE_LATENCY_COLUMNS = ("idle_gap_s", "latency_idle_p50_s")
MAX_IDLE_GAP_S = 3600.0
# A batch's latency starts here: no image is generated in under a microsecond, and the MILP's
# throughputs (batches per second) stay far below HiGHS's infinity (1e20; 1e-20 s was refused)
MIN_LATENCY_S = 1e-6
# Integer columns (steps, batch sizes, counts) stop here: a CSV column read as floats holds
# every integer up to it exactly, and larger ones would wrap round when cast to int64
MAX_TABLE_INTEGER = 2**53
# A batch's 5th percentile: with the p50 and p95 it fits the shifted-lognormal service time
# (`simulator.service_shape`); empty where unknown, at most the p50
P05_LATENCY_COLUMN = "latency_p05_s"


def nearest_batch_size(sizes, size: int) -> int:
    """The size in `sizes` (non-empty) nearest `size`, the smaller on a tie: where a per-size
    measurement is missing, the one a size borrows."""
    return min(sizes, key=lambda b: (abs(b - size), b))


class BundleError(InputError):
    """A bundle that cannot be used; the message names file, row and column."""


@dataclass(frozen=True)
class Bundle:
    """A validated profile bundle plus O(1) lookup arrays derived from it."""

    meta: dict
    models: pd.DataFrame
    latency: pd.DataFrame
    prompts: pd.DataFrame
    scores: pd.DataFrame
    cascades: pd.DataFrame
    features: ServedFeatures | None = field(default=None, repr=False)  # features.npz
    shapes: pd.DataFrame | None = field(default=None, repr=False)  # shapes.csv
    model_names: tuple[str, ...] = field(init=False)
    # latency_table_s[m][b] = p50 latency of a batch of b on model m: interpolated inside the
    # profiled range, padded to the smallest profiled batch below it, NaN above it
    latency_table_s: np.ndarray = field(init=False, repr=False)
    latency_p95_table_s: np.ndarray = field(init=False, repr=False)
    latency_p05_table_s: np.ndarray = field(init=False, repr=False)  # NaN where unknown
    # per model its idle gap (0: none) and its p50 after that idle, as latency_table_s (NaN
    # for a model without one)
    idle_gap_s: tuple[float, ...] = field(init=False, repr=False)
    idle_latency_table_s: np.ndarray = field(init=False, repr=False)
    batch_sizes: dict[str, tuple[int, ...]] = field(init=False, repr=False)  # profiled, sorted
    disc_score: np.ndarray = field(init=False, repr=False)  # (n_prompts, n_models)
    router_score: np.ndarray = field(init=False, repr=False)  # (n_prompts,)
    # shapes.csv by key: {(model, batch size): ratios} and {hop: ratios}
    latency_shape: dict[tuple[str, int], tuple[float, ...]] = field(init=False, repr=False)
    hop_shape: dict[str, tuple[float, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(self.models["model"].tolist())
        object.__setattr__(self, "model_names", names)
        for attr, column in (
            ("latency_table_s", "latency_p50_s"),
            ("latency_p95_table_s", "latency_p95_s"),
        ):
            object.__setattr__(self, attr, _latency_table(self.latency, names, column))
        optional = [*IDLE_LATENCY_COLUMNS, P05_LATENCY_COLUMN]
        idle = self.latency.reindex(columns=[*REQUIRED_COLUMNS["latency"], *optional])
        p05_table = _latency_table(idle, names, P05_LATENCY_COLUMN)
        object.__setattr__(self, "latency_p05_table_s", p05_table)
        gaps = idle.groupby("model")["idle_gap_s"].max().reindex(names).fillna(0.0)
        object.__setattr__(self, "idle_gap_s", tuple(float(g) for g in gaps))
        idle_table = _latency_table(idle, names, "latency_idle_p50_s")
        object.__setattr__(self, "idle_latency_table_s", idle_table)
        sizes = {m: [] for m in names}
        for model, b in zip(self.latency["model"], self.latency["batch_size"]):
            sizes[model].append(int(b))
        object.__setattr__(self, "batch_sizes", {m: tuple(sorted(v)) for m, v in sizes.items()})
        pivot = self.scores.pivot(index="prompt_id", columns="model", values="disc_score")
        object.__setattr__(
            self, "disc_score", pivot.loc[:, list(names)].to_numpy(dtype=np.float64, copy=True)
        )
        object.__setattr__(
            self, "router_score", self.prompts["router_score"].to_numpy(dtype=np.float64)
        )
        by_key = shapes_by_key(self.shapes)
        latency_shape = {(n, b): r for (kind, n, b), r in by_key.items() if kind == "latency"}
        object.__setattr__(self, "latency_shape", latency_shape)
        hop_shape = {name: r for (kind, name, _), r in by_key.items() if kind == "hop"}
        object.__setattr__(self, "hop_shape", hop_shape)

    @property
    def n_prompts(self) -> int:
        return len(self.prompts)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "unnamed"))

    def overhead_s(self, hop: str) -> tuple[float, float]:
        """(median, 95th percentile) wall-clock seconds one `hop` (one of `HOPS`) adds to a
        query: (0, 0) unless given; the p95 is the median unless given."""
        overheads = self.meta.get("overheads", {})
        median = float(overheads.get(f"{hop}_overhead_ms", 0.0))
        return median / 1000.0, float(overheads.get(f"{hop}_overhead_p95_ms", median)) / 1000.0

    @property
    def arrival_charge_s(self) -> float:
        """Wall-clock seconds each query's arrival adds to every batch running then (0:
        none; `ARRIVAL_CHARGE_FIELD`)."""
        return float(self.meta.get("overheads", {}).get(ARRIVAL_CHARGE_FIELD, 0.0)) / 1000.0

    def model_index(self, name: str) -> int:
        try:
            return self.model_names.index(name)
        except ValueError:
            raise BundleError(
                f"unknown model {name!r}; the bundle has {', '.join(self.model_names)}"
            ) from None

    def profiled_batch_sizes(self, model: str) -> tuple[int, ...]:
        if model not in self.batch_sizes:
            self.model_index(model)  # raises naming the known models
        return self.batch_sizes[model]

    def max_batch_size(self, model: str) -> int:
        return self.profiled_batch_sizes(model)[-1]

    def batch_latency_s(self, model: str, batch_size: int) -> float:
        """p50 latency of one batch: monotone interpolation inside the profiled range; a batch
        below the smallest profiled size runs padded to it; above the largest is an error."""
        m = self.model_index(model)
        table = self.latency_table_s[m]
        if batch_size < 1 or batch_size >= len(table) or np.isnan(table[batch_size]):
            sizes = self.profiled_batch_sizes(model)
            raise BundleError(
                f"batch size {batch_size} of {model} is outside its profiled range "
                f"{sizes[0]}..{sizes[-1]} (no extrapolation)"
            )
        return float(table[batch_size])

    @property
    def has_idle_latency(self) -> bool:
        return any(self.idle_gap_s)

    def pairs(self) -> list[tuple[str, str]]:
        """Model pairs of the cascade table, in table order."""
        seen = dict.fromkeys(zip(self.cascades["light"], self.cascades["heavy"]))
        return [(str(a), str(b)) for a, b in seen]

    def content_hash(self) -> str:
        """sha256 over the canonical CSV/JSON serialisation of every table."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.meta, sort_keys=True).encode())
        for table in TABLE_FILES:
            digest.update(getattr(self, table).to_csv(index=False).encode())
        if self.features is not None:
            self.features.update_hash(digest)
        if self.shapes is not None:
            digest.update(self.shapes.to_csv(index=False).encode())
        return digest.hexdigest()


def _latency_table(latency: pd.DataFrame, names: tuple[str, ...], column: str) -> np.ndarray:
    """(n_models, max_batch + 1) lookup of `column`; NaN outside each model's profiled range."""
    max_b = int(latency["batch_size"].max())
    table = np.full((len(names), max_b + 1), np.nan)
    for m, name in enumerate(names):
        rows = latency[latency["model"] == name].sort_values("batch_size")
        sizes = rows["batch_size"].to_numpy(dtype=np.int64)
        values = rows[column].to_numpy(dtype=np.float64)
        inside = np.arange(sizes[0], sizes[-1] + 1)
        # piecewise-linear between profiled points is monotone because the points are
        table[m, inside] = np.interp(inside, sizes, values)
        # a batch smaller than the smallest profiled one runs padded to it
        table[m, 1 : sizes[0]] = values[0]
    return table


# ----------------------------------------------------------------------------- validation


def _fail(file: str, row: int | None, column: str | None, problem: str) -> BundleError:
    where = file
    if row is not None:
        where += f": row {row}"
    if column is not None:
        where += f": column {column}"
    return BundleError(f"{where}: {problem}")


def _check_columns(table: str, df: pd.DataFrame) -> None:
    file = TABLE_FILES[table]
    for column in REQUIRED_COLUMNS[table]:
        if column not in df.columns:
            raise _fail(file, None, column, "missing required column")


def _check_numeric(
    table: str,
    df: pd.DataFrame,
    column: str,
    lo: float | None = None,
    hi: float | None = None,
    integer: bool = False,
    strict_lo: bool = False,
) -> None:
    file = TABLE_FILES[table]
    if integer and hi is None:
        hi = MAX_TABLE_INTEGER
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.astype(float))
    if lo is not None:
        bad |= (values <= lo) if strict_lo else (values < lo)
    if hi is not None:
        bad |= values > hi
    if integer:
        bad |= values.notna() & (values.fillna(0) % 1 != 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        bounds = []
        if lo is not None:
            bounds.append(f"{'>' if strict_lo else '>='} {lo}")
        if hi is not None:
            bounds.append(f"<= {hi}")
        kind = "an integer" if integer else "a finite number"
        rule = kind + (" " + " and ".join(bounds) if bounds else "")
        # row numbers are 1-based data rows (the header is line 1, so data row i is line i+1)
        raise _fail(file, i + 1, column, f"value {cell_repr(df[column].iloc[i])} is not {rule}")
    df[column] = values.astype(np.int64) if integer else values.astype(np.float64)


def _check_models_known(table: str, df: pd.DataFrame, column: str, names: set[str]) -> None:
    unknown = ~df[column].astype(str).isin(names)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise _fail(TABLE_FILES[table], i + 1, column, f"unknown model {df[column].iloc[i]!r}")
    df[column] = df[column].astype(str)


def check_overheads(overheads) -> None:
    """An `overheads` object of bundle.json (`OVERHEAD_FIELDS`, each in ms) or one-line error."""
    if not isinstance(overheads, dict):
        raise _fail("bundle.json", None, "overheads", f"expected an object, got {overheads!r}")
    for key, value in overheads.items():
        if key not in OVERHEAD_FIELDS:
            raise _fail(
                "bundle.json",
                None,
                "overheads",
                f"unknown field {key!r}; known: {', '.join(OVERHEAD_FIELDS)}",
            )
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and 0 <= value <= MAX_OVERHEAD_MS):
            raise _fail(
                "bundle.json",
                None,
                f"overheads.{key}",
                f"value {value!r} is not a finite number of ms in [0, {MAX_OVERHEAD_MS:g}]",
            )
    for hop in HOPS:
        median = overheads.get(f"{hop}_overhead_ms", 0)
        p95 = overheads.get(f"{hop}_overhead_p95_ms", median)
        if p95 != median and not 0 < median < p95:
            raise _fail(
                "bundle.json",
                None,
                f"overheads.{hop}_overhead_p95_ms",
                f"value {p95!r} is neither {hop}_overhead_ms ({median!r}) nor above it with "
                f"{hop}_overhead_ms > 0",
            )


def validate_tables(
    meta: dict,
    tables: dict[str, pd.DataFrame],
    features: ServedFeatures | None = None,
    shapes: pd.DataFrame | None = None,
) -> Bundle:
    """Validate raw tables (copies are normalised in place) and the optional features and
    shapes, and build a `Bundle`."""
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise _fail(
            "bundle.json",
            None,
            "schema_version",
            f"expected {SCHEMA_VERSION}, got {meta.get('schema_version')!r}",
        )
    if meta.get("time_unit", "s") != "s":
        raise _fail("bundle.json", None, "time_unit", f"expected 's', got {meta['time_unit']!r}")
    check_overheads(meta.get("overheads", {}))
    tables = {name: df.copy() for name, df in tables.items()}
    for table in TABLE_FILES:
        if table not in tables:
            raise BundleError(f"{TABLE_FILES[table]}: missing table")
        _check_columns(table, tables[table])
        if tables[table].empty:
            raise _fail(TABLE_FILES[table], None, None, "table is empty")

    models = tables["models"]
    models["model"] = models["model"].astype(str)
    dup = models["model"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise _fail("models.csv", i + 1, "model", f"duplicate model {models['model'].iloc[i]!r}")
    _check_numeric("models", models, "steps", lo=1, integer=True)
    _check_numeric("models", models, "load_s", lo=0)
    _check_numeric("models", models, "fid_alone", lo=0)
    names = set(models["model"])

    latency = tables["latency"]
    _check_models_known("latency", latency, "model", names)
    _check_numeric("latency", latency, "batch_size", lo=1, integer=True)
    _check_numeric("latency", latency, "latency_p50_s", lo=MIN_LATENCY_S)
    _check_numeric("latency", latency, "latency_p95_s", lo=MIN_LATENCY_S)
    for i in np.flatnonzero((latency["latency_p95_s"] < latency["latency_p50_s"]).to_numpy()):
        raise _fail("latency.csv", int(i) + 1, "latency_p95_s", "p95 is below p50")
    dup = latency.duplicated(["model", "batch_size"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise _fail("latency.csv", i + 1, "batch_size", "duplicate (model, batch_size)")
    for name in models["model"]:
        rows = latency[latency["model"] == name].sort_values("batch_size")
        if rows.empty:
            raise _fail("latency.csv", None, "model", f"model {name!r} has no latency rows")
        p50 = rows["latency_p50_s"].to_numpy()
        drops = np.flatnonzero(np.diff(p50) < 0)
        if drops.size:
            row = int(rows.index[drops[0] + 1]) + 1
            raise _fail(
                "latency.csv",
                row,
                "latency_p50_s",
                f"latency of {name} decreases with batch size (not monotone)",
            )
    _check_idle_latency(latency)
    _check_p05_latency(latency)

    prompts = tables["prompts"]
    _check_numeric("prompts", prompts, "prompt_id", lo=0, integer=True)
    ids = prompts["prompt_id"].to_numpy()
    wrong = np.flatnonzero(ids != np.arange(len(ids)))
    if wrong.size:
        i = int(wrong[0])
        raise _fail("prompts.csv", i + 1, "prompt_id", f"expected {i} (ids are 0..N-1 in order)")
    for feature in ROUTER_FEATURES:
        _check_numeric("prompts", prompts, feature, lo=0)
    _check_numeric("prompts", prompts, "router_score")
    prompts["text"] = prompts["text"].fillna("").astype(str)

    scores = tables["scores"]
    _check_numeric("scores", scores, "prompt_id", lo=0, hi=len(prompts) - 1, integer=True)
    _check_models_known("scores", scores, "model", names)
    _check_numeric("scores", scores, "disc_score", lo=0, hi=1)
    dup = scores.duplicated(["prompt_id", "model"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise _fail("scores.csv", i + 1, "model", "duplicate (prompt_id, model)")
    if len(scores) != len(prompts) * len(models):
        raise _fail(
            "scores.csv",
            None,
            None,
            f"{len(scores)} rows, expected one per prompt x model = {len(prompts) * len(models)}",
        )

    cascades = tables["cascades"]
    _check_models_known("cascades", cascades, "light", names)
    _check_models_known("cascades", cascades, "heavy", names)
    for column in ("router_ratio", "disc_ratio", "heavy_share"):
        _check_numeric("cascades", cascades, column, lo=0, hi=1)
    _check_numeric("cascades", cascades, "latency_s", lo=0)
    _check_numeric("cascades", cascades, "fid", lo=0)
    same = cascades["light"] == cascades["heavy"]
    if same.any():
        i = int(np.flatnonzero(same.to_numpy())[0])
        raise _fail("cascades.csv", i + 1, "heavy", "heavy model equals light model")
    if features is not None:
        features.check(tuple(models["model"]), len(prompts))
    if shapes is not None:
        shapes = checked_shapes(shapes, latency)

    return Bundle(
        meta=meta,
        models=models.reset_index(drop=True),
        latency=latency.sort_values(["model", "batch_size"]).reset_index(drop=True),
        prompts=prompts.reset_index(drop=True),
        scores=scores.sort_values(["prompt_id", "model"]).reset_index(drop=True),
        cascades=cascades.reset_index(drop=True),
        features=features,
        shapes=shapes,
    )


def checked_shapes(shapes: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """`shapes.csv` (`simulator.empirical_shape`) checked against the latency table's models
    and batch sizes, its columns typed; BundleError naming the row otherwise."""
    sizes: dict[str, tuple[int, ...]] = {}
    for model, b in zip(latency["model"].astype(str), latency["batch_size"]):
        sizes[model] = (*sizes.get(model, ()), int(b))
    problem = check_shapes(shapes, sizes, HOPS)
    if problem is not None:
        raise BundleError(f"{SHAPES_FILE}: {problem}")
    return pd.DataFrame(
        {
            "kind": shapes["kind"].astype(str),
            "name": shapes["name"].astype(str),
            "batch_size": pd.to_numeric(shapes["batch_size"]).astype(np.int64),
            "level": pd.to_numeric(shapes["level"]).astype(np.float64),
            "ratio": pd.to_numeric(shapes["ratio"]).astype(np.float64),
        }
    ).reset_index(drop=True)


def _check_idle_latency(latency: pd.DataFrame) -> None:
    """latency.csv's optional idle columns: both or neither; per model one gap in
    [0, MAX_IDLE_GAP_S]; a gap > 0 with a positive p50 after it, monotone in batch size, and
    no value without a gap (the columns are normalised in place)."""
    present = [c for c in IDLE_LATENCY_COLUMNS if c in latency.columns]
    if not present:
        return
    if len(present) == 1:
        other = next(c for c in IDLE_LATENCY_COLUMNS if c not in present)
        raise _fail("latency.csv", None, other, f"missing (it comes with {present[0]})")
    _check_numeric("latency", latency, "idle_gap_s", lo=0, hi=MAX_IDLE_GAP_S)
    values = pd.to_numeric(latency["latency_idle_p50_s"], errors="coerce")
    timed = latency["idle_gap_s"].to_numpy() > 0
    given = latency["latency_idle_p50_s"].notna().to_numpy()
    bad = (timed & ~(values.to_numpy() > 0)) | (~timed & given)
    bad |= timed & ~np.isfinite(values.to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rule = "a finite number > 0 (idle_gap_s > 0)" if timed[i] else "empty (idle_gap_s is 0)"
        shown = cell_repr(latency["latency_idle_p50_s"].iloc[i])
        raise _fail("latency.csv", i + 1, "latency_idle_p50_s", f"value {shown} is not {rule}")
    latency["latency_idle_p50_s"] = values.astype(np.float64)
    for name, rows in latency.groupby("model", sort=False):
        rows = rows.sort_values("batch_size")
        if rows["idle_gap_s"].nunique() > 1:
            raise _fail("latency.csv", None, "idle_gap_s", f"model {name!r} has several gaps")
        drops = np.flatnonzero(np.diff(rows["latency_idle_p50_s"].to_numpy()) < 0)
        if drops.size:
            raise _fail(
                "latency.csv",
                int(rows.index[drops[0] + 1]) + 1,
                "latency_idle_p50_s",
                f"latency of {name} after idle decreases with batch size (not monotone)",
            )


def _check_p05_latency(latency: pd.DataFrame) -> None:
    """latency.csv's optional p05: each value empty or a finite number in (0, p50] (the column
    is normalised in place)."""
    if P05_LATENCY_COLUMN not in latency.columns:
        return
    raw = latency[P05_LATENCY_COLUMN]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    given = raw.notna().to_numpy()
    p50 = latency["latency_p50_s"].to_numpy(dtype=np.float64)
    ok = ~given | (np.isfinite(values) & (values > 0) & (values <= p50))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        shown = cell_repr(raw.iloc[i])
        rule = "empty or a finite number in (0, latency_p50_s]"
        raise _fail("latency.csv", i + 1, P05_LATENCY_COLUMN, f"value {shown} is not {rule}")
    latency[P05_LATENCY_COLUMN] = values


def cell_repr(value) -> str:
    """A table cell as an error message shows it (numpy scalars as Python's)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


# ----------------------------------------------------------------------------- I/O


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate a bundle folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"{folder}: not a bundle folder (no such directory)")
    meta_path = folder / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(f"{meta_path}: missing bundle.json")
    meta = read_json_object(meta_path, BundleError)
    tables = {}
    for table, file in TABLE_FILES.items():
        file_path = folder / file
        if not file_path.is_file():
            raise BundleError(f"{file_path}: missing table file")
        tables[table] = read_csv_table(file_path, BundleError, keep_default_na=table != "prompts")
    try:
        features = None
        if (folder / FEATURES_FILE).exists():
            features = ServedFeatures.load(folder / FEATURES_FILE)
        shapes = None
        if (folder / SHAPES_FILE).exists():
            shapes = read_csv_table(folder / SHAPES_FILE, BundleError, keep_default_na=False)
        return validate_tables(meta, tables, features, shapes)
    except (BundleError, FeaturesError) as exc:
        raise BundleError(f"{folder}/{exc}") from None


def write_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write a bundle folder atomically (CSV tables with a fixed float format, byte-stable)."""
    folder = Path(path)
    with atomic_folder(folder, marker="bundle.json") as staging:
        for table, file in TABLE_FILES.items():
            getattr(bundle, table).to_csv(staging / file, index=False, float_format="%.10g")
        if bundle.features is not None:
            bundle.features.save(staging / FEATURES_FILE)
        if bundle.shapes is not None:
            bundle.shapes.to_csv(staging / SHAPES_FILE, index=False, float_format="%.10g")
        meta = json.dumps(bundle.meta, indent=2, sort_keys=True) + "\n"
        (staging / "bundle.json").write_text(meta)
    return folder


def make_meta(name: str, source: str, gpu: str, libraries: dict | None = None, **extra) -> dict:
    """A `bundle.json` dict with the required provenance fields."""
    return {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "time_unit": "s",
        "provenance": {"source": source, "gpu": gpu, "libraries": dict(libraries or {})},
        **extra,
    }
