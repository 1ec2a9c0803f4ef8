"""How much of the tiny replicas' excess could a model of the host's cores explain? For the
real runs of diffusers validations (`t2isim validate --backend diffusers`, whose batches.csv
records each batch's thread CPU), per model, the batches of one split by how much of their
service another replica was serving too: "other idle" (none of it), "other busy" (at least
half) and "partial". On a 2-core host two busy replicas leave the serving stack no free core,
so a batch waits for one: wall over CPU grows. A model of the cores (a batch slowed while the
other replicas are busy) could remove at most what the busy and partial batches take beyond
the idle ones' wall/CPU ratio.

    python benchmarks/core_wait_split.py VALIDATION_DIR [VALIDATION_DIR ...]

Prints per folder and model: each group's share of the batches of one, p50 wall, p50 CPU,
p50 wall/CPU and p50 preemptions; then the bound: the p50 wall of all batches of one, and that
p50 were every batch to run at its CPU times the idle group's wall/CPU (what the cores cost at
most, in % of the p50). Last line: `core_wait_bound_pct=<folder>/<model>:<pct>,...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from serving.service_times import BATCHES_FILE, read_batches_file
from simulator.errors import InputError

BUSY_SHARE = 0.5  # of a batch's service with another replica serving: "other busy"


def other_busy_share(batches: pd.DataFrame) -> np.ndarray:
    """Per batch, the share of its service during which a batch of another worker ran."""
    start = batches["start_s"].to_numpy()
    end = start + batches["service_s"].to_numpy()
    worker = batches["worker"].to_numpy()
    share = np.empty(len(batches))
    for i in range(len(batches)):
        other = worker != worker[i]
        overlap = np.minimum(end[other], end[i]) - np.maximum(start[other], start[i])
        share[i] = overlap.clip(min=0.0).sum() / (end[i] - start[i])
    return share


def split(batches: pd.DataFrame) -> pd.DataFrame:
    """The batches of one with their group ("other idle", "partial", "other busy")."""
    share = other_busy_share(batches)
    group = np.where(
        share >= BUSY_SHARE, "other busy", np.where(share > 0, "partial", "other idle")
    )
    ones = batches.assign(group=group, wall_per_cpu=batches["service_s"] / batches["cpu_s"])
    return ones[ones["batch_size"] == 1]


def report(folder: Path) -> list[str]:
    """Print the folder's split per model; its bounds as `folder/model:pct`."""
    runs = sorted(p for p in folder.glob("real-*") if (p / BATCHES_FILE).is_file())
    if not runs:
        raise InputError(f"{folder}: no real-*/{BATCHES_FILE} (a diffusers validation's folder)")
    tables = []
    for run in runs:
        batches = read_batches_file(run / BATCHES_FILE, model_names=None)
        for column in ("cpu_s", "preemptions"):
            if column not in batches or batches[column].isna().any():
                raise InputError(f"{run / BATCHES_FILE}: column {column}: not recorded")
        tables.append(split(batches))
    ones = pd.concat(tables, ignore_index=True)
    bounds = []
    for model, rows in ones.groupby("model", sort=True):
        print(f"{folder} {model}: {len(rows)} batches of one over {len(runs)} runs")
        for group, g in rows.groupby("group", sort=True):
            wall_ms, cpu_ms = g["service_s"].median() * 1e3, g["cpu_s"].median() * 1e3
            print(
                f"  {group:10s} {len(g) / len(rows):6.1%}  wall {wall_ms:6.2f} ms  CPU "
                f"{cpu_ms:6.2f} ms  wall/CPU {g['wall_per_cpu'].median():.3f}  preempted "
                f"{g['preemptions'].median():g}"
            )
        idle = rows[rows["group"] == "other idle"]["wall_per_cpu"].median()
        p50_s = rows["service_s"].median()
        no_wait_s = np.minimum(rows["service_s"], rows["cpu_s"] * idle).median()
        bound_pct = 100.0 * (p50_s - no_wait_s) / p50_s
        print(
            f"  p50 wall {p50_s * 1e3:.2f} ms; at the idle group's wall/CPU {no_wait_s * 1e3:.2f}"
            f" ms: the cores cost at most {bound_pct:.1f}% of the p50"
        )
        bounds.append(f"{folder}/{model}:{bound_pct:.1f}")
    return bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="diffusers validation folders")
    args = parser.parse_args()
    bounds = []
    try:
        for folder in args.folders:
            bounds += report(folder)
    except InputError as exc:
        parser.error(str(exc))
    print("core_wait_bound_pct=" + ",".join(bounds))


if __name__ == "__main__":
    main()
