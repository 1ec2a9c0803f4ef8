"""One Ray Serve deployment per model: each replica is one GPU worker hosting that model.

The emulated backend stands in for a GPU as the HADIS artifact's testbed does: a batch of b
sleeps the bundle's p50 latency of batch size b x time scale (plus the discriminator's cost per
image when the plan judges this model's images) and returns each prompt's quality score, so
many replicas run on few cores. A replica start costs the model's load time (`load_s`, counted
from the plan's request, so a replica whose process start takes longer costs that instead),
the cost of a model swap. Batches are formed by `@serve.batch` up to the plan's batch size (set
through `user_config`, no restart) and filtered by the decision core's drop rule
(`simulator.core.form_batch`): one batch at a time per replica, like a GPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from ray import serve

from simulator.core import form_batch

MAX_ONGOING = 100_000  # queue at the replica (a worker's queue), not at the caller
REPLICA_CPUS = 0.01  # emulated replicas sleep: many fit on one core


@dataclass(frozen=True)
class EmulatedModel:
    """What an emulated replica of one model needs: scaled latency per batch size (index b),
    quality score per prompt, the discriminator's scaled cost per image, load seconds."""

    name: str
    latency_s: tuple[float, ...]
    quality: tuple[float, ...]
    disc_cost_s: float
    load_s: float


def emulated_model(bundle, policy, config, model: str) -> EmulatedModel:
    """The emulated stand-in of `model` under `policy`'s scores and `config`'s time scale and
    costs, with the simulator's numbers (`simulator.cluster.Cluster`)."""
    m = bundle.model_index(model)
    scale = config.time_scale
    loads = bundle.models["load_s"].to_numpy()
    return EmulatedModel(
        name=model,
        latency_s=tuple(float(x) * scale for x in bundle.latency_table_s[m]),
        quality=tuple(float(x) for x in policy.quality_scores[:, m]),
        disc_cost_s=config.disc_cost_s * scale if policy.uses_discriminator else 0.0,
        load_s=float(config.load_s if config.load_s is not None else loads[m]),
    )


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING,
    ray_actor_options={"num_cpus": REPLICA_CPUS},
    health_check_period_s=1.0,
    graceful_shutdown_timeout_s=600.0,
)
class ModelReplica:
    """A worker hosting one model (emulated backend)."""

    def __init__(self, model: EmulatedModel, drop_limit_s: float) -> None:
        self.model = model
        self.drop_limit_s = drop_limit_s
        self.batch_size = 1
        self.judged = False
        self.loaded = False

    async def reconfigure(self, config: dict) -> None:
        """`batch_size` and `judged` (the discriminator scores this model's images) of the
        plan in force. The first call, before the replica serves, is the model swap: it ends
        `load_s` after the plan asked for the replica (`swap_started_s`, wall clock), or at
        once if starting the replica took longer."""
        self.batch_size = max(1, min(int(config["batch_size"]), len(self.model.latency_s) - 1))
        self.judged = bool(config["judged"])
        self.serve_batch.set_max_batch_size(self.batch_size)
        if not self.loaded:
            await asyncio.sleep(
                max(0.0, config["swap_started_s"] + self.model.load_s - time.time())
            )
            self.loaded = True

    async def __call__(self, prompt_id: int, arrival_s: float) -> dict:
        return await self.serve_batch((prompt_id, arrival_s))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def serve_batch(self, items: list[tuple[int, float]]) -> list[dict]:
        now = time.time()
        queue = deque(range(len(items)))
        arrival = [a for _, a in items]
        batch, dropped = form_batch(
            queue, arrival, now, self.batch_size, self.model.latency_s, self.drop_limit_s
        )
        # left in `queue`: a batch formed before the batch size shrank; the caller resends
        results: list[dict] = [{"status": "resend"} for _ in items]
        for i in dropped:
            results[i] = {"status": "dropped", "reason": "drop rule"}
        if batch:
            n = len(batch)
            exec_s = self.model.latency_s[n] + (self.model.disc_cost_s * n if self.judged else 0)
            await asyncio.sleep(exec_s)
            done = time.time()
            for i in batch:
                results[i] = {
                    "status": "done",
                    "quality": self.model.quality[items[i][0]],
                    "start_s": now,
                    "done_s": done,
                    "busy_s": (done - now) / n,
                }
        return results

    def actor_name(self) -> str:
        """This replica's Ray actor name (fault injection kills that actor)."""
        import ray

        return ray.get_runtime_context().get_actor_name()
