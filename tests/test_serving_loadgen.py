"""The load generator against an in-process HTTP stub (no Ray): open-loop replay, the run
folder through the simulator's metrics, every outcome accounted for, one-line input errors;
and the HTTP API's request validation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("httpx")

from experiments.cli import app  # noqa: E402
from experiments.inputs import resolve_bundle, resolve_trace  # noqa: E402
from serving.loadgen import (  # noqa: E402
    BATCH_COLUMNS,
    SWAP_COLUMNS,
    Answer,
    CollectorPauses,
    UnreachableError,
    configure_delays,
    fetch_state,
    plan_delays,
    replay,
    run_loadgen,
    run_loadgen_apart,
    served_batches,
    swaps_frame,
    tick_estimates,
)
from serving.planner_inputs import OBSERVATIONS_FILE  # noqa: E402
from serving.requests import (  # noqa: E402
    RequestError,
    bundle_prompt_id,
    check_size,
    parse_request,
)
from simulator.config import SimConfig  # noqa: E402
from simulator.errors import RunFailure  # noqa: E402
from simulator.policy import Plan  # noqa: E402

TRACE = "constant:rate=40,duration=1"
SERVICE_S = 0.05
MODEL = "SDXL-Lightning"


def stub_outcome(prompt_id: int) -> str:
    """What the stub does with a prompt: drop, fail with a 500, answer JSON that is not an
    object, or serve."""
    if prompt_id % 3 == 0:
        return "dropped"
    if prompt_id % 7 == 0:
        return "error"
    if prompt_id % 5 == 0:
        return "not-object"
    return "done"


def observation_log_entry(at_s: float, demand_qps: float) -> dict:
    """A serving controller's log entry of its policy's input (`observation_entry`)."""
    per_model = [0.5, 1.0, 0.0, 0.0]  # the default bundle's four models
    return {
        "at_s": at_s,
        "demand_qps": demand_qps,
        "arrival_rate_qps": demand_qps,
        "inflight": 3,
        "queue_len": per_model,
        "model_arrival_qps": per_model,
    }


class Stub(BaseHTTPRequestHandler):
    """A t2isim server stand-in: serves every query with MODEL after SERVICE_S."""

    origin = time.time()
    plan = Plan(workers={MODEL: 2}, batch_size={MODEL: 1}, mix={MODEL: 1.0})
    epochs: list[float] = []

    def log_message(self, *args) -> None:
        pass

    def _json(self, code: int, body: dict | list) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._json(
            200,
            {
                "setup": {
                    "bundle": "default",
                    "policy": "clipper-light",
                    "options": {},
                    "sim": SimConfig(n_workers=2, slo_s=1.0).to_dict(),
                },
                "plans": [
                    {
                        "planned_s": self.origin,
                        "applied_s": self.origin,
                        "demand_qps": 0.0,
                        "plan": asdict(self.plan),
                    }
                ],
                "estimates": [[self.origin, 0.0, [0.0] * 4]],  # the default bundle: 4 models
                # the policy's inputs: the server's initial plan's, then the replay's first
                "observations": [
                    observation_log_entry(self.origin, 0.0),
                    *(observation_log_entry(e, 2.5) for e in self.epochs[-1:]),
                ],
                "busy_s": 0.0,
                "ready": True,
                "swaps": [  # two swaps to the light model: 2.5 s and 3.5 s from request to load
                    {"model": MODEL, "requested_s": 100.0, "loaded_s": 102.5},
                    {
                        "model": MODEL,
                        "requested_s": 200.0,
                        "configured_s": 200.25,
                        "load_from_s": 201.0,
                        "loaded_s": 203.5,
                    },
                ],
                "clock_s": time.time(),
            },
        )

    def do_POST(self) -> None:
        if self.path == "/v1/t2isim/epoch":
            self.epochs.append(time.time())
            self._json(200, {"epoch_s": self.epochs[-1]})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        arrival = time.time()
        outcome = stub_outcome(body["prompt_id"])
        if outcome == "error":
            data = b"internal"
            self.send_response(500)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if outcome == "not-object":
            self._json(200, ["a list"])
            return
        time.sleep(SERVICE_S)
        done = time.time()
        image = {
            "status": outcome,
            "reason": None if outcome == "done" else "drop rule",
            "arrival_s": arrival,
            "start_s": arrival,
            "first_done_s": done,
            "completion_s": done,
            "first_model": 0,
            "final_model": 0,
            "bypassed": False,
            "escalated": False,
            "at_workers_s": done - arrival,
            "to_workers_s": 0.001,
            "from_workers_s": 0.002,
            "waited_s": 0.0,
            "visits": int(outcome == "done"),
            "resends": 0,
            "batches": [[0, 0, arrival, done, 1, False, 0.01, 2]] if outcome == "done" else [],
        }
        self._json(200 if outcome == "done" else 503, {"data": [{}], "t2isim": {"images": [image]}})


class StubServer(ThreadingHTTPServer):
    """The stubs' server, with a listen backlog the replay's connections cannot fill while this
    process is busy: socketserver's is 5, and a connection dropped by a full backlog is retried
    a second later, past the 1 s SLO (the likely cause of this file's intermittent ~0.9 s
    answers in session 44; not reproduced since)."""

    request_queue_size = 128


@contextlib.contextmanager
def serving(handler: type[Stub]):
    """Serve a fresh subclass of handler (its own epochs list) on a free port: yields it and
    its URL, so no test sees another's epoch posts."""
    fresh = type(handler.__name__, (handler,), {"epochs": []})
    server = StubServer(("127.0.0.1", 0), fresh)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fresh, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_replay_writes_a_run_folder_whose_outcomes_add_up(tmp_path):
    shown = []  # (total, then each (answered, sent)) as the progress bar is given them

    @contextlib.contextmanager
    def progress(total: int):
        shown.append(total)
        yield lambda answered, sent: shown.append((answered, sent))

    with serving(Stub) as (stub, url):
        summary = run_loadgen(TRACE, url, tmp_path / "run", progress)
    assert len(stub.epochs) == 1  # the replay told the server when it started
    total, *counts = shown
    assert total == 40 and len(counts) == 80 and counts[-1] == (40, 40)  # each send and end
    assert all(a <= s for a, s in counts) and counts == sorted(counts)  # never more ended
    trace = resolve_trace(TRACE, resolve_bundle("default"), 0)
    expected = [stub_outcome(int(p)) for p in trace.prompt_idx]
    queries = pd.read_parquet(tmp_path / "run" / "queries.parquet")
    assert len(queries) == summary["arrivals"] == len(trace) == 40
    assert summary["ok"] == expected.count("done")  # 50 ms service, 1 s SLO: all in time
    failed = expected.count("error") + expected.count("not-object")
    assert expected.count("error") and expected.count("not-object")  # both cases in the trace
    assert summary["drops"] == expected.count("dropped") + failed
    assert summary["failed"] == failed
    assert summary["gc_pause_max_ms"] >= 0 and summary["gc_full_collections"] >= 0
    assert summary["swap_s"] == {  # the parts: means over the swaps that logged them
        MODEL: {"count": 2, "mean_s": 3.0, "reconfigure_mean_s": 0.25, "batch_wait_mean_s": 1.0}
    }
    assert summary["failure_reasons"] == {
        k: v
        for k, v in (
            ("HTTP 500, body not JSON", expected.count("error")),
            ("HTTP 200, body not a JSON object", expected.count("not-object")),
            ("drop rule", expected.count("dropped")),
        )
        if v
    }
    done = queries[queries.outcome == "ok"]
    assert (done.latency_s >= SERVICE_S).all() and done.latency_s.max() < 1.0
    assert (done.final_model == MODEL).all()
    # the stack's share: the client's latency less the server's time (the stub's service)
    assert (done.hops_s > 0).all() and (done.hops_s < done.latency_s - SERVICE_S + 1e-3).all()
    assert (done.visits == 1).all() and (queries.resends == 0).all()
    assert queries.loc[queries.outcome != "ok", "hops_s"].isna().all()
    # the ingress's calls to its workers, as its record gives them; NaN when not done
    assert (done.to_workers_s == 0.001).all() and (done.from_workers_s == 0.002).all()
    calls = queries.loc[queries.outcome != "ok", ["to_workers_s", "from_workers_s"]]
    assert calls.isna().all(axis=None)
    # when the server counted each query it answered with a record, from its trace time on the
    # server's epoch clock: after the epoch post, the send and the way in; NaN without a record
    counted = queries["counted_after_s"]
    recorded = [o not in ("error", "not-object") for o in expected]
    assert counted[recorded].between(0, 0.5).all() and counted[recorded].median() < SERVICE_S
    assert counted[[not r for r in recorded]].isna().all()
    # open loop: each query left at its trace time (not after the previous answer)
    lag = queries.arrival_s.to_numpy() - trace.arrival_s
    assert np.all(lag >= -1e-3) and np.percentile(lag, 50) < SERVICE_S
    ts = pd.read_csv(tmp_path / "run" / "timeseries.csv")
    assert ts.arrivals.sum() == 40 and (ts.ok + ts.timeouts + ts.drops).sum() == 40
    assert set(ts.plan) == {MODEL}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["policy"] == "clipper-light" and config["sim"]["slo_s"] == 1.0
    batches = pd.read_csv(tmp_path / "run" / "batches.csv")  # one batch per query served
    assert list(batches.columns) == list(BATCH_COLUMNS) and len(batches) == summary["ok"]
    assert (batches.model == MODEL).all() and (batches.service_s >= SERVICE_S).all()
    assert batches.start_s.is_monotonic_increasing
    plans = pd.read_csv(tmp_path / "run" / "plans.csv")  # the stub's one plan, from t = 0
    assert len(plans) == 1 and plans.loc[0, f"workers_{MODEL}"] == 2
    assert plans.loc[0, "applied_s"] == 0 and plans.loc[0, f"mix_{MODEL}"] == 1.0
    estimates = pd.read_csv(tmp_path / "run" / "estimates.csv")  # every tick to the last answer
    assert estimates.tick_end_s.tolist() == [1.0, 2.0]
    assert (estimates.filter(like="queue_estimate") == 0).all(axis=None)
    # the policy's inputs from the replay's epoch on (the initial plan's before it dropped)
    observations = pd.read_csv(tmp_path / "run" / OBSERVATIONS_FILE)
    assert observations.now_s.tolist() == [0.0] and observations.demand_qps.tolist() == [2.5]
    assert observations.loc[0, "queue_len_SDXL-Lightning"] == 0.5


class SlowOrSilentStub(Stub):
    """Answers prompt 1 at once, prompt 2 after SLOW_S, and hangs up on prompt 3 unanswered."""

    def do_POST(self) -> None:
        if self.path == "/v1/t2isim/epoch":
            return super().do_POST()
        prompt_id = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["prompt_id"]
        if prompt_id == 3:
            self.close_connection = True
            return
        if prompt_id == 2:
            time.sleep(SLOW_S)
        image = {"status": "done", "reason": None}
        try:
            self._json(200, {"data": [{}], "t2isim": {"images": [image]}})
        except OSError:
            pass  # the client gave up first


SLOW_S = 1.0


def test_replay_ends_a_late_answer_as_dropped_and_a_hang_up_as_failed():
    with serving(SlowOrSilentStub) as (_, url):
        answers, _, _ = asyncio.run(
            replay(
                url,
                np.zeros(3),
                np.array([1, 2, 3]),
                {1: "a", 2: "b", 3: "c"},
                answer_timeout_s=SLOW_S / 4,
            )
        )
    ok, late, silent = answers
    assert (ok.status, ok.reason) == ("done", None) and ok.received_s >= ok.sent_s
    assert (late.status, late.reason) == ("dropped", "no answer by late_factor x SLO")
    assert np.isnan(late.received_s)
    assert silent.status == "failed" and "ServerDisconnected" in silent.reason


def test_replay_raises_what_a_querys_task_raised_and_ends_an_empty_trace_at_once(monkeypatch):
    """Beyond `_send`'s own outcomes, an error in a query's task ends the replay (as a gather
    over the tasks would); a trace without queries waits for no answer."""
    import serving.loadgen as loadgen

    real_send = loadgen._send

    async def send(client, endpoint, body, answer, t0):
        if body["prompt_id"] == 2:
            raise RuntimeError("query 2 broke")
        await real_send(client, endpoint, body, answer, t0)

    monkeypatch.setattr(loadgen, "_send", send)
    texts = {1: "a", 2: "b", 3: "c"}
    with serving(SlowOrSilentStub) as (_, url):
        with pytest.raises(RuntimeError, match="query 2 broke"):
            asyncio.run(replay(url, np.zeros(3), np.array([1, 2, 3]), texts, SLOW_S / 4))
        answers, _, _ = asyncio.run(replay(url, np.zeros(0), np.array([], int), texts, 1.0))
    assert answers == []


def test_served_batches_list_each_batch_once():
    """Two queries served in one batch (same worker and start), a third in another, an
    escalated one in two: each batch once, by start, its model by name, with its thread's CPU
    seconds and preemptions (NaN where the engine measured none)."""
    t = 1000.0
    shared = [3, 1, t + 1.0, t + 1.5, 2, True, 0.4, 7]
    answers = [
        Answer(image={"batches": [shared]}),
        Answer(image={"batches": [list(shared)]}),
        Answer(
            image={
                "batches": [
                    [4, 0, t + 0.5, t + 0.6, 1, True, 0.09, 0],
                    [2, 1, t + 2.0, t + 2.2, 1, False, None, None],  # not measured
                ]
            }
        ),
        Answer(image=None),  # failed before any visit
    ]
    table = served_batches(answers, t, ["A", "B"])
    assert table["worker"].tolist() == [4, 3, 2]
    assert table["model"].tolist() == ["A", "B", "B"]
    np.testing.assert_allclose(table["start_s"], [0.5, 1.0, 2.0])
    np.testing.assert_allclose(table["service_s"], [0.1, 0.5, 0.2])
    assert table["batch_size"].tolist() == [1, 2, 1]
    assert table["judged"].tolist() == [True, True, False]
    np.testing.assert_allclose(table["cpu_s"], [0.09, 0.4, np.nan])
    np.testing.assert_allclose(table["preemptions"], [0, 7, np.nan])


def test_plan_delays_count_the_replays_plans_from_due_to_in_force():
    plans = [  # (due, applied) wall seconds; the replay's origin is 100
        {"planned_s": 90.0, "applied_s": 90.5},  # before the replay: not counted
        {"planned_s": 105.0, "applied_s": 105.02},
        {"planned_s": 110.0, "applied_s": 110.3},
        {"planned_s": 115.0, "applied_s": 115.04},
    ]
    assert plan_delays(plans, 100.0) == {"count": 3, "median": 0.04, "max": 0.3}
    assert plan_delays(plans[:1], 100.0) == {"count": 0}


def test_configure_delays_count_each_swap_from_the_plans_request_to_the_workers_configure():
    swaps = [  # wall seconds; a swap whose worker never got the call has no configured_s
        {"model": "a", "requested_s": 10.0, "configured_s": 10.05},
        {"model": "b", "requested_s": 10.0, "configured_s": 10.25},
        {"model": "b", "requested_s": 20.0, "configured_s": 20.04},
        {"model": "a", "requested_s": 30.0},
    ]
    assert configure_delays(swaps) == {"count": 3, "median": 0.05, "max": 0.25}
    assert configure_delays(swaps[3:]) == {"count": 0}


def test_swaps_frame_gives_each_logged_swap_on_the_replays_time_base():
    swaps = [  # wall seconds; the replay's origin is 100; one swap's load never began
        {
            "worker": 2,
            "model": "b",
            "requested_s": 110.0,
            "configured_s": 110.04,
            "load_from_s": 110.5,
            "loaded_s": 119.5,
        },
        {
            "worker": 1,
            "model": "a",
            "requested_s": 110.0,
            "configured_s": 110.02,
            "load_from_s": 110.02,
            "loaded_s": 112.3,
        },
        {
            "worker": 0,
            "model": "a",
            "requested_s": 105.0,
            "configured_s": 105.03,
            "load_from_s": None,
            "loaded_s": 107.3,
        },
        {"worker": 3, "model": "a", "requested_s": 90.0, "configured_s": 90.1},  # before it
    ]
    frame = swaps_frame(swaps, 100.0)
    assert list(frame.columns) == list(SWAP_COLUMNS)
    assert frame["worker"].tolist() == [0, 1, 2]  # by request, then worker
    assert frame["configured_s"].round(6).tolist() == [5.03, 10.02, 10.04]
    assert math.isnan(frame["load_from_s"].iloc[0])
    assert len(swaps_frame([], 100.0)) == 0


class StopsDuringTheReplay(Stub):
    """Answers every query, but its state no more once the replay has begun (a server that
    stopped, or was killed, before the replay's end)."""

    def do_GET(self) -> None:
        if not self.epochs:
            super().do_GET()
            return
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_server_that_stops_during_the_replay_is_a_failed_run_not_bad_input(tmp_path):
    """The run needs the server's state after the replay (plans, estimates, busy time): without
    it the replay fails (RunFailure, exit 1) saying so, and writes nothing."""
    with serving(StopsDuringTheReplay) as (_, url):
        with pytest.raises(RunFailure) as caught:
            run_loadgen(TRACE, url, tmp_path / "run")
    trace = resolve_trace(TRACE, resolve_bundle("default"), 0)
    outcomes = [stub_outcome(int(p)) for p in trace.prompt_idx]
    failed = outcomes.count("error") + outcomes.count("not-object")
    assert str(caught.value).startswith(
        f"--url {url!r}: the server stopped answering during the replay ({failed} of 40 "
        "queries failed; its state after the replay: no t2isim server answers (Server error "
        "'503 Service Unavailable'"
    )
    assert str(caught.value).endswith("); no run written")
    assert not (tmp_path / "run").exists()


def test_unreachable_url_is_one_line_exit_2(tmp_path):
    with pytest.raises(UnreachableError, match="no t2isim server answers"):
        fetch_state("http://127.0.0.1:9", timeout_s=2)
    result = CliRunner().invoke(
        app, ["loadgen", TRACE, "--url", "http://127.0.0.1:9", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "r").exists()


def test_collector_pauses_are_those_of_the_block_on_the_replays_clock():
    import gc

    assert CollectorPauses().longest(0.0) == {
        "gc_pause_max_ms": 0.0,
        "gc_pause_max_at_s": None,
        "gc_full_collections": 0,
    }
    origin_s = time.time()
    with CollectorPauses() as collector:
        gc.collect()
        gc.collect(0)
    gc.collect()  # after the block: not counted
    generations = [generation for _, _, generation in collector.pauses]
    assert generations.count(2) == 1 and generations[-1] == 0
    longest = collector.longest(origin_s)
    assert longest["gc_full_collections"] == 1 and longest["gc_pause_max_ms"] > 0
    assert 0 <= longest["gc_pause_max_at_s"] < 5
    assert collector._note not in gc.callbacks


def test_a_load_generator_apart_that_fails_is_a_run_failure_naming_its_error(tmp_path):
    """`validate`'s replays run in a process of their own; its one-line error comes back."""
    with pytest.raises(RunFailure) as caught:
        run_loadgen_apart(TRACE, "http://127.0.0.1:9", tmp_path / "r", quiet=True)
    message = str(caught.value)
    assert message.startswith("the load generator exited with code 2: ")
    assert "no t2isim server answers" in message and "\n" not in message
    assert not (tmp_path / "r").exists()


def test_tick_estimates_are_those_in_force_at_each_tick_end():
    entries = [(100.5, 2.0, [1.0, 0.0]), (101.5, 4.0, [0.5, 3.0]), (103.5, 8.0, [0.0, 2.0])]
    assert tick_estimates(entries, 100.0, 1.0, 4.0, 2) == [
        (2.0, (1.0, 0.0)),
        (4.0, (0.5, 3.0)),
        (4.0, (0.5, 3.0)),
        (8.0, (0.0, 2.0)),
    ]
    assert tick_estimates([], 100.0, 1.0, 2.0, 2) == [(0.0, (0.0, 0.0))] * 2


def test_an_estimate_logged_at_its_tick_end_is_that_ticks():
    """The controller logs each estimate at the end of the tick it closes (the simulator's
    demand_log[i] is the estimate at the end of tick i + 1); wall-clock rounding must not push
    it into the next tick."""
    origin = 1_764_600_000.0
    entries = [(origin + 1.0 + 1e-9, 2.0, [1.0]), (origin + 2.0 - 1e-9, 4.0, [2.0])]
    entries.append((origin + 3.0, 8.0, [4.0]))
    estimates = tick_estimates(entries, origin, 1.0, 3.0, 1)
    assert estimates == [(2.0, (1.0,)), (4.0, (2.0,)), (8.0, (4.0,))]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{bad", 400, None),
        (b"[1]", 400, None),
        (b'{"n": 1}', 400, "prompt"),
        (b'{"prompt": "  "}', 400, "prompt"),
        (b'{"prompt": "a", "n": 0}', 400, "n"),
        (b'{"prompt": "a", "n": true}', 400, "n"),
        (b'{"prompt": "a", "size": "3x"}', 400, "size"),
        (b'{"prompt": "a", "size": "0x3"}', 400, "size"),
        (b'{"prompt": "a", "size": "99999x3"}', 400, "size"),
        (b'{"prompt": "a", "size": 512}', 400, "size"),
        (b'{"prompt": "a", "response_format": "url"}', 400, "response_format"),
        (b'{"prompt": "a", "prompt_id": 5000}', 400, "prompt_id"),
        (b'{"prompt": "a", "colour": 1}', 400, "colour"),
        (b"\xff\xfe", 400, None),
        (b"[" * 50_000 + b"]" * 50_000, 400, None),  # json's recursion limit, not a 500
        (b'{"prompt": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, None),
    ],
)
def test_malformed_requests_are_4xx_naming_the_field(body, status, param):
    with pytest.raises(RequestError) as caught:
        parse_request(body, n_prompts=5000)
    assert caught.value.status == status
    assert caught.value.body()["error"]["param"] == param


def test_a_request_names_one_bundle_prompt_by_text_or_by_id_and_text():
    texts = ["a cat", "a dog", "a cat"]
    id_of_text = {"a cat": 0, "a dog": 1}

    def resolve(body: bytes) -> int:
        return bundle_prompt_id(parse_request(body, n_prompts=3), texts, id_of_text)

    assert resolve(b'{"prompt": "a dog"}') == 1
    assert resolve(b'{"prompt": "a cat"}') == 0  # the first with that text
    assert resolve(b'{"prompt": "a cat", "prompt_id": 2}') == 2  # the id tells repeats apart
    for body, param in [
        (b'{"prompt": "a cow"}', "prompt"),
        (b'{"prompt": "a dog", "prompt_id": 0}', "prompt_id"),  # never served under another name
    ]:
        with pytest.raises(RequestError) as caught:
            resolve(body)
        assert (caught.value.status, caught.value.param) == (422, param)
    assert "prompt_id: 0 is the bundle's prompt 'a cat'" in str(caught.value)


def test_a_size_is_served_only_where_the_models_render_it():
    def check(size: str | None, served: tuple[str, ...]) -> None:
        body = {"prompt": "a cat"} | ({} if size is None else {"size": size})
        check_size(parse_request(json.dumps(body).encode(), n_prompts=1), served)

    for size in (None, "32x32", "1024x768"):
        check(size, ())  # no image rendered (emulated): any size
    for size in (None, "32x32"):
        check(size, ("32x32",))
    for size, served, named in [
        ("512x512", ("32x32",), "the models render 32x32"),
        ("32x32", ("32x32", "64x64"), "render 32x32, 64x64"),
    ]:
        with pytest.raises(RequestError, match=named) as caught:
            check(size, served)
        assert (caught.value.status, caught.value.param) == (422, "size")
    check(None, ("32x32", "64x64"))  # each image at its final model's size


def test_a_valid_request_parses_with_defaults():
    req = parse_request(b'{"prompt": "a cat", "prompt_id": 7}', n_prompts=10)
    assert (req.prompt, req.n, req.size, req.prompt_id) == ("a cat", 1, None, 7)
    with pytest.raises(RequestError) as caught:
        parse_request(b"x" * (1 << 21), 10)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["serve", "--chaos", "kill-replica@soon"], "--chaos"),
        (["serve", "--chaos", "explode@3"], "--chaos"),
        (["serve", "--backend", "gpu"], "--backend"),
        (["serve", "--set", "warp=9"], "--set"),  # every field is an option of its own
        (["serve", "--service-time", "lognormal"], "--service-time"),
        (["serve", "--policy", "nope"], "nope"),
        (["serve", "--workers", "0"], "--workers"),
        (["serve", "--option", "planner=faithful", "--option", "spare=keep"], "spare"),
        (["validate", "--out", "x", "--repeats", "0"], "--repeats"),
        (["validate", "--out", "x", "--sim-repeats", "0"], "--sim-repeats 0"),
        (["validate", "--out", "x", "--overheads", "fast"], "--overheads 'fast'"),
        (["validate", "--out", "x", "--compare-overheads", "fast"], "--compare-overheads 'fast'"),
        (
            ["validate", "--out", "x", "--compare-served-latency", "/no/served.csv"],
            "--compare-served-latency '/no/served.csv': no such file",
        ),
        (
            ["validate", "--out", "x", "--profile-rounds", "/no/latency"],
            "--profile-rounds '/no/latency': /no/latency/SDXL-Lightning.csv: latency profile",
        ),
    ],
)
def test_serving_commands_refuse_bad_input_before_starting_ray(args, named):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert named in result.output and result.output.count("\n") == 1


def test_a_serve_start_failure_is_one_line_exit_1(monkeypatch):
    """Ray Serve failing to start (e.g. its HTTP proxy not ready in time on a loaded machine)
    ends `serve` with one line and exit 1, after shutting down what was started."""
    pytest.importorskip("ray")
    import ray
    from ray import serve

    from serving import server

    def not_ready(**_):
        raise TimeoutError("HTTP proxy not ready after 60 s\nsecond line")

    shutdowns = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # no local cluster is started
    monkeypatch.setattr(server, "serve_is_running", lambda: False)  # no Serve runs there
    monkeypatch.setattr(ray, "available_resources", lambda: {"CPU": 2.0})  # room for 2 workers
    monkeypatch.setattr(serve, "start", not_ready)
    monkeypatch.setattr(serve, "shutdown", lambda: shutdowns.append(True))
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert result.output == (
        "error: Ray Serve did not start: TimeoutError: HTTP proxy not ready after 60 s\n"
    )
    assert shutdowns == [True]


def test_client_benchmark_reports_both_clients_cpu_per_request():
    """`benchmarks/loadgen_client.py` end to end on a few requests (its figures are not
    judged here: timings belong to benchmarks, not tests)."""
    import re
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "benchmarks" / "loadgen_client.py"
    args = ["--requests", "20", "--rate", "400", "--rounds", "1"]
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"aiohttp_cpu_ms=[\d.]+ httpx_cpu_ms=[\d.]+ ratio=[\d.]+", last), last


def test_the_replay_line_shows_latencies_as_simulate_does():
    from serving.cli import _seconds

    assert _seconds(6.369245919) == "6.369 s"
    assert _seconds(None) == "n/a (none completed)"
