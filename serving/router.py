"""The ingress's dispatch among one model's replicas as a Ray Serve request router
(`request_router_config` of the model's deployment): `serving.dispatch.choose_replica` over
the requests this ingress has outstanding at each replica. No queue-length probes: Serve's
default router asks a replica for its queue length (a round trip per new or stale entry),
which a replica busy with a batch on a loaded host misses, and the query waits."""

from __future__ import annotations

import random

from ray.serve.request_router import FIFOMixin, RequestRouter

from serving.dispatch import DISPATCH_MODES, choose_replica

ROUTER_CLASS = "serving.router:OutstandingRouter"


class OutstandingRouter(FIFOMixin, RequestRouter):
    """Serve's request router for one model's deployment, in the ingress: `choose_replica`
    over the replicas in a stable order (by replica id) with this router's own outstanding
    counts (+1 when a request is sent, -1 when it completes, however it ends). Requests are
    assigned in arrival order (FIFOMixin): the images of one HTTP request share Serve's
    request id, which the base router's id matching cannot tell apart."""

    def initialize_state(self, mode: str = "p2c", seed: int | str = 0) -> None:
        if mode not in DISPATCH_MODES:
            raise ValueError(f"dispatch {mode!r}: expected one of {', '.join(DISPATCH_MODES)}")
        self.mode = mode
        self.rng = random.Random(seed)
        self.outstanding: dict = {}  # replica id -> requests sent and not completed
        self._source: list | None = None
        self._ordered: list = []

    async def choose_replicas(self, candidate_replicas, pending_request=None):
        if not candidate_replicas:
            return []
        if candidate_replicas is not self._source:  # the replica set changed
            self._source = candidate_replicas
            self._ordered = sorted(candidate_replicas, key=lambda r: r.replica_id.unique_id)
        counts = [self.outstanding.get(r.replica_id, 0) for r in self._ordered]
        k = choose_replica(self.mode, counts, self.rng)
        chosen = self._ordered[k]
        # this ingress is the model's only caller: its count is the replica's queue, so Serve
        # sends at once instead of probing a replica that may be busy running a batch
        self.replica_queue_len_cache.update(chosen.replica_id, counts[k])
        return [[chosen]]

    def on_send_request(self, replica_id) -> None:
        super().on_send_request(replica_id)
        self.outstanding[replica_id] = self.outstanding.get(replica_id, 0) + 1

    def on_request_completed(self, replica_id, internal_request_id: str) -> None:
        left = self.outstanding.get(replica_id, 0) - 1
        if left > 0:
            self.outstanding[replica_id] = left
        else:
            self.outstanding.pop(replica_id, None)
