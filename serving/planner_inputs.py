"""The policy's input at each of its calls (DIR/observations.csv of a real or simulated run):
the serving controller's log of them read back in the replay's seconds, written as a table,
and read back from it (`serving.plan_replay` replays the planner on them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from simulator.errors import InputError
from simulator.policy import Observation

OBSERVATIONS_FILE = "observations.csv"
SCALAR_INPUTS = ("demand_qps", "arrival_rate_qps", "inflight")
PER_MODEL_INPUTS = ("queue_len", "model_arrival_qps")
ENTRY_MATCH_S = 1e-6  # a logged call this close before the replay's epoch is its first


def observations_from_entries(
    entries: Sequence[dict], epoch_s: float, n_workers: int, slo_s: float
) -> tuple[Observation, ...]:
    """The serving controller's log of the policy's inputs (`observation_entry`, wall times)
    from the replay's epoch on, in the replay's seconds; `current` is not logged (None)."""
    observations = []
    for e in entries:
        now_s = float(e["at_s"]) - epoch_s
        if now_s < -ENTRY_MATCH_S:  # a call before this replay (the server's initial plan)
            continue
        observations.append(
            Observation(
                now_s=max(now_s, 0.0),
                demand_qps=float(e["demand_qps"]),
                arrival_rate_qps=float(e["arrival_rate_qps"]),
                inflight=int(e["inflight"]),
                queue_len=tuple(float(x) for x in e["queue_len"]),
                model_arrival_qps=tuple(float(x) for x in e["model_arrival_qps"]),
                n_workers=n_workers,
                slo_s=slo_s,
                current=None,
            )
        )
    return tuple(observations)


def input_columns(model_names: Sequence[str]) -> list[str]:
    """observations.csv's input columns: the scalars, then each per-model input per model."""
    per_model = [f"{name}_{m}" for name in PER_MODEL_INPUTS for m in model_names]
    return [*SCALAR_INPUTS, *per_model]


def observations_frame(
    observations: Sequence[Observation], model_names: Sequence[str]
) -> pd.DataFrame:
    """One row per call of the policy (observations.csv): its time and every input it read
    but the plan in force (plans.csv has that) and the run's constants (workers, SLO)."""
    rows = [
        (o.now_s, *(getattr(o, k) for k in SCALAR_INPUTS), *o.queue_len, *o.model_arrival_qps)
        for o in observations
    ]
    return pd.DataFrame(rows, columns=["now_s", *input_columns(model_names)])


def read_observations(
    path: Path, model_names: Sequence[str], n_workers: int, slo_s: float
) -> tuple[Observation, ...]:
    """observations.csv back as the policy's inputs (`current` None); an InputError naming
    the file where a column is missing."""
    frame = pd.read_csv(path)
    columns = ["now_s", *input_columns(model_names)]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r} (expected {', '.join(columns)})")
    n = len(model_names)
    entries = [
        {
            "at_s": row[0],
            **dict(zip(SCALAR_INPUTS, row[1:4], strict=True)),
            "queue_len": row[4 : 4 + n],
            "model_arrival_qps": row[4 + n : 4 + 2 * n],
        }
        for row in frame[columns].itertuples(index=False)
    ]
    return observations_from_entries(entries, 0.0, n_workers, slo_s)


def inputs_of(o: Observation, model_names: Sequence[str]):
    """(column, value) of each input of `o`, in observations.csv's order."""
    values = [getattr(o, k) for k in SCALAR_INPUTS] + [*o.queue_len, *o.model_arrival_qps]
    return zip(input_columns(model_names), values, strict=True)


def with_input(
    o: Observation, column: str, value: float, model_names: Sequence[str]
) -> Observation:
    """`o` with one input (an observations.csv column) set to `value`."""
    if column in SCALAR_INPUTS:
        return dataclasses.replace(o, **{column: value})
    for name in PER_MODEL_INPUTS:
        for m, model in enumerate(model_names):
            if column == f"{name}_{model}":
                values = list(getattr(o, name))
                values[m] = value
                return dataclasses.replace(o, **{name: tuple(values)})
    raise ValueError(f"no input column {column!r}")
