"""Where two runs' batches first part, worker by worker: a real run and the simulation, and
the runs of each side among themselves.

A validation's real runs write every batch their workers served (`batches.csv`,
`serving.loadgen.served_batches`); its simulations write theirs in the same columns
(`simulated_batches`). Walking a worker's batches in order of start, two runs agree while
every batch has the same model and size and starts within half its service time of the
other's (MATCH_WITHIN_SERVICE: further apart, one side has served a batch the other has not,
even where every batch is of one model and size); the first that differs (or a batch one
serves and the other does not) is where that worker's runs part. Before it, the starts' gap measures
how closely the two keep time; the earliest parting over the workers is where the runs first
took different branches (a query queued a few ms before or after a batch started, a plan
reaching a worker before or after its batch ended), which a p50 error alone does not show
(results/validation/HISTORY.md, sessions 40 and 41).

`validation_parting` compares each real run with DIR/sim (`against` "sim"), and, as the two
sides' own spread, each later real run with the first and each simulated replicate with
DIR/sim: real runs that part from each other where the replicates never do are a spread the
simulator's randomness does not explore. One row per (run, against, worker):
PARTING_COLUMNS; `parting_text` is the fidelity note's sentence.

A batch parts where a routing decision parted earlier: `validation_routing` gives, for the same
pairs, the queries whose first batch ran on another worker, and the first of them (ROUTING_COLUMNS;
each query's worker is its first batch's, found by the batch's start and model,
`first_workers`); `routing_text` the note's sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from serving.service_times import BATCH_COLUMNS_REQUIRED

PARTING_FILE = "parting.csv"
SIM = "sim"  # DIR/sim, in `against`
MATCH_WITHIN_SERVICE = 0.5  # two batches match within this share of the shorter's service
PARTING_COLUMNS = (
    "run",  # real-k, or sim-replicate-k
    "against",  # "sim" (DIR/sim), or the first real run
    "worker",
    "matched_batches",  # batches matched in order before the parting (MATCH_WITHIN_SERVICE)
    "start_gap_p50_ms",  # median |run's start - against's start| over those (NaN: none)
    "start_lag_p50_ms",  # median (run's start - against's start): > 0, the run's later
    "parted",  # False: every batch of the worker matched, and both served as many
    "parting_s",  # the earlier start of the two first unmatched batches (NaN: not parted)
    "run_model",  # the run's first unmatched batch ("" where it served no more)
    "run_batch_size",  # 0 where it served no more
    "run_start_s",
    "against_model",
    "against_batch_size",
    "against_start_s",
)


def simulated_batches(raw, model_names: Sequence[str]) -> pd.DataFrame:
    """A simulation's batches (`RawRun.batches`) in a real run's `batches.csv` columns
    (BATCH_COLUMNS_REQUIRED): worker, model name, start, service seconds (with the
    discriminator's and arrivals' charges), size, judged; by start, then worker."""
    rows = sorted(raw.batches, key=lambda b: (b[2], b[0]))
    table = pd.DataFrame(rows, columns=list(BATCH_COLUMNS_REQUIRED))
    table["model"] = [model_names[m] for m in table["model"]]
    return table.astype({"worker": np.int64, "batch_size": np.int64, "judged": bool})


def parting_table(run: pd.DataFrame, against: pd.DataFrame) -> pd.DataFrame:
    """Per worker either run served a batch on: where the two runs' batches part
    (PARTING_COLUMNS from `worker` on), by worker."""
    rows = []
    for worker in sorted(set(run["worker"]) | set(against["worker"])):
        sides = [
            side[side["worker"] == worker].sort_values("start_s", kind="stable")
            for side in (run, against)
        ]
        rows.append(_worker_parting(int(worker), *sides))
    return pd.DataFrame(rows, columns=list(PARTING_COLUMNS[2:]))


def _worker_parting(worker: int, run: pd.DataFrame, against: pd.DataFrame) -> dict:
    n = min(len(run), len(against))
    lags_s = run["start_s"].to_numpy()[:n] - against["start_s"].to_numpy()[:n]
    service_s = np.minimum(run["service_s"].to_numpy()[:n], against["service_s"].to_numpy()[:n])
    same = (
        (run["model"].to_numpy()[:n] == against["model"].to_numpy()[:n])
        & (run["batch_size"].to_numpy()[:n] == against["batch_size"].to_numpy()[:n])
        & (np.abs(lags_s) <= MATCH_WITHIN_SERVICE * service_s)
    )
    k = int(np.argmin(same)) if not same.all() else n
    lags_ms = lags_s[:k] * 1e3
    row = {
        "worker": worker,
        "matched_batches": k,
        "start_gap_p50_ms": float(np.median(np.abs(lags_ms))) if k else np.nan,
        "start_lag_p50_ms": float(np.median(lags_ms)) if k else np.nan,
        "parted": k < max(len(run), len(against)),
    }
    starts = []
    for name, side in (("run", run), ("against", against)):
        there = k < len(side)
        start = float(side["start_s"].iloc[k]) if there else np.nan
        row[f"{name}_model"] = str(side["model"].iloc[k]) if there else ""
        row[f"{name}_batch_size"] = int(side["batch_size"].iloc[k]) if there else 0
        row[f"{name}_start_s"] = start
        starts.append(start)
    row["parting_s"] = float(np.nanmin(starts)) if row["parted"] else np.nan
    return row


def validation_parting(
    real_runs: dict[str, pd.DataFrame],
    sim: pd.DataFrame,
    replicates: Sequence[pd.DataFrame] = (),
) -> pd.DataFrame:
    """Each real run (name -> its batches) against DIR/sim's batches; each later real run
    against the first; each simulated replicate (`sim-replicate-k`, k from 1) against DIR/sim
    (PARTING_COLUMNS)."""
    tables = [
        parting_table(b, a).assign(run=run, against=name)
        for run, b, name, a in comparison_pairs(real_runs, sim, replicates)
    ]
    return pd.concat(tables, ignore_index=True)[list(PARTING_COLUMNS)]


def comparison_pairs(real_runs: dict, sim, replicates: Sequence = ()) -> list[tuple]:
    """(run, its value, against, against's value): each real run against DIR/sim, each later
    real run against the first, each simulated replicate (`sim-replicate-k`) against DIR/sim;
    the values are the runs' batches, or their queries' workers."""
    pairs = [(run, value, SIM, sim) for run, value in real_runs.items()]
    (first, first_value), *later = real_runs.items()
    pairs += [(run, value, first, first_value) for run, value in later]
    pairs += [(f"sim-replicate-{k}", value, SIM, sim) for k, value in enumerate(replicates, 1)]
    return pairs


def parting_text(parting: pd.DataFrame, sim_folder: str) -> str:
    """The fidelity note's sentences: each real run's first parting from `sim_folder`'s
    batches (when, on which worker, what each served), how closely the batches before the
    partings kept time, and when the real runs part from each other and the replicates from
    `sim_folder`."""
    groups = parting_groups(parting)
    real = groups["real"]
    runs = []
    for run, rows in real.groupby("run", sort=False):
        parted = rows[rows["parted"]]
        if not len(parted):
            runs.append(f"{run} never parts ({int(rows['matched_batches'].sum())} batches)")
            continue
        first = parted.loc[parted["parting_s"].idxmin()]
        runs.append(
            f"{run} at {first['parting_s']:.3f} s on worker {first['worker']} (real "
            f"{_batch_text(first, 'run')}, simulated {_batch_text(first, 'against')}; "
            f"{len(parted)} of {len(rows)} workers part)"
        )
    matched = real["matched_batches"].to_numpy()
    kept = matched > 0
    timing = ""
    if kept.any():
        gap = np.median(real["start_gap_p50_ms"].to_numpy()[kept])
        lag = np.median(real["start_lag_p50_ms"].to_numpy()[kept])
        timing = (
            f"; before the partings, {int(matched.sum())} batches matched, and the median "
            f"worker's start a median {gap:.2f} ms from the simulated ones ({abs(lag):.2f} ms "
            f"{'later' if lag >= 0 else 'earlier'} as a signed median)"
        )
    text = f"Batch by batch against {sim_folder} ({PARTING_FILE}): {'; '.join(runs)}{timing}."
    among_real, replicates = groups["among_real"], groups["replicates"]
    spread = []
    if len(among_real):
        first = among_real["against"].iloc[0]
        spread.append(f"from {first}: {_first_partings(among_real)}")
    if len(replicates):
        spread.append(f"from {sim_folder}: {_first_partings(replicates)}")
    return text + (f" Each side's own runs part {'; '.join(spread)}." if spread else "")


ROUTING_FILE = "routing.csv"
ROUTING_COLUMNS = (
    "run",
    "against",
    "compared",  # queries whose first worker both runs name unambiguously
    "other_worker",  # of those, first served on another worker
    "first_query",  # the earliest arrival among them (-1: none)
    "first_arrival_s",
    "run_worker",
    "against_worker",
)
NOT_SERVED, AMBIGUOUS = -1, -2  # `first_workers`
START_TOLERANCE_S = 1e-5  # batches.csv keeps 9 significant digits


def first_workers(queries: pd.DataFrame, batches: pd.DataFrame) -> np.ndarray:
    """Per query (`queries`' row order), the worker of its first batch: the batch of its first
    model that started at its `start_s` (within START_TOLERANCE_S); NOT_SERVED for a query
    never served, AMBIGUOUS where two workers started a batch of that model then."""
    workers = np.full(len(queries), NOT_SERVED, dtype=np.int64)
    start = queries["start_s"].to_numpy(np.float64)
    model = queries["first_model"].to_numpy()
    for name, mine in batches.groupby("model"):
        starts = mine["start_s"].to_numpy(np.float64)
        order = np.argsort(starts, kind="stable")
        starts, slots = starts[order], mine["worker"].to_numpy(np.int64)[order]
        rows = np.flatnonzero((model == name) & ~np.isnan(start))
        lo = np.searchsorted(starts, start[rows] - START_TOLERANCE_S, side="left")
        hi = np.searchsorted(starts, start[rows] + START_TOLERANCE_S, side="right")
        found = hi - lo
        workers[rows[found == 1]] = slots[lo[found == 1]]
        workers[rows[found > 1]] = AMBIGUOUS
    return workers


def routing_row(run: np.ndarray, against: np.ndarray, arrival_s: np.ndarray) -> dict:
    """ROUTING_COLUMNS from `compared` on, for two runs' `first_workers` of the same trace."""
    known = (run >= 0) & (against >= 0)
    other = np.flatnonzero(known & (run != against))
    first = int(other[np.argmin(arrival_s[other])]) if len(other) else -1
    return {
        "compared": int(known.sum()),
        "other_worker": len(other),
        "first_query": first,
        "first_arrival_s": float(arrival_s[first]) if first >= 0 else np.nan,
        "run_worker": int(run[first]) if first >= 0 else -1,
        "against_worker": int(against[first]) if first >= 0 else -1,
    }


def validation_routing(
    real_runs: dict[str, np.ndarray],
    sim: np.ndarray,
    arrival_s: np.ndarray,
    replicates: Sequence[np.ndarray] = (),
) -> pd.DataFrame:
    """`validation_parting`'s pairs, query by query: each run's `first_workers` against the
    other's (ROUTING_COLUMNS); `arrival_s` the trace's arrival times (query order)."""
    rows = [
        {"run": run, "against": name, **routing_row(w, a, arrival_s)}
        for run, w, name, a in comparison_pairs(real_runs, sim, replicates)
    ]
    return pd.DataFrame(rows, columns=list(ROUTING_COLUMNS))


def routing_text(routing: pd.DataFrame, sim_folder: str) -> str:
    """The fidelity note's sentence on `validation_routing`'s table."""
    parts = []
    for row in routing.itertuples():
        against = sim_folder if row.against == SIM else row.against
        share = f"{row.other_worker} of {row.compared} queries on another worker"
        if row.first_query < 0:
            parts.append(f"{row.run} against {against}: none of {row.compared}")
            continue
        parts.append(
            f"{row.run} against {against}: {share}, the first query {row.first_query} "
            f"({row.first_arrival_s:.3f} s) on worker {row.run_worker} vs {row.against_worker}"
        )
    return f"Query by query, each one's first worker ({ROUTING_FILE}): {'; '.join(parts)}."


def earliest_partings(rows: pd.DataFrame) -> dict[str, float]:
    """Each run of `rows` (PARTING_COLUMNS) -> its earliest parting over the workers (NaN:
    never), in run order."""
    return {
        run: float(mine.loc[mine["parted"], "parting_s"].min())
        for run, mine in rows.groupby("run", sort=False)
    }


def parting_groups(parting: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`parting`'s rows by comparison: "real" (each real run against DIR/sim), "among_real"
    (the later real runs against the first), "replicates" (against DIR/sim)."""
    real_run = parting["run"].str.startswith("real-")
    return {
        "real": parting[real_run & (parting["against"] == SIM)],
        "among_real": parting[real_run & (parting["against"] != SIM)],
        "replicates": parting[parting["run"].str.startswith("sim-replicate-")],
    }


LISTED_PARTINGS = 4  # runs whose partings are listed one by one; more are summarised


def partings_summary(rows: pd.DataFrame) -> str | None:
    """Where more than LISTED_PARTINGS runs of `rows` are compared (validate's replicates),
    how many part and when (seconds: range and median); None for fewer, to be listed."""
    times = np.array(list(earliest_partings(rows).values()), dtype=np.float64)
    if len(times) <= LISTED_PARTINGS:
        return None
    parted = times[~np.isnan(times)]
    if not len(parted):
        return f"none of {len(times)} runs part"
    return (
        f"{len(parted)} of {len(times)} runs part, at {parted.min():.2f}–{parted.max():.2f} s "
        f"(median {np.median(parted):.2f})"
    )


def _first_partings(rows: pd.DataFrame) -> str:
    """Each run's earliest parting, in run order (`partings_summary` for many runs)."""
    return partings_summary(rows) or ", ".join(
        f"{run} at {s:.3f} s" if s == s else f"{run} never"
        for run, s in earliest_partings(rows).items()
    )


def _batch_text(row: pd.Series, side: str) -> str:
    size = int(row[f"{side}_batch_size"])
    if not size:
        return "no more batches"
    return f"{row[f'{side}_model']} x{size} at {row[f'{side}_start_s']:.3f} s"
