"""The HADIS artifact controller's count of queries in flight (`docs/FAITHFUL.md` #8), kept by
the cluster when `demand_estimator=artifact-inflight` (the `artifact-testbed` preset).

The artifact (controller.py at dae194b: `checkWorkerHeartbeat`, `computeSystemEWMA`,
`computeSLOTimeoutsPerSec`) counts entries, not queries. A worker's heartbeat reports the
queries it received since its last heartbeat with their receipt times; a query with no entry
gets one (`queriesStartTime`, keyed by that receipt time); the sink's heartbeat reports
completed queries and removes their entries (a completion with no entry waits in
`queriesEndTime` for a worker's report, which removes it). Once per 1 s tick, after the
heartbeats, the demand signal reads the number of entries; then every entry whose receipt is
more than 2 x SLO old is removed, served or not.

What is modelled here, with E = late_factor x SLO and every heartbeat of a tick taken at the
tick's instant, the sink polled before the model workers:

* a query counts from its arrival until its completion (the sink's report) when it completes
  within E of arriving, as `Cluster.inflight` counts it;
* a query dropped by a worker, or still unfinished, counts until the first tick more than E
  after its arrival (`Cluster.inflight` stops counting a dropped query at the drop, and counts
  an unfinished one until it finishes);
* re-entry: a query received by a second worker (escalated) after the last tick and completed
  before the next one: the sink's report removes its entry, then that worker's report of the
  receipt enters the query again, keyed by the receipt time, and nothing removes it before it
  is E old. It counts once more, from its completion until the first tick more than E after
  that receipt. With more than one such receipt the earliest is taken (receipt order as
  heartbeat order). A query whose first receipt and completion both fall after the last tick,
  with no second receipt, never counts (the worker's report removes the waiting completion);
* a completion after the query's entry was removed at age E, with no receipt since the last
  tick, waits in `queriesEndTime` for a report that never comes: it counts for the rest of the
  run (with deterministic service and drop_factor < late_factor no query completes that late).

Not modelled: the heartbeats' spread over a tick (sequential gRPC calls) and where the sink
registers among the workers. With the sink polled after a second-stage worker, that worker's
receipt is reported before the completion except in the short gap between the two heartbeats,
so re-entries would be rare; the count above is the upper end (sink first), which the
artifact's launch script does not fix (the workers and the sink start at once and register in
the order they come up).

Cost: O(1) per arrival, receipt and completion; a tick advances a pointer over queries in
arrival order (each passed once) and pops re-entered entries from a heap (O(log n) each).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence


class ArtifactInflight:
    """Entries of the artifact's in-flight bookkeeping; `tick` reads and expires them."""

    def __init__(self, arrival_s: Sequence[float], expire_s: float) -> None:
        n = len(arrival_s)
        self.arrival_s = arrival_s  # arrival order = query id order
        self.expire_s = expire_s  # E = late_factor x SLO
        self.count = 0  # arrived, not completed, entry not expired
        self.arrived = 0
        self.oldest = 0  # queries [0, oldest) have had their first entry expired
        self.done = [False] * n  # completed (the sink's report removed the entry)
        self.received = [False] * n
        self.hop_s = [math.nan] * n  # earliest second-or-later receipt since the last tick
        self.reentered: list[float] = []  # heap of expiry times (receipt + E)
        self.leaked = 0  # completions kept in queriesEndTime for good
        self.last_tick_s = -math.inf

    def arrive(self) -> None:
        """The next query in arrival order arrived."""
        self.count += 1
        self.arrived += 1

    def receive(self, q: int, now_s: float) -> None:
        """A worker received query `q` (its first model, or a later stage)."""
        if not self.received[q]:
            self.received[q] = True
        elif not self.hop_s[q] > self.last_tick_s:  # first such receipt since the last tick
            self.hop_s[q] = now_s

    def complete(self, q: int) -> None:
        """The sink got query `q`'s image."""
        self.done[q] = True
        hop_since_tick = self.hop_s[q] > self.last_tick_s
        if q >= self.oldest:
            self.count -= 1
            if hop_since_tick:
                heapq.heappush(self.reentered, self.hop_s[q] + self.expire_s)
        elif not hop_since_tick:
            self.leaked += 1

    def tick(self, now_s: float) -> int:
        """The count the artifact's demand signal reads at this tick; then the tick's expiry
        (entries more than E old at `now_s` are removed)."""
        value = self.count + len(self.reentered) + self.leaked
        cutoff = now_s - self.expire_s
        arrival, done = self.arrival_s, self.done
        while self.oldest < self.arrived and arrival[self.oldest] < cutoff:
            if not done[self.oldest]:
                self.count -= 1
            self.oldest += 1
        while self.reentered and self.reentered[0] < now_s:
            heapq.heappop(self.reentered)
        self.last_tick_s = now_s
        return value
