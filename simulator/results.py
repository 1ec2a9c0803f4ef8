"""Run outputs: `queries.parquet`, `timeseries.csv`, `summary.json`, `config.json`,
`planner_times.csv` — written to a temporary folder and renamed into place, so a folder that
exists is complete.

Everything but `planner_times.csv` (wall-clock measurements of the planner) is byte-identical
for the same inputs and seed. `summary.json` and `config.json` are strict JSON: a value that
is undefined for a run (NaN, e.g. a latency percentile when no query completed) is `null`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.atomic import atomic_folder

CODE_PACKAGES = ("simulator", "policies", "routers")
OUTPUT_FILES = ("queries.parquet", "timeseries.csv", "summary.json", "config.json")


def strict_json(obj: object) -> str:
    """Indented, key-sorted JSON with NaN and infinities as null (never `NaN`/`Infinity`)."""
    return json.dumps(_finite_or_none(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _finite_or_none(obj: object) -> object:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(value) for value in obj]
    return obj


def sha256_json(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def code_version() -> str:
    """`t2isim <version>+<sha256 of the simulation code's sources>` (stable across checkouts)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    try:
        version = metadata.version("t2isim")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"t2isim {version}+{digest.hexdigest()[:16]}"


def write_run(
    out_dir: str | Path,
    queries: pd.DataFrame,
    timeseries: pd.DataFrame,
    summary: dict,
    config: dict,
    planner_wall_s: list[tuple[float, float]],
    extras: Sequence[Callable[[Path], object]] = (),
) -> Path:
    """Write a run folder atomically (replacing an older run at the same path). Each of
    `extras` is called with the staging folder to add files (a plot) before the rename."""
    out = Path(out_dir)
    with atomic_folder(out, marker="summary.json") as staging:
        table = pa.Table.from_pandas(queries, preserve_index=False)
        pq.write_table(table, staging / "queries.parquet", compression="zstd")
        timeseries.to_csv(staging / "timeseries.csv", index=False, float_format="%.9g")
        (staging / "summary.json").write_text(strict_json(summary))
        (staging / "config.json").write_text(strict_json(config))
        pd.DataFrame(planner_wall_s, columns=["sim_time_s", "planner_wall_s"]).to_csv(
            staging / "planner_times.csv", index=False
        )
        for extra in extras:
            extra(staging)
    return out
