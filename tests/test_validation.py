"""Simulator vs real serving (`t2isim validate`): the bundle's per-hop overheads in the
simulator, their measurement from a run's latencies, the fidelity table, and (Ray) a short
emulated validation end to end."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import threading

import numpy as np
import pandas as pd
import pytest

import serving.validate
from experiments.inputs import resolve_bundle, resolve_trace
from profiler.latency import (
    LatencyProfile,
    LatencyRow,
    rounds_latency_rows,
    write_latency_profile,
)
from serving.fidelity import (
    GOALS,
    expectation_ladder,
    fidelity_table,
    markdown,
    real_level,
    real_run_dirs,
)
from serving.fidelity_note import preemption_text, speed_text
from serving.hops import (
    hop_overheads_ms,
    measured_overheads_ms,
    overheads_spec,
    pooled_overheads_ms,
    with_overheads,
)
from serving.loadgen import SWAPS_FILE
from serving.plan_agreement import (
    agreement_shares,
    agreement_text,
    plan_inputs_table,
    plan_inputs_text,
    same_plan_share,
)
from serving.profile_rounds import rounds_bundles
from serving.served_shapes import SERVED_SHAPES_FILE
from serving.setup import ServeSetup
from serving.stack import DEFAULT_STACK, free_port
from simulator.bundle import HOPS, BundleError, check_overheads
from simulator.config import SimConfig
from simulator.errors import InputError, RunFailure
from simulator.results import write_run
from simulator.run import run_simulation

LIGHT, HEAVY = "SDXL-Lightning", "SD3.5-Large-Turbo"
OPTIONS = {"light": LIGHT, "heavy": HEAVY, "router_ratio": 0.2, "disc_ratio": 0.3}
# load_s = 0: no swap at t = 0, so a dispatch overhead shifts every query alike
CONFIG = SimConfig(n_workers=4, slo_s=3.0, time_scale=0.1, dispatch="jsq", load_s=0.0)
TRACE = "constant:rate=4,duration=30"  # light load: no query waits behind another

# six simulations per report (expectations over the first 5, then all 6): validate's 50
# (SIM_REPEATS) would take minutes over this file's reports
TEST_SIM_REPEATS = 6
run_validation = functools.partial(serving.validate.run_validation, sim_repeats=TEST_SIM_REPEATS)


@pytest.fixture(scope="module")
def bundle():
    return resolve_bundle("default")


def simulate(
    bundle, overheads: dict, trace: str = TRACE, config: SimConfig = CONFIG, replicate: int = 0
):
    b = with_overheads(bundle, overheads)
    trace = resolve_trace(trace, b, config.seed)
    return run_simulation(b, trace, "static-cascade", config, OPTIONS, replicate=replicate)


def test_overheads_delay_each_hop_by_their_value_and_default_to_none(bundle):
    assert bundle.overhead_s("dispatch") == bundle.overhead_s("escalation") == (0.0, 0.0)
    base = simulate(bundle, {}).queries
    explicit_zero = simulate(bundle, {"dispatch_overhead_ms": 0, "escalation_overhead_ms": 0})
    pd.testing.assert_frame_equal(base, explicit_zero.queries)
    slow = simulate(bundle, {"dispatch_overhead_ms": 40.0, "escalation_overhead_ms": 15.0})
    extra = (slow.queries.latency_s - base.latency_s).to_numpy()
    escalated = base.escalated.to_numpy()
    assert 20 < escalated.sum() < len(base) - 20
    np.testing.assert_allclose(extra[~escalated], 0.040, atol=1e-9)
    np.testing.assert_allclose(extra[escalated], 0.055, atol=1e-9)
    # decisions are the plan's, not the overheads'
    pd.testing.assert_series_equal(base.final_model, slow.queries.final_model)


def test_a_query_counts_as_queued_from_its_send_through_its_dispatch_hop(bundle):
    """As the serving path's ingress counts a query at a worker from the moment it sends it
    (`sent`), the simulator counts it queued at its model through its dispatch hop. At 4 QPS
    evenly spaced with a 500 ms hop, two queries are on their way at every tick and none
    waits at a worker: the planner's queue estimate settles at 2 (0 without the hop)."""
    trace = "constant:rate=4,duration=30"
    base = simulate(bundle, {}, trace).raw.queue_log
    sent = simulate(bundle, {"dispatch_overhead_ms": 500.0}, trace).raw.queue_log
    assert sum(base[-1]) == 0.0
    assert sum(sent[-1]) == pytest.approx(2.0, abs=1e-3)


def test_an_arrival_hop_delays_the_demand_count_and_nothing_else_when_routed_at_arrival(bundle):
    """Counted at the ingress but routed at its trace time (`route_at=arrival`), the arrival
    hop moves arrivals into later ticks of the demand estimate; no query's path or time
    changes, and its own random stream leaves the other hops' draws where they were
    (`route_at=ingress`, the default: tests/test_route_at.py)."""
    config = dataclasses.replace(CONFIG, route_at="arrival")
    dispatch = {"dispatch_overhead_ms": 30.0, "dispatch_overhead_p95_ms": 90.0}
    base = simulate(bundle, dispatch, config=config)
    late = simulate(bundle, {**dispatch, "arrival_overhead_ms": 430.0}, config=config)
    pd.testing.assert_frame_equal(base.queries, late.queries)
    arrival = resolve_trace(TRACE, bundle, config.seed).arrival_s
    shift_s = config.router_cost_s * config.time_scale  # the router's cost is part of the hop
    assert base.raw.demand_log[0] == np.sum(arrival + shift_s < 1.0)
    assert late.raw.demand_log[0] == np.sum(arrival + 0.430 < 1.0) < base.raw.demand_log[0]
    long_hops = {**dispatch, "arrival_overhead_ms": 5.0, "arrival_overhead_p95_ms": 900.0}
    spread = simulate(bundle, long_hops, config=config)
    pd.testing.assert_frame_equal(base.queries, spread.queries)
    assert spread.raw.demand_log != base.raw.demand_log  # some counts moved by a long hop


def test_a_hop_with_a_p95_is_lognormal_and_reproducible(bundle):
    overheads = {"dispatch_overhead_ms": 30.0, "dispatch_overhead_p95_ms": 90.0}
    trace = "constant:rate=4,duration=300"
    base = simulate(bundle, {}, trace).queries
    runs = [simulate(bundle, overheads, trace).queries for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    extra = (runs[0].latency_s - base.latency_s).to_numpy()
    assert np.median(extra) == pytest.approx(0.030, rel=0.1)
    assert np.percentile(extra, 95) == pytest.approx(0.090, rel=0.15)
    assert extra.min() > 0 and extra.max() > 0.120


def test_a_replicate_redraws_the_simulators_randomness_only(bundle):
    """The simulator's own spread: a replicate draws worker choices, mix draws and hops from
    another stream; the trace, seed and plans stay. With nothing random (jsq, quantile
    thresholds, deterministic service, no hop spread) replicates are identical: spread 0."""
    fixed = [simulate(bundle, {}, replicate=k) for k in (0, 1)]
    pd.testing.assert_frame_equal(fixed[0].queries, fixed[1].queries)
    assert "replicate" not in fixed[0].summary and fixed[1].summary["replicate"] == 1
    overheads = {"dispatch_overhead_ms": 30.0, "dispatch_overhead_p95_ms": 90.0}
    runs = [simulate(bundle, overheads, replicate=k).queries for k in (0, 0, 2)]
    pd.testing.assert_frame_equal(runs[0], runs[1])  # replicate 0 is the run itself
    assert (runs[0].latency_s != runs[2].latency_s).mean() > 0.9  # other hop draws
    for column in ("arrival_s", "prompt_id", "final_model", "bypassed", "escalated"):
        pd.testing.assert_series_equal(runs[0][column], runs[2][column])


def stack_queries(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A real run's queries as `serving.loadgen` writes them: `hops_s` per completed query, a
    lognormal dispatch hop (median 40 ms, p95 120 ms) once per query, and 15 ms more for the
    third of the queries served by two models; resent and dropped queries besides."""
    sigma = np.log(3.0) / 1.6448536269514722
    hops = 0.040 * np.exp(sigma * rng.standard_normal(n))
    visits = np.where(np.arange(n) % 3 == 0, 2, 1)
    hops += np.where(visits == 2, 0.015, 0.0)
    resends = np.where(np.arange(n) % 50 == 7, 1, 0)
    hops[resends == 1] += 5.0  # a resent query also paid a wasted visit: not a hop sample
    hops[np.arange(n) % 40 == 11] = np.nan  # dropped: no latency
    counted = 0.004 * np.exp(np.log(5.0) / 1.6448536269514722 * rng.standard_normal(n))
    counted[np.arange(n) % 100 == 3] = np.nan  # never reached the ingress
    return pd.DataFrame(
        {"hops_s": hops, "visits": visits, "resends": resends, "counted_after_s": counted}
    )


def test_measured_overheads_come_from_the_runs_own_timestamps():
    measured = hop_overheads_ms(stack_queries(30_000, np.random.default_rng(0)))
    assert measured["dispatch_overhead_ms"] == pytest.approx(40.0, rel=0.02)
    assert measured["dispatch_overhead_p95_ms"] == pytest.approx(120.0, rel=0.03)
    # the median of (dispatch + 15 ms) less the dispatch median: 15 ms
    assert measured["escalation_overhead_ms"] == pytest.approx(15.0, abs=1.5)
    assert measured["escalation_overhead_p95_ms"] == pytest.approx(45.0, rel=0.12)
    # every query the ingress counted, resent or not: median 4 ms, p95 20 ms
    assert measured["arrival_overhead_ms"] == pytest.approx(4.0, rel=0.02)
    assert measured["arrival_overhead_p95_ms"] == pytest.approx(20.0, rel=0.03)
    before = hop_overheads_ms(pd.DataFrame({"latency_s": [1.0]}))  # a run folder without them
    assert all(math.isnan(v) for v in before.values())
    measured = {
        "dispatch_overhead_ms": 40.0,
        "dispatch_overhead_p95_ms": 40.0,
        "escalation_overhead_ms": 15.0,
        "escalation_overhead_p95_ms": 15.0,
        "arrival_overhead_ms": math.nan,  # a run made before the ingress's count was recorded
        "arrival_overhead_p95_ms": math.nan,
    }
    pooled = pooled_overheads_ms(
        [measured, {**measured, "dispatch_overhead_ms": 50.0, "dispatch_overhead_p95_ms": 70.0}]
    )
    assert pooled == {
        "dispatch_overhead_ms": 45.0,
        "dispatch_overhead_p95_ms": 55.0,
        "escalation_overhead_ms": 15.0,
        "escalation_overhead_p95_ms": 15.0,
        "arrival_overhead_ms": 0.0,
        "arrival_overhead_p95_ms": 0.0,
        "route_overhead_ms": 0.0,  # no run measured it (`plan_hop_ms`)
        "route_overhead_p95_ms": 0.0,
        "plan_overhead_ms": 0.0,
        "plan_overhead_p95_ms": 0.0,
        "configure_overhead_ms": 0.0,
        "configure_overhead_p95_ms": 0.0,
    }
    # queueing the simulation lacks (a replica start) is no hop: clipped to the bundle's range
    assert (
        pooled_overheads_ms([{**measured, "dispatch_overhead_p95_ms": 1e6}])[
            "dispatch_overhead_p95_ms"
        ]
        == 60_000.0
    )
    # a hop faster in the real run than simulated (noise) is no overhead
    assert (
        pooled_overheads_ms([{**measured, "escalation_overhead_ms": -3.0}])[
            "escalation_overhead_ms"
        ]
        == 0.0
    )


@pytest.mark.parametrize(
    "overheads, named",
    [
        ([1], "overheads: expected an object"),
        ({"dispatch_ms": 1}, "unknown field 'dispatch_ms'"),
        ({"dispatch_overhead_ms": -1}, "overheads.dispatch_overhead_ms: value -1"),
        ({"escalation_overhead_ms": float("nan")}, "overheads.escalation_overhead_ms: value nan"),
        ({"dispatch_overhead_ms": True}, "overheads.dispatch_overhead_ms: value True"),
        ({"dispatch_overhead_ms": 5, "dispatch_overhead_p95_ms": 4}, "dispatch_overhead_p95_ms"),
        ({"dispatch_overhead_p95_ms": 4}, "dispatch_overhead_p95_ms: value 4 is neither"),
        ({"arrival_charge_ms": -0.5}, "overheads.arrival_charge_ms: value -0.5"),
        ({"arrival_charge": 1}, "unknown field 'arrival_charge'"),
    ],
)
def test_bad_overheads_are_one_line_errors_naming_the_field(overheads, named):
    with pytest.raises(BundleError) as info:
        check_overheads(overheads)
    message = str(info.value)
    assert named in message and "\n" not in message and message.startswith("bundle.json")


def test_a_bundle_folder_with_bad_overheads_is_refused_on_load(bundle, tmp_path):
    from simulator.bundle import load_bundle, write_bundle

    write_bundle(bundle, tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    meta["overheads"] = {"dispatch_overhead_ms": 12.5}
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(tmp_path / "b").overhead_s("dispatch") == (0.0125, 0.0125)
    meta["overheads"] = {"dispatch_overhead_ms": "fast"}
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="b/bundle.json: column overheads.dispatch_overhead_ms"):
        load_bundle(tmp_path / "b")


def test_overheads_option_takes_a_mode_or_a_file(tmp_path):
    assert overheads_spec("measured") == "measured"
    path = tmp_path / "o.json"
    path.write_text('{"dispatch_overhead_ms": 30, "dispatch_overhead_p95_ms": 80}')
    assert overheads_spec(str(path))["dispatch_overhead_p95_ms"] == 80
    path.write_text('{"dispatch_overhead_ms": -2}')
    with pytest.raises(InputError, match="dispatch_overhead_ms: value -2"):
        overheads_spec(str(path))
    with pytest.raises(InputError, match="expected measured, bundle, none"):
        overheads_spec("fast")


def test_fidelity_table_errors_and_goals():
    real = [
        {"p50_latency_s": 1.0, "p99_latency_s": 2.0, "slo_violation_ratio": 0.10},
        {"p50_latency_s": 1.2, "p99_latency_s": 2.2, "slo_violation_ratio": 0.14},
    ]
    sim = {"p50_latency_s": 1.155, "p99_latency_s": 2.5, "slo_violation_ratio": 0.135}
    base = {"p50_latency_s": 0.55, "p99_latency_s": 2.1, "slo_violation_ratio": 0.12}
    table = fidelity_table(real, sim, [1.0, 0.8], {"no_overhead": base}).set_index("metric")
    assert table.loc["p50_latency_s", "error"] == pytest.approx(5.0)
    assert table.loc["p50_latency_s", "goal_met"]
    assert table.loc["p50_latency_s", "error_no_overhead"] == pytest.approx(-50.0)
    assert table.loc["p99_latency_s", "error"] == pytest.approx(19.047619)
    assert not table.loc["p99_latency_s", "goal_met"]
    # 1.5 pp off, but within the real runs' spread (std 2.83 pp)
    assert table.loc["slo_violation_ratio", "error"] == pytest.approx(1.5)
    assert table.loc["slo_violation_ratio", "real_spread"] == pytest.approx(2.828427)
    assert table.loc["slo_violation_ratio", "goal_met"]
    assert table.loc["same_plan_share", "real_mean"] == pytest.approx(0.9)
    assert table.loc["same_plan_share", "goal_met"]
    assert table["simulated_spread"].isna().all()  # no replicates given
    replicates = [sim, {**sim, "p50_latency_s": 1.355, "slo_violation_ratio": 0.155}]
    spread = fidelity_table(real, sim, [1.0], replicates=replicates).set_index("metric")
    assert spread.loc["p50_latency_s", "simulated_spread"] == pytest.approx(
        np.std([1.155, 1.355], ddof=1) / 1.255 * 100  # % of the replicates' mean
    )
    assert spread.loc["slo_violation_ratio", "simulated_spread"] == pytest.approx(1.414214)  # pp
    assert spread.loc["p99_latency_s", "simulated_spread"] == 0.0
    assert np.isnan(spread.loc["same_plan_share", "simulated_spread"])
    strict = fidelity_table(real, sim, [1.0, 0.8], same_plan_thresholds=[0.6, 0.8])
    row = strict.set_index("metric").loc["same_plan_thresholds_share"]
    assert row["real_mean"] == pytest.approx(0.7) and row["goal_met"] is None  # reported only


def test_expectation_columns_against_hand_computed_means():
    """On expectations: the replicates' mean against the real mean, each with its standard
    error, the relative error's by the delta method; shares in percentage points."""
    real = [
        {
            "p50_latency_s": 8.0,
            "slo_violation_ratio": 0.10,
            "heavy_share": 0.3,
            "p99_latency_s": 20.0,
        },
        {
            "p50_latency_s": 10.0,
            "slo_violation_ratio": 0.30,
            "heavy_share": 0.3,
            "p99_latency_s": 20.0,
        },
    ]
    replicates = [
        {
            "p50_latency_s": 9.0,
            "slo_violation_ratio": 0.2,
            "heavy_share": 0.3,
            "p99_latency_s": 20.0,
        },
        {
            "p50_latency_s": 11.0,
            "slo_violation_ratio": 0.4,
            "heavy_share": 0.3,
            "p99_latency_s": 20.0,
        },
        {
            "p50_latency_s": 10.0,
            "slo_violation_ratio": 0.3,
            "heavy_share": 0.3,
            "p99_latency_s": 20.0,
        },
    ]
    table = fidelity_table(real, replicates[0], [1.0], replicates=replicates).set_index("metric")
    p50 = table.loc["p50_latency_s"]
    assert p50.simulated_mean == 10.0 and p50.simulated_se == pytest.approx(1 / np.sqrt(3))
    assert p50.real_se == pytest.approx(1.0)  # std sqrt(2) over sqrt(2) runs
    assert p50.expected_error == pytest.approx(100 / 9)  # 10 against 9
    se = np.hypot((1 / np.sqrt(3)) / 9, 10 * 1.0 / 81) * 100
    assert p50.expected_error_se == pytest.approx(se)
    assert not p50.expected_goal_met  # 11.1% > 5%, whatever the standard error
    shares = table.loc["slo_violation_ratio"]
    assert shares.expected_error == pytest.approx(10.0)  # pp
    assert shares.expected_error_se == pytest.approx(np.hypot(0.1 / np.sqrt(3), 0.1) * 100)
    assert shares.expected_goal_met  # within the real spread (14.1 pp)
    assert table.loc["heavy_share"].expected_goal_met is None  # no goal
    assert np.isnan(table.loc["same_plan_share"].expected_error)  # DIR/sim's alone
    single = fidelity_table(real, replicates[0], [1.0]).set_index("metric")
    assert np.isnan(single.loc["p50_latency_s"].expected_error)  # no replicates: no mean
    twelve = replicates * 3 + replicates[:2] + [{**replicates[0], "p50_latency_s": 16.0}]
    ladder = expectation_ladder(real, twelve, "timing")  # the first 5, 10, then all 12
    p50s = ladder[ladder.metric == "p50_latency_s"]
    assert p50s.replicates.tolist() == [5, 10, 12]
    assert p50s.simulated_mean.tolist() == pytest.approx([10.0, 9.9, 126 / 12])
    assert sorted(set(ladder.metric)) == sorted(GOALS)


def _plan_rows(labels: list[str], light_workers: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"plan": labels, "workers_A": light_workers})


def test_the_same_plan_over_pairs_compares_each_side_with_itself():
    """Two real runs on branch A and one on B (5-s epochs, 15 s): within the real runs one
    pair of three agrees throughout, two agree in the first epoch only; a simulation on A
    agrees with two of them."""
    a = _plan_rows(["A->B"] * 15, [4] * 15)
    b = _plan_rows(["A->B"] * 5 + ["C->B"] * 10, [4] * 5 + [2] * 10)
    shares = agreement_shares([a, a, b], [a, b], 5.0)
    assert shares["among_real"] == pytest.approx((1 + 1 / 3 + 1 / 3) / 3)
    assert shares["among_simulations"] == pytest.approx(1 / 3)
    # real A with sim A 1, with sim B 1/3 (twice); real B with sim A 1/3, sim B 1
    assert shares["real_with_simulations"] == pytest.approx((2 * (1 + 1 / 3) + 1 / 3 + 1) / 6)
    assert np.isnan(agreement_shares([a], [a], 5.0)["among_real"])  # one run: no pair
    text = agreement_text(shares, 3, 2)
    assert "among the 3 real runs 55.6%, among the 2 simulations 33.3%" in text


def test_same_plan_share_is_per_epoch_majority_not_the_switch_instant():
    """Plans change at epoch starts (5 s interval): the simulated run's at that second, the
    real run's a delivery delay later (its row still shows the old plan). Same decisions:
    share 1, where comparing each epoch's first second gave 1/3. A real plan that differs for
    most of the last epoch counts against it."""
    sim = _plan_rows(["A->B"] * 5 + ["C->B"] * 5 + ["A->B"] * 5, [4] * 5 + [2] * 5 + [4] * 5)
    late = _plan_rows(["A->B"] * 6 + ["C->B"] * 5 + ["A->B"] * 4, [4] * 6 + [2] * 5 + [4] * 4)
    assert same_plan_share(late, sim, 5.0) == 1.0
    other = late.copy()
    other.loc[11:, "workers_A"] = 3  # same flow, other workers: a different plan
    assert same_plan_share(other, sim, 5.0) == pytest.approx(2 / 3)
    assert np.isnan(same_plan_share(sim.iloc[:0], sim, 5.0))
    # thresholds: the same flow and workers with other ratios is another plan only when asked
    sim["router_ratio"], sim["disc_ratio"] = 0.3, 0.1 + 0.2  # 0.30000000000000004
    late["router_ratio"], late["disc_ratio"] = 0.3, 0.3  # as a real run's CSV gives it back
    late.loc[5:9, "router_ratio"] = 0.4  # the middle epoch's thresholds differ
    assert same_plan_share(late, sim, 5.0) == 1.0
    assert same_plan_share(late, sim, 5.0, thresholds=True) == pytest.approx(2 / 3)
    zero = sim.assign(disc_ratio=0.0)  # a run whose ratio is always 0: CSV reads it back as int
    assert same_plan_share(zero.assign(disc_ratio=0), zero, 5.0, thresholds=True) == 1.0


def test_plan_inputs_sit_side_by_side_at_each_replan():
    """At each re-plan (seconds 5 and 10 of a 5 s interval) the inputs both planners read, the
    real ones averaged over the runs, with the share of real runs whose plan is the
    simulation's; a real run without queue columns leaves them NaN, not 0."""
    sim = _plan_rows(["A->B"] * 5 + ["C->B"] * 5 + ["A->B"] * 5, [4] * 5 + [2] * 5 + [4] * 5)
    sim["demand_estimate_qps"] = np.arange(15.0)
    sim["queue_estimate_A"] = np.arange(15.0) / 10
    same = sim.copy()
    same["demand_estimate_qps"] += 1.0
    same["queue_estimate_A"] += 0.5
    other = same.copy()
    other.loc[10:, "workers_A"] = 3  # parts from the simulation in the last epoch
    other["demand_estimate_qps"] += 2.0
    table = plan_inputs_table([same, other], sim, 5.0)
    assert table["second"].tolist() == [5, 10]
    assert table["real_same_plan"].tolist() == [1.0, 0.5]
    assert table["sim_demand_estimate_qps"].tolist() == [5.0, 10.0]
    assert table["real_demand_estimate_qps"].tolist() == [7.0, 12.0]  # (+1 and +3) / 2
    assert table["real_queue_estimate_A"].tolist() == pytest.approx([1.0, 1.5])
    text = plan_inputs_text(table)
    assert "1 re-plans where the real plans agree: demand |real - sim| median 2.00 qps" in text
    assert "total queue |real - sim| median 0.50 (simulated 1.00)" in text
    unrecorded = plan_inputs_table([same.drop(columns="queue_estimate_A")], sim, 5.0)
    assert unrecorded["real_queue_estimate_A"].isna().all()
    assert "queue estimates not recorded" in plan_inputs_text(unrecorded)


def as_served(fake) -> dict:
    """A stand-in run's config as the load generator records it: served by the default stack."""
    return {**fake.config, "serving": {"stack": DEFAULT_STACK}}


def test_validate_reuses_real_runs_and_measures_their_overheads(bundle, tmp_path):
    """Stand-in "real" runs (simulations with known overheads, their stack's share recorded)
    re-reported: the measured overheads are the injected ones and the compared simulation
    matches them."""
    setup = ServeSetup(
        "default",
        "static-cascade",
        OPTIONS,
        CONFIG.to_dict(),
        dispatch="jsq",  # as validate
    )
    injected = {
        "dispatch_overhead_ms": 35.0,
        "escalation_overhead_ms": 12.0,
        "arrival_overhead_ms": 4.0,
    }
    fake = simulate(bundle, injected)
    queries = fake.queries.copy()  # with the stack's share as a real run records it
    escalated = queries["escalated"].to_numpy()
    queries["visits"] = np.where(escalated, 2, 1)
    queries["resends"] = 0
    queries["hops_s"] = np.where(queries["outcome"] != "drop", 0.035 + 0.012 * escalated, np.nan)
    queries["counted_after_s"] = 0.004
    for k in (1, 2):
        summary = {**fake.summary, "trace_spec": TRACE}
        write_run(tmp_path / f"real-{k}", queries, fake.timeseries, summary, as_served(fake), [])
    (tmp_path / "sim-measured-overheads").mkdir()  # an earlier report's, in-sample mode
    (tmp_path / "sim-measured-overheads" / "summary.json").write_text("{}")
    table = run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    assert not (tmp_path / "sim-measured-overheads").exists()  # not this report's: removed
    assert json.loads((tmp_path / "overheads.json").read_text()) == {
        "dispatch_overhead_ms": 35.0,
        "dispatch_overhead_p95_ms": 35.0,
        "escalation_overhead_ms": 12.0,
        "escalation_overhead_p95_ms": 12.0,
        "arrival_overhead_ms": 4.0,
        "arrival_overhead_p95_ms": 4.0,
        "route_overhead_ms": 0.0,  # no plans.csv in these stand-in runs: not measured
        "route_overhead_p95_ms": 0.0,
        "plan_overhead_ms": 0.0,
        "plan_overhead_p95_ms": 0.0,
        "configure_overhead_ms": 0.0,
        "configure_overhead_p95_ms": 0.0,
    }
    errors = table.set_index("metric")["error"]
    assert errors[["p50_latency_s", "p90_latency_s", "p99_latency_s"]].abs().max() < 1e-6
    without = table.set_index("metric")["error_no_overhead"]
    assert without["p50_latency_s"] < -10  # the overhead-free simulation is too fast
    # four goals met by DIR/sim, three on expectations (the same plan is DIR/sim's alone)
    assert (tmp_path / "fidelity.md").read_text().count("| yes |") == 7
    ladder = pd.read_csv(tmp_path / "expectation.csv")
    assert ladder.replicates.tolist()[:2] == [5, TEST_SIM_REPEATS]
    assert ladder.expected_goal_met.all()
    assert len(pd.read_csv(tmp_path / "overheads.csv")) == 2
    # each run held out: the other run's hops are the same injected ones
    held_out = pd.read_csv(tmp_path / "leave_one_out.csv")
    assert held_out["run"].tolist() == ["real-1", "real-2"]
    assert (held_out["dispatch_overhead_ms"] == 35.0).all()
    loo = table.set_index("metric")["error_leave_one_out"]
    assert loo[["p50_latency_s", "p99_latency_s", "same_plan_share"]].abs().max() < 1e-6
    # one more simulation, with other overheads (none here): its own error column
    table = run_validation(
        setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None, compare_overheads="none"
    ).set_index("metric")
    pd.testing.assert_series_equal(
        table["error_compared"], table["error_no_overhead"], check_names=False
    )
    report = (tmp_path / "fidelity.md").read_text()
    assert "Compared simulation: hops (none) dispatch 0.0 ms" in report
    # hops read from a file: the report names it
    run_validation(
        setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None,
        compare_overheads={}, compare_overheads_file="cal/hops.json",
    )  # fmt: skip
    assert (
        "Compared simulation: hops (cal/hops.json) dispatch 0.0 ms"
        in (tmp_path / "fidelity.md").read_text()
    )
    assert sorted(d.name for d in tmp_path.iterdir() if d.is_dir()) == [
        "real-1",
        "real-2",
        "sim",
        "sim-compared",
        "sim-no-overhead",
    ]
    plans = pd.read_csv(tmp_path / "sim" / "plans.csv")  # the static plan, from t = 0
    assert len(plans) == 1 and plans.loc[0, "applied_s"] == 0
    assert plans.loc[0, "disc_ratio"] == 0.3 and plans.loc[0, f"workers_{LIGHT}"] > 0
    estimates = pd.read_csv(tmp_path / "sim" / "estimates.csv")  # past the trace's last second
    last_second = pd.read_csv(tmp_path / "sim" / "timeseries.csv").second.iloc[-1]
    assert estimates.tick_end_s.iloc[-1] > last_second
    # service times measured in another experiment: as profiled, the compared simulation is
    # DIR/sim's; 1.5x slower, it is slower
    served = bundle.latency.assign(profiled_p50_s=bundle.latency["latency_p50_s"])
    served.to_csv(tmp_path / "same.csv", index=False)
    slower = served.assign(
        latency_p50_s=1.5 * served["latency_p50_s"], latency_p95_s=1.5 * served["latency_p95_s"]
    )
    slower.to_csv(tmp_path / "slower.csv", index=False)
    same = tmp_path / "same.csv"
    table = run_validation(
        setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None, compare_served_latency=same
    ).set_index("metric")
    plan_rows = ["same_plan_share", "same_plan_thresholds_share"]  # plans: DIR/sim's only
    compared = table["error_compared"].drop(plan_rows)
    expected = table["error"].drop(plan_rows)
    pd.testing.assert_series_equal(compared, expected, check_names=False)
    assert f"the latency profile in {same}" in (tmp_path / "fidelity.md").read_text()
    assert "error_compared_served_tails" not in table.columns  # a profile: no served tails
    # a served_latency.csv with its batches' own tails: the emulated backend's workers serve
    # each batch at its p50, so no simulation with them (the diffusers test runs one)
    wide = served.assign(served_p95_s=3 * served["latency_p95_s"], served_p05_s=np.nan)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    table = run_validation(
        setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None,
        compare_served_latency=tmp_path / "wide.csv",
    ).set_index("metric")  # fmt: skip
    assert "error_compared_served_tails" not in table.columns
    table = run_validation(
        setup,
        TRACE,
        tmp_path,
        reuse_real=True,
        log=lambda s: None,
        compare_served_latency=tmp_path / "slower.csv",
    ).set_index("metric")
    assert table.loc["p50_latency_s", "error_compared"] > table.loc["p50_latency_s", "error"] + 20
    for name, broken, message in (
        ("absent.csv", None, "no such file"),
        ("models.csv", served[served["model"] != "SD3.5-Large"], "models and batch sizes are not"),
        ("other.csv", served.assign(profiled_p50_s=2.0), "another latency profile than"),
        ("falling.csv", served.assign(latency_p50_s=1.0 / served["batch_size"]), "latency.csv"),
    ):
        if broken is not None:
            broken.to_csv(tmp_path / name, index=False)
        with pytest.raises(InputError, match=f"--compare-served-latency '.*{name}': .*{message}"):
            run_validation(
                setup,
                TRACE,
                tmp_path,
                reuse_real=True,
                log=lambda s: None,
                compare_served_latency=tmp_path / name,
            )
    with pytest.raises(InputError, match="not a replay of this policy"):
        sim = {**CONFIG.to_dict(), "seed": 1}
        other = ServeSetup("default", "static-cascade", OPTIONS, sim, dispatch="jsq")
        run_validation(other, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    # how the simulator models the serving path's protocol is no part of a replay
    modelled = {**CONFIG.to_dict(), "plan_switch": "together", "route_at": "arrival"}
    other = ServeSetup("default", "static-cascade", OPTIONS, modelled, dispatch="jsq")
    run_validation(other, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    shipped = dataclasses.replace(setup, stack="shipped")
    with pytest.raises(InputError, match="served by the 'lean' Serve stack, not 'shipped'"):
        run_validation(shipped, TRACE, tmp_path, reuse_real=True, log=lambda s: None)


def _drop_key(path, key: str) -> None:
    data = json.loads(path.read_text())
    del data[key]
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("file", "damage", "message"),
    [
        ("queries.parquet", lambda p: p.write_text("junk"), "queries.parquet: cannot read"),
        (
            "queries.parquet",
            lambda p: pd.read_parquet(p).astype({"latency_s": str}).to_parquet(p),
            "queries.parquet: column latency_s: not numeric",
        ),
        ("timeseries.csv", lambda p: p.write_text("x\n1\n"), "column second: missing"),
        (
            "summary.json",
            lambda p: _drop_key(p, "heavy_share"),
            "summary.json: key 'heavy_share': missing",
        ),
        ("config.json", lambda p: p.write_text("[" * 30_000 + "]" * 30_000), "nested too deeply"),
    ],
)
def test_a_damaged_real_run_is_one_error_before_anything_is_written(
    bundle, tmp_path, file, damage, message
):
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    fake = simulate(bundle, {})
    queries = fake.queries.assign(visits=1, resends=0, hops_s=0.0)
    for k in (1, 2):
        summary = {**fake.summary, "trace_spec": TRACE}
        write_run(tmp_path / f"real-{k}", queries, fake.timeseries, summary, as_served(fake), [])
    damage(tmp_path / "real-2" / file)
    with pytest.raises(InputError, match=re.escape(message)):
        run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    assert sorted(d.name for d in tmp_path.iterdir()) == ["real-1", "real-2"]


def test_a_plan_hop_beyond_the_route_hop_reports_the_plans_switched_together(bundle, tmp_path):
    """Stand-in real runs whose re-plans reached the ingress 15 ms after their ticks and their
    workers 20 ms later (no swaps.csv: the older estimate): the route hop is 15 ms, the plan
    hop 35 ms, and the simulation with `plan_switch=together` is reported beside, with its
    sentence; with their swaps logged, the configure hop too, and `routing-first` beside. The
    static cascade never re-plans, so each is DIR/sim's run."""
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    fake = simulate(bundle, {})
    queries = fake.queries.assign(visits=1, resends=0, hops_s=0.0)
    plans = pd.DataFrame({"planned_s": [0.0, 5.0, 10.0], "applied_s": [0.0, 5.015, 10.015]})
    for k in (1, 2):
        summary = {
            **fake.summary,
            "trace_spec": TRACE,
            "configure_delay_s": {"count": 2, "median": 0.02, "max": 0.03},
        }
        run = tmp_path / f"real-{k}"
        write_run(run, queries, fake.timeseries, summary, as_served(fake), [])
        plans.to_csv(run / "plans.csv", index=False)

    def reported_beside(column: str, sentence: str) -> dict:
        """The measured hops; the column `column` beside DIR/sim's (the same run: the static
        cascade never re-plans) and its sentence in fidelity.md."""
        table = run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
        rows = table.set_index("metric").drop(["same_plan_share", "same_plan_thresholds_share"])
        pd.testing.assert_series_equal(rows[column], rows["error"], check_names=False)
        assert sentence in (tmp_path / "fidelity.md").read_text()
        return json.loads((tmp_path / "overheads.json").read_text())

    hops = reported_beside(
        "error_plan_switch_together", "Error plan switch together: a re-plan's routing"
    )
    assert hops["route_overhead_ms"] == pytest.approx(15.0)
    assert hops["plan_overhead_ms"] == pytest.approx(35.0)
    assert hops["configure_overhead_ms"] == 0.0  # no swaps.csv: no configure hop, no column
    assert "error_plan_switch_routing_first" not in pd.read_csv(tmp_path / "fidelity.csv")
    # runs that logged their swaps: 10, 20 ms after the first re-plan's `set_plan` (ranks 1
    # and 2: 10 ms a step), 15 ms after the second's: a 10 ms configure hop, reported beside
    swaps = pd.DataFrame(
        {"requested_s": [5.001, 5.001, 10.001], "configured_s": [5.025, 5.035, 10.030]}
    )
    for k in (1, 2):
        swaps.to_csv(tmp_path / f"real-{k}" / SWAPS_FILE, index=False)
    hops = reported_beside(
        "error_plan_switch_routing_first", "Error plan switch routing first: a re-plan's workers"
    )
    assert hops["plan_overhead_ms"] == pytest.approx(30.0)
    assert hops["configure_overhead_ms"] == pytest.approx(10.0)
    # the same hops from the run folders alone (another experiment's calibration takes them)
    assert measured_overheads_ms(real_run_dirs(tmp_path)) == hops


def test_a_failed_validation_leaves_the_older_report_whole(bundle, tmp_path, monkeypatch):
    """A fresh validation that fails after its first real run leaves the older report in DIR
    byte for byte (it is written to a staging folder that replaces DIR at the end); a
    re-report interrupted leaves the real runs and no fidelity.csv, so it reads as unfinished."""
    from serving import validate

    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    fake = simulate(bundle, {})
    queries = fake.queries.assign(visits=1, resends=0, hops_s=0.0)
    out = tmp_path / "report"
    summary = {**fake.summary, "trace_spec": TRACE}
    for k in (1, 2):
        write_run(out / f"real-{k}", queries, fake.timeseries, summary, as_served(fake), [])
    run_validation(setup, TRACE, out, reuse_real=True, log=lambda s: None)
    older = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def first_run_then_fail(setup, trace_spec, folder, *args):
        other = queries.assign(hops_s=0.001)  # another run than the older report's real-1
        write_run(folder / "real-1", other, fake.timeseries, summary, as_served(fake), [])
        raise RunFailure("real run 2: Ray Serve did not start")

    monkeypatch.setattr(validate, "_real_runs", first_run_then_fail)
    with pytest.raises(RunFailure, match="real run 2"):
        run_validation(setup, TRACE, out, log=lambda s: None)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == older
    assert [d.name for d in tmp_path.iterdir()] == ["report"]  # no staging folder left

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(validate, "plot_overlay", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_validation(setup, TRACE, out, reuse_real=True, log=lambda s: None)
    assert not (out / "fidelity.csv").exists() and not (out / "fidelity.md").exists()
    assert (out / "real-1" / "summary.json").is_file() and (out / "real-2").is_dir()


def test_each_real_run_held_out_is_judged_with_the_other_runs_hops(bundle, tmp_path):
    """Stand-in real runs with 30 and 50 ms dispatch hops: held out, the first is simulated
    with 50 ms (too slow by 20 ms a query), the second with 30 ms (too fast by 20 ms); the
    in-sample simulation applies their mean, 40 ms."""
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    for k, hop_ms in ((1, 30.0), (2, 50.0)):
        fake = simulate(bundle, {"dispatch_overhead_ms": hop_ms})
        queries = fake.queries.assign(visits=1, resends=0, hops_s=hop_ms / 1e3)
        queries = queries[~queries["escalated"]]  # one-visit queries: the dispatch hop only
        summary = {**fake.summary, "trace_spec": TRACE}
        write_run(tmp_path / f"real-{k}", queries, fake.timeseries, summary, as_served(fake), [])
    table = run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    held_out = pd.read_csv(tmp_path / "leave_one_out.csv").set_index("run")
    assert held_out["dispatch_overhead_ms"].tolist() == [50.0, 30.0]
    p50 = {
        k: simulate(bundle, {"dispatch_overhead_ms": h}).summary["p50_latency_s"]
        for k, h in ((1, 30.0), (2, 50.0))
    }
    shift = 0.020 / np.array([p50[1], p50[2]]) * 100
    np.testing.assert_allclose(
        held_out["p50_latency_s"].to_numpy(), [shift[0], -shift[1]], rtol=0.05
    )
    rows = table.set_index("metric")
    assert rows.loc["p50_latency_s", "error_leave_one_out"] == pytest.approx(
        held_out["p50_latency_s"].mean()
    )
    assert "Error leave one out" in (tmp_path / "fidelity.md").read_text()
    assert "error_leave_one_out_served" not in table.columns  # no batches.csv: no served column
    assert not (tmp_path / "served_latency.csv").exists()


def write_served_runs(bundle, folder, light_ratios: np.ndarray) -> None:
    """Two real runs (a simulation standing in, 30 ms hops) whose light worker served one
    batch of one per ratio, each `ratio` x its profiled latency (plus the discriminator)."""
    fake = simulate(bundle, {"dispatch_overhead_ms": 30.0})
    light_s = bundle.latency_table_s[bundle.model_names.index(LIGHT)][1] * CONFIG.time_scale
    batches = pd.DataFrame(
        {
            "worker": 0,
            "model": LIGHT,
            "start_s": np.arange(float(len(light_ratios))),
            "service_s": light_s * light_ratios + CONFIG.disc_cost_s * CONFIG.time_scale,
            "batch_size": 1,
            "judged": True,
        }
    )
    for k in (1, 2):
        queries = fake.queries.assign(visits=1, resends=0, hops_s=0.030)
        summary = {**fake.summary, "trace_spec": TRACE}
        write_run(folder / f"real-{k}", queries, fake.timeseries, summary, as_served(fake), [])
        batches.to_csv(folder / f"real-{k}" / "batches.csv", index=False)


def test_served_service_times_from_the_real_runs_batches(bundle, tmp_path):
    """Real runs whose workers served the light model twice as slowly as profiled: the
    held-out simulation with their service times is slower than the profile's."""
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    write_served_runs(bundle, tmp_path, np.full(10, 2.0))
    table = run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    served = pd.read_csv(tmp_path / "served_latency.csv").set_index(["model", "batch_size"])
    assert served.loc[(LIGHT, 1), "ratio"] == pytest.approx(2.0)
    assert served.loc[(LIGHT, 1), "served_batches"] == 20
    rows = table.set_index("metric")
    assert rows.loc["p50_latency_s", "error_leave_one_out_served"] > 10
    assert abs(rows.loc["p50_latency_s", "error_leave_one_out"]) < 5
    held_out = pd.read_csv(tmp_path / "leave_one_out.csv")
    # emulated: no tails
    assert held_out["latency"].tolist() == ["profile", "served", "profile_arrival_charge"] * 2


def test_the_arrival_charge_is_measured_and_simulated_beside(bundle, tmp_path):
    """Real runs whose light batches were prolonged 40 ms per arrival while they ran: the
    charge measured per run and over all, and the simulations with it in their own columns
    (DIR/sim is the committed protocol's, without it)."""
    write_served_runs(bundle, tmp_path, np.full(60, 1.0))
    rng = np.random.default_rng(5)
    for k in (1, 2):
        run = tmp_path / f"real-{k}"
        arrival_s = np.sort(pd.read_parquet(run / "queries.parquet")["arrival_s"].to_numpy())
        batches = pd.read_csv(run / "batches.csv")
        start = np.sort(rng.uniform(0.0, 29.0, len(batches)))
        service = batches["service_s"].to_numpy() * np.exp(0.05 * rng.standard_normal(len(start)))
        for i in range(len(start)):  # arrivals while it ran, its extensions' too
            counted = 0
            while True:
                n = np.searchsorted(arrival_s, start[i] + service[i]) - np.searchsorted(
                    arrival_s, start[i]
                )
                if n == counted:
                    break
                service[i] += (n - counted) * 0.040
                counted = n
        batches.assign(start_s=start, service_s=service).to_csv(run / "batches.csv", index=False)
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    table = run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    charge = pd.read_csv(tmp_path / "arrival_charge.csv").set_index("run")
    assert charge.index.tolist() == ["real-1", "real-2", "all"]
    assert charge.loc["all", "batches"] == 120 and charge.loc["all", "runs"] == 2
    assert abs(charge.loc["all", "charge_ms"] - 40.0) < 3 * charge.loc["all", "charge_se_ms"]
    rows = table.set_index("metric")  # at this light load no arrival meets a simulated batch
    for column in ("error_arrival_charge", "error_leave_one_out_arrival_charge"):
        assert math.isfinite(rows.loc["p50_latency_s", column])
    report = (tmp_path / "fidelity.md").read_text()
    assert "Error arrival charge: DIR/sim with every batch running" in report
    assert json.loads((tmp_path / "overheads.json").read_text()).keys() == {
        f"{hop}_overhead{q}_ms" for hop in HOPS for q in ("", "_p95")
    }  # the hops alone: a comparison with these overheads never takes the charge


def test_served_tails_are_simulated_where_batch_times_vary(bundle, tmp_path, monkeypatch):
    """Workers simulated with varying batch times (as the diffusers backend's): the held-out
    simulation with the other runs' own p95 and p05 beside the profile's shape, and a
    compared served_latency.csv with a wide served p95 makes a slower tail."""
    import serving.setup

    monkeypatch.setitem(serving.setup.SIMULATED_SERVICE_TIME, "emulated", "lognormal")
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    write_served_runs(bundle, tmp_path, np.linspace(0.5, 4.0, 60))
    table = run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    held_out = pd.read_csv(tmp_path / "leave_one_out.csv")
    latencies = ["profile", "served", "served_tails", "profile_arrival_charge"]
    assert held_out["latency"].tolist() == latencies * 2
    rows = table.set_index("metric")
    assert math.isfinite(rows.loc["p99_latency_s", "error_leave_one_out_served_tails"])
    assert "Error leave one out served tails" in (tmp_path / "fidelity.md").read_text()
    served = pd.read_csv(tmp_path / "served_latency.csv")
    own = served["served_p95_s"].notna()
    wide = served.assign(served_p95_s=np.where(own, 3 * served["latency_p95_s"], np.nan))
    wide.to_csv(tmp_path / "wide.csv", index=False)
    table = run_validation(
        setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None,
        compare_served_latency=tmp_path / "wide.csv",
    ).set_index("metric")  # fmt: skip
    p99 = table.loc["p99_latency_s"]
    assert p99["error_compared_served_tails"] > p99["error_compared"] + 5
    assert "error compared served tails" in (tmp_path / "fidelity.md").read_text()
    assert "Error leave one out served" in (tmp_path / "fidelity.md").read_text()


def test_measured_shapes_are_written_and_simulated_where_batch_times_vary(
    bundle, tmp_path, monkeypatch
):
    """Real runs whose light batches took their profile 80% of the time and 4 times it
    otherwise: DIR/served_shapes.csv holds that shape, and the simulations drawing it (held
    out, and compared from a copy of this validation) have a slower tail than the
    lognormals through the same p50."""
    import serving.setup

    monkeypatch.setitem(serving.setup.SIMULATED_SERVICE_TIME, "emulated", "lognormal")
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    write_served_runs(bundle, tmp_path, np.r_[np.full(80, 1.0), np.full(20, 4.0)])
    run_validation(setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None)
    shapes = pd.read_csv(tmp_path / SERVED_SHAPES_FILE)
    light = shapes[(shapes["kind"] == "latency") & (shapes["name"] == LIGHT)]
    assert light["batch_size"].unique().tolist() == [1]
    assert light["ratio"].iloc[70] == pytest.approx(1.0) and light["ratio"].iloc[90] > 3.9
    assert "dispatch" in shapes.loc[shapes["kind"] == "hop", "name"].tolist()
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for file in ("served_latency.csv", SERVED_SHAPES_FILE):
        (calibration / file).write_bytes((tmp_path / file).read_bytes())
    table = run_validation(
        setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None,
        compare_served_latency=calibration / "served_latency.csv",
    ).set_index("metric")  # fmt: skip
    held_out = pd.read_csv(tmp_path / "leave_one_out.csv")
    assert "served_empirical" in held_out["latency"].tolist()
    p99 = table.loc["p99_latency_s"]
    assert p99["error_leave_one_out_served_empirical"] > p99["error_leave_one_out_served"] + 20
    assert p99["error_compared_empirical"] > p99["error_compared"] + 20
    report = (tmp_path / "fidelity.md").read_text()
    assert "error compared empirical" in report and "served empirical" in report
    (calibration / SERVED_SHAPES_FILE).write_text("kind,name\nlatency,ghost\n")
    with pytest.raises(InputError, match=f"--compare-served-latency .*{SERVED_SHAPES_FILE}"):
        run_validation(
            setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None,
            compare_served_latency=calibration / "served_latency.csv",
        )  # fmt: skip


def test_a_profile_with_measured_shapes_is_simulated_with_them_too(bundle, tmp_path, monkeypatch):
    """A bundle whose profile timed its light model's batch of one often enough carries that
    shape (here 80% at the p50, 20% at 4 times it); where the workers' batch times vary,
    validate simulates with it beside the judged lognormal (error_empirical_service): the
    upper mode the lognormal through the same p50 and p95 lacks."""
    import serving.setup
    from serving.served_shapes import with_shapes
    from simulator.bundle import write_bundle
    from simulator.empirical_shape import shape_ratios, shape_rows

    monkeypatch.setitem(serving.setup.SIMULATED_SERVICE_TIME, "emulated", "lognormal")
    monkeypatch.setitem(serving.setup.SHAPED_SERVICE_TIMES, "emulated", ("empirical",))
    ratios = shape_ratios(np.r_[np.full(80, 1.0), np.full(20, 4.0)])
    shaped = with_shapes(bundle, shape_rows("latency", LIGHT, 1, ratios))
    path = write_bundle(shaped, tmp_path / "shaped")
    setup = ServeSetup(str(path), "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    out = tmp_path / "validation"
    write_served_runs(shaped, out, np.ones(10))
    table = run_validation(setup, TRACE, out, reuse_real=True, log=lambda s: None)
    p99 = table.set_index("metric").loc["p99_latency_s"]
    assert p99["error_empirical_service"] > p99["error"] + 20
    report = (out / "fidelity.md").read_text()
    assert "error empirical service: each batch its p50 times a draw from the shape" in report
    # without the shapes, no such simulation
    plain = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    table = run_validation(plain, TRACE, out, reuse_real=True, log=lambda s: None)
    assert "error_empirical_service" not in table.columns


def write_timing_tables(bundle, folder, fast: float, slow: float, rounds: int = 3):
    """`profile latency` timing tables the bundle's profile was built from, each row's
    rounds' medians spread from `fast` to `slow` times its p50."""
    for name in bundle.model_names:
        latency = bundle.latency[bundle.latency["model"] == name]
        rows = tuple(
            LatencyRow(name, int(r.batch_size), True, r.latency_p50_s, r.latency_p95_s,
                       r.latency_p50_s, r.batch_size / r.latency_p50_s, 3, rounds,
                       fast * r.latency_p50_s, slow * r.latency_p50_s, "")
            for r in latency.itertuples()
        )  # fmt: skip
        write_latency_profile(LatencyProfile(name, 1.0, rows), folder / f"{name}.csv", {})


def test_validate_simulates_each_backends_workers_with_its_service_time_model():
    """An emulated worker sleeps the p50 whatever it idled; a diffusers worker's time varies
    (lognormal) and it runs slower after idle where the bundle was timed so; a diffusers
    validation also simulates the p50 alone and the shifted lognormal, an emulated one nothing
    else unless its config asks for another model."""
    config = SimConfig(n_workers=2, time_scale=0.1)
    cases = (
        ("emulated", "deterministic", False, ()),
        ("diffusers", "lognormal", True, ("deterministic", "shifted-lognormal")),
    )
    for backend, model, idle, compared in cases:
        setup = ServeSetup("default", "static-cascade", OPTIONS, config.to_dict(), backend)
        expected = dataclasses.replace(config, service_time=model, idle_latency=idle)
        assert setup.simulation_config(config) == expected
        assert setup.compared_service_times(config, shaped=False) == compared
    # a bundle with the profile's measured shapes adds them where batch times vary
    diffusers = ServeSetup("default", "static-cascade", OPTIONS, config.to_dict(), "diffusers")
    shaped = ("deterministic", "shifted-lognormal", "empirical")
    assert diffusers.compared_service_times(config, shaped=True) == shaped
    setup = ServeSetup("default", "static-cascade", OPTIONS, config.to_dict(), "emulated")
    assert setup.compared_service_times(config, shaped=True) == ()
    exponential = dataclasses.replace(config, service_time="exponential")
    assert setup.compared_service_times(exponential, shaped=False) == ("exponential",)


def test_rounds_latency_rows_move_each_row_to_its_rounds_end_then_the_bundles_shape():
    table = pd.DataFrame(
        {
            "model": "m",
            "batch_size": [1, 2, 4],
            "feasible": True,
            "latency_p05_s": [0.8, 2.0, 2.0],
            "latency_p50_s": [1.0, 3.0, 2.5],
            "latency_p95_s": [2.0, 3.0, 5.0],
            "latency_rounds_p10_s": [0.5, 2.0, 2.5],
            "latency_rounds_p90_s": [2.0, 3.0, 2.5],
        }
    )
    fast = rounds_latency_rows(table, "fast")
    assert fast["latency_p50_s"].tolist() == [0.5, 2.0, 2.5]
    assert fast["latency_p95_s"].tolist() == [1.0, 2.0, 5.0]
    assert fast["latency_p05_s"].tolist() == pytest.approx([0.4, 4 / 3, 2.0])
    slow = rounds_latency_rows(table, "slow")  # 3.0 at b=2 falls to b=4's 2.5: padded to 4
    assert slow["latency_p50_s"].tolist() == [2.0, 2.5, 2.5]
    assert slow["latency_p95_s"].tolist() == [3.0, 3.0, 5.0]
    assert slow["latency_p05_s"].tolist() == [1.6, 2.0, 2.0]  # at most the new p50


def test_rounds_bundles_put_the_profile_at_its_rounds_p10_and_p90(bundle, tmp_path):
    write_timing_tables(bundle, tmp_path, fast=0.8, slow=1.25)
    ends = rounds_bundles(tmp_path, bundle)
    for end, factor in (("fast", 0.8), ("slow", 1.25)):
        both = bundle.latency.merge(ends[end].latency, on=["model", "batch_size"])
        assert len(both) == len(bundle.latency) == len(ends[end].latency)
        for column in ("latency_p50_s", "latency_p95_s"):
            np.testing.assert_allclose(both[f"{column}_y"], factor * both[f"{column}_x"])
    write_timing_tables(bundle, tmp_path, fast=1.0, slow=1.0, rounds=1)
    with pytest.raises(InputError, match="--profile-rounds '.*': model .* timed in one round"):
        rounds_bundles(tmp_path, bundle)
    (tmp_path / f"{bundle.model_names[0]}.csv").unlink()
    with pytest.raises(InputError, match="--profile-rounds '.*': .*latency profile .* not found"):
        rounds_bundles(tmp_path, bundle)
    doubled = dataclasses.replace(bundle, latency=bundle.latency.assign(
        latency_p50_s=2 * bundle.latency["latency_p50_s"],
        latency_p95_s=2 * bundle.latency["latency_p95_s"]))  # fmt: skip
    write_timing_tables(bundle, tmp_path, fast=0.8, slow=1.25)
    with pytest.raises(InputError, match="another latency profile than the bundle's"):
        rounds_bundles(tmp_path, doubled)


def test_validate_simulates_the_profile_at_both_ends_of_its_rounds(bundle, tmp_path):
    """Stand-in real runs re-reported with the profile's rounds spread 0.8x to 1.25x: the fast
    simulation's p50 error lies below DIR/sim's, the slow one's above."""
    setup = ServeSetup("default", "static-cascade", OPTIONS, CONFIG.to_dict(), dispatch="jsq")
    fake = simulate(bundle, {"dispatch_overhead_ms": 30.0})
    for k in (1, 2):
        queries = fake.queries.assign(visits=1, resends=0, hops_s=0.030)
        summary = {**fake.summary, "trace_spec": TRACE}
        write_run(tmp_path / f"real-{k}", queries, fake.timeseries, summary, as_served(fake), [])
    write_timing_tables(bundle, tmp_path / "timing", fast=0.8, slow=1.25)
    table = run_validation(
        setup, TRACE, tmp_path, reuse_real=True, log=lambda s: None,
        profile_rounds=str(tmp_path / "timing"),
    ).set_index("metric")  # fmt: skip
    p50 = table.loc["p50_latency_s"]
    assert p50["error_profile_fast"] < p50["error"] - 5
    assert p50["error_profile_slow"] > p50["error"] + 5
    assert "Error profile fast and slow" in (tmp_path / "fidelity.md").read_text()
    assert "| error profile fast | error profile slow |" in (tmp_path / "fidelity.md").read_text()


# ----------------------------------------------------------------------------- Ray (CI)


@pytest.mark.slow
def test_short_emulated_validation_end_to_end(bundle, tmp_path, monkeypatch):
    """One real run (Ray Serve, 4 emulated replicas) against the simulator: the fidelity
    table's rows, the same decisions and plan, every query accounted for, overheads > 0; the
    replay by a load generator in a process of its own (none runs in this one)."""
    pytest.importorskip("ray.serve")
    import serving.loadgen

    def in_this_process(*args, **kwargs):
        raise AssertionError("validate replayed the trace in its own process")

    monkeypatch.setattr(serving.loadgen, "run_loadgen", in_this_process)
    trace = "constant:rate=10,duration=5"
    setup = ServeSetup(
        "default",
        "static-cascade",
        OPTIONS,
        CONFIG.to_dict(),
        dispatch="jsq",  # as validate
    )
    logged = []
    table = run_validation(
        setup, trace, tmp_path, repeats=1, port=free_port(), num_cpus=2, log=logged.append
    )
    real_line = next(line for line in logged if line.startswith("real 1: "))
    assert re.search(
        r", latest send [\d.e+-]+ ms after its trace time; served after [\d.]+ s \(ray [\d.]+, "
        r"serve [\d.]+, deployments [\d.]+\)$",
        real_line,
    ), real_line  # how long its serving session took to start
    # Serve's own shutdown ends the driver's gRPC poller; a run that stopped its cluster without
    # it left the poller running, and the next ray.init in the process forked Ray's processes
    # under it (a raylet then never registered: sessions 35 and 37)
    assert not [t.name for t in threading.enumerate() if "_poll_wrapper" in t.name]
    metrics = [
        "p50_latency_s",
        "p90_latency_s",
        "p99_latency_s",
        "slo_violation_ratio",
        "throughput_qps",
        "heavy_share",
        *(f"completions_{m}" for m in bundle.model_names),
        "same_plan_share",
        "same_plan_thresholds_share",
    ]
    assert table["metric"].tolist() == metrics
    assert list(pd.read_csv(tmp_path / "fidelity.csv").columns) == [
        "metric",
        "real_mean",
        "real_spread",
        "simulated",
        "simulated_spread",
        "error",
        "unit",
        "goal_met",
        "real_level",
        "simulated_mean",
        "simulated_se",
        "real_se",
        "expected_error",
        "expected_error_se",
        "expected_goal_met",
        "error_no_overhead",
        "error_arrival_charge",  # the real run recorded its batches (one run: none held out)
        "error_route_at_arrival",  # it measured an arrival hop: the other counting
    ]
    rows = table.set_index("metric")
    assert 0 <= rows.loc["p50_latency_s", "real_level"] <= 100  # among the real run's latencies
    charge = pd.read_csv(tmp_path / "arrival_charge.csv")
    assert charge["run"].tolist() == ["real-1", "all"] and charge["batches"].iloc[-1] > 0
    assert rows.loc["same_plan_share", "real_mean"] == 1.0  # a static plan, in force throughout
    summary = json.loads((tmp_path / "real-1" / "summary.json").read_text())
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == summary["arrivals"] == 50
    assert summary["failed"] == 0
    assert summary["send_lag_p99_ms"] <= summary["send_lag_max_ms"] < 5000
    batches = pd.read_csv(tmp_path / "real-1" / "batches.csv")  # emulated replicas sleep:
    assert len(batches) > 0 and batches["cpu_s"].isna().all()  # no compute to measure
    assert batches["preemptions"].isna().all()
    assert not (tmp_path / "preemption_fit.csv").exists()  # nothing counted, nothing fitted
    assert not (tmp_path / "speed_bins.csv").exists()  # nor any speed to follow
    assert rows.loc["heavy_share", "error"] == 0.0  # the decision core in both drivers
    for m in (LIGHT, HEAVY):
        assert rows.loc[f"completions_{m}", "error"] == 0.0
    overheads = json.loads((tmp_path / "overheads.json").read_text())
    assert 0 < overheads["dispatch_overhead_ms"] < 2000
    assert 0 < overheads["arrival_overhead_ms"] < 2000  # the ingress counted every query
    assert (tmp_path / "timeseries.png").stat().st_size > 10_000
    inputs = pd.read_csv(tmp_path / "plan_inputs.csv")  # the real run recorded its inputs
    assert inputs["real_queue_estimate_SDXL-Lightning"].notna().all()
    # and its policy's at each call from the replay's epoch (the first at the first tick after
    # it, within a tick; 5 s where the state was read after it), which give back the plans it
    # put in force
    replay = pd.read_csv(tmp_path / "plan_replay.csv")
    real = replay[replay.run == "real-1"]
    assert 0.0 <= real.now_s.iloc[0] < CONFIG.tick_s and replay.reproduced.all()
    assert "calls reproduced" in (tmp_path / "fidelity.md").read_text()


def test_real_level_places_a_simulated_quantile_among_the_real_latencies():
    """The percentage of the pooled real latencies at or below the simulated value: 50 for an
    exact p50; where the real latencies are sparse, a large error in seconds is a small one in
    probability."""
    real = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0, 13.0])
    assert real_level(real, 4.0) == 50.0
    assert real_level(real, 9.9) == 50.0  # 41% above the real p50 (7.0 s), the same level
    assert real_level(real, 0.5) == 0.0 and real_level(real, 13.0) == 100.0
    assert math.isnan(real_level(real, math.nan)) and math.isnan(real_level(real[:0], 1.0))
    sim = {"p50_latency_s": 4.0, "p99_latency_s": 12.5, "slo_violation_ratio": 0.0}
    runs = [{**sim, "p50_latency_s": 7.0}, {**sim, "p50_latency_s": 7.0}]
    table = fidelity_table(runs, sim, [1.0], real_latency_s=real).set_index("metric")
    assert table.loc["p50_latency_s", "real_level"] == 50.0
    assert table.loc["p99_latency_s", "real_level"] == 87.5
    assert table[["real_level"]].loc[["slo_violation_ratio", "same_plan_share"]].isna().all().all()
    assert "| 4 (real p50) |" in markdown(table.reset_index(), "t")
    assert fidelity_table(runs, sim, [1.0])["real_level"].isna().all()  # no latencies given


def test_the_preemption_sentence_gives_each_models_fit():
    fits = pd.DataFrame(
        {
            "model": ["tiny-heavy"],
            "batches": [704],
            "cpu_p50_s": [0.0326],
            "preemptions_p50": [15.0],
            "slope_s": [0.000171],
            "slope_se_s": [0.000015],
            "intercept_s": [0.0309],
            "intercept_se_s": [0.00027],
        }
    )
    text = preemption_text(fits)
    assert "DIR/preemption_fit.csv" in text
    assert "tiny-heavy 15 at the median, 0.171 ± 0.015 ms of its CPU each, 30.9 ms" in text


def test_the_speed_sentence_gives_each_models_range_over_the_bins():
    speeds = pd.DataFrame(
        {
            "run": ["real-1", "real-1", "real-2"],
            "model": ["tiny-light"] * 3,
            "bin_start_s": [0.0, 10.0, 0.0],
            "batches": [60, 50, 55],
            "cpu_p50_s": [0.015, 0.021, 0.0155],
            "wall_p50_s": [0.016, 0.023, 0.0165],
            "preemptions_per_ms": [0.45, 0.5, 0.4],
        }
    )
    text = speed_text(speeds)
    assert "DIR/speed_bins.csv" in text
    assert "tiny-light 15–21 ms (×1.40 between bins), preempted 0.4–0.5 times per ms" in text
