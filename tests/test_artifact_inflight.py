"""`demand_estimator=artifact-inflight`: the HADIS artifact controller's in-flight count
(simulator/artifact_inflight.py, docs/FAITHFUL.md #8), on a hand-built scenario with every
count known, and on a simulated run against the artifact's dict bookkeeping recomputed from the
run's per-query record."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bundle_factory import make_bundle

from simulator.artifact_inflight import ArtifactInflight
from simulator.config import ConfigError, SimConfig
from simulator.run import run_simulation
from simulator.workloads import poisson

E_S = 6.0  # late_factor x SLO


def hand_run():
    """Five queries over ticks 1..16 (E = 6 s); returns the count read at each tick.

    q0 arrives 0.5, completes 2.5: ticks 1, 2.
    q1 arrives 0.7, dropped (never completes): until the first tick more than 6 s after 0.7,
       i.e. ticks 1..7.
    q2 arrives 3.1, escalated 3.4 (a second worker's receipt), completes 3.9, all within
       (3, 4]: never counted as sent, re-entered at 3.4: ticks 4..10 (3.4 + 6 < 10).
    q3 arrives 4.2 and is bypassed (the router's worker, then the heavy one, at 4.2),
       completes 5.5: ticks 5 (in flight); the heavy receipt was before tick 5, so no re-entry.
    q4 arrives 8.3, escalated 9.2, completes 9.6: tick 9 (in flight), then re-entered at 9.2:
       ticks 10..16 (9.2 + 6 = 15.2 < 16).
    """
    arrival = [0.5, 0.7, 3.1, 4.2, 8.3]
    events = [  # (time, kind, query)
        (0.5, "arrive", 0),
        (0.5, "receive", 0),
        (0.7, "arrive", 1),
        (0.7, "receive", 1),
        (2.5, "complete", 0),
        (3.1, "arrive", 2),
        (3.1, "receive", 2),
        (3.4, "receive", 2),
        (3.9, "complete", 2),
        (4.2, "arrive", 3),
        (4.2, "receive", 3),
        (4.2, "receive", 3),
        (5.5, "complete", 3),
        (8.3, "arrive", 4),
        (8.3, "receive", 4),
        (9.2, "receive", 4),
        (9.6, "complete", 4),
    ]
    counter = ArtifactInflight(arrival, E_S)
    reads = []
    for tick in range(1, 18):
        while events and events[0][0] <= tick:
            t, kind, q = events.pop(0)
            if kind == "arrive":
                counter.arrive()
            elif kind == "receive":
                counter.receive(q, t)
            else:
                counter.complete(q)
        reads.append(counter.tick(float(tick)))
    return reads


def test_hand_scenario_counts_drops_and_reentries_exactly():
    expected = {t: 0 for t in range(1, 18)}
    for tick in (1, 2):  # q0
        expected[tick] += 1
    for tick in range(1, 8):  # q1, dropped
        expected[tick] += 1
    for tick in range(4, 11):  # q2, re-entered
        expected[tick] += 1
    expected[5] += 1  # q3
    expected[9] += 1  # q4 in flight
    for tick in range(10, 17):  # q4, re-entered
        expected[tick] += 1
    assert hand_run() == [expected[t] for t in range(1, 18)]


def test_completion_after_expiry_stays_counted_for_good():
    """The sink reports a query whose entry expired: the artifact keeps it in queriesEndTime."""
    counter = ArtifactInflight([0.5], E_S)
    counter.arrive()
    counter.receive(0, 0.5)
    reads = [counter.tick(float(t)) for t in range(1, 9)]  # expired at the end of tick 7
    counter.complete(0)  # at 8.5
    reads += [counter.tick(float(t)) for t in range(9, 12)]
    assert reads == [1] * 7 + [0] + [1] * 3


# ----------------------------------------------------------------------------- simulated run


def artifact_bookkeeping(raw, ticks_s: np.ndarray, expire_s: float) -> list[int]:
    """The artifact's dicts (queriesStartTime, queriesEndTime), fed per tick from the run's
    per-query record: the sink's completions first, then the workers' receipts in time order;
    the count read; then entries more than `expire_s` old removed."""
    receipts = []  # (time, query)
    for q, a in enumerate(raw.arrival_s):
        receipts.append((a, q))
        if raw.bypassed[q]:
            receipts.append((a, q))  # the router's worker, then the last stage's
        if raw.escalated[q]:
            receipts.append((raw.first_done_s[q], q))
    receipts.sort()
    completions = sorted((c, q) for q, c in enumerate(raw.completion_s) if not math.isnan(c))
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    counts, r, c, last = [], 0, 0, -math.inf
    for tick in ticks_s:
        while c < len(completions) and completions[c][0] <= tick:
            done_s, q = completions[c]
            if q in start:
                del start[q]
            else:
                end[q] = done_s
            c += 1
        while r < len(receipts) and receipts[r][0] <= tick:
            at, q = receipts[r]
            if q in end:
                del end[q]
            elif q not in start:
                start[q] = at
            r += 1
        counts.append(len(start) + len(end))
        start = {q: at for q, at in start.items() if not tick - at > expire_s}
        last = tick
    assert last == ticks_s[-1]
    return counts


@pytest.fixture(scope="module")
def loaded_cascade_run():
    """A static cascade on 3 workers at 14 qps with a 2 s SLO: drops, escalations, bypasses and
    second stages that finish within a tick of their receipt all occur."""
    bundle = make_bundle(base_latency_s={"light": 0.1, "heavy": 0.3}, n_prompts=300)
    trace = poisson(14.0, 40, n_prompts=bundle.n_prompts, seed=4)
    config = SimConfig(
        n_workers=3,
        slo_s=2.0,
        ewma_com=0.0,
        router_cost_s=0.0,
        disc_cost_s=0.0,
        demand_estimator="artifact-inflight",
    )
    options = {"router_ratio": 0.3, "disc_ratio": 0.4, "light_workers": 1}
    return run_simulation(bundle, trace, "static-cascade", config, options), config


def test_simulated_count_equals_the_artifacts_dict_bookkeeping(loaded_cascade_run):
    out, config = loaded_cascade_run
    raw = out.raw
    assert raw.dropped.sum() > 0 and raw.escalated.sum() > 0 and raw.bypassed.sum() > 0
    ticks = config.tick_s * np.arange(1, len(raw.demand_log) + 1)
    expected = artifact_bookkeeping(raw, ticks, config.late_factor * config.slo_s)
    counts = np.asarray(raw.demand_log) / config.inflight_factor  # alpha = 1: the raw count
    np.testing.assert_allclose(counts, expected, rtol=0, atol=1e-9)
    # second stages received and finished between the same two ticks: the re-entries
    hop_s = np.where(raw.bypassed, raw.arrival_s, raw.first_done_s)
    second = (raw.bypassed | raw.escalated) & ~np.isnan(raw.completion_s)
    same_tick = np.ceil(hop_s[second]) == np.ceil(raw.completion_s[second])
    assert same_tick.sum() > 20


def test_unknown_demand_estimator_names_the_choices():
    with pytest.raises(ConfigError, match="artifact-inflight"):
        SimConfig(demand_estimator="artifact")
