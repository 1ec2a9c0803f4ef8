"""Run outputs: `queries.parquet`, `timeseries.csv`, `summary.json`, `config.json`,
`planner_times.csv` — written to a temporary folder and renamed into place, so a folder that
exists is complete.

Everything but `planner_times.csv` (wall-clock measurements of the planner) is byte-identical
for the same inputs and seed.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.atomic import atomic_folder

CODE_PACKAGES = ("simulator", "policies", "routers")
OUTPUT_FILES = ("queries.parquet", "timeseries.csv", "summary.json", "config.json")


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
) -> Path:
    """Write a run folder atomically (replacing an older run at the same path)."""
    out = Path(out_dir)
    with atomic_folder(out, marker="summary.json") as staging:
        table = pa.Table.from_pandas(queries, preserve_index=False)
        pq.write_table(table, staging / "queries.parquet", compression="zstd")
        timeseries.to_csv(staging / "timeseries.csv", index=False, float_format="%.9g")
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        pd.DataFrame(planner_wall_s, columns=["sim_time_s", "planner_wall_s"]).to_csv(
            staging / "planner_times.csv", index=False
        )
    return out
