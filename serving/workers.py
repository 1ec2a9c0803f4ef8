"""One Serve deployment per GPU worker slot (`serving.setup.worker_app`), one long-lived replica
each: the worker hosts the model the plan's placement gives its slot and swaps it in place, as
a GPU server does (and as the simulator's `Worker`): a swap costs the model's load, never a
process start.

A worker is built with every model's spec of the run's backend (`serving.emulated.EmulatedModel`:
sleeps the bundle's latencies; `serving.diffusers_backend.DiffusersModel`: the real pipeline and
the CLIP discriminator). Its configuration comes by the controller's direct `configure` call
(`serving.controller.LiveCluster`), not by a redeploy of Serve's `user_config`: Serve takes a
replica out of routing while it reconfigures, and delivers on its controller's loop (0.3-2.4 s
after the plan here). The `user_config` is the initial plan's; a replica that Serve starts
takes the ingress's configuration for its slot when newer (`reconfigure`). Its fields: `slot`,
`plan` (the plan that sent it: an older one arriving late is ignored), `model` (index;
NO_MODEL: none, the worker stays up, idle), `assigned` (the plan version that put that model
here), `batch_size`, `judged` and `scored` (see `configure`).

One task serves the worker like `simulator.cluster.Cluster.worker_process`: load the model the
plan wants (`spec.start`: emulated, `load_s` counted from when the worker got its new model
(`configure`) or came free, whichever is later; diffusers, the real load), else form a batch
from the queue by the decision core's rule (`simulator.core.form_batch`: the drop rule) and
run it, one batch at a time. A batch in service when the model changes ends on its model;
the load follows. The first batch after a load is announced to the ingress as it starts
(`announce_batch`): the ingress counts the batch in service from the answers, and that batch
has no answer before it.
A query is sent with the model it is routed to and the ingress's plan version:
- for the model the worker hosts: queued (held while that model loads);
- for another model, from a plan newer than the worker's assignment: held until the
  configuration of that plan arrives (the ingress learns a plan before the workers);
- otherwise answered `resend`: the ingress routes it again under the plan in force
  (`on_plan_change=reroute`). So are the queued queries of a worker whose model changes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from ray import serve

from serving.setup import INGRESS_APP, SERVE_LOGGING, SHUTDOWN_POLL_S
from simulator.core import NO_MODEL, form_batch

MAX_ONGOING = 100_000  # queue at the worker (a GPU's queue), not at the caller
# Serve's own default: its controller notices a killed replica at the next check and restarts
# it (meanwhile the ingress sends the replica's queries elsewhere, `Ingress._mark_down`). A 1 s
# check (until session 36) sent a call to every worker each second in one burst: overhead p99
# at 100 QPS 21.3-29.3 ms against 14.8-17.0 with 10 s, four alternated runs each (session 36)
HEALTH_CHECK_PERIOD_S = 10.0
RESEND = {"status": "resend"}


class Job:
    """One query's visit of a worker: the model it is routed to, the ingress's plan version
    when sent, its prompt, arrival and image index, the future its answer resolves and when
    the worker received it (wall clock)."""

    __slots__ = ("model", "version", "prompt_id", "arrival_s", "image_idx", "future", "received_s")

    def __init__(self, model, version, prompt_id, arrival_s, image_idx, future) -> None:
        self.model = model
        self.version = version
        self.prompt_id = prompt_id
        self.arrival_s = arrival_s
        self.image_idx = image_idx
        self.future = future
        self.received_s = time.time()


class _ArrivalOf:
    """`form_batch`'s arrival lookup for a queue of jobs."""

    def __getitem__(self, job: Job) -> float:
        return job.arrival_s


ARRIVAL_OF = _ArrivalOf()


def worker_actor_options(models) -> dict:
    """The Ray resources of a worker that can host any of `models` (the most any one needs):
    fixed for the run, as a resource change would restart the replica."""
    options = [m.actor_options for m in models]
    merged = {"num_cpus": max(o.get("num_cpus", 0) for o in options)}
    gpus = max(o.get("num_gpus", 0) for o in options)
    if gpus:
        merged["num_gpus"] = gpus
    return merged


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING,
    health_check_period_s=HEALTH_CHECK_PERIOD_S,
    graceful_shutdown_timeout_s=600.0,
    graceful_shutdown_wait_loop_s=SHUTDOWN_POLL_S,
    logging_config=SERVE_LOGGING,
)
class Worker:
    """A GPU worker slot: one model at a time, swapped in place."""

    def __init__(self, models: list, drop_limit_s: float) -> None:
        self.models = models  # spec per bundle model index
        self.drop_limit_s = drop_limit_s
        self.free_s = time.time()  # when the worker last finished a batch or a load (or began)
        self.plan = -1  # the plan whose configuration is in force
        self.model = NO_MODEL  # the model the plan wants here
        self.assigned = -1
        self.batch_size = 1
        self.judged = False
        self.scored = False
        self.loaded = NO_MODEL  # the model whose engine runs now
        self.loaded_s: float | None = None
        self.configured_s: float | None = None  # when the assignment in force arrived
        self.load_from_s: float | None = None  # when its load began to count
        self.preloaded_assignment: int | None = None  # the initial deployment's: no load cost
        self.engine = None
        self.slot: int | None = None  # from the configuration (none in tests without Serve)
        self.announce = False  # the next batch is the first after a load (`announce_batch`)
        self.error: str | None = None
        self.queue: deque[Job] = deque()
        self.held: list[Job] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def reconfigure(self, config: dict) -> None:
        """Serve's `user_config` hook, called as the replica starts with the configuration
        deployed with the initial plan (later plans come by `configure` calls, never by a
        redeploy: Serve takes a replica out of routing while it reconfigures). A replica that
        Serve restarted mid-run takes the one the ingress holds for its slot when that is newer
        (`Ingress.worker_config`). A replica of the initial deployment (the ingress not ready
        yet) has its first model in place at no cost, as the simulator preloads the initial
        plan's (`Cluster.preload`); a restarted one pays the load."""
        latest = await self.ingress_config(int(config["slot"]))
        newer = latest is not None and int(latest["plan"]) > int(config["plan"])
        chosen = latest if newer else config
        if latest is None or latest.get("preloaded"):  # None: the ingress has no plan yet
            self.preloaded_assignment = int(chosen["assigned"])
        await self.configure(chosen)

    async def ingress_config(self, slot: int) -> dict | None:
        """The ingress's configuration for worker slot `slot` under the plan in force."""
        return await self._ingress().worker_config.remote(slot)

    def announce_batch(self, start_s: float, size: int) -> None:
        """Tell the ingress (without waiting) that the first batch after a load, of `size`
        queries, began at `start_s`: it counts a worker's batch in service from the answers,
        and the first after a load has none before it (`Ingress.batch_started`)."""
        if self.slot is not None:
            self._ingress().batch_started.remote(self.slot, start_s, size)

    def _ingress(self):
        return serve.get_deployment_handle("Ingress", INGRESS_APP)

    async def configure(self, config: dict) -> None:
        """The plan in force for this worker, unless a newer plan's came first. `judged`: the
        discriminator's cost is charged for its model's images; `scored`: they need a quality
        score (the plan may escalate them). A new `assigned` version puts its `model` here: the
        queued queries of another model are answered `resend`, the held ones of that version
        are queued or resent."""
        if int(config["plan"]) < self.plan:
            return
        self.plan = int(config["plan"])
        self.slot = int(config["slot"]) if "slot" in config else self.slot
        self.batch_size = int(config["batch_size"])
        self.judged = bool(config["judged"])
        self.scored = bool(config["scored"])
        if int(config["assigned"]) != self.assigned:
            self.assigned = int(config["assigned"])
            self.configured_s = time.time()
            model = int(config["model"])
            if model != self.model:
                self.model = model
                while self.queue:
                    _answer(self.queue.popleft(), RESEND)
            held, self.held = self.held, []
            for job in held:
                if job.version > self.assigned:
                    self.held.append(job)
                elif job.model == self.model:
                    self.queue.append(job)
                else:
                    _answer(job, RESEND)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
        self.wake.set()

    async def __call__(
        self, model: int, version: int, prompt_id: int, arrival_s: float, image_idx: int = 0
    ) -> dict:
        """One query of `model`, sent under the ingress's plan `version`: its answer (done,
        dropped, failed, or resend), with `at_worker_s`, the seconds it spent here (queued,
        held or served: what the simulator models; the rest of a query's latency is the
        serving stack's hops) and `answered_s`, the wall clock when it was answered, when it
        was queued or held. A done answer gives its batch's
        service (`start_s`, `done_s`, `batch_size`, `judged`: whether the discriminator's
        cost was charged for it; `cpu_s`, the CPU seconds the engine's thread spent on it, and
        `preemptions`, how often the kernel took that thread's core meanwhile)
        and `next_batch`, the queries queued here that the worker's next batch takes (how the
        ingress counts the queue without asking)."""
        if self.error is not None:
            return {"status": "failed", "reason": self.error}
        job = Job(model, version, prompt_id, arrival_s, image_idx, _future())
        if model == self.model:
            self.queue.append(job)
            self.wake.set()
        elif version > self.assigned:
            self.held.append(job)
        else:
            return RESEND
        return await job.future

    def status(self) -> dict:
        """The assignment in force, when it arrived, whether its model is loaded, when the
        load began to count and ended (wall clock), or the error a load ended with."""
        return {
            "model": self.model,
            "assigned": self.assigned,
            "loaded": self.loaded == self.model,
            "configured_s": self.configured_s,
            "load_from_s": self.load_from_s,
            "loaded_s": self.loaded_s,
            "error": self.error,
        }

    def actor_name(self) -> str:
        """This replica's Ray actor name (fault injection kills that actor)."""
        import ray

        return ray.get_runtime_context().get_actor_name()

    # ------------------------------------------------------------------ the worker's loop

    async def _run(self) -> None:
        try:
            while True:
                if self.loaded != self.model:
                    await self._load()
                elif self.queue:
                    await self._serve_batch()
                else:
                    self.wake.clear()
                    await self.wake.wait()
        except Exception as exc:  # a load that failed: every query here still ends
            self.error = f"model load failed: {type(exc).__name__}: {exc}"
            for job in [*self.queue, *self.held]:
                _answer(job, {"status": "failed", "reason": self.error})
            self.queue.clear()
            self.held.clear()

    async def _load(self) -> None:
        """The swap: the previous model leaves, the wanted one loads (queries wait)."""
        model = self.model
        self.engine, self.loaded = None, NO_MODEL
        engine = None
        if model != NO_MODEL:
            # from the order, not the plan's request: the worker cannot load before it knows
            self.load_from_s = max(self.configured_s, self.free_s)
            preloaded = self.assigned == self.preloaded_assignment
            engine = await self.models[model].start(self.load_from_s, preloaded)
        self.engine, self.loaded = engine, model
        self.loaded_s = self.free_s = time.time()
        self.announce = model != NO_MODEL

    async def _serve_batch(self) -> None:
        spec = self.models[self.model]
        size = max(1, min(self.batch_size, len(spec.latency_s) - 1))
        now = time.time()
        batch, dropped = form_batch(
            self.queue, ARRIVAL_OF, now, size, spec.latency_s, self.drop_limit_s
        )
        for job in dropped:
            _answer(job, {"status": "dropped", "reason": "drop rule"})
        if not batch:
            return
        if self.announce:
            self.announce = False
            self.announce_batch(now, len(batch))
        jobs = [(job.prompt_id, job.image_idx) for job in batch]
        try:
            outputs, cpu_s, preemptions = await self.engine.run(jobs, self.judged, self.scored)
        except Exception as exc:  # the batch fails with the reason; the worker goes on
            for job in batch:
                _answer(job, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
            return
        done = self.free_s = time.time()
        busy_s = (done - now) / len(batch)
        # what it serves next, before the drop rule (none while it loads another model first)
        next_batch = min(size, len(self.queue)) if self.model == self.loaded else 0
        for job, (quality, image) in zip(batch, outputs):
            _answer(
                job,
                {
                    "status": "done",
                    "quality": quality,
                    "image": image,
                    "start_s": now,
                    "done_s": done,
                    "busy_s": busy_s,
                    "cpu_s": cpu_s,
                    "preemptions": preemptions,
                    "batch_size": len(batch),
                    "judged": self.judged,
                    "next_batch": next_batch,
                },
            )


def _future() -> asyncio.Future:
    return asyncio.get_running_loop().create_future()


def _answer(job: Job, result: dict) -> None:
    if not job.future.done():  # its caller may have gone (a cancelled request)
        answered_s = time.time()
        job.future.set_result(
            {**result, "at_worker_s": answered_s - job.received_s, "answered_s": answered_s}
        )
