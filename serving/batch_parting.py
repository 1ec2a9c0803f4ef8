"""Where a real run's batches and the simulation's first part, worker by worker.

A validation's real runs write every batch their workers served (`batches.csv`,
`serving.loadgen.served_batches`); its simulations write theirs in the same columns
(`simulated_batches`). Walking each worker's batches in order of start, the two sides agree
while every batch has the same model and size; the first that differs (or a batch one side
serves and the other does not) is where that worker's runs part. Before it, the starts'
gap measures how closely the simulation keeps time; the earliest parting over the workers
is where a run and its simulation first took different branches (a query queued a few ms
before or after a batch started, an idle worker reached first by another query), which a
p50 error alone does not show (results/validation/HISTORY.md, session 40, found such
partings by hand).

`parting_table` gives one row per worker (PARTING_COLUMNS), `validation_parting` one per
(real run, worker) against one simulation, and `parting_text` the fidelity note's line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from serving.service_times import BATCH_COLUMNS_REQUIRED

PARTING_FILE = "parting.csv"
PARTING_COLUMNS = (
    "worker",
    "matched_batches",  # batches of the same model and size, in order, before the parting
    "start_gap_p50_ms",  # median |real start - simulated start| over those (NaN: none)
    "start_lag_p50_ms",  # median (real start - simulated start): > 0, the real ones later
    "parted",  # False: every batch of the worker matched, and both served as many
    "parting_s",  # the earlier start of the two first unmatched batches (NaN: not parted)
    "real_model",  # the real side's first unmatched batch ("" where it served no more)
    "real_batch_size",  # 0 where it served no more
    "real_start_s",
    "sim_model",
    "sim_batch_size",
    "sim_start_s",
)


def simulated_batches(raw, model_names: Sequence[str]) -> pd.DataFrame:
    """A simulation's batches (`RawRun.batches`) in a real run's `batches.csv` columns
    (BATCH_COLUMNS_REQUIRED): worker, model name, start, service seconds (with the
    discriminator's and arrivals' charges), size, judged; by start, then worker."""
    rows = sorted(raw.batches, key=lambda b: (b[2], b[0]))
    table = pd.DataFrame(rows, columns=list(BATCH_COLUMNS_REQUIRED))
    table["model"] = [model_names[m] for m in table["model"]]
    return table.astype({"worker": np.int64, "batch_size": np.int64, "judged": bool})


def parting_table(real: pd.DataFrame, sim: pd.DataFrame) -> pd.DataFrame:
    """Per worker either side served a batch on: where its real and simulated batches part
    (PARTING_COLUMNS), by worker."""
    rows = []
    for worker in sorted(set(real["worker"]) | set(sim["worker"])):
        mine = [
            side[side["worker"] == worker].sort_values("start_s", kind="stable")
            for side in (real, sim)
        ]
        rows.append(_worker_parting(int(worker), *mine))
    return pd.DataFrame(rows, columns=list(PARTING_COLUMNS))


def _worker_parting(worker: int, real: pd.DataFrame, sim: pd.DataFrame) -> dict:
    n = min(len(real), len(sim))
    same = (real["model"].to_numpy()[:n] == sim["model"].to_numpy()[:n]) & (
        real["batch_size"].to_numpy()[:n] == sim["batch_size"].to_numpy()[:n]
    )
    k = int(np.argmin(same)) if not same.all() else n
    lags_ms = (real["start_s"].to_numpy()[:k] - sim["start_s"].to_numpy()[:k]) * 1e3
    row = {
        "worker": worker,
        "matched_batches": k,
        "start_gap_p50_ms": float(np.median(np.abs(lags_ms))) if k else np.nan,
        "start_lag_p50_ms": float(np.median(lags_ms)) if k else np.nan,
        "parted": k < max(len(real), len(sim)),
    }
    starts = []
    for name, side in (("real", real), ("sim", sim)):
        there = k < len(side)
        start = float(side["start_s"].iloc[k]) if there else np.nan
        row[f"{name}_model"] = str(side["model"].iloc[k]) if there else ""
        row[f"{name}_batch_size"] = int(side["batch_size"].iloc[k]) if there else 0
        row[f"{name}_start_s"] = start
        starts.append(start)
    row["parting_s"] = float(np.nanmin(starts)) if row["parted"] else np.nan
    return {c: row[c] for c in PARTING_COLUMNS}


def validation_parting(real_runs: dict[str, pd.DataFrame], sim: pd.DataFrame) -> pd.DataFrame:
    """`parting_table` of each real run (name -> its batches) against one simulation's
    batches, with a leading `run` column."""
    tables = [parting_table(b, sim).assign(run=run) for run, b in real_runs.items()]
    table = pd.concat(tables, ignore_index=True)
    return table[["run", *PARTING_COLUMNS]]


def parting_text(parting: pd.DataFrame, sim_folder: str) -> str:
    """The fidelity note's sentence: each real run's first parting from `sim_folder`'s
    batches (when, on which worker, what each side served) and how closely the batches before
    the partings kept time."""
    runs = []
    for run, rows in parting.groupby("run", sort=True):
        parted = rows[rows["parted"]]
        if not len(parted):
            runs.append(f"{run} never parts ({int(rows['matched_batches'].sum())} batches)")
            continue
        first = parted.loc[parted["parting_s"].idxmin()]
        runs.append(
            f"{run} at {first['parting_s']:.3f} s on worker {first['worker']} (real "
            f"{_batch_text(first, 'real')}, simulated {_batch_text(first, 'sim')}; "
            f"{len(parted)} of {len(rows)} workers part)"
        )
    matched = parting["matched_batches"].to_numpy()
    kept = matched > 0
    timing = ""
    if kept.any():
        gap = np.median(parting["start_gap_p50_ms"].to_numpy()[kept])
        lag = np.median(parting["start_lag_p50_ms"].to_numpy()[kept])
        timing = (
            f"; before the partings, {int(matched.sum())} batches matched, and the median "
            f"worker's start a median {gap:.2f} ms from the simulated ones ({abs(lag):.2f} ms "
            f"{'later' if lag >= 0 else 'earlier'} as a signed median)"
        )
    return f"Batch by batch against {sim_folder} ({PARTING_FILE}): {'; '.join(runs)}{timing}."


def _batch_text(row: pd.Series, side: str) -> str:
    size = int(row[f"{side}_batch_size"])
    if not size:
        return "no more batches"
    return f"{row[f'{side}_model']} x{size} at {row[f'{side}_start_s']:.3f} s"
