"""Dispatch among a model's replicas (`serving.dispatch`): power of two choices balances a
skewed case (one straggler replica) far better than random choice, close to join-the-shortest-
queue; the Serve request router that runs it in the ingress counts outstanding requests,
picks the less loaded of its two draws and repeats its choices under the same seed."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest

from serving.dispatch import choose_replica

N_REPLICAS = 8
STRAGGLER_EVERY = 8  # replica 0 finishes one request every 8 steps; the others one per step
ARRIVALS_PER_STEP = 6  # 84% of the capacity (7 + 1/8 per step)
STEPS = 2000


def straggler_queues(mode: str, seed: int = 0) -> tuple[int, float]:
    """(peak outstanding at one replica, mean outstanding in all) over the run."""
    rng = random.Random(seed)
    outstanding = [0] * N_REPLICAS
    peak, total = 0, 0
    for step in range(STEPS):
        for _ in range(ARRIVALS_PER_STEP):
            outstanding[choose_replica(mode, outstanding, rng)] += 1
        peak = max(peak, *outstanding)
        total += sum(outstanding)
        for r in range(N_REPLICAS):
            if outstanding[r] and (r != 0 or step % STRAGGLER_EVERY == 0):
                outstanding[r] -= 1
    return peak, total / STEPS


def test_power_of_two_choices_balances_a_straggler_that_random_choice_floods():
    p2c_peak, p2c_mean = straggler_queues("p2c")
    random_peak, random_mean = straggler_queues("random")
    jsq_peak, _ = straggler_queues("jsq")
    # random sends the straggler 6/8 per step and it serves 1/8: its queue grows ~0.6 per step
    assert random_peak > 0.5 * STEPS
    assert p2c_peak <= 6 and jsq_peak <= 3
    assert p2c_mean < random_mean / 50


def test_choose_replica_rules():
    rng = random.Random(3)
    assert choose_replica("jsq", [4, 2, 2, 5], rng) == 1  # fewest, first on a tie
    assert choose_replica("p2c", [7], rng) == 0
    # p2c never picks the most loaded of two; over many draws each pair shows up
    picks = {choose_replica("p2c", [0, 9, 9], rng) for _ in range(200)}
    assert picks == {0, 1, 2}  # 1 vs 2 tie: the first drawn, either order
    loaded = [choose_replica("p2c", [0, 9], rng) for _ in range(50)]
    assert set(loaded) == {0}
    assert choose_replica("random", [0, 0, 0, 0], random.Random(5)) == random.Random(5).randrange(4)


def test_the_serve_router_counts_outstanding_and_repeats_under_a_seed():
    pytest.importorskip("ray.serve")
    from ray.serve._private.common import DeploymentHandleSource, DeploymentID, ReplicaID

    from serving.router import OutstandingRouter

    deployment = DeploymentID(name="ModelReplica", app_name="m")

    def router(seed: int, mode: str = "p2c") -> OutstandingRouter:
        r = OutstandingRouter(
            deployment_id=deployment, handle_source=DeploymentHandleSource.UNKNOWN
        )
        r.initialize_state(mode=mode, seed=seed)
        return r

    replicas = [
        SimpleNamespace(replica_id=ReplicaID(unique_id=name, deployment_id=deployment))
        for name in ("c", "a", "d", "b")  # the router orders them by id
    ]

    async def route(r: OutstandingRouter, n: int, among=replicas) -> list[str]:
        chosen = []
        for _ in range(n):
            [[replica]] = await r.choose_replicas(among)
            r.on_send_request(replica.replica_id)
            chosen.append(replica.replica_id.unique_id)
        return chosen

    first, again = router(7), router(7)
    sequence = asyncio.run(route(first, 12))
    assert asyncio.run(route(again, 12)) == sequence
    counts = {r.replica_id.unique_id: first.outstanding.get(r.replica_id, 0) for r in replicas}
    assert sum(counts.values()) == 12 and max(counts.values()) - min(counts.values()) <= 2
    # completions bring a replica's count down; then the emptiest replica wins
    emptied = replicas[1].replica_id  # "a"
    for _ in range(counts["a"]):
        first.on_request_completed(emptied, "request")
    assert emptied not in first.outstanding
    shortest = router(0, "jsq")
    shortest.outstanding = dict(first.outstanding)
    assert asyncio.run(route(shortest, 1)) == ["a"]
    # of two replicas both are drawn: p2c always takes the emptier one ("a" until it has
    # as many as "c", then they alternate)
    assert counts["c"] >= 2
    picks = asyncio.run(route(first, 2 * counts["c"] + 1, among=replicas[:2]))
    assert picks[: counts["c"]] == ["a"] * counts["c"]
    left = {name: first.outstanding.get(r.replica_id, 0) for name, r in zip("ca", replicas)}
    assert abs(left["a"] - left["c"]) <= 1
    with pytest.raises(ValueError, match="dispatch 'fastest'"):
        router(0).initialize_state(mode="fastest")
