"""The policy's recorded inputs (observations.csv) and the planner replayed on them
(`serving.planner_inputs`, `serving.plan_replay`): a simulation's plans follow from its
recorded inputs call by call; the single inputs that decide a parting plan are found against
a policy whose boundary is known in closed form."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

import policies  # noqa: F401  (registers the adaptive policies)
from experiments.inputs import resolve_bundle, resolve_trace
from serving.loadgen import planner_log_writer, plans_frame
from serving.plan_replay import (
    deciding_inputs,
    plan_key,
    plan_replay_table,
    recorded_keys,
    replayed_plans,
)
from serving.planner_inputs import OBSERVATIONS_FILE, observations_frame, read_observations
from simulator.config import SimConfig
from simulator.controller import PlanRecord
from simulator.errors import InputError
from simulator.policy import Observation, Plan
from simulator.run import build_policy, run_simulation

MODELS = ("light", "heavy")
LIGHT = Plan(workers={"light": 2}, batch_size={"light": 1}, mix={"light": 1.0})
HEAVY = Plan(workers={"heavy": 2}, batch_size={"heavy": 1}, mix={"heavy": 1.0})


class QueuePolicy:
    """The heavy plan where the light model's queue delay, queue / arrival rate, exceeds 2 s
    (or the heavy plan is in force and the delay exceeds 1 s: a state the calls leave)."""

    def plan(self, o: Observation) -> Plan:
        delay_s = o.queue_len[0] / max(o.model_arrival_qps[0], 1e-9)
        return HEAVY if delay_s > (1.0 if o.current == HEAVY else 2.0) else LIGHT


def observation(now_s: float, queue: float, rate: float) -> Observation:
    return Observation(now_s, rate, rate, 0, (queue, 0.0), (rate, 0.0), 2, 10.0, None)


def test_a_simulations_plans_follow_from_its_recorded_inputs(tmp_path):
    bundle = resolve_bundle("default")
    config = SimConfig(n_workers=16, slo_s=16.0, time_scale=0.1)
    trace = resolve_trace("azure:peak=24,min=1,seconds_per_hour=0.2", bundle, config.seed)
    sim = run_simulation(bundle, trace, "hadis", config)
    planner_log_writer(sim.raw, bundle.model_names, config.tick_s)(tmp_path)
    names = bundle.model_names
    observations = read_observations(tmp_path / OBSERVATIONS_FILE, names, 16, 16.0)
    assert len(observations) == len(sim.raw.observations) > 10  # t = 0, then every 5 s
    assert [o.now_s for o in observations] == [5.0 * k for k in range(len(observations))]
    first = dataclasses.replace(sim.raw.observations[6], current=None)
    assert observations[6] == first  # every input to the last bit
    plans = pd.read_csv(tmp_path / "plans.csv")
    recorded = recorded_keys(plans, [o.now_s for o in observations], 0.5)
    replayed = replayed_plans(lambda: build_policy(bundle, "hadis", config, {}), observations)
    assert [plan_key(p, names) for p in replayed] == recorded
    assert len(set(recorded)) > 3  # the run changed its plan: the check could fail
    # a replay on other inputs gives other plans: the comparison can tell them apart
    halved = [
        dataclasses.replace(o, queue_len=tuple(q / 2 for q in o.queue_len)) for o in observations
    ]
    other = replayed_plans(lambda: build_policy(bundle, "hadis", config, {}), halved)
    assert [plan_key(p, names) for p in other] != recorded


def test_recorded_keys_take_the_plan_in_force_just_after_each_call():
    frame = plans_frame(
        [PlanRecord(0.0, 0.0, 0.0, LIGHT), PlanRecord(10.0012, 10.05, 5.0, HEAVY)], MODELS
    )
    keys = recorded_keys(frame, [0.0, 5.0, 10.0, 15.0], within_s=0.5)
    light, heavy = plan_key(LIGHT, MODELS), plan_key(HEAVY, MODELS)
    assert keys == [light, light, heavy, heavy] and light != heavy
    assert recorded_keys(frame.iloc[1:], [0.0], within_s=0.5) == [""]  # before any plan


def test_the_deciding_input_is_the_one_that_crosses_the_policys_boundary():
    # simulated: queue 3 at 2 qps (1.5 s: light); real: queue 5 at 2 qps (2.5 s: heavy) or
    # queue 3 at 1 qps (3 s: heavy); each alone crosses the 2 s boundary
    sim = [observation(0.0, 0.0, 1.0), observation(5.0, 3.0, 2.0)]
    real = observation(5.0, 5.0, 1.0)
    heavy = plan_key(HEAVY, MODELS)
    found = deciding_inputs(QueuePolicy, sim, real, 1, MODELS, heavy)
    assert found == ["queue_len_light", "model_arrival_qps_light"]
    # queue 4 at 1.8 qps: neither alone (4 at 2 qps: 2 s, not above; 3 at 1.8 qps: 1.67 s),
    # the model's pair does (2.22 s)
    both = observation(5.0, 4.0, 1.8)
    found = deciding_inputs(QueuePolicy, sim, both, 1, MODELS, heavy)
    assert found == ["queue_len_light+model_arrival_qps_light"]
    # queue 4 at 2 qps: not even the pair (2 s)
    assert deciding_inputs(QueuePolicy, sim, observation(5.0, 4.0, 2.0), 1, MODELS, heavy) == []


def test_the_deciding_inputs_start_from_the_state_the_earlier_calls_left():
    # the heavy plan in force after call 1 lowers the boundary to 1 s at call 2
    sim = [observation(0.0, 0.0, 1.0), observation(5.0, 3.0, 1.0), observation(10.0, 1.0, 1.0)]
    real = observation(10.0, 1.5, 1.0)  # 1.5 s: heavy only with the heavy plan in force
    assert deciding_inputs(QueuePolicy, sim, real, 2, MODELS, plan_key(HEAVY, MODELS)) == [
        "queue_len_light"
    ]


def write_run(folder, observations, plans):
    folder.mkdir()
    observations_frame(observations, MODELS).to_csv(folder / OBSERVATIONS_FILE, index=False)
    records = [PlanRecord(o.now_s, o.now_s, 0.0, p) for o, p in zip(observations, plans)]
    plans_frame(records, MODELS).to_csv(folder / "plans.csv", index=False)


def test_the_plan_replay_table_marks_the_parting_call_and_what_decided_it(tmp_path):
    sim = [observation(0.0, 0.0, 1.0), observation(5.0, 3.0, 2.0), observation(10.0, 0.0, 2.0)]
    write_run(tmp_path / "sim", sim, [LIGHT, LIGHT, LIGHT])
    real = [sim[0], observation(5.0, 5.0, 2.0), observation(10.0, 0.0, 2.0)]
    write_run(tmp_path / "real-1", real, [LIGHT, HEAVY, LIGHT])  # as its inputs give
    # a run whose plans do not follow from its inputs (a second decision core)
    write_run(tmp_path / "real-2", sim, [LIGHT, HEAVY, HEAVY])
    table = plan_replay_table(
        [tmp_path / "real-1", tmp_path / "real-2"],
        tmp_path / "sim",
        QueuePolicy,
        MODELS,
        2,
        10.0,
        within_s=0.5,
    )
    by_run = {run: rows.reset_index(drop=True) for run, rows in table.groupby("run")}
    assert by_run["real-1"].reproduced.all() and by_run["sim"].reproduced.all()
    assert by_run["real-2"].reproduced.tolist() == [True, False, False]
    assert by_run["real-1"].as_simulated.tolist() == [True, False, True]
    assert by_run["real-1"].deciding_inputs.tolist() == ["", "queue_len_light", ""]
    # real-2's inputs are the simulation's: no input of its decides its plan
    assert by_run["real-2"].deciding_inputs.tolist() == ["", "none", ""]


def test_observations_missing_a_column_are_refused_naming_it(tmp_path):
    path = tmp_path / OBSERVATIONS_FILE
    pd.DataFrame({"now_s": [0.0], "demand_qps": [1.0]}).to_csv(path, index=False)
    with pytest.raises(InputError, match=r"observations.csv: no column 'arrival_rate_qps'"):
        read_observations(path, MODELS, 2, 10.0)
