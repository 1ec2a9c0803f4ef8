"""When a new query is routed (`SimConfig.route_at`): at its trace time, or once its arrival
hop has passed, as the serving path's ingress routes a query when it receives it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import policies  # noqa: F401  (registers proteus)
from experiments.inputs import resolve_bundle, resolve_trace
from serving.hops import with_overheads
from simulator.config import ConfigError, SimConfig
from simulator.run import run_simulation
from tests.test_validation import CONFIG, simulate

AT_ARRIVAL = dataclasses.replace(CONFIG, route_at="arrival")
AT_INGRESS = dataclasses.replace(CONFIG, route_at="ingress")  # the default since session 46
TRACE = "constant:rate=4,duration=30"  # light load: every query finds an idle worker


@pytest.fixture(scope="module")
def bundle():
    return resolve_bundle("default")


def first_start_delay_s(bundle, hops: dict, config: SimConfig) -> np.ndarray:
    """Each query's start less its trace time and the router's cost (the light worker is
    idle at this load)."""
    queries = simulate(bundle, hops, TRACE, config).queries
    arrival = resolve_trace(TRACE, bundle, config.seed).arrival_s
    shift_s = config.router_cost_s * config.time_scale
    return queries["start_s"].to_numpy() - arrival - shift_s


def test_a_query_routed_at_the_ingress_reaches_its_worker_after_the_same_dispatch_hop(bundle):
    hops = {"dispatch_overhead_ms": 50.0, "arrival_overhead_ms": 30.0}
    np.testing.assert_allclose(first_start_delay_s(bundle, hops, AT_ARRIVAL), 0.050, atol=1e-9)
    np.testing.assert_allclose(first_start_delay_s(bundle, hops, AT_INGRESS), 0.050, atol=1e-9)


def test_an_arrival_hop_longer_than_the_dispatch_hop_delays_the_worker_to_the_ingress(bundle):
    """Routed at the ingress, a query cannot reach its worker before it: the rest of the
    dispatch hop is never negative (the arrival hop includes the router's cost)."""
    hops = {"dispatch_overhead_ms": 20.0, "arrival_overhead_ms": 60.0}
    np.testing.assert_allclose(first_start_delay_s(bundle, hops, AT_ARRIVAL), 0.020, atol=1e-9)
    shift_s = AT_ARRIVAL.router_cost_s * AT_ARRIVAL.time_scale
    at_ingress = first_start_delay_s(bundle, hops, AT_INGRESS)
    np.testing.assert_allclose(at_ingress, 0.060 - shift_s, atol=1e-9)


def test_the_ingress_counts_and_routes_at_once_and_without_an_arrival_hop_nothing_moves(bundle):
    hops = {"dispatch_overhead_ms": 30.0, "arrival_overhead_ms": 430.0}
    arrival = simulate(bundle, hops, TRACE, AT_ARRIVAL)
    ingress = simulate(bundle, hops, TRACE, AT_INGRESS)
    assert ingress.raw.demand_log == arrival.raw.demand_log  # counted at the same moments
    dispatch_only = {"dispatch_overhead_ms": 30.0}
    pd.testing.assert_frame_equal(
        simulate(bundle, dispatch_only, TRACE, AT_ARRIVAL).queries,
        simulate(bundle, dispatch_only, TRACE, AT_INGRESS).queries,
    )
    again = simulate(bundle, hops, TRACE, AT_INGRESS)  # the same seed: the same run
    pd.testing.assert_frame_equal(ingress.queries, again.queries)


def test_the_simulator_counts_and_routes_at_the_ingress_unless_told_otherwise():
    assert SimConfig().route_at == "ingress"  # the serving path's moment (session 46, set 13)


def test_an_unknown_routing_moment_is_one_line_naming_the_field():
    with pytest.raises(ConfigError, match=r"route_at \(--route-at\).*'client'"):
        SimConfig(route_at="client")


def test_a_replicate_redraws_the_timing_alone_by_default(bundle):
    """Without hops or batch-time noise a timing replicate is replicate 0 itself (the mix
    draws stay the seed's, as the serving path's ingress draws them in every run); one that
    redraws all draws another mix; with hops the timing replicate's hops are its own."""
    config = dataclasses.replace(CONFIG, n_workers=16)
    trace = resolve_trace("constant:rate=12,duration=30", bundle, config.seed)

    def run(config, replicate, hops=None):
        hopped = with_overheads(bundle, hops or {})
        return run_simulation(hopped, trace, "proteus", config, {}, replicate=replicate).queries

    assert SimConfig().replicate_redraws == "timing"
    base = run(config, 0)
    pd.testing.assert_frame_equal(run(config, 1), base)
    redrawn = run(dataclasses.replace(config, replicate_redraws="all"), 1)
    assert (redrawn.first_model != base.first_model).any()
    hops = {"dispatch_overhead_ms": 6.0, "dispatch_overhead_p95_ms": 14.0}
    assert (run(config, 1, hops).start_s != run(config, 0, hops).start_s).any()
    with pytest.raises(ConfigError, match="replicate_redraws"):
        SimConfig(replicate_redraws="some")
