"""The controller's demand estimators against values recomputed from the run's own per-query
record: a wrong count (e.g. the arrival rate, or in flight without the factor) fails here."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_factory import make_bundle

from simulator.config import SimConfig
from simulator.run import run_simulation
from simulator.workloads import poisson


def ewma(values: np.ndarray, alpha: float) -> np.ndarray:
    """The controller's EWMA: the first tick takes the value, later ticks blend by alpha."""
    out = np.empty(len(values))
    out[0] = values[0]
    for i in range(1, len(values)):
        out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


@pytest.fixture(scope="module")
def light_load_run():
    """clipper-light at 2 qps on 4 workers: nothing dropped, so a query is in flight from
    its arrival until its completion."""
    bundle = make_bundle()
    trace = poisson(2.0, 60, n_prompts=bundle.n_prompts, seed=2)
    config = SimConfig(n_workers=4, slo_s=30, demand_estimator="inflight")
    out = run_simulation(bundle, trace, "clipper-light", config)
    assert out.summary["drops"] == 0
    return out, config


def test_inflight_estimator_is_the_ewma_of_queries_in_flight_times_the_factor(light_load_run):
    out, config = light_load_run
    q = out.queries
    ticks = config.tick_s * np.arange(1, len(out.raw.demand_log) + 1)
    arrived = np.searchsorted(np.sort(q.arrival_s), ticks, side="right")
    done = np.searchsorted(np.sort(q.completion_s), ticks, side="right")
    expected = ewma((arrived - done).astype(float), config.ewma_alpha) * config.inflight_factor
    np.testing.assert_allclose(out.raw.demand_log, expected, rtol=1e-12)
    assert config.inflight_factor == 1.2  # the artifact's over-provisioning factor


def test_rate_estimator_is_the_ewma_of_arrivals_per_tick():
    bundle = make_bundle()
    trace = poisson(2.0, 60, n_prompts=bundle.n_prompts, seed=2)
    config = SimConfig(n_workers=4, slo_s=30, demand_estimator="ewma")
    out = run_simulation(bundle, trace, "clipper-light", config)
    ticks = config.tick_s * np.arange(0, len(out.raw.demand_log) + 1)
    per_tick = np.diff(np.searchsorted(np.sort(out.queries.arrival_s), ticks, side="right"))
    expected = ewma(per_tick / config.tick_s, config.ewma_alpha)
    np.testing.assert_allclose(out.raw.demand_log, expected, rtol=1e-12)


def test_queue_estimate_is_the_ewma_of_queries_waiting_per_tick_and_in_the_timeseries():
    """The planner's queue input (HADIS eq. 5's Q_i): per tick, the queries that arrived and
    have not started service, smoothed; the timeseries shows the estimate in force each second
    (the real path writes the same columns from its controller's log)."""
    bundle = make_bundle()
    trace = poisson(4.0, 40, n_prompts=bundle.n_prompts, seed=3)
    config = SimConfig(n_workers=1, slo_s=1000, demand_estimator="ewma")
    out = run_simulation(bundle, trace, "clipper-light", config)
    assert out.summary["drops"] == 0
    q = out.queries
    ticks = config.tick_s * np.arange(1, len(out.raw.queue_log) + 1)
    arrived = np.searchsorted(np.sort(q.arrival_s), ticks, side="right")
    started = np.searchsorted(np.sort(q.start_s), ticks, side="right")
    expected = ewma((arrived - started).astype(float), config.ewma_alpha)
    light = bundle.model_index(q.first_model.iloc[0])
    logged = np.array(out.raw.queue_log)
    assert expected.max() > 5  # a queue builds
    np.testing.assert_allclose(logged[:, light], expected, rtol=1e-12)
    assert not np.delete(logged, light, axis=1).any()  # no other model gets queries
    column = out.timeseries[f"queue_estimate_{bundle.model_names[light]}"].to_numpy()
    assert column[0] == 0.0  # no tick has ended in second 0
    np.testing.assert_allclose(column[1:], logged[: len(column) - 1, light], rtol=1e-12)
