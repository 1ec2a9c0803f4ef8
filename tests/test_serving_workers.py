"""A serving worker slot (`serving.workers.Worker`) without Ray: the class Serve runs, driven by
its configuration (`configure`; `reconfigure` as Serve starts a replica) and calls on one event
loop, with emulated models. A swap costs the model's load time inside the running worker
(queries held meanwhile), a batch in service ends on its model before the load starts (as the
simulator's worker), queued queries of a replaced model are answered `resend`, queries from a
newer plan wait for its configuration, one from an older plan arriving late is ignored, a
replica Serve restarted takes the ingress's configuration when it is newer than the deployed
one, and the drop rule and an idle slot without a model behave as the simulator's."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("ray.serve")

from serving.emulated import EmulatedModel  # noqa: E402
from serving.workers import RESEND, Worker, worker_actor_options  # noqa: E402
from simulator.core import NO_MODEL  # noqa: E402

LOAD_S = 0.3
BATCH_S = (0.0, 0.2, 0.25, 0.3)  # latency of a batch of 1, 2, 3
A, B = 0, 1
MODELS = [
    EmulatedModel("a", BATCH_S, (0.9, 0.1), disc_cost_s=0.0, load_s=LOAD_S),
    EmulatedModel("b", BATCH_S, (0.7, 0.2), disc_cost_s=0.0, load_s=LOAD_S),
]
SLACK_S = 0.08  # event-loop scheduling on a shared machine


def visit_record() -> dict:
    """The ingress's record of a query as its worker visits fill it in (`Ingress._run_on`)."""
    return {
        "arrival_s": time.time(),
        "at_workers_s": 0.0,
        "to_workers_s": 0.0,
        "from_workers_s": 0.0,
        "visits": 0,
        "batches": [],
    }


def config(model: int, assigned: int, batch_size: int = 1, plan: int | None = None) -> dict:
    """A worker's configuration; sent by plan `assigned` unless `plan` says which."""
    return {
        "plan": assigned if plan is None else plan,
        "model": model,
        "assigned": assigned,
        "batch_size": batch_size,
        "judged": False,
        "scored": True,
    }


def new_worker(drop_limit_s: float = 60.0):
    return Worker.func_or_class(MODELS, drop_limit_s)


async def loaded_worker(model: int, drop_limit_s: float = 60.0, batch_size: int = 1):
    """A worker with `model` loaded under plan 1 (a fresh worker loads from its start)."""
    worker = new_worker(drop_limit_s)
    await worker.configure(config(model, 1, batch_size))
    while not worker.status()["loaded"]:
        await asyncio.sleep(0.01)
    return worker


def test_a_swap_costs_the_load_time_and_holds_queries_until_loaded():
    async def scenario():
        worker = new_worker()
        await asyncio.sleep(0.02)  # the plan's request came before: the load does not count it
        await worker.configure(config(A, 1))
        first = asyncio.ensure_future(worker(A, 1, 0, time.time()))
        await asyncio.sleep(0.05)
        assert not first.done() and not worker.status()["loaded"]  # loading: held
        done = await first
        status = worker.status()
        return done, status

    done, status = asyncio.run(scenario())
    assert status == {
        "model": A,
        "assigned": 1,
        "loaded": True,
        "configured_s": status["configured_s"],
        "load_from_s": status["configured_s"],
        "loaded_s": status["loaded_s"],
        "error": None,
    }
    # the load ends load_s after the worker got its new model (it was idle: no batch to end),
    # as the simulated worker loads from its plan hop (no replica start)
    assert LOAD_S <= status["loaded_s"] - status["configured_s"] <= LOAD_S + SLACK_S
    assert done["status"] == "done" and done["quality"] == 0.9
    assert done["start_s"] >= status["loaded_s"]
    assert BATCH_S[1] <= done["done_s"] - done["start_s"] <= BATCH_S[1] + SLACK_S


def test_a_model_change_resends_the_queue_ends_the_batch_in_service_then_loads():
    async def scenario():
        worker = await loaded_worker(A)
        calls = [asyncio.ensure_future(worker(A, 1, p, time.time())) for p in (0, 1, 1)]
        await asyncio.sleep(0.05)  # query 0 in service (batch size 1), two queued
        swap_s = time.time()
        await worker.configure(config(B, 2))
        early = asyncio.ensure_future(worker(B, 2, 0, time.time()))  # queued behind b's load
        answers = await asyncio.gather(*calls)
        late = await worker(B, 2, 0, time.time())  # held while b loads
        return swap_s, answers, late, worker.status(), await early

    swap_s, answers, late, status, early = asyncio.run(scenario())
    served, *resent = answers
    # a's batch ended with b's query queued: the worker loads b next, so none is about to
    # be served (the ingress counts that query queued, as the simulator does)
    assert served["next_batch"] == 0 and early["status"] == "done"
    # the queue of a worker whose model changed: rerouted, after waiting there since sent
    assert [r["status"] for r in resent] == ["resend", "resend"]
    assert all(0.05 <= r["at_worker_s"] <= 0.05 + SLACK_S for r in resent)
    assert served["status"] == "done" and served["quality"] == 0.9  # model a's image
    # its time at the worker: queued (none: it came first) and served
    assert served["done_s"] - served["start_s"] <= served["at_worker_s"]
    assert served["at_worker_s"] <= served["done_s"] - served["start_s"] + SLACK_S
    assert served["done_s"] > swap_s  # the batch in service ended after the plan changed
    # b loads once the worker is free of a's batch (as `Cluster.worker_process`)
    assert status["model"] == B and status["loaded"]
    assert status["load_from_s"] == served["done_s"]  # the load counts from the batch's end
    assert LOAD_S <= status["loaded_s"] - served["done_s"] <= LOAD_S + SLACK_S
    assert late["status"] == "done" and late["quality"] == 0.7
    assert late["start_s"] >= status["loaded_s"]


def test_queries_of_a_newer_plan_wait_for_its_configuration_stale_ones_are_resent():
    async def scenario():
        worker = await loaded_worker(A)
        early = asyncio.ensure_future(worker(B, 2, 1, time.time()))  # the ingress knows plan 2
        stale = await worker(B, 1, 1, time.time())  # plan 1 never put b here
        await asyncio.sleep(0.05)
        assert not early.done()
        await worker.configure(config(B, 2))
        return stale, await early

    stale, early = asyncio.run(scenario())
    assert stale == RESEND  # answered at once: no time at the worker
    assert early["status"] == "done" and early["quality"] == 0.2
    assert early["at_worker_s"] >= 0.05 + BATCH_S[1]  # held until plan 2 came, then served


def test_a_slot_without_a_model_stays_idle_and_the_drop_rule_applies():
    async def scenario():
        idle = new_worker()
        await idle.configure(config(NO_MODEL, 3))
        resent = await idle(A, 3, 0, time.time())
        worker = await loaded_worker(A, drop_limit_s=1.0, batch_size=2)
        # arrived 0.9 s ago: a batch of 2 (0.25 s) would end 1.15 s after its arrival
        late = worker(A, 1, 0, time.time() - 0.9)
        fresh = worker(A, 1, 1, time.time())
        return idle.status(), resent, await asyncio.gather(late, fresh)

    status, resent, (late, fresh) = asyncio.run(scenario())
    assert status["model"] == NO_MODEL and status["loaded"] and status["loaded_s"] is None
    assert resent == RESEND
    assert late["status"] == "dropped" and late["reason"] == "drop rule"
    assert 0 <= late["at_worker_s"] < SLACK_S
    assert fresh["status"] == "done" and fresh["quality"] == 0.1


def test_a_worker_reserves_what_its_most_demanding_model_needs():
    class Spec:
        def __init__(self, options):
            self.actor_options = options

    gpu = Spec({"num_cpus": 1, "num_gpus": 1})
    cpu = Spec({"num_cpus": 0.01})
    assert worker_actor_options([cpu, gpu]) == {"num_cpus": 1, "num_gpus": 1}
    assert worker_actor_options(MODELS) == {"num_cpus": 0.01}


class _Direct:
    """A deployment handle stand-in: `remote` calls the worker in this event loop."""

    def __init__(self, worker) -> None:
        self.remote = worker.__call__


class _Handle(_Direct):
    """A stand-in for a worker's whole handle: its calls, `status` and `configure`."""

    def __init__(self, worker) -> None:
        super().__init__(worker)

        async def status() -> dict:
            return worker.status()

        self.status = SimpleNamespace(remote=status)
        self.configure = SimpleNamespace(remote=worker.configure)


def test_the_ingress_counts_the_queue_from_the_workers_answers():
    """The planner's queue input on the real path: the queries at a worker beyond the batch it
    serves (the simulator's count), known from the answers' `next_batch` without asking the
    worker. One worker, batch size 2: q1 alone (idle), then q2, q3 together, then q4."""
    from serving.ingress import Ingress

    slow = (0.0, 0.4, 0.5)  # batch of 1, 2: wide margins around each sample
    models = [EmulatedModel("a", slow, (0.9,), disc_cost_s=0.0, load_s=0.0)]

    async def scenario():
        worker = Worker.func_or_class(models, 60.0)
        await worker.configure(config(A, 1, batch_size=2))
        while not worker.status()["loaded"]:
            await asyncio.sleep(0.01)
        ing = Ingress.func_or_class.__new__(Ingress.func_or_class)  # the dispatch state only
        ing.handles, ing.workers_of = [_Direct(worker)], [[0]]
        ing.sent, ing.serving, ing.down, ing.loading = [0], [0], set(), set()
        ing.serving_since_s = [0.0]
        ing.worker_configs = [None]
        ing.dispatch, ing.pick, ing.visit_s, ing.version, ing.busy_s = "jsq", None, [[]], 1, 0.0
        start = time.time()

        def visit():
            rec = visit_record()
            return asyncio.ensure_future(ing._run_on(A, 0, rec, 0))

        async def at(seconds: float) -> tuple[int, int]:
            await asyncio.sleep(max(0.0, start + seconds - time.time()))
            return ing.queued()[A], len(worker.queue)

        visits = [visit()]
        for t in (0.10, 0.12, 0.14):
            await at(t)
            visits.append(visit())
        samples = [await at(t) for t in (0.25, 0.65, 1.1)]  # q1, then q2 + q3, then q4 serve
        answers = await asyncio.gather(*visits)
        return samples, answers, ing.queued()[A], ing.serving

    samples, answers, after, serving = asyncio.run(scenario())
    assert [a["batch_size"] for a in answers] == [1, 2, 2, 1]
    assert samples == [(3, 3), (1, 1), (0, 0)]  # workers x batch size would say 2, 0, 0
    assert after == 0 and serving == [0]


def test_a_query_at_a_worker_loading_its_model_counts_as_queued_then_in_service():
    """The simulator counts a query held at a worker that loads its model as queued (no batch
    runs), and the first batch after the load as in service from its start; so does the
    ingress for a slot the plan gave a new model: queued while it loads, then in service as
    the worker announces that batch (`Worker.announce_batch` -> `Ingress.batch_started`), not
    only when its answer comes."""
    from serving.ingress import Ingress

    models = [EmulatedModel("a", (0.0, 0.3), (0.9,), disc_cost_s=0.0, load_s=0.4)]

    async def scenario():
        worker = Worker.func_or_class(models, 60.0)
        ing = Ingress.func_or_class.__new__(Ingress.func_or_class)  # the dispatch state only
        announced = []

        def announce_batch(start_s: float, size: int) -> None:  # Serve's call, without Ray
            announced.append(size)
            asyncio.ensure_future(ing.batch_started(0, start_s, size))

        worker.announce_batch = announce_batch
        await worker.configure(config(A, 1))  # loads 0.4 s, then serves 0.3 s
        ing.handles, ing.workers_of = [_Direct(worker)], [[0]]
        ing.sent, ing.serving, ing.down, ing.loading = [0], [0], set(), {0}
        ing.serving_since_s, ing.first_batches = [0.0], []
        ing.worker_configs = [{**config(A, 1), "slot": 0}]
        ing.dispatch, ing.pick, ing.visit_s, ing.version, ing.busy_s = "jsq", None, [[]], 1, 0.0
        rec = visit_record()
        visit = asyncio.ensure_future(ing._run_on(A, 0, rec, 0))
        await asyncio.sleep(0.2)  # loading
        loading = ing.queued()[A], len(worker.queue)
        await asyncio.sleep(0.35)  # the first batch in service (from 0.4 s to 0.7 s)
        serving = ing.queued()[A], ing.serving[0], ing.loading
        answer = await visit
        return loading, serving, announced, answer, ing.queued()[A], ing.loading, rec

    loading, serving, announced, answer, after, left, rec = asyncio.run(scenario())
    # the calls' way there and back (in-process here): what the hops hold besides the proxy
    assert 0 <= rec["to_workers_s"] < SLACK_S and 0 <= rec["from_workers_s"] < SLACK_S
    assert answer["answered_s"] - answer["at_worker_s"] >= rec["arrival_s"]
    assert loading == (1, 1)  # counted in service, it would be (0, 1)
    assert serving == (0, 1, set())  # without the announcement: (1, 0, {0}) until the answer
    assert announced == [1]  # once: the first batch after the load
    assert answer["status"] == "done" and after == 0 and left == set()


def test_a_restarted_replica_counts_its_queries_as_queued_while_it_loads_again():
    """A worker whose replica Serve restarted loads its model again (a restart pays the load):
    once the ingress revives it, a query sent there counts as queued until the first batch
    after the load begins, as at a worker the plan gave a new model."""
    from serving.ingress import Ingress

    models = [EmulatedModel("a", (0.0, 0.3), (0.9,), disc_cost_s=0.0, load_s=0.4)]

    async def scenario():
        restarted = Worker.func_or_class(models, 60.0)  # the new replica
        ing = Ingress.func_or_class.__new__(Ingress.func_or_class)  # the dispatch state only

        def announce_batch(start_s: float, size: int) -> None:  # Serve's call, without Ray
            asyncio.ensure_future(ing.batch_started(0, start_s, size))

        restarted.announce_batch = announce_batch
        in_force = {**config(A, 1), "slot": 0}
        await restarted.configure(in_force)  # as `Worker.reconfigure` as it starts: loads 0.4 s
        ing.handles, ing.workers_of = [_Handle(restarted)], [[0]]
        ing.sent, ing.serving, ing.down, ing.loading = [0], [0], {0}, set()
        ing.serving_since_s, ing.first_batches = [0.0], []
        ing.worker_configs = [in_force]
        ing.dispatch, ing.pick, ing.visit_s, ing.version, ing.busy_s = "jsq", None, [[]], 1, 0.0
        await ing._revive(0)
        revived = set(ing.down), set(ing.loading)
        visit = asyncio.ensure_future(ing._run_on(A, 0, visit_record(), 0))
        await asyncio.sleep(0.2)  # loading
        loading = ing.queued()[A]
        await asyncio.sleep(0.35)  # the first batch in service (from 0.4 s to 0.7 s)
        serving = ing.queued()[A], set(ing.loading)
        answer = await visit
        return revived, loading, serving, answer

    revived, loading, serving, answer = asyncio.run(scenario())
    assert revived == (set(), {0})
    assert loading == 1  # not marked loading, it would count in service: 0
    assert serving == (0, set())
    assert answer["status"] == "done"


def test_a_late_announcement_does_not_undo_the_answer_of_its_batch():
    """The announcement and the batch's answer travel by different calls: one that arrives
    after the answer (or after a newer batch's) must not count a batch in service again."""
    from serving.ingress import Ingress

    async def scenario():
        ing = Ingress.func_or_class.__new__(Ingress.func_or_class)
        ing.sent, ing.serving, ing.loading, ing.serving_since_s = [2], [0], {0}, [10.0]
        ing.first_batches = []
        await ing.batch_started(0, 9.5, 2)  # began before the answer that set since = 10 s
        late = ing.serving[0], set(ing.loading)
        await ing.batch_started(0, 10.5, 3)  # a newer batch: counted, at most what is sent
        return late, ing.serving[0], ing.loading, ing.serving_since_s, ing.first_batches

    late, serving, loading, since, logged = asyncio.run(scenario())
    assert late == (0, {0})
    assert serving == 2 and loading == set() and since == [10.5]
    assert logged == [(0, 10.5, 3)]


def test_an_older_plans_configuration_arriving_late_is_ignored():
    """Plan 3's configuration comes before plan 2's (calls from the controller and from the
    ingress, which re-sends a revived replica its configuration, are not ordered): plan 2's
    (batch size 1, model b) must not undo plan 3's (batch size 2)."""

    async def scenario():
        worker = await loaded_worker(A)
        await worker.configure(config(A, 1, batch_size=2, plan=3))
        await worker.configure(config(B, 2, plan=2))  # late
        calls = [worker(A, 1, i, time.time()) for i in range(2)]
        return worker.status(), await asyncio.gather(*calls)

    status, answers = asyncio.run(scenario())
    assert status["model"] == A and status["assigned"] == 1
    assert {r["status"] for r in answers} == {"done"}
    assert [r["batch_size"] for r in answers] == [2, 2]  # plan 3's batch size in force


@pytest.mark.parametrize("ingress_plan", [None, 1, 5])
def test_a_started_replica_takes_the_ingress_configuration_when_newer(ingress_plan):
    """Serve starts a replica with the initial plan's configuration (plan 1, model a); one
    restarted after plan 5 put model b in its slot must load b, not a. The ingress has no
    configuration yet (None), the same plan's, or a newer one."""
    asked = []

    async def scenario():
        worker = new_worker()

        async def ingress_config(slot: int):
            asked.append(slot)
            return None if ingress_plan is None else {**config(B, ingress_plan), "slot": slot}

        worker.ingress_config = ingress_config
        await worker.reconfigure({**config(A, 1), "slot": 3})
        while not worker.status()["loaded"]:
            await asyncio.sleep(0.01)
        return worker.status()

    status = asyncio.run(scenario())
    assert asked == [3]
    newer = ingress_plan == 5
    assert (status["model"], status["assigned"]) == ((B, 5) if newer else (A, 1))


@pytest.mark.parametrize("preloaded", [True, False, None])
def test_the_initial_deployment_loads_at_once_and_a_restart_pays_the_load(preloaded):
    """A replica started before the ingress is ready (the initial deployment; None: deployed
    beside the ingress, which has no plan yet) has its model in place at once, as the
    simulator preloads the initial plan's; one restarted mid-run pays the load time; a later
    swap on a preloaded replica pays it too."""

    async def scenario():
        worker = new_worker()

        async def ingress_config(slot: int):
            if preloaded is None:
                return None
            return {**config(A, 1), "slot": slot, "preloaded": preloaded}

        worker.ingress_config = ingress_config
        start = time.monotonic()
        await worker.reconfigure({**config(A, 1), "slot": 0})
        while not worker.status()["loaded"]:
            await asyncio.sleep(0.01)
        first_s = time.monotonic() - start
        await worker.configure({**config(B, 2), "slot": 0})
        start = time.monotonic()
        while not worker.status()["loaded"]:
            await asyncio.sleep(0.01)
        return first_s, time.monotonic() - start

    first_s, swap_s = asyncio.run(scenario())
    if preloaded is not False:
        assert first_s < LOAD_S / 3
    else:
        assert first_s >= LOAD_S - 0.01
    assert swap_s >= LOAD_S - 0.05


def test_the_ingress_marks_configurations_preloaded_until_it_is_ready():
    from serving.ingress import Ingress

    async def scenario():
        ing = Ingress.func_or_class.__new__(Ingress.func_or_class)  # the configuration state
        ing.worker_configs, ing.ready, ing.loading, ing.handles = (
            [None, {**config(A, 1), "slot": 1}],
            False,
            set(),
            [],
        )
        before = await ing.worker_config(0), await ing.worker_config(1)
        await ing.set_ready()
        return before, await ing.worker_config(1)

    (none, initial), restart = asyncio.run(scenario())
    assert none is None
    assert initial["preloaded"] is True and restart["preloaded"] is False
    assert {k: v for k, v in restart.items() if k != "preloaded"} == {
        **config(A, 1),
        "slot": 1,
    }


def test_the_ingress_calls_each_worker_once_before_it_is_ready():
    """A handle's first call sets up its routing (~50 ms for the first query each worker got,
    session 40): `set_ready` makes that call, so no query pays it; a worker that fails it does
    not keep the ingress from being ready."""
    from serving.ingress import Ingress

    calls = []

    def handle(w: int, fails: bool = False) -> SimpleNamespace:
        async def status():
            calls.append(w)
            if fails:
                raise RuntimeError("replica gone")
            return {"model": A}

        return SimpleNamespace(status=SimpleNamespace(remote=status))

    ing = Ingress.func_or_class.__new__(Ingress.func_or_class)
    ing.ready, ing.loading = False, {1}
    ing.handles = [handle(0), handle(1, fails=True), handle(2)]
    asyncio.run(ing.set_ready())
    assert sorted(calls) == [0, 1, 2]
    assert ing.ready and not ing.loading
