"""The route, plan and configure hops (`serving.hops.plan_hop_ms`): from a re-plan's tick to
the ingress routing by it, and to its workers' configuration, and the step between its swaps,
measured from a real run's plans and swaps, on hand-made run folders."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from serving.hops import calibration_overheads, plan_hop_ms, pooled_overheads_ms
from simulator.errors import InputError

# the initial plan, the replay's first (0.75 s late: not a re-plan), three re-plans 15, 20, 10 ms
PLANS = {
    "planned_s": [0.0, 0.002, 5.002, 10.002, 15.002],
    "applied_s": [0.0, 0.752, 5.017, 10.022, 15.012],
}
# two swaps to A, 40 ms each from the request to the worker's configure; six to B, 80 ms each
SWAPS = {
    "A": {"count": 2, "mean_s": 2.3, "reconfigure_mean_s": 0.04},
    "B": {"count": 6, "mean_s": 9.0, "reconfigure_mean_s": 0.08},
}


def run_folder(tmp_path, plans=PLANS):
    tmp_path.mkdir(exist_ok=True)
    pd.DataFrame(plans).to_csv(tmp_path / "plans.csv", index=False)
    return tmp_path


def test_the_plan_hop_is_the_median_delay_to_the_ingress_plus_the_mean_reconfigure(tmp_path):
    hop = plan_hop_ms(run_folder(tmp_path), {"swap_s": SWAPS}, 5.0)
    # median(15, 20, 10) ms + (2 x 40 + 6 x 80) / 8 ms
    assert hop["plan_overhead_ms"] == pytest.approx(15.0 + 70.0, abs=1e-6)
    assert hop["plan_overhead_p95_ms"] == hop["plan_overhead_ms"]
    # the route hop: the median delay to the ingress's `set_plan`, whatever the swaps
    assert hop["route_overhead_ms"] == hop["route_overhead_p95_ms"] == pytest.approx(15.0)
    # a run that logged each swap's delay (since session 39): their median, not the means
    logged = {"swap_s": SWAPS, "configure_delay_s": {"count": 8, "median": 0.05, "max": 0.9}}
    assert plan_hop_ms(run_folder(tmp_path), logged, 5.0)["plan_overhead_ms"] == pytest.approx(
        15.0 + 50.0, abs=1e-6
    )
    without_swaps = plan_hop_ms(run_folder(tmp_path), {"swap_s": {}}, 5.0)
    assert without_swaps["plan_overhead_ms"] == pytest.approx(15.0, abs=1e-6)
    # no swaps.csv: each swap's delay is unknown, so is the configure hop
    assert math.isnan(without_swaps["configure_overhead_ms"])


def test_a_run_that_logged_its_swaps_measures_each_from_its_plans_tick_to_its_configure(
    tmp_path,
):
    """Each swap belongs to the latest plan planned at or before its request; the hop is the
    median of their tick-to-configure delays, not the delay to `set_plan` plus the configure
    delay (which counts the `set_plan` call twice). The configure hop: the median of each
    swap's delay after its plan's `set_plan` over its rank among its plan's swaps by
    configuration."""
    swaps = pd.DataFrame(
        {  # requested a few ms after each tick; configured 30, 21, 45, 24 ms after it, and
            # 15, 6, 25, 14 ms after `set_plan`: ranks 2, 1, 1, 1
            "worker": [4, 3, 5, 3],
            "model": ["A", "A", "B", "B"],
            "requested_s": [5.004, 5.004, 10.005, 15.003],
            "configured_s": [5.032, 5.023, 10.047, 15.026],
            "load_from_s": [5.032, 5.023, 10.3, 15.026],
            "loaded_s": [7.3, 7.3, 19.3, 24.0],
        }
    )
    folder = run_folder(tmp_path)
    swaps.to_csv(folder / "swaps.csv", index=False)
    logged = {"swap_s": SWAPS, "configure_delay_s": {"count": 4, "median": 0.05, "max": 0.9}}
    hop = plan_hop_ms(folder, logged, 5.0)
    assert hop["plan_overhead_ms"] == pytest.approx((24.0 + 30.0) / 2, abs=1e-6)
    assert hop["plan_overhead_p95_ms"] == hop["plan_overhead_ms"]
    assert hop["route_overhead_ms"] == pytest.approx(15.0, abs=1e-6)
    # median(15 / 2, 6, 25, 14) ms
    assert hop["configure_overhead_ms"] == pytest.approx((7.5 + 14.0) / 2, abs=1e-6)
    assert hop["configure_overhead_p95_ms"] == hop["configure_overhead_ms"]
    # a swap requested before the first re-plan (the replay's first plan's) is not counted
    early = pd.concat([swaps, swaps.iloc[:1].assign(requested_s=0.5, configured_s=2.0)])
    early.to_csv(folder / "swaps.csv", index=False)
    assert plan_hop_ms(folder, logged, 5.0)["plan_overhead_ms"] == pytest.approx(27.0, abs=1e-6)
    # logged, but no swap at a re-plan: the delay to `set_plan` alone
    swaps.iloc[:0].to_csv(folder / "swaps.csv", index=False)
    unswapped = plan_hop_ms(folder, logged, 5.0)
    assert unswapped["plan_overhead_ms"] == pytest.approx(15.0, abs=1e-6)
    assert math.isnan(unswapped["configure_overhead_ms"])
    (folder / "swaps.csv").write_text("worker,requested_s\n1,x\n")
    with pytest.raises(InputError, match=r"swaps\.csv: cannot read requested_s and configured_s"):
        plan_hop_ms(folder, logged, 5.0)


def test_a_run_without_re_plans_or_plans_csv_measures_no_plan_hop(tmp_path):
    first_only = {k: v[:2] for k, v in PLANS.items()}
    unplanned = plan_hop_ms(run_folder(tmp_path / "a", first_only), {"swap_s": SWAPS}, 5.0)
    (tmp_path / "b").mkdir()
    unlogged = plan_hop_ms(tmp_path / "b", {"swap_s": SWAPS}, 5.0)
    for hop in (unplanned, unlogged):
        assert len(hop) == 6 and all(math.isnan(v) for v in hop.values())
    # pooled: a hop no run measured gets none
    dispatch = {"dispatch_overhead_ms": 5.0, "dispatch_overhead_p95_ms": 9.0}
    pooled = pooled_overheads_ms([{**dispatch, "plan_overhead_ms": math.nan}])
    assert pooled["plan_overhead_ms"] == pooled["plan_overhead_p95_ms"] == 0.0
    assert pooled["dispatch_overhead_ms"] == 5.0


def test_a_malformed_plans_csv_is_one_line_naming_the_file(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "plans.csv").write_text("planned_s,applied_s\n0,zero\n")
    with pytest.raises(InputError, match=r"plans\.csv: cannot read planned_s and applied_s"):
        plan_hop_ms(tmp_path, {}, 5.0)
    (tmp_path / "plans.csv").write_text("when,plan\n0,a\n")
    with pytest.raises(InputError, match=r"plans\.csv: cannot read"):
        plan_hop_ms(tmp_path, {}, 5.0)


def test_a_calibration_without_re_plans_takes_the_median_plan_hop_of_the_others():
    static = {"dispatch_overhead_ms": 5.2, "plan_overhead_ms": 0.0, "plan_overhead_p95_ms": 0.0}
    others = {
        "c": {"route_overhead_ms": 30.0, "plan_overhead_ms": 90.0, "configure_overhead_ms": 7},
        "a": {"route_overhead_ms": 10.0, "plan_overhead_ms": 30.0, "configure_overhead_ms": 9},
        "static-constant": {"plan_overhead_ms": 0.0},  # never re-plans: measured none
        # made before the route and configure hops were measured: 0, not in their medians
        "b": {"plan_overhead_ms": 60.0},
        "d": {"dispatch_overhead_ms": 4.0},  # made before the plan hop was measured
    }
    hops, sources = calibration_overheads(static, others)
    assert sources == ["a", "b", "c"]
    assert hops == {
        "dispatch_overhead_ms": 5.2,
        "route_overhead_ms": 20.0,
        "route_overhead_p95_ms": 20.0,
        "plan_overhead_ms": 60.0,
        "plan_overhead_p95_ms": 60.0,
        "configure_overhead_ms": 8.0,
        "configure_overhead_p95_ms": 8.0,
    }
    assert static["plan_overhead_ms"] == 0.0  # not changed in place
    # an even count: the mean of the middle two
    assert (
        calibration_overheads(static, {"a": others["a"], "b": others["b"]})[0]["plan_overhead_ms"]
        == 45.0
    )
    # a calibration that measured its own plan hop keeps it; none measured anywhere: none
    replanning = {**static, "plan_overhead_ms": 20.0, "plan_overhead_p95_ms": 20.0}
    assert calibration_overheads(replanning, others) == (replanning, [])
    assert calibration_overheads(static, {"d": others["d"]}) == (static, [])
