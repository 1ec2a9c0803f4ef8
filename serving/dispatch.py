"""Dispatch among the workers hosting one model, decided at the ingress from what it knows for
free: the queries it has outstanding at each worker (sent, not yet answered). No queue-length
probes, so no extra hop per query.

Modes (`DISPATCH_MODES`):
  p2c     power of two choices (Mitzenmacher): two distinct workers drawn at random (seeded),
          the one with fewer outstanding queries (the first drawn on a tie);
  jsq     join the shortest queue: the fewest outstanding of all (the simulator's `jsq`);
  random  uniform (the simulator's `random`).

`choose_replica` is the rule (Ray-free); the ingress (`serving.ingress.Ingress._choose`) runs
it over the worker slots of the model a query is routed to.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

DISPATCH_MODES = ("p2c", "jsq", "random")


def choose_replica(mode: str, outstanding: Sequence[int], rng: random.Random) -> int:
    """Index of the worker that gets the next query, given each one's outstanding count;
    `rng` is drawn only when there is a choice."""
    n = len(outstanding)
    if n <= 1:
        return 0
    if mode == "jsq":
        return min(range(n), key=outstanding.__getitem__)
    if mode == "random":
        return rng.randrange(n)
    i = rng.randrange(n)
    j = rng.randrange(n - 1)
    j += j >= i
    return i if outstanding[i] <= outstanding[j] else j
