"""The planner replayed on a run's recorded inputs (observations.csv): whether each plan a run
put in force follows from the inputs its policy read (`replayed_plans`; on a real run, the
serving path's decision core is the simulator's), and, where a real run's plan parts from
the simulation's at the same call, which of the real run's inputs, put alone into the
simulation's, gives the real plan (`deciding_inputs`): DIR/plan_replay.csv of a validation."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from serving.loadgen import plans_frame
from serving.planner_inputs import (
    OBSERVATIONS_FILE,
    PER_MODEL_INPUTS,
    inputs_of,
    read_observations,
    with_input,
)
from simulator.controller import PlanRecord
from simulator.policy import Observation, Plan, Policy

PLAN_REPLAY_FILE = "plan_replay.csv"
# a plan's columns in plans.csv (`serving.loadgen.plans_frame`) that say what it is
PLAN_KEY_COLUMNS = ("plan", "router_ratio", "disc_ratio")
PLAN_KEY_PREFIXES = ("workers_", "batch_size_", "mix_")


def plan_keys(plans: pd.DataFrame) -> list[str]:
    """Each plans.csv row's plan as one string (flow, thresholds, workers, batch sizes, mix;
    floats to 6 decimals), to compare plans read back from files with plans in memory."""
    columns = [c for c in plans.columns if c in PLAN_KEY_COLUMNS or c.startswith(PLAN_KEY_PREFIXES)]
    cells = plans[columns].apply(lambda c: c.astype(float).round(6) if c.dtype.kind in "fi" else c)
    return ["|".join(map(str, row)) for row in cells.itertuples(index=False)]


def plan_key(plan: Plan, model_names: Sequence[str]) -> str:
    """`plan` as `plan_keys` writes a plans.csv row."""
    return plan_keys(plans_frame([PlanRecord(0.0, 0.0, 0.0, plan)], model_names))[0]


def recorded_keys(plans: pd.DataFrame, call_s: Sequence[float], within_s: float) -> list[str]:
    """The plan a run put in force at each call of its policy: plans.csv's last plan planned
    at most `within_s` after the call (a real run's calls and plans are timed from the
    server's epoch and the client's start, a millisecond or two apart); '' before any."""
    keys = plan_keys(plans)
    planned = plans["planned_s"].to_numpy(dtype=np.float64)
    latest = np.searchsorted(planned, np.asarray(call_s, dtype=np.float64) + within_s, "right")
    return [keys[k - 1] if k > 0 else "" for k in latest.tolist()]


def replayed_plans(
    make_policy: Callable[[], Policy], observations: Sequence[Observation]
) -> list[Plan]:
    """The plans a fresh policy gives on `observations` in order, each call with the plan it
    gave before as the one in force (none at the first)."""
    return _replay(make_policy(), observations)


def _replay(policy: Policy, observations: Sequence[Observation]) -> list[Plan]:
    plans: list[Plan] = []
    for o in observations:
        plans.append(policy.plan(dataclasses.replace(o, current=plans[-1] if plans else None)))
    return plans


def deciding_inputs(
    make_policy: Callable[[], Policy],
    sim: Sequence[Observation],
    real: Observation,
    call: int,
    model_names: Sequence[str],
    real_key: str,
) -> list[str]:
    """The inputs (observations.csv's columns) whose real value alone, put into the
    simulation's input at call `call` (the policy in the state the simulation's earlier calls
    left it), makes the policy give the real plan (`real_key`, as `plan_key` writes it); where
    none does, the models whose per-model inputs together do (`a+b`: a queue estimate and an
    arrival rate, which a MILP reads as one queue delay, HADIS's D = alpha Q / lambda)."""
    policy = make_policy()
    earlier = _replay(policy, sim[:call])
    current = earlier[-1] if earlier else None
    real_inputs = dict(inputs_of(real, model_names))

    def gives_real_plan(columns: Sequence[str]) -> bool:
        changed = sim[call]
        for column in columns:
            changed = with_input(changed, column, real_inputs[column], model_names)
        plan = copy.deepcopy(policy).plan(dataclasses.replace(changed, current=current))
        return plan_key(plan, model_names) == real_key

    singles = [c for c in real_inputs if gives_real_plan([c])]
    if singles:
        return singles
    pairs = [[f"{name}_{m}" for name in PER_MODEL_INPUTS] for m in model_names]
    return ["+".join(pair) for pair in pairs if gives_real_plan(pair)]


def plan_replay_table(
    real_dirs: Sequence[Path],
    sim_dir: Path,
    make_policy: Callable[[], Policy],
    model_names: Sequence[str],
    n_workers: int,
    slo_s: float,
    within_s: float,
) -> pd.DataFrame:
    """One row per call of each run's policy (the real runs', then the simulation's): the
    plan the run put in force (`recorded`), whether a fresh policy replayed on the run's
    recorded inputs gives it (`reproduced`), whether it is the simulation's plan at the same
    call (`as_simulated`), and at a real run's first call whose plan is not, the real inputs
    that alone give it (`deciding_inputs`, ';'-joined, a model's pair where no single input
    does; 'none' where neither does; later calls start from states the simulation's policy
    was never in)."""

    def run(folder: Path):
        observations = read_observations(folder / OBSERVATIONS_FILE, model_names, n_workers, slo_s)
        call_s = [o.now_s for o in observations]
        recorded = recorded_keys(pd.read_csv(folder / "plans.csv"), call_s, within_s)
        replayed = [plan_key(p, model_names) for p in replayed_plans(make_policy, observations)]
        return observations, recorded, replayed

    runs = {folder: run(folder) for folder in (*real_dirs, sim_dir)}
    sim_observations, sim_recorded, _ = runs[sim_dir]
    rows = []
    for folder, (observations, recorded, replayed) in runs.items():
        parted = False
        for k, o in enumerate(observations):
            as_simulated = k < len(sim_recorded) and recorded[k] == sim_recorded[k]
            deciding = ""
            if not as_simulated and not parted and k < len(sim_observations):
                found = deciding_inputs(
                    make_policy, sim_observations, o, k, model_names, recorded[k]
                )
                deciding = ";".join(found) or "none"
            parted = parted or not as_simulated
            rows.append(
                {
                    "run": folder.name,
                    "call": k,
                    "now_s": o.now_s,
                    "recorded": recorded[k],
                    "reproduced": recorded[k] == replayed[k],
                    "as_simulated": as_simulated,
                    "deciding_inputs": deciding,
                }
            )
    return pd.DataFrame(rows)


def plan_replay_text(table: pd.DataFrame, sim_folder: str = "DIR/sim") -> str:
    """The note's sentence on `plan_replay_table`: per run, how many of its policy's calls
    a replay on its recorded inputs reproduces, and per real run the first call whose plan
    is not the simulation's, with the inputs that alone decide it."""
    parts = []
    for run, rows in table.groupby("run", sort=False):
        text = f"{run} {int(rows.reproduced.sum())} of {len(rows)} calls reproduced"
        parted = rows[~rows.as_simulated]
        if run != Path(sim_folder).name:
            if len(parted):
                first = parted.iloc[0]
                deciding = first.deciding_inputs.replace(";", ", ")
                text += (
                    f", parting from {sim_folder}'s plans first at {first.now_s:.1f} s, decided "
                    f"alone by {deciding if deciding != 'none' else 'no single input or pair'}"
                )
            else:
                text += f", every plan {sim_folder}'s"
        parts.append(text)
    return (
        f"Planner replayed on each run's recorded inputs (DIR/{PLAN_REPLAY_FILE}): "
        + "; ".join(parts)
        + "."
    )
