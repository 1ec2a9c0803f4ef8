"""One Ray Serve deployment per model: each replica is one GPU worker hosting that model.

A replica is built with a model spec of the run's backend (`serving.emulated.EmulatedModel`:
sleeps the bundle's latencies; `serving.diffusers_backend.DiffusersModel`: the real pipeline
and the CLIP discriminator) and starts its engine on the first `reconfigure`, before it
serves: that is the model swap and costs the model's load time. Batches are formed by
`@serve.batch` up to the plan's batch size (set through `user_config`, no restart) and
filtered by the decision core's drop rule (`simulator.core.form_batch`): one batch at a time
per replica, like a GPU.
"""

from __future__ import annotations

import time
from collections import deque

from ray import serve

from serving.emulated import REPLICA_CPUS
from simulator.core import form_batch

MAX_ONGOING = 100_000  # queue at the replica (a worker's queue), not at the caller


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING,
    ray_actor_options={"num_cpus": REPLICA_CPUS},  # the emulated default; specs set their own
    health_check_period_s=1.0,
    graceful_shutdown_timeout_s=600.0,
)
class ModelReplica:
    """A worker hosting one model."""

    def __init__(self, model, drop_limit_s: float) -> None:
        self.model = model
        self.drop_limit_s = drop_limit_s
        self.batch_size = 1
        self.judged = False
        self.scored = False
        self.engine = None

    async def reconfigure(self, config: dict) -> None:
        """`batch_size`, `judged` (the discriminator's cost is charged for this model's images)
        and `scored` (its images need a quality score: the plan may escalate them) of the plan
        in force. The first call starts the engine (`swap_started_s`: when the plan asked for
        this replica, wall clock)."""
        self.batch_size = max(1, min(int(config["batch_size"]), len(self.model.latency_s) - 1))
        self.judged = bool(config["judged"])
        self.scored = bool(config["scored"])
        self.serve_batch.set_max_batch_size(self.batch_size)
        if self.engine is None:
            self.engine = await self.model.start(config["swap_started_s"])

    async def __call__(self, prompt_id: int, arrival_s: float, image_idx: int = 0) -> dict:
        return await self.serve_batch((prompt_id, arrival_s, image_idx))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def serve_batch(self, items: list[tuple[int, float, int]]) -> list[dict]:
        now = time.time()
        queue = deque(range(len(items)))
        arrival = [a for _, a, _ in items]
        batch, dropped = form_batch(
            queue, arrival, now, self.batch_size, self.model.latency_s, self.drop_limit_s
        )
        # left in `queue`: a batch formed before the batch size shrank; the caller resends
        results: list[dict] = [{"status": "resend"} for _ in items]
        for i in dropped:
            results[i] = {"status": "dropped", "reason": "drop rule"}
        if batch:
            jobs = [(items[i][0], items[i][2]) for i in batch]
            outputs = await self.engine.run(jobs, self.judged, self.scored)
            done = time.time()
            busy_s = (done - now) / len(batch)
            for i, (quality, image) in zip(batch, outputs):
                results[i] = {
                    "status": "done",
                    "quality": quality,
                    "image": image,
                    "start_s": now,
                    "done_s": done,
                    "busy_s": busy_s,
                }
        return results

    def actor_name(self) -> str:
        """This replica's Ray actor name (fault injection kills that actor)."""
        import ray

        return ray.get_runtime_context().get_actor_name()
