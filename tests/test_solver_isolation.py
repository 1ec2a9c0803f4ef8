"""HiGHS isolation: `policies.highs_solver` checks every solve, and what ran before in the
process (another thread count, other policies) cannot change a plan."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from pathlib import Path

import highspy
import numpy as np
import pytest

from policies.highs_solver import (
    ModelStatus,
    SolverError,
    new_highs,
    pass_rowwise_model,
    run_checked,
)
from policies.milp import CascadeOption, ModelProfile, plan_table, solve_plan

REPO_ROOT = Path(__file__).resolve().parents[1]
# max 5x + 4y  s.t.  6x + 4y <= 24,  x + 2y <= 6,  x, y integer >= 0.
# LP relaxation: (3, 1.5) with 21; integer optimum: (4, 0) with 20 (unique).
KNAPSACK_COST = np.array([-5.0, -4.0])
KNAPSACK_ROWS = ((6.0, 4.0, 24.0), (1.0, 2.0, 6.0))


@pytest.fixture(autouse=True)
def _no_scheduler_left_behind():
    """Tests here start HiGHS schedulers at other thread counts: none outlives its test."""
    yield
    highspy.Highs.resetGlobalScheduler(True)


def knapsack(**options) -> highspy.Highs:
    h = new_highs(**options)
    x = h.addIntegral(lb=0, ub=10, obj=KNAPSACK_COST[0])
    y = h.addIntegral(lb=0, ub=10, obj=KNAPSACK_COST[1])
    for a, b, rhs in KNAPSACK_ROWS:
        h.addConstr(a * x + b * y <= rhs)
    return h


def outside_highs(threads: int) -> None:
    """Restart this thread's HiGHS scheduler at `threads`, as code outside the project may."""
    highspy.Highs.resetGlobalScheduler(True)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    h.addVariable(lb=0.0, ub=1.0, obj=-1.0)
    assert h.run() == highspy.HighsStatus.kOk


def test_hand_milp_optimum_is_integral():
    h = knapsack()
    assert run_checked(h, "knapsack") == ModelStatus.kOptimal
    assert h.getInfo().objective_function_value == pytest.approx(-20.0)
    assert np.allclose(h.getSolution().col_value, [4.0, 0.0])


def test_rowwise_model_gives_the_same_optimum():
    h = new_highs(presolve="off")
    pass_rowwise_model(
        h,
        col_cost=KNAPSACK_COST,
        col_lower=np.zeros(2),
        col_upper=np.full(2, 10.0),
        row_lower=np.full(2, -np.inf),
        row_upper=np.array([r[2] for r in KNAPSACK_ROWS]),
        row_start=np.array([0, 2, 4]),
        col_index=np.array([0, 1, 0, 1]),
        value=np.array([r[i] for r in KNAPSACK_ROWS for i in (0, 1)]),
        integer=np.array([True, True]),
        label="knapsack",
    )
    assert run_checked(h, "knapsack") == ModelStatus.kOptimal
    assert np.allclose(h.getSolution().col_value, [4.0, 0.0])
    # continuous columns: the LP relaxation's optimum
    h.changeColsIntegrality(2, np.array([0, 1], dtype=np.int32),
                            np.array([highspy.HighsVarType.kContinuous] * 2))
    assert run_checked(h, "relaxation") == ModelStatus.kOptimal
    assert h.getInfo().objective_function_value == pytest.approx(-21.0)


@pytest.mark.parametrize("presolve", ["on", "off"])
def test_infeasible_model_is_a_status_not_an_error(presolve):
    h = knapsack(presolve=presolve)
    h.addRow(5.0, np.inf, 1, np.array([0], dtype=np.int32), np.array([1.0]))  # x >= 5
    assert run_checked(h, "infeasible") in (ModelStatus.kInfeasible,
                                            ModelStatus.kUnboundedOrInfeasible)


@pytest.mark.parametrize(
    ("options", "status_text"),
    [
        ({"time_limit": 0.0}, "'Time limit reached' without a feasible solution"),
        ({"mip_max_nodes": 0}, "'Solution limit reached'"),
    ],
)
def test_solver_failure_raises_naming_the_solve_and_status(options, status_text):
    with pytest.raises(SolverError, match="^knapsack: HiGHS solve failed") as info:
        run_checked(knapsack(**options), "knapsack")
    assert status_text in str(info.value)


def test_project_options_are_fixed_and_checked():
    with pytest.raises(ValueError, match="threads"):
        new_highs(threads=2)
    with pytest.raises(ValueError, match="no_such_option=1"):
        new_highs(no_such_option=1)
    h = new_highs(time_limit=5)
    assert h.getOptionValue("threads")[1] == 1
    assert h.getOptionValue("time_limit")[1] == 5.0


@pytest.mark.parametrize("where", ["this thread", "a new thread"])
def test_a_different_thread_count_started_earlier_does_not_fail_a_solve(where):
    """HiGHS fixes a thread's scheduler at its first run: a threads=1 run after a threads=2
    run fails with kError unless the scheduler is reset (what `run_checked` does)."""
    result: list[object] = []

    def solve():
        outside_highs(threads=2)
        bare = knapsack()
        result.append(bare.run())  # the bare HiGHS call: refused
        checked = knapsack()
        result.append(run_checked(checked, "knapsack"))
        result.append(checked.getInfo().objective_function_value)

    if where == "this thread":
        solve()
    else:
        worker = threading.Thread(target=solve)
        worker.start()
        worker.join()
    assert result == [highspy.HighsStatus.kError, ModelStatus.kOptimal, pytest.approx(-20.0)]


def test_a_planner_time_limit_is_a_solver_error_not_infeasible():
    profiles = (ModelProfile("A", (1, 2), (1.0, 1.6)), ModelProfile("B", (1, 2), (4.0, 6.0)))
    options = (CascadeOption.single(0, 30.0), CascadeOption.single(1, 20.0))
    table = plan_table(options, profiles)
    assert solve_plan(table, 0.6, (0.0, 0.0), 8.0, 3).status == "optimal"
    with pytest.raises(SolverError, match="HADIS MILP .*Time limit reached"):
        solve_plan(table, 0.6, (0.0, 0.0), 8.0, 3, time_limit_s=1e-9)


def test_first_solver_prints_nothing():
    code = "from test_solver_isolation import knapsack; knapsack().run()"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT / "tests",
                          capture_output=True, text=True, timeout=120, check=True)
    assert (done.stdout, done.stderr) == ("", "")


# ----------------------------------------------------------------------------- mixed policies

MIXED = ("proteus", "hadis", "diffserve", "router-only", "disc-only", "cache-d")
DEMANDS_QPS = (0.5, 4.0, 12.0, 24.0, 40.0, 12.0, 2.0)


def policy_plans(names) -> dict[str, list[dict]]:
    """Each policy's plans on the default bundle (16 workers, SLO 60 s) for a demand ramp,
    every plan seeing the previous one; in the order of `names`."""
    import policies  # noqa: F401  (registers the adaptive policies)
    from simulator.default_bundle import build_default_bundle
    from simulator.policy import Observation, PolicyContext, make_policy

    bundle = build_default_bundle()
    n = len(bundle.model_names)
    plans: dict[str, list[dict]] = {}
    for name in names:
        policy = make_policy(name, PolicyContext(bundle, 16, 60.0))
        current, plans[name] = None, []
        for step, demand in enumerate(DEMANDS_QPS):
            observation = Observation(
                now_s=5.0 * step,
                demand_qps=demand,
                arrival_rate_qps=demand,
                inflight=int(demand * 10),
                queue_len=tuple(float((step * (i + 1)) % 5) for i in range(n)),
                model_arrival_qps=tuple(demand / (i + 1) for i in range(n)),
                n_workers=16,
                slo_s=60.0,
                current=current,
            )
            current = policy.plan(observation)
            plans[name].append(json.loads(json.dumps(dataclasses.asdict(current), default=int)))
    return plans


def test_plans_do_not_depend_on_what_ran_before_in_the_process():
    outside_highs(threads=2)  # as Proteus once did: HiGHS's pool started at another size
    mixed = policy_plans(MIXED[:1])
    outside_highs(threads=2)
    mixed.update(policy_plans(MIXED[1:]))
    code = (
        "import json, sys; sys.path.insert(0, 'tests');"
        "from test_solver_isolation import MIXED, policy_plans;"
        "print(json.dumps(policy_plans(MIXED[::-1])))"
    )
    fresh = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=300, check=True)
    assert mixed == json.loads(fresh.stdout)
    # the ramp reaches both a feasible optimum and demand above capacity
    assert {plan["infeasible"] for plan in mixed["hadis"]} == {False, True}


def test_a_failed_proteus_solve_raises_instead_of_planning(monkeypatch):
    from policies import proteus

    monkeypatch.setattr(proteus, "new_highs", lambda **o: new_highs(**o, time_limit=0.0))
    args = (np.array([30.0, 20.0]), [(2,), (1,)], [(1.6,), (4.0,)], 1.0, np.zeros(2), 8.0, 3)
    with pytest.raises(SolverError, match="^proteus MILP: HiGHS solve failed .*Time limit"):
        proteus.solve_proteus(*args)
    monkeypatch.undo()
    share, workers, batch = proteus.solve_proteus(*args)
    # all of the 1 qps is served first (penalty); then as much as possible on B (FID 20, 0.25
    # qps per worker): one worker on A (1.25 qps) takes the rest, two on B carry 0.5
    assert share.tolist() == pytest.approx([0.5, 0.5])
    assert workers.tolist() == [1, 2] and batch.tolist() == [2, 1]


def test_proteus_breaks_ties_by_the_smallest_batch_size():
    """One worker at any batch size carries 0.5 qps: the plan must not be the solver's pick
    among equal-quality, equal-worker plans (highspy versions differed here)."""
    from policies.proteus import solve_proteus

    share, workers, batch = solve_proteus(
        np.array([20.0]), [(1, 2, 4)], [(1.0, 1.5, 2.0)], 0.5, np.zeros(1), 10.0, 4
    )
    assert share.tolist() == pytest.approx([1.0])
    assert workers.tolist() == [1] and batch.tolist() == [1]
    # more demand than batch 1 and 2 carry on one worker: the smallest batch that does
    share, workers, batch = solve_proteus(
        np.array([20.0]), [(1, 2, 4)], [(1.0, 1.5, 2.0)], 1.9, np.zeros(1), 10.0, 1
    )
    assert workers.tolist() == [1] and batch.tolist() == [4]
