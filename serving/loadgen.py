"""The load generator: replays a trace (any spec or file `simulate` accepts) open loop in real
time against a serving URL and writes the same run folder as `simulate` (`queries.parquet`,
`timeseries.csv`, `summary.json`, `config.json`), through the simulator's own metrics.

Each query is sent at its trace time (never waiting for earlier ones) as
`POST /v1/images/generations` with the bundle prompt's text and `prompt_id`; its latency is
the client's (send -> response). A query ends as exactly one of: done, dropped (by the
server's drop rule or admission), failed (a lost worker, an HTTP error; the reason is kept),
or no answer by late_factor x SLO; outcomes must add up to arrivals (the simulator's
conservation check, plus a count here). The server's plans and demand estimates
(`GET /v1/t2isim/state`) become the run's plan epochs and demand log. Beyond the simulator's
columns, `queries.parquet` carries per query the failure `reason`, `hops_s` (the serving
stack's share of its latency, `hops_seconds`), `to_workers_s` and `from_workers_s` (the
ingress's calls to its workers, summed over its visits: from each send to the worker's
receipt, and from its answer back to the ingress; NaN where not recorded; they compare the
ingress's and the worker's wall clocks, so they hold where both share a host's clock),
`counted_after_s`
(seconds from its trace time to the ingress counting it), `visits` and `resends`; `summary.json` the
swaps (`swap_s`), the plans' delivery (`plan_delay_s`), how late the client sent
(`send_lag_p99_ms`, `send_lag_max_ms`) and its garbage collector's longest pause during the
replay (`gc_pause_max_ms`, at `gc_pause_max_at_s` on the replay's clock; `CollectorPauses`);
`batches.csv` every batch the workers served (`served_batches`: the service times the
serving path measured); `plans.csv` every plan in force and `estimates.csv` the planner's
inputs at every tick, both including the drain after the trace's last second (`plans_frame`,
`estimates_frame`); `swaps.csv` every swap whose model loaded (`swaps_frame`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serving.planner_inputs import OBSERVATIONS_FILE, observations_frame, observations_from_entries
from serving.requests import EPOCH, GENERATIONS, STATE
from serving.setup import ServeSetup
from simulator.controller import PlanRecord
from simulator.core import NO_MODEL
from simulator.engine import RawRun
from simulator.errors import InputError, RunFailure
from simulator.metrics import ConservationError, compute_metrics
from simulator.policy import Observation, Plan
from simulator.results import code_version, sha256_json, write_run

MAX_CONNECTIONS = 2000
ANSWER_MARGIN_S = 5.0  # the client waits late_factor x SLO plus this for an answer
READY_TIMEOUT_S = 600.0


class UnreachableError(InputError):
    pass


@dataclass
class Answer:
    """One query as the client saw it (seconds since the replay started)."""

    sent_s: float = math.nan
    received_s: float = math.nan
    status: str = "failed"  # done | dropped | failed
    reason: str | None = None
    image: dict | None = None  # the server's record of the query


def fetch_state(url: str, timeout_s: float = 10.0) -> dict:
    """The server's state; an unreachable or foreign URL is an input error."""
    import httpx

    try:
        response = httpx.get(url.rstrip("/") + STATE, timeout=timeout_s)
        response.raise_for_status()
        state = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise UnreachableError(f"--url {url!r}: no t2isim server answers ({exc})") from None
    if not isinstance(state, dict) or not {"setup", "estimates"} <= state.keys():
        raise UnreachableError(f"--url {url!r}: answers, but not as a t2isim server")
    return state


def mark_epoch(url: str) -> float:
    """Tell the server a replay starts now (its controller restarts, as a simulation); returns
    the server's epoch (wall clock), where its controller anchors its ticks."""
    import httpx

    try:
        response = httpx.post(url.rstrip("/") + EPOCH, timeout=10.0)
        response.raise_for_status()
        return float(response.json()["epoch_s"])
    except httpx.HTTPError as exc:
        raise UnreachableError(f"--url {url!r}: cannot start a replay ({exc})") from None
    except (ValueError, KeyError, TypeError):
        raise UnreachableError(f"--url {url!r}: not a t2isim server (no epoch_s)") from None


def wait_ready(url: str, timeout_s: float = READY_TIMEOUT_S) -> dict:
    """The server's state once its initial plan's workers run (replaying earlier would
    measure the deployment, not the policy)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = fetch_state(url)
        if state.get("ready", True):
            return state
        if time.monotonic() > deadline:
            raise UnreachableError(f"--url {url!r}: server not ready after {timeout_s:g} s")
        time.sleep(1.0)


class CollectorPauses:
    """The garbage collector's pauses in this process while the block runs (`gc.callbacks`):
    per collection, its start (wall clock), length in ms and generation. A full collection
    stops the replay's event loop: `run_loadgen` reports the longest beside its sends."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._started = (0.0, 0.0)  # (wall clock, perf_counter) of the collection under way

    def __enter__(self) -> CollectorPauses:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = (time.time(), time.perf_counter())
            return
        wall_s, perf_s = self._started
        self.pauses.append((wall_s, (time.perf_counter() - perf_s) * 1e3, info["generation"]))

    def longest(self, origin_s: float) -> dict:
        """The longest pause on the replay's clock (`origin_s`: its t = 0, wall clock), and the
        count of full (generation 2) collections."""
        full = sum(generation == 2 for _, _, generation in self.pauses)
        if not self.pauses:
            return {"gc_pause_max_ms": 0.0, "gc_pause_max_at_s": None, "gc_full_collections": 0}
        wall_s, ms, _ = max(self.pauses, key=lambda pause: pause[1])
        return {
            "gc_pause_max_ms": round(ms, 3),
            "gc_pause_max_at_s": round(wall_s - origin_s, 3),
            "gc_full_collections": full,
        }


async def replay(
    url: str, arrival_s, prompt_idx, texts, answer_timeout_s: float, progress=None
) -> tuple[list[Answer], float, float]:
    """Send every query at its arrival time (open loop): (their answers in trace order, the
    server's epoch, the replay's origin), both wall clock. The epoch is marked once the client
    is ready, and the replay's t = 0 follows at once, so the server's ticks and the trace's
    seconds share an origin up to the epoch call's way back. `progress(answered, sent=N)`, if
    given, is called as each query is sent and as each one ends. Its wait for the answers
    after the last send is O(1) (a count, not a gather over every query: that took the last
    query's turn to be sent, 120-171 ms late after 4,912 queries on a busy machine)."""
    import aiohttp

    counts = {"sent": 0, "answered": 0}
    all_answered = asyncio.Event()
    errors: list[BaseException] = []  # what a query's task raised beyond `_send`'s outcomes

    def count(key: str) -> None:
        counts[key] += 1
        if progress is not None:
            progress(counts["answered"], sent=counts["sent"])

    def answered(task: asyncio.Task) -> None:
        count("answered")
        if not task.cancelled() and task.exception() is not None:
            errors.append(task.exception())
        if errors or counts["answered"] == len(answers):
            all_answered.set()

    endpoint = url.rstrip("/") + GENERATIONS
    answers = [Answer() for _ in range(len(arrival_s))]
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=answer_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        loop = asyncio.get_running_loop()
        epoch_s = mark_epoch(url)
        t0, origin_s = loop.time(), time.time()
        tasks = []
        for i, at in enumerate(arrival_s.tolist()):
            delay = t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"prompt": texts[prompt_idx[i]], "prompt_id": int(prompt_idx[i])}
            sent = _send(client, endpoint, body, answers[i], t0)
            tasks.append(asyncio.create_task(sent))  # held: the loop keeps weak references
            tasks[-1].add_done_callback(answered)
            count("sent")
        if answers:
            await all_answered.wait()
        if errors:
            raise errors[0]
    return answers, epoch_s, origin_s


async def _send(client, endpoint: str, body: dict, answer: Answer, t0: float) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    answer.sent_s = loop.time() - t0
    try:
        async with client.post(endpoint, json=body) as response:
            status, content = response.status, await response.read()
    except TimeoutError:
        answer.status, answer.reason = "dropped", "no answer by late_factor x SLO"
        return
    except aiohttp.ClientError as exc:
        answer.reason = f"{type(exc).__name__}: {exc}"
        return
    answer.received_s = loop.time() - t0
    try:
        payload = json.loads(content)
    except (ValueError, RecursionError):
        answer.reason = f"HTTP {status}, body not JSON"
        return
    if not isinstance(payload, dict):
        answer.reason = f"HTTP {status}, body not a JSON object"
        return
    extra = payload.get("t2isim")
    images = extra.get("images") if isinstance(extra, dict) else None
    if not images:
        answer.reason = f"HTTP {status}: {payload.get('error', payload)}"
        return
    answer.image = images[0]
    answer.status, answer.reason = images[0]["status"], images[0]["reason"]


def to_raw_run(
    answers: list[Answer],
    trace,
    state: dict,
    origin_s: float,
    busy_s: float,
    tick_s: float,
    epoch_s: float,
    n_models: int,
    observations: tuple[Observation, ...] = (),
) -> RawRun:
    """The replay as the simulator's raw run: client times for arrival and completion, the
    server's (wall clock, minus `origin_s`) for service start and first stage; plans moved to
    the replay's time base, the planner's inputs (demand and queue estimates) to the
    controller's (`epoch_s`: the server's epoch, where its ticks are anchored); `observations`:
    the policy's inputs at its calls (`serving.planner_inputs.observations_from_entries`)."""
    n = len(answers)
    nan = np.full(n, np.nan)
    arrival, start, first_done, completion = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    first_model = np.full(n, NO_MODEL, dtype=np.int64)
    final_model = np.full(n, NO_MODEL, dtype=np.int64)
    bypassed = np.zeros(n, dtype=bool)
    escalated = np.zeros(n, dtype=bool)
    dropped = np.ones(n, dtype=bool)
    for i, a in enumerate(answers):
        arrival[i] = a.sent_s
        image = a.image or {}
        first_model[i] = image.get("first_model", NO_MODEL)
        bypassed[i] = image.get("bypassed", False)
        escalated[i] = image.get("escalated", False)
        start[i] = _server_time(image.get("start_s"), origin_s)
        first_done[i] = _server_time(image.get("first_done_s"), origin_s)
        if a.status == "done":
            dropped[i] = False
            completion[i] = a.received_s
            final_model[i] = image["final_model"]
    end_s = float(np.nanmax(np.concatenate([arrival, completion])))
    estimates = tick_estimates(state["estimates"], epoch_s, tick_s, end_s, n_models)
    return RawRun(
        arrival_s=arrival,
        prompt_idx=np.asarray(trace.prompt_idx, dtype=np.int64),
        start_s=start,
        first_done_s=first_done,
        completion_s=completion,
        first_model=first_model,
        final_model=final_model,
        bypassed=bypassed,
        escalated=escalated,
        dropped=dropped,
        plans=plan_records(state["plans"], origin_s),
        planner_wall_s=[],
        demand_log=[qps for qps, _ in estimates],
        queue_log=[queue for _, queue in estimates],
        busy_s=busy_s,
        end_s=end_s,
        policy_name=state["setup"]["policy"],
        observations=observations,
    )


def _server_time(value, origin_s: float) -> float:
    return math.nan if value is None else float(value) - origin_s


def plan_records(plans: list[dict], origin_s: float) -> list[PlanRecord]:
    """The plans in force during the replay: the last one applied before it (at 0) and those
    applied after, in replay seconds."""
    records: list[PlanRecord] = []
    for p in plans:
        plan = Plan(**{**p["plan"], **_tuples(p["plan"])})
        applied = p["applied_s"] - origin_s
        if applied <= 0:
            records = []
        records.append(
            PlanRecord(
                max(p["planned_s"] - origin_s, 0.0), max(applied, 0.0), p["demand_qps"], plan
            )
        )
    return records


def _tuples(plan: dict) -> dict:
    return {k: tuple(plan[k]) for k in ("stages", "disc_ratios") if plan.get(k) is not None}


TICK_MATCH_S = 1e-6  # a demand entry this close after a tick's end belongs to that tick


def tick_estimates(
    entries: list, origin_s: float, tick_s: float, end_s: float, n_models: int
) -> list[tuple[float, tuple[float, ...]]]:
    """The server's planner inputs in force at the end of each replay tick: (demand qps, queue
    per model), zeros before any. The server logs each tick's estimates at the end of the tick
    it closes (wall time, up to rounding: `TICK_MATCH_S`), as the simulator's demand and queue
    logs."""
    times = np.array([entry[0] - origin_s for entry in entries], dtype=np.float64)
    ticks = (np.arange(int(np.ceil(end_s / tick_s))) + 1) * tick_s + TICK_MATCH_S
    latest = np.searchsorted(times, ticks, side="right") - 1
    none = (0.0, (0.0,) * n_models)
    return [
        (float(entries[k][1]), tuple(float(q) for q in entries[k][2])) if k >= 0 else none
        for k in latest.tolist()
    ]


BATCH_COLUMNS = (
    "worker",
    "model",
    "start_s",
    "service_s",
    "batch_size",
    "judged",
    "cpu_s",
    "preemptions",
)


def served_batches(answers: list[Answer], origin_s: float, model_names) -> pd.DataFrame:
    """One row per batch a worker served to the replay's queries (BATCH_COLUMNS): its worker
    slot, model, start (the replay's time base), service seconds, size, whether the
    discriminator's cost was charged, the CPU seconds the engine's thread spent on it and how
    often the kernel preempted that thread meanwhile (both NaN: not measured, as by the emulated
    backend, which sleeps); by start, then worker."""
    seen = {}
    for a in answers:
        for w, m, start, done, size, judged, cpu_s, preemptions in (a.image or {}).get(
            "batches", ()
        ):
            measured = [math.nan if x is None else x for x in (cpu_s, preemptions)]
            row = (w, model_names[m], start - origin_s, done - start, size, judged, *measured)
            seen[(w, start)] = row
    rows = [seen[k] for k in sorted(seen, key=lambda k: (k[1], k[0]))]
    return pd.DataFrame(rows, columns=list(BATCH_COLUMNS))


def plans_frame(plans: Sequence[PlanRecord], model_names: Sequence[str]) -> pd.DataFrame:
    """One row per plan put in force during a run (`plans.csv` of a validation's real and
    simulated runs): when it was planned and applied, the demand it saw, its flow label and
    thresholds, and per model its workers, batch size and mix share (NaN: a cascade). Unlike
    `timeseries.csv`, which ends with the trace's last second, it keeps the plans made while
    the last queries drain."""
    rows = []
    for r in plans:
        p = r.plan
        row = {
            "planned_s": r.planned_s,
            "applied_s": r.applied_s,
            "demand_qps": r.demand_qps,
            "plan": p.label,
            "router_ratio": p.router_ratio,
            "disc_ratio": p.disc_ratio,
        }
        for m in model_names:
            row[f"workers_{m}"] = p.workers.get(m, 0)
            row[f"batch_size_{m}"] = p.batch_size.get(m, 0) if p.workers.get(m) else 0
            row[f"mix_{m}"] = float("nan") if p.mix is None else p.mix.get(m, 0.0)
        rows.append(row)
    return pd.DataFrame(rows)


def estimates_frame(raw: RawRun, model_names: Sequence[str], tick_s: float) -> pd.DataFrame:
    """The planner's inputs at the end of every tick of a run (`estimates.csv`): the demand
    estimate and the queue estimate per model, through the drain after the trace's last
    second, where `timeseries.csv` stops."""
    queues = np.asarray(raw.queue_log, dtype=np.float64).reshape(-1, len(model_names))
    frame = pd.DataFrame(
        {
            "tick_end_s": (np.arange(len(raw.demand_log)) + 1) * tick_s,
            "demand_estimate_qps": raw.demand_log,
        }
    )
    for m, name in enumerate(model_names):
        frame[f"queue_estimate_{name}"] = queues[:, m]
    return frame


def planner_log_writer(raw: RawRun, model_names: Sequence[str], tick_s: float):
    """A `write_run` extra that writes `plans.csv` (`plans_frame`), `estimates.csv`
    (`estimates_frame`) and observations.csv (`serving.planner_inputs.observations_frame`):
    what a validation compares its planners by, drain included."""

    def write(staging: Path) -> None:
        plans = plans_frame(raw.plans, model_names)
        plans.to_csv(staging / "plans.csv", index=False, float_format="%.9g")
        estimates = estimates_frame(raw, model_names, tick_s)
        estimates.to_csv(staging / "estimates.csv", index=False, float_format="%.9g")
        observations = observations_frame(raw.observations, model_names)
        observations.to_csv(staging / OBSERVATIONS_FILE, index=False, float_format="%.17g")

    return write


def hops_seconds(answer: Answer) -> float:
    """The serving stack's share of a completed query's latency: its client latency less what
    the server measured it spend where the simulator models time (at workers, and waiting at
    the ingress for the router or a plan): the proxy and the ingress's calls to the workers,
    there and back, once per visit. NaN for a query not completed or not recorded."""
    image = answer.image or {}
    if answer.status != "done" or "at_workers_s" not in image:
        return math.nan
    return answer.received_s - answer.sent_s - image["at_workers_s"] - image["waited_s"]


def worker_calls_seconds(answer: Answer, key: str) -> float:
    """A completed query's `to_workers_s` or `from_workers_s` (the parts of its hops spent on
    the way to its workers and back); NaN for a query not completed or not recorded."""
    image = answer.image or {}
    return float(image[key]) if answer.status == "done" and key in image else math.nan


def counted_after_s(answers: list[Answer], trace_arrival_s, epoch_s: float) -> np.ndarray:
    """Per query, seconds from its time in the trace to the ingress counting its arrival, on
    the controller's tick clock (from the server's epoch): the replay's start after the epoch,
    the query's send lag and its way to the ingress (the simulator's arrival hop). NaN for a
    query the ingress never recorded."""
    counted = np.array(
        [(a.image or {}).get("arrival_s", math.nan) for a in answers], dtype=np.float64
    )
    return counted - epoch_s - np.asarray(trace_arrival_s, dtype=np.float64)


def plan_delays(plans: list[dict], origin_s: float) -> dict:
    """How late the plans of the replay took effect at the ingress: seconds from when each was
    due (its tick's end, where the simulator applies it) to its `set_plan` (count, median,
    max; the controller's counter read, the policy's solve and the ingress call)."""
    return _delay_stats(
        [p["applied_s"] - p["planned_s"] for p in plans if p["applied_s"] > origin_s]
    )


def configure_delays(swaps: list[dict]) -> dict:
    """How late the swaps' workers got their new model: seconds from the plan's request to
    each worker's `configure` call (count, median, max), the plan hop's second part
    (`serving.hops.plan_hop_ms`)."""
    return _delay_stats(
        [s["configured_s"] - s["requested_s"] for s in swaps if s.get("configured_s") is not None]
    )


def _delay_stats(late: list[float]) -> dict:
    if not late:
        return {"count": 0}
    return {
        "count": len(late),
        "median": round(float(np.median(late)), 4),
        "max": round(float(np.max(late)), 4),
    }


SWAP_PARTS = {  # swap_s's means: seconds from the plan's request to ...
    "mean_s": "loaded_s",  # the model loaded in its worker: the real swap cost
    "reconfigure_mean_s": "configured_s",  # the worker got its new model
    "batch_wait_mean_s": "load_from_s",  # its load began to count (after a batch in service)
}


SWAP_COLUMNS = ("worker", "model", "requested_s", "configured_s", "load_from_s", "loaded_s")
SWAPS_FILE = "swaps.csv"


def swaps_frame(swaps: list[dict], origin_s: float) -> pd.DataFrame:
    """One row per swap of the replay whose model loaded (SWAP_COLUMNS, the replay's time
    base): its worker slot and model, the plan's request, the worker's `configure`, when its
    load began to count and when it ended (NaN: not logged); by request, then worker."""
    rows = [
        (
            s["worker"],
            s["model"],
            *(math.nan if s.get(k) is None else s[k] - origin_s for k in SWAP_COLUMNS[2:]),
        )
        for s in swaps
        if s["requested_s"] > origin_s
    ]
    rows.sort(key=lambda r: (r[2], r[0]))
    return pd.DataFrame(rows, columns=list(SWAP_COLUMNS))


def swap_seconds(swaps: list[dict]) -> dict:
    """Per swapped-in model, the count of swaps and the mean seconds from the plan's request to
    each of `SWAP_PARTS` (those the log has): the real swap cost, to compare with the bundle's
    `load_s`, and where it went."""
    by_model: dict[str, list[dict]] = {}
    for s in swaps:
        by_model.setdefault(s["model"], []).append(s)
    out = {}
    for m, logged in sorted(by_model.items()):
        out[m] = {"count": len(logged)}
        for part, key in SWAP_PARTS.items():
            seconds = [s[key] - s["requested_s"] for s in logged if s.get(key) is not None]
            if seconds:
                out[m][part] = round(float(np.mean(seconds)), 3)
    return out


def run_loadgen(trace_spec: str, url: str, out_dir: str | Path, progress=None) -> dict:
    """Replay `trace_spec` against `url` and write the run folder; returns the summary.
    `progress`: a factory `progress(total)` of a context yielding `replay`'s callback (or
    None), such as `experiments.progress.progress_bar` bound to its label."""
    from experiments.inputs import resolve_trace

    before = wait_ready(url)
    setup = ServeSetup.from_dict(before["setup"])
    bundle, policy, config = setup.build()
    trace = resolve_trace(trace_spec, bundle, config.seed)
    texts = bundle.prompts["text"].tolist()
    answer_timeout_s = config.late_factor * config.slo_s + ANSWER_MARGIN_S
    with (
        progress(len(trace)) if progress else contextlib.nullcontext() as update,
        CollectorPauses() as collector,
    ):
        answers, epoch_s, origin_s = asyncio.run(
            replay(url, trace.arrival_s, trace.prompt_idx, texts, answer_timeout_s, update)
        )
    collected = collector.longest(origin_s)
    try:
        after = fetch_state(url)
    except UnreachableError as exc:  # it answered before the replay: it stopped meanwhile
        failed = sum(a.status == "failed" for a in answers)
        raise RunFailure(
            f"--url {url!r}: the server stopped answering during the replay ({failed} of "
            f"{len(answers)} queries failed; its state after the replay: "
            f"{str(exc).partition(': ')[2]}); no run written"
        ) from None
    origin_s += after["clock_s"] - time.time()  # the server's clock (same host: ~0)
    busy_s = after["busy_s"] - before["busy_s"]
    n_models = len(bundle.model_names)
    observations = observations_from_entries(
        after.get("observations", ()), epoch_s, config.n_workers, config.slo_s
    )
    raw = to_raw_run(
        answers, trace, after, origin_s, busy_s, config.tick_s, epoch_s, n_models, observations
    )
    statuses = Counter(a.status for a in answers)
    if sum(statuses.values()) != len(trace):
        raise ConservationError(f"{sum(statuses.values())} outcomes for {len(trace)} arrivals")
    queries, timeseries, summary = compute_metrics(raw, bundle, policy, config)
    queries["reason"] = [a.reason for a in answers]
    queries["hops_s"] = [hops_seconds(a) for a in answers]
    for key in ("to_workers_s", "from_workers_s"):
        queries[key] = [worker_calls_seconds(a, key) for a in answers]
    queries["counted_after_s"] = counted_after_s(answers, trace.arrival_s, epoch_s)
    for key in ("visits", "resends", "retries"):
        queries[key] = np.array([(a.image or {}).get(key, 0) for a in answers], dtype=np.int64)
    send_lag = np.array([a.sent_s for a in answers]) - trace.arrival_s
    resolved = {"policy": setup.policy, "policy_options": setup.options, "sim": config.to_dict()}
    summary["hashes"] = {
        "config": sha256_json(resolved),
        "bundle": bundle.content_hash(),
        "trace": trace.content_hash(),
        "code_version": code_version(),
    }
    summary.update(
        bundle=bundle.name,
        trace=trace.name,
        trace_spec=trace_spec,
        bundle_source=setup.bundle,
        source="serve",
        url=url,
        failed=int(statuses["failed"]),
        failure_reasons=dict(sorted(Counter(a.reason for a in answers if a.reason).items())),
        send_lag_p99_ms=round(float(np.percentile(send_lag, 99)) * 1e3, 3),
        send_lag_max_ms=round(float(send_lag.max()) * 1e3, 3),
        **collected,
        swap_s=swap_seconds(after["swaps"]),
        plan_delay_s=plan_delays(after["plans"], origin_s),
        configure_delay_s=configure_delays(after["swaps"]),
    )
    resolved["hashes"] = summary["hashes"]
    resolved["serving"] = {
        "url": url,
        "backend": setup.backend,
        "dispatch": setup.dispatch,
        "stack": setup.stack,
    }
    batches = served_batches(answers, origin_s, bundle.model_names)

    swaps = swaps_frame(after["swaps"], origin_s)

    def write_batches(staging: Path) -> None:
        batches.to_csv(staging / "batches.csv", index=False, float_format="%.9g")
        swaps.to_csv(staging / SWAPS_FILE, index=False, float_format="%.9g")

    planner = planner_log_writer(raw, bundle.model_names, config.tick_s)
    write_run(out_dir, queries, timeseries, summary, resolved, [], extras=[write_batches, planner])
    return summary


def run_loadgen_apart(trace_spec: str, url: str, out_dir: str | Path, quiet: bool) -> dict:
    """`run_loadgen` in a process of its own (`t2isim loadgen`), so that nothing else in the
    caller's process delays its sends: `validate` is the Ray driver and runs the controller's
    thread, and replays in its process sent a few queries 26-183 ms late in 14 of 39 real runs
    (sets 1-8; `results/validation/HISTORY.md`, session 44). Its progress bar shows on this
    terminal unless `quiet`; returns the run's summary; a failure is a RunFailure naming the
    load generator's own error."""
    command = [sys.executable, "-m", "experiments.cli", "loadgen", trace_spec, "--url", url]
    command += ["--out", str(out_dir)] + (["--quiet"] if quiet else [])
    shown = not quiet and sys.stderr.isatty()  # its bar here; else its error kept
    done = subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=None if shown else subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines()
        reason = lines[-1] if lines else "its error above"
        raise RunFailure(f"the load generator exited with code {done.returncode}: {reason}")
    return json.loads((Path(out_dir) / "summary.json").read_text())
