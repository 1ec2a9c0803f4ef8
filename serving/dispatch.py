"""Dispatch among the replicas of one model (the workers hosting it), decided at the ingress
from what it knows for free: the requests it has outstanding at each replica (sent, not yet
answered). No queue-length probes, so no extra hop per query.

Modes (`DISPATCH_MODES`):
  p2c     power of two choices (Mitzenmacher): two distinct replicas drawn at random (seeded),
          the one with fewer outstanding requests (the first drawn on a tie);
  jsq     join the shortest queue: the fewest outstanding of all (the simulator's `jsq`);
  random  uniform (the simulator's `random`).

`choose_replica` is the rule (Ray-free); `serving.router.OutstandingRouter` runs it in the
ingress as the Ray Serve request router of each model's deployment handle.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

DISPATCH_MODES = ("p2c", "jsq", "random")


def choose_replica(mode: str, outstanding: Sequence[int], rng: random.Random) -> int:
    """Index of the replica that gets the next request, given each one's outstanding count;
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
