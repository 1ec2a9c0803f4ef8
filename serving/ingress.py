"""The ingress deployment: the HTTP API (`POST /v1/images/generations`) and the cascade of each
query, decided by the decision core (`simulator.core.PlanState`: route by router score,
accept-or-escalate by quality score) or the policy's per-query hooks — the rules the simulator
runs, never a copy.

Per query: arrival -> router cost (when the policy routes) -> admission -> route -> a model's
deployment (queued at one of its replicas, chosen by `serving.dispatch`) -> accept or
escalate by the quality score of the image it made -> ... as `simulator.cluster.Cluster`
does. The response carries the final model's image (`b64_json`; None on the emulated backend)
and the t2isim record of each image (times, models, the deciding quality score). A query
routed to a model without workers waits for the next plan (an orphan). A replica that dies
with the query is retried on the model's other replicas (MAX_RETRIES), after which the query
fails with the reason; every query ends as exactly one of done / dropped / failed.

`POST /v1/t2isim/epoch` marks the start of a replay (see `mark_epoch`);
`GET /v1/t2isim/state` returns the setup, whether the initial plan's replicas run (`ready`),
the plans in force (wall-clock times), the demand log, the measured model swaps and the
GPU-busy seconds: what a load generator needs to write a run folder.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from serving.replicas import MAX_ONGOING
from serving.requests import EPOCH, GENERATIONS, STATE, RequestError, parse_request
from serving.setup import ServeSetup, model_app
from simulator.cluster import STAGE_ESCALATED, STAGE_FINAL, STAGE_OPEN
from simulator.core import ACCEPT, NO_MODEL, PlanState
from simulator.engine import SEED_STREAM_DISPATCH, stream_seed
from simulator.hooks import PolicyHooks
from simulator.policy import Plan

MAX_RETRIES = 2  # resends of a query whose replica died
UNAVAILABLE_WAIT_S = 0.2  # before asking again a deployment that a plan just removed
REPLICA_LOST = ("RayActorError", "ActorDiedError", "ActorUnavailableError")


@serve.deployment(max_ongoing_requests=MAX_ONGOING, ray_actor_options={"num_cpus": 0.1})
class Ingress:
    def __init__(self, setup: dict) -> None:
        self.setup = ServeSetup.from_dict(setup)
        bundle, policy, config = self.setup.build()
        self.bundle = bundle
        self.config = config
        self.n_models = len(bundle.model_names)
        self.router_scores = policy.router_scores.tolist()
        self.router_np = policy.router_scores
        self.quality_np = policy.quality_scores
        self.router_shift_s = config.router_cost_s * config.time_scale if policy.uses_router else 0
        self.hooks = PolicyHooks.of(policy)
        self.draw = random.Random(stream_seed(config.seed, SEED_STREAM_DISPATCH)).random
        self.prompt_of_text: dict[str, int] = {}
        for i, text in enumerate(bundle.prompts["text"]):
            self.prompt_of_text.setdefault(text, i)
        self.handles = [
            serve.get_deployment_handle("ModelReplica", model_app(m, name), _check_exists=False)
            for m, name in enumerate(bundle.model_names)
        ]
        self.state = PlanState(self.n_models)
        self.workers = [0] * self.n_models
        self.batch = [1] * self.n_models
        self.plan_changed = asyncio.Event()
        self.plans: list[dict] = []
        self.demand: list[tuple[float, float]] = []
        self.arrived = 0
        self.inflight = 0
        self.model_arrivals = [0] * self.n_models
        self.outstanding = [0] * self.n_models
        self.busy_s = 0.0
        self.ready = False  # the initial plan's replicas run
        self.epoch_s = 0.0
        self.swaps: list[dict] = []

    # ------------------------------------------------------------------ controller side

    def set_plan(self, plan: Plan, planned_s: float, swap_load_s: float) -> float:
        """Put a plan in force for routing now (its swaps cost `swap_load_s` GPU seconds);
        returns the wall time it took effect."""
        index = self.bundle.model_index
        self.state = PlanState.from_plan(plan, index, self.router_np, self.quality_np)
        self.workers = [0] * self.n_models
        self.batch = [1] * self.n_models
        for name, count in plan.workers.items():
            self.workers[index(name)] = count
        for name, size in plan.batch_size.items():
            self.batch[index(name)] = int(size)
        self.busy_s += swap_load_s
        applied = time.time()
        demand = self.demand[-1][1] if self.demand else 0.0
        self.plans.append(
            {
                "planned_s": planned_s,
                "applied_s": applied,
                "demand_qps": demand,
                "plan": asdict(plan),
            }
        )
        self.plan_changed.set()
        self.plan_changed = asyncio.Event()
        return applied

    def mark_epoch(self) -> float:
        """A replay starts now: the controller restarts its estimators and plans afresh, as a
        simulation starts at t = 0; the arrival counters it reads restart from 0."""
        self.epoch_s = time.time()
        self.arrived = 0
        self.model_arrivals = [0] * self.n_models
        return self.epoch_s

    def set_ready(self) -> None:
        self.ready = True

    def log_swap(self, model: str, requested_s: float, running_s: float) -> None:
        """A model's deployment reached its planned replicas (wall-clock times)."""
        self.swaps.append({"model": model, "requested_s": requested_s, "running_s": running_s})

    def tick(self, now_s: float, demand_qps: float | None) -> dict:
        """The live counters the controller's estimators read (simulator.controller); logs the
        demand estimate of the tick that ended at `now_s`. Queued per model = outstanding
        beyond what its replicas hold in service (workers x batch size)."""
        if demand_qps is not None:
            self.demand.append((now_s, demand_qps))
        return {
            "epoch_s": self.epoch_s,
            "arrived": self.arrived,
            "inflight": self.inflight,
            "model_arrivals": list(self.model_arrivals),
            "queued": [
                max(0, o - w * b) for o, w, b in zip(self.outstanding, self.workers, self.batch)
            ],
        }

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
            return JSONResponse({"epoch_s": self.mark_epoch()})
        try:
            req = parse_request(await request.body(), self.bundle.n_prompts)
            prompt_id = req.prompt_id
            if prompt_id is None:
                prompt_id = self.prompt_of_text.get(req.prompt)
            if prompt_id is None:
                raise RequestError(
                    "prompt: not one of the bundle's prompts (the serving path serves those; "
                    "give its text or prompt_id)",
                    422,
                    "prompt",
                )
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
            "demand": self.demand,
            "busy_s": self.busy_s,
            "ready": self.ready,
            "swaps": self.swaps,
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
        }
        self.arrived += 1
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
            await asyncio.sleep(self.router_shift_s)
        admit = self.hooks.admit
        if admit is not None and not admit(time.time(), score, self.inflight):
            rec["status"], rec["reason"] = "dropped", "not admitted"
            return None
        stage, m = await self._route(score, rec)
        while True:
            result = await self._run_on(m, prompt_id, rec["arrival_s"], image_idx)
            if result["status"] == "requeue":  # its model lost its workers: the next plan
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
                    m = await self._available(nxt)
                    continue
            rec["final_model"], rec["completion_s"] = m, result["done_s"]
            return result["image"]

    def _decide(self, m: int, quality: float | None) -> int:
        """ACCEPT or the next model; an image without a score (its replica was configured
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
                m = route(self.state, score, time.time(), self.tick(time.time(), None)["queued"])
            if m != NO_MODEL and self.workers[m] > 0:
                break
            await self.plan_changed.wait()
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
            if m != NO_MODEL and self.workers[m] > 0:
                return (STAGE_FINAL if m == self.state.last else STAGE_ESCALATED), m
            await self.plan_changed.wait()

    async def _available(self, m: int) -> int:
        while self.workers[m] == 0:
            await self.plan_changed.wait()
        return m

    async def _run_on(self, m: int, prompt_id: int, arrival_s: float, image_idx: int) -> dict:
        """One visit of model m: queued at one of its replicas until served or dropped;
        resent when its replica died (at most MAX_RETRIES times) or left it unserved."""
        self.model_arrivals[m] += 1
        self.outstanding[m] += 1
        try:
            lost = 0
            while True:
                if self.workers[m] == 0:
                    return {"status": "requeue"}
                try:
                    result = await self.handles[m].remote(prompt_id, arrival_s, image_idx)
                except Exception as exc:
                    kind = type(exc).__name__
                    if kind == "DeploymentUnavailableError":  # deleted by a plan, or restarting
                        await asyncio.sleep(UNAVAILABLE_WAIT_S)
                        continue
                    if kind not in REPLICA_LOST:
                        raise
                    lost += 1
                    if lost > MAX_RETRIES:
                        return {
                            "status": "failed",
                            "reason": f"replica of {self.bundle.model_names[m]} lost "
                            f"{lost} times ({type(exc).__name__})",
                        }
                    continue
                if result["status"] == "resend":
                    continue
                if result["status"] == "done":
                    self.busy_s += result["busy_s"]
                return result
        finally:
            self.outstanding[m] -= 1


def _error(exc: RequestError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def ingress_app(setup: ServeSetup):
    """The ingress application (one replica: it owns the live counters)."""
    return Ingress.options(num_replicas=1).bind(setup.to_dict())
