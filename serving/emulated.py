"""The emulated backend: a worker stands in for a GPU as the HADIS artifact's testbed does. A
batch of b sleeps the bundle's p50 latency of batch size b x time scale (plus the
discriminator's cost per image when the plan judges this model's images; to the event loop's
step, not its timers' ms: `sleep_until`, since session 40) and returns each
prompt's quality score, so many workers run on few cores. A model swap sleeps the model's
load time (`load_s`, not scaled: the simulator's `Cluster` charges it the same way); the
initial deployment's models are in place at once, as the simulator preloads them.

A model spec (`EmulatedModel`, or `serving.diffusers_backend.DiffusersModel`) is what a worker
(`serving.workers.Worker`) is built with, one per model: `name`, `latency_s` (index b: the
batch latency the drop rule uses), `load_s` (the swap cost the GPU-busy account charges),
`actor_options` and `start(load_from_s, preloaded)`, the swap, which returns the engine that runs
batches: `run(jobs, judged, scored)` with jobs (prompt_id, image_idx) -> (one (quality score or
None, base64 PNG or None) per job, the CPU seconds the batch's thread spent on it or None where
the engine computes nothing, as here; JSON has no NaN).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

REPLICA_CPUS = 0.01  # emulated workers sleep: many fit on one core
# Serve's replicas run uvloop, whose timers fire at the nearest whole ms and then ~0.35 ms late
# here (a batch of 130.7 ms took 131.4), and Linux lets a poll's wait overrun by 0.1% of its
# timeout (4.86 s took 4.865): timers end this long plus this share of the wait before a
# deadline, then the loop yields until it has passed (`sleep_until`)
TIMER_SLACK_S = 0.0015
TIMER_OVERRUN_SHARE = 0.002


@dataclass(frozen=True)
class EmulatedModel:
    """Scaled latency per batch size (index b), quality score per prompt, the discriminator's
    scaled cost per image, load seconds."""

    name: str
    latency_s: tuple[float, ...]
    quality: tuple[float, ...]
    disc_cost_s: float
    load_s: float
    image_size = None  # renders no image

    @property
    def actor_options(self) -> dict:
        return {"num_cpus": REPLICA_CPUS}

    async def start(self, load_from_s: float, preloaded: bool = False) -> EmulatedEngine:
        """The model swap: ends `load_s` after `load_from_s` (wall clock: when the worker got
        its new model, or came free of its last batch, as the simulator's worker loads from
        its plan hop); at
        once for the initial deployment's model (`preloaded`), which the simulator puts in
        place at no cost."""
        if not preloaded:
            await sleep_until(load_from_s + self.load_s)
        return EmulatedEngine(self)


class EmulatedEngine:
    def __init__(self, model: EmulatedModel) -> None:
        self.model = model

    async def run(
        self, jobs: list[tuple[int, int]], judged: bool, scored: bool
    ) -> tuple[list, None, None]:
        n = len(jobs)
        model = self.model
        took_s = model.latency_s[n] + (model.disc_cost_s * n if judged else 0.0)
        await sleep_until(time.time() + took_s)
        return [(model.quality[prompt_id], None) for prompt_id, _ in jobs], None, None  # sleeps


async def sleep_until(deadline_s: float, clock=time.time, sleep=asyncio.sleep) -> None:
    """Return once `clock()` has reached `deadline_s` (wall seconds), to the loop's step rather
    than to its timers' ms: timers that end short of it (TIMER_SLACK_S and TIMER_OVERRUN_SHARE
    of the wait before it) while more than TIMER_SLACK_S is left, then yields (`sleep(0)`, at
    least one) until it has passed."""
    while (remaining_s := deadline_s - clock()) > TIMER_SLACK_S:
        await sleep(max(0.0, remaining_s * (1 - TIMER_OVERRUN_SHARE) - TIMER_SLACK_S))
    await sleep(0)
    while clock() < deadline_s:
        await sleep(0)


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
