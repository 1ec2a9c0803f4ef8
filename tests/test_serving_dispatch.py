"""Dispatch among a model's workers (`serving.dispatch`): power of two choices balances a
skewed case (one straggler worker) far better than random choice, close to join-the-shortest-
queue; the ingress runs it over the worker slots of the model a query is routed to, with its
own outstanding counts, the same choices under the same seed, dead workers left out."""

from __future__ import annotations

import random

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


def test_the_ingress_dispatches_over_a_models_worker_slots_and_skips_dead_ones():
    pytest.importorskip("ray.serve")
    from serving.ingress import Ingress

    def ingress(mode: str, seed: int = 7):
        ing = Ingress.func_or_class.__new__(Ingress.func_or_class)  # the dispatch state only
        ing.dispatch, ing.pick = mode, random.Random(seed)
        ing.workers_of = [[0, 2, 5], [], [1, 3, 4, 6]]  # slots per model
        ing.sent = [0] * 7
        ing.down, ing.loading = set(), set()
        return ing

    def route(ing, m: int, n: int) -> list[int]:
        chosen = []
        for _ in range(n):
            w = ing._choose(m)
            ing.sent[w] += 1
            chosen.append(w)
        return chosen

    first, again = ingress("p2c"), ingress("p2c")
    sequence = route(first, 2, 12)
    assert route(again, 2, 12) == sequence  # the same seed, the same choices
    counts = [first.sent[w] for w in (1, 3, 4, 6)]
    assert sum(counts) == 12 and max(counts) - min(counts) <= 2  # p2c: balanced, all used
    assert sum(first.sent) == 12  # only model 2's slots got its queries
    assert first._choose(1) is None  # a model without workers: the query waits for a plan
    shortest = ingress("jsq")
    shortest.sent = [3, 1, 1, 0, 0, 2, 4]
    assert shortest._choose(0) == 2 and shortest._choose(2) == 3  # fewest, first on a tie
    shortest.down = {3, 4}  # their replicas died: left out while another worker is up
    assert shortest._choose(2) == 1
    shortest.down = {0, 2, 5}
    assert shortest._choose(0) == 2  # all down: dispatch among them (they restart)
