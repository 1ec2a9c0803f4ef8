"""The ingress deployment: the HTTP API (`POST /v1/images/generations`) and the cascade of each
query, decided by the decision core (`simulator.core.PlanState`: route by router score,
accept-or-escalate by quality score) or the policy's per-query hooks — the rules the simulator
runs, never a copy.

Per query: arrival -> router cost (when the policy routes) -> admission -> route -> one of the
worker slots hosting the model (`serving.workers.Worker`, chosen by `serving.dispatch` over
this ingress's outstanding queries per worker) -> accept or escalate by the quality score of
the image it made -> ... as `simulator.cluster.Cluster` does. The response carries the final
model's image (`b64_json`; None on the emulated backend) and the t2isim record of each image
(times, models, the deciding quality score). A query routed to a model without workers waits
for the next plan (an orphan); one a worker answers `resend` (its model changed) is routed
again under the plan in force (`on_plan_change=reroute`). A worker whose replica dies with the
query is left out of dispatch until it answers again; the query is retried on the model's
workers (MAX_RETRIES), after which it fails with the reason; every query ends as exactly one
of done / dropped / failed.

`POST /v1/t2isim/epoch` marks the start of a replay (see `mark_epoch`);
`GET /v1/t2isim/state` returns the setup, whether the initial plan's workers run (`ready`),
the plans in force (wall-clock times), the controller's estimates (demand and queue per model
at each tick), the measured model swaps, each worker's first batch after a load (slot, start,
size) and the GPU-busy seconds: what a load generator needs to write a run folder.

The controller's calls (`set_plan`, `tick`, `log_swap`, ...) and the workers' (`worker_config`,
`batch_started`) are coroutines: Serve runs a deployment's plain methods in a thread pool
(`RAY_SERVE_RUN_SYNC_IN_THREADPOOL`, on by default), where they would race the queries' state
on the replica's event loop and set its `asyncio.Event` from another thread.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time
from dataclasses import asdict

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from serving.dispatch import choose_replica
from serving.requests import (
    EPOCH,
    GENERATIONS,
    SERVED_BATCH_KEYS,
    STATE,
    RequestError,
    bundle_prompt_id,
    check_size,
    parse_request,
)
from serving.setup import SERVE_LOGGING, SHUTDOWN_POLL_S, ServeSetup, worker_app
from serving.stack import serve_stack
from serving.workers import MAX_ONGOING
from simulator.cluster import STAGE_ESCALATED, STAGE_FINAL, STAGE_OPEN
from simulator.core import ACCEPT, NO_MODEL, PlanState
from simulator.engine import SEED_STREAM_DISPATCH, stream_seed
from simulator.hooks import PolicyHooks
from simulator.policy import Plan

MAX_RETRIES = 2  # resends of a query whose worker's replica died
REVIVE_WAIT_S = 0.2  # between asks of a worker whose replica died
INGRESS_ACTOR_OPTIONS = {"num_cpus": 0.1}
REPLICA_LOST = ("RayActorError", "ActorDiedError", "ActorUnavailableError")


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING,
    ray_actor_options=INGRESS_ACTOR_OPTIONS,
    graceful_shutdown_wait_loop_s=SHUTDOWN_POLL_S,
    logging_config=SERVE_LOGGING,
)
class Ingress:
    def __init__(self, setup: dict) -> None:
        self.setup = ServeSetup.from_dict(setup)
        bundle, policy, config = self.setup.build()
        self.bundle = bundle
        self.config = config
        models = self.setup.models(bundle, policy, config)
        self.image_sizes = tuple(sorted({m.image_size for m in models} - {None}))
        self.n_models = len(bundle.model_names)
        self.router_scores = policy.router_scores.tolist()
        self.router_np = policy.router_scores
        self.quality_np = policy.quality_scores
        self.router_shift_s = config.router_cost_s * config.time_scale if policy.uses_router else 0
        self.hooks = PolicyHooks.of(policy)
        stream = stream_seed(config.seed, SEED_STREAM_DISPATCH)
        self.draw = random.Random(stream).random  # the core's mix draws
        self.dispatch = self.setup.dispatch
        self.pick = random.Random(f"{stream}/worker")  # the dispatch's draws
        self.prompt_texts: list[str] = bundle.prompts["text"].tolist()
        self.prompt_of_text: dict[str, int] = {}
        for i, text in enumerate(self.prompt_texts):
            self.prompt_of_text.setdefault(text, i)
        self.handles = [
            serve.get_deployment_handle("Worker", worker_app(w), _check_exists=False)
            for w in range(config.n_workers)
        ]
        self.state = PlanState(self.n_models)
        self.version = 0  # of the plan in force (`LiveCluster.version`)
        self.workers_of: list[list[int]] = [[] for _ in range(self.n_models)]  # slots per model
        self.sent = [0] * config.n_workers  # outstanding queries per worker slot
        self.serving = [0] * config.n_workers  # of those, in service (as the answers tell)
        # wall time from which `serving` counts each worker's batches (`batch_started`)
        self.serving_since_s = [0.0] * config.n_workers
        self.down: set[int] = set()  # slots whose replica died, until it answers again
        # slots loading a new model (until their swap is logged or they serve a batch): an
        # idle one holds a query queued, not in service
        self.loading: set[int] = set()
        self.worker_configs: list[dict | None] = [None] * config.n_workers  # `set_plan`'s
        self.plan_changed = asyncio.Event()
        self.plans: list[dict] = []
        self.estimates: list[tuple] = []  # the controller's (wall time, qps, queue per model)
        self.observations: list[dict] = []  # the policy's inputs (`observation_entry`)
        self.arrival_s: list[float] = []  # wall time of each arrival since the epoch
        self.visit_s: list[list[float]] = [[] for _ in range(self.n_models)]  # per model
        self.inflight = 0
        self.busy_s = 0.0
        self.ready = False  # the initial plan's workers run, their models loaded
        self.epoch_s = 0.0
        self.swaps: list[dict] = []
        self.first_batches: list[tuple] = []  # (slot, start_s, size) of `batch_started`

    # ------------------------------------------------------------------ controller side

    async def set_plan(
        self,
        plan: Plan,
        slots: list[int],
        version: int,
        planned_s: float,
        demand_qps: float,
        swap_load_s: float,
        worker_configs: list[dict | None],
    ) -> float:
        """Put plan `version` (made at `planned_s` from a demand estimate of `demand_qps`) in
        force for routing now, with the model of each worker slot (its swaps cost
        `swap_load_s` GPU seconds) and each worker's configuration in force (`worker_config`);
        returns the wall time it took effect."""
        now = time.time()
        for w, c in enumerate(worker_configs):
            if c is not None and c["assigned"] == version and c["model"] != NO_MODEL:
                self.loading.add(w)  # a new model: it loads before serving
                self.serving_since_s[w] = now  # no batch of an earlier load counts
        self.worker_configs = worker_configs
        index = self.bundle.model_index
        self.state = PlanState.from_plan(
            plan, index, self.router_np, self.quality_np, self.config.threshold_rule
        )
        self.version = version
        self.workers_of = [[] for _ in range(self.n_models)]
        for w, m in enumerate(slots):
            if m != NO_MODEL:
                self.workers_of[m].append(w)
        self.busy_s += swap_load_s
        applied = time.time()
        self.plans.append(
            {
                "planned_s": planned_s,
                "applied_s": applied,
                "demand_qps": demand_qps,
                "plan": asdict(plan),
            }
        )
        self.plan_changed.set()
        self.plan_changed = asyncio.Event()
        return applied

    async def worker_config(self, w: int) -> dict | None:
        """The configuration of worker slot `w` under the plan in force (None before the
        first plan): what a worker replica that Serve (re)started asks for
        (`Worker.reconfigure`). `preloaded`: the replica starts with the initial deployment,
        before the ingress is ready (a restart mid-run is not)."""
        config = self.worker_configs[w]
        return None if config is None else {**config, "preloaded": not self.ready}

    async def mark_epoch(self) -> float:
        """A replay starts now: the controller restarts its estimators and plans afresh, as a
        simulation starts at t = 0; the arrival counters it reads restart from 0."""
        self.epoch_s = time.time()
        self.arrival_s = []
        self.visit_s = [[] for _ in range(self.n_models)]
        return self.epoch_s

    async def set_ready(self) -> None:
        """The initial plan's workers run, their models loaded. Each worker's handle is called
        once first (`status`): a handle's first call sets up its routing, which cost the first
        query sent to each worker ~50 ms here (session 40); the simulator's stack is warm. A
        worker that does not answer is left to the queries' own retries."""
        await asyncio.gather(*(h.status.remote() for h in self.handles), return_exceptions=True)
        self.ready = True
        self.loading.clear()

    async def log_swap(self, w: int, model: str, requested_s: float, times: dict) -> None:
        """Worker slot `w`'s swap to `model`, wall clock: the plan's request, and (`times`)
        when the worker got it, when its load began to count and when the model was loaded."""
        self.swaps.append({"worker": w, "model": model, "requested_s": requested_s, **times})
        self.loading.discard(w)

    async def log_observation(self, entry: dict) -> None:
        """The policy's input at one of its calls (`serving.controller.observation_entry`)."""
        self.observations.append(entry)

    async def batch_started(self, w: int, start_s: float, size: int) -> None:
        """Worker slot `w` began at `start_s` (its clock) its first batch after a load, of
        `size` queries: in service from now, as the simulator counts them, not queued until
        the batch's answer; unless that answer, or a later plan's swap, came first."""
        if start_s < self.serving_since_s[w]:
            return
        self.loading.discard(w)
        self.serving[w] = min(size, self.sent[w])
        self.serving_since_s[w] = start_s
        self.first_batches.append((w, start_s, size))

    async def tick(
        self,
        now_s: float,
        demand_qps: float | None,
        until_s: float | None = None,
        queue_len: tuple | None = None,
    ) -> dict:
        """The live counters the controller's estimators read (simulator.controller); logs the
        demand and queue estimates of the tick that ended at `now_s` (the planner's inputs,
        written to the run's timeseries as the simulator's). Arrivals and visits per model are
        counted by their own time stamps, those before `until_s` (the tick's boundary, wall
        clock; None: all), as the simulator counts a tick's arrivals whenever the controller
        thread wakes."""
        if demand_qps is not None:
            queue = list(queue_len) if queue_len is not None else [0.0] * self.n_models
            self.estimates.append((now_s, demand_qps, queue))
        count = len if until_s is None else (lambda times: bisect.bisect_left(times, until_s))
        return {
            "epoch_s": self.epoch_s,
            "arrived": count(self.arrival_s),
            "inflight": self.inflight,
            "model_arrivals": [count(times) for times in self.visit_s],
            "queued": self.queued(),
        }

    def queued(self) -> list[int]:
        """Queued per model, as the simulator counts (`Cluster.queue_lengths`): at each worker
        slot hosting it, the queries outstanding there beyond the batch in service
        (`serving`: from the workers' answers, no extra calls; none in service at a worker
        loading its model)."""
        return [
            sum(max(0, self.sent[w] - self.serving[w]) for w in slots) for slots in self.workers_of
        ]

    # ------------------------------------------------------------------ HTTP

    async def __call__(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/")
        routes = {GENERATIONS: "POST", STATE: "GET", EPOCH: "POST"}
        if path not in routes:
            return _error(RequestError(f"no such endpoint {path!r}", 404))
        if request.method != routes[path]:
            return _error(RequestError(f"{path} takes {routes[path]}, not {request.method}", 405))
        if path == STATE:
            return JSONResponse(self.state_body())
        if path == EPOCH:
            return JSONResponse({"epoch_s": await self.mark_epoch()})
        try:
            req = parse_request(await request.body(), self.bundle.n_prompts)
            prompt_id = bundle_prompt_id(req, self.prompt_texts, self.prompt_of_text)
            check_size(req, self.image_sizes)
        except RequestError as exc:
            return _error(exc)
        if req.n == 1:  # the common case without gather's task
            served = [await self.serve_query(prompt_id, 0)]
        else:
            served = await asyncio.gather(*(self.serve_query(prompt_id, k) for k in range(req.n)))
        records = [rec for rec, _ in served]
        body = {
            "created": int(records[0]["arrival_s"]),
            "data": [{"b64_json": image, "revised_prompt": req.prompt} for _, image in served],
            "t2isim": {"prompt_id": prompt_id, "images": records},
        }
        failed = [r for r in records if r["status"] != "done"]
        if failed:
            body["error"] = {"message": failed[0]["reason"], "type": failed[0]["status"]}
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    def state_body(self) -> dict:
        return {
            "setup": self.setup.to_dict(),
            "model_names": list(self.bundle.model_names),
            "plans": self.plans,
            "estimates": self.estimates,
            "observations": self.observations,
            "busy_s": self.busy_s,
            "ready": self.ready,
            "swaps": self.swaps,
            "first_batches": self.first_batches,
            "clock_s": time.time(),
        }

    # ------------------------------------------------------------------ one query

    async def serve_query(self, prompt_id: int, image_idx: int) -> tuple[dict, str | None]:
        """Image `image_idx` of a request for a prompt: (its record, the final image)."""
        arrival = time.time()
        rec = {  # JSON: None for a time that never came
            "status": "done",
            "reason": None,
            "arrival_s": arrival,
            "start_s": None,
            "first_done_s": None,
            "completion_s": None,
            "first_model": NO_MODEL,
            "final_model": NO_MODEL,
            "bypassed": False,
            "escalated": False,
            "quality_score": None,  # of the first image (diffusers: CLIP P(real); None: unscored)
            # where its latency went besides the serving stack's hops (`hops_s` of loadgen):
            "at_workers_s": 0.0,  # at workers (queued, held, served), summed over its visits
            # the calls to the workers on the wall clock, summed over its visits: from the send
            # to the worker's receipt, and from its answer to the ingress having it
            "to_workers_s": 0.0,
            "from_workers_s": 0.0,
            "waited_s": 0.0,  # at the ingress: the router's cost, waits for a plan
            "visits": 0,  # stages served (1, or 2 when escalated once)
            "resends": 0,  # visits answered `resend` (its worker's model changed)
            "retries": 0,  # sends lost with their worker's replica, sent again
            # per visit served: [worker slot, model, start_s, done_s, batch size, judged]
            "batches": [],
        }
        self.arrival_s.append(arrival)
        self.inflight += 1
        image = None
        try:
            image = await self._cascade(prompt_id, image_idx, rec)
        except Exception as exc:  # a query never leaks: it ends as failed with the reason
            rec["status"], rec["reason"] = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.inflight -= 1
        return rec, image

    async def _cascade(self, prompt_id: int, image_idx: int, rec: dict) -> str | None:
        """Serve one query through the plan's cascade; the final image (None if none)."""
        score = self.router_scores[prompt_id]
        if self.router_shift_s:
            start = time.time()
            await asyncio.sleep(self.router_shift_s)
            rec["waited_s"] += time.time() - start
        admit = self.hooks.admit
        if admit is not None and not admit(time.time(), score, self.inflight):
            rec["status"], rec["reason"] = "dropped", "not admitted"
            return None
        stage, m = await self._route(score, rec)
        while True:
            result = await self._run_on(m, prompt_id, rec, image_idx)
            if result["status"] == "requeue":  # its worker's model changed: route it again
                stage, m = await self._reenter(stage, score, rec)
                continue
            if result["status"] != "done":
                rec["status"], rec["reason"] = result["status"], result["reason"]
                return None
            if rec["first_model"] == NO_MODEL:
                rec["first_model"], rec["first_done_s"] = m, result["done_s"]
                rec["start_s"], rec["quality_score"] = result["start_s"], result["quality"]
            if stage != STAGE_FINAL:
                nxt = self._decide(m, result["quality"])
                if nxt != ACCEPT:
                    rec["escalated"] = True
                    stage = STAGE_FINAL if nxt == self.state.last else STAGE_ESCALATED
                    m = await self._available(nxt, rec)
                    continue
            rec["final_model"], rec["completion_s"] = m, result["done_s"]
            return result["image"]

    def _decide(self, m: int, quality: float | None) -> int:
        """ACCEPT or the next model; an image without a score (its worker was configured
        under a plan that did not judge the model) is accepted."""
        if quality is None:
            return ACCEPT
        hook = self.hooks.accept_or_escalate
        if hook is None:
            return self.state.accept_or_escalate(m, quality)
        return hook(self.state, m, quality, time.time())

    async def _route(self, score: float, rec: dict) -> tuple[int, int]:
        """(stage, model) of a query entering under the plan in force; waits for a plan that
        has workers for the model it routes to."""
        while True:
            route = self.hooks.route
            if route is None:
                m = self.state.route(score, self.draw)
            else:
                m = route(self.state, score, time.time(), self.queued())
            if m != NO_MODEL and self.workers_of[m]:
                break
            await self._wait_for_plan(rec)
        if m == self.state.last:
            rec["bypassed"] = True
            return STAGE_FINAL, m
        return STAGE_OPEN, m

    async def _reenter(self, stage: int, score: float, rec: dict) -> tuple[int, int]:
        """As `Cluster.apply_plan` re-dispatches: a query not yet served routes again, one past
        its first stage goes to the plan's `requeue` model."""
        if stage == STAGE_OPEN:
            return await self._route(score, rec)
        while True:
            m = self.state.requeue(self.draw)
            if m != NO_MODEL and self.workers_of[m]:
                return (STAGE_FINAL if m == self.state.last else STAGE_ESCALATED), m
            await self._wait_for_plan(rec)

    async def _available(self, m: int, rec: dict) -> int:
        while not self.workers_of[m]:
            await self._wait_for_plan(rec)
        return m

    async def _wait_for_plan(self, rec: dict) -> None:
        start = time.time()
        await self.plan_changed.wait()
        rec["waited_s"] += time.time() - start

    async def _run_on(self, m: int, prompt_id: int, rec: dict, image_idx: int) -> dict:
        """One visit of model m: queued at one of its workers until served or dropped;
        `requeue` when the worker answers `resend` (its model changed) or the model has no
        workers left; sent again when the worker's replica died (at most MAX_RETRIES times).
        Adds the visit's time at the worker to the query's record."""
        self.visit_s[m].append(time.time())
        lost = 0
        while True:
            w = self._choose(m)
            if w is None:
                return {"status": "requeue"}
            self.sent[w] += 1
            if self.sent[w] == 1 and w not in self.loading:  # an idle worker serves it at once
                self.serving[w] = 1
            try:
                sent_s = time.time()
                result = await self.handles[w].remote(
                    m, self.version, prompt_id, rec["arrival_s"], image_idx
                )
                back_s = time.time()
            except Exception as exc:
                if type(exc).__name__ not in REPLICA_LOST:
                    raise
                lost += 1
                rec["retries"] += 1
                self._mark_down(w)
                if lost > MAX_RETRIES:
                    return {
                        "status": "failed",
                        "reason": f"worker of {self.bundle.model_names[m]} lost "
                        f"{lost} times ({type(exc).__name__})",
                    }
                continue
            finally:
                self.sent[w] -= 1
                if not self.sent[w]:
                    self.serving[w] = 0
            rec["at_workers_s"] += result.get("at_worker_s", 0.0)
            if "answered_s" in result:  # queued or held there (a resend is answered at once)
                received_s = result["answered_s"] - result["at_worker_s"]
                rec["to_workers_s"] += received_s - sent_s
                rec["from_workers_s"] += back_s - result["answered_s"]
            if result["status"] == "resend":
                rec["resends"] += 1
                return {"status": "requeue"}
            if result["status"] == "done":
                config = self.worker_configs[w]
                if config is None or config["model"] == m:  # not a batch of its former model
                    self.loading.discard(w)
                self.busy_s += result["busy_s"]
                rec["visits"] += 1
                rec["batches"].append([w, m, *(result[k] for k in SERVED_BATCH_KEYS)])
                self.serving_since_s[w] = max(self.serving_since_s[w], result["done_s"])
                if self.sent[w]:
                    self.serving[w] = result["next_batch"]
            return result

    def _choose(self, m: int) -> int | None:
        """The worker slot for a query of model m (None: no workers): `serving.dispatch`'s
        rule over this ingress's outstanding queries at each worker, those whose replica died
        left out while another is up."""
        slots = self.workers_of[m]
        if not slots:
            return None
        if self.down:
            slots = [w for w in slots if w not in self.down] or slots
        return slots[choose_replica(self.dispatch, [self.sent[w] for w in slots], self.pick)]

    def _mark_down(self, w: int) -> None:
        if w not in self.down:
            self.down.add(w)
            asyncio.get_running_loop().create_task(self._revive(w))

    async def _revive(self, w: int) -> None:
        """Back in dispatch once the worker's (restarted) replica answers, given the
        configuration in force (it asked for it when it started, `Worker.reconfigure`; a plan
        made meanwhile may have been sent to the replica that died). A restarted replica loads
        its model again: until its first batch, the queries sent to it count as queued, as at
        a worker the plan gave a new model (`set_plan`)."""
        while True:
            try:
                status = await self.handles[w].status.remote()
                if self.worker_configs[w] is not None:
                    await self.handles[w].configure.remote(self.worker_configs[w])
                break
            except Exception:
                await asyncio.sleep(REVIVE_WAIT_S)
        if not status["loaded"] and status["model"] != NO_MODEL:
            self.loading.add(w)
            self.serving_since_s[w] = time.time()  # no batch of the dead replica's counts
        self.down.discard(w)


def _error(exc: RequestError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def ingress_app(setup: ServeSetup):
    """The ingress application (one replica: it owns the live counters)."""
    actor_options = serve_stack(setup.stack).replica_options(INGRESS_ACTOR_OPTIONS)
    return Ingress.options(num_replicas=1, ray_actor_options=actor_options).bind(setup.to_dict())
