"""The serving path on a local Ray cluster (emulated backend, 4 workers, time scale 0.1): the
HTTP API's errors, an end-to-end replay whose per-query routing and escalation match the
simulator's query by query, a worker's replica killed mid-run with every query still accounted
for, and a plan change that swaps a model inside a running worker at the model's load time.
One Serve instance for the module (Ray start-up dominates: ~30-60 s on 2 cores)."""

from __future__ import annotations

import dataclasses
import socket
import time

import httpx
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray.serve")

from proc_signals import HAS_PROC, ray_descendants_exposed  # noqa: E402
from ray import serve  # noqa: E402

from experiments.inputs import resolve_bundle, resolve_trace  # noqa: E402
from serving.ingress import MAX_RETRIES  # noqa: E402
from serving.loadgen import run_loadgen  # noqa: E402
from serving.server import ServeSession  # noqa: E402
from serving.setup import ServeSetup  # noqa: E402
from serving.stack import free_port  # noqa: E402
from simulator.run import run_simulation  # noqa: E402

LIGHT, HEAVY = "SDXL-Lightning", "SD3.5-Large-Turbo"
SETUP = ServeSetup(
    "default",
    "static-cascade",
    {"light": LIGHT, "heavy": HEAVY, "router_ratio": 0.2, "disc_ratio": 0.3},
    {"n_workers": 4, "slo_s": 3.0, "time_scale": 0.1},
)
TRACE = "constant:rate=10,duration=5"
KILL_AFTER_S = 2.0


def wait_until_every_worker_is_loaded(cluster, timeout_s: float = 60.0) -> None:
    """Until each worker's model is loaded (a replica that was killed restarts and loads)."""
    deadline = time.monotonic() + timeout_s
    while not all(cluster.worker(w).status.remote().result()["loaded"] for w in range(4)):
        assert time.monotonic() < deadline, "a worker never loaded"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def session():
    with ServeSession(SETUP, port=free_port(), num_cpus=2, chaos_kill_s=KILL_AFTER_S) as s:
        yield s


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc")
def test_rays_processes_take_sigterm_in_their_own_group(session):
    """Ray started inside `sigterm_deferred` (SIGTERM blocked here): its processes and the
    replicas' workers must not block it, or `ray.shutdown` waits a second for each, nor share
    this process's group, or a SIGTERM to the group kills the raylet under the session."""
    assert ray_descendants_exposed() == []


def test_malformed_http_requests_get_4xx_json(session):
    gen = session.url + "/v1/images/generations"
    cases = [
        (httpx.post(gen, content=b"{not json"), 400),
        (httpx.post(gen, content=b"[" * 50_000 + b"]" * 50_000), 400),  # not a 500
        (httpx.post(gen, json={"prompt": "a", "n": 99}), 400),
        (httpx.post(gen, json={"prompt": "no such prompt in the bundle"}), 422),
        (httpx.post(gen, json={"prompt": "not prompt 0's text", "prompt_id": 0}), 422),
        (httpx.get(gen), 405),
        (httpx.post(session.url + "/v1/other", json={}), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]
    # not HTTP at all, or a broken Content-Length: the front (HAProxy on the lean stack)
    # refuses it before t2isim's code sees it, with a 400 of its own (not JSON), never a 5xx
    host, port = session.url.removeprefix("http://").split(":")
    for raw in (b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}"):
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(raw)
            assert conn.recv(64).startswith(b"HTTP/1.1 400"), raw


def test_replay_matches_the_simulators_decisions_and_survives_a_killed_replica(session, tmp_path):
    summary = run_loadgen(TRACE, session.url, tmp_path / "real")
    session.check()
    assert [name for _, name in session.controller.killed] == [LIGHT]  # it has most workers
    real = pd.read_parquet(tmp_path / "real" / "queries.parquet")
    assert len(real) == summary["arrivals"] == 50
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == 50
    assert real.loc[real.outcome == "drop", "reason"].notna().all()
    late = real.loc[real.outcome != "ok", ["arrival_s", "latency_s", "final_model", "reason"]]
    assert summary["ok"] >= 40, late.to_string()  # the kill costs few queries, if any
    assert real.retries.between(0, MAX_RETRIES + 1).all()  # sends lost with the killed replica

    bundle = resolve_bundle("default")
    sim = run_simulation(
        bundle, resolve_trace(TRACE, bundle, 0), SETUP.policy, SETUP.config, SETUP.options
    ).queries
    # the same decision core: routing by router score, escalation by quality score
    assert 5 <= real.bypassed.sum() <= 15
    np.testing.assert_array_equal(real.bypassed.to_numpy(), sim.bypassed.to_numpy())
    both = (real.outcome != "drop").to_numpy() & (sim.outcome != "drop").to_numpy()
    np.testing.assert_array_equal(real.escalated[both], sim.escalated[both])
    np.testing.assert_array_equal(
        real.final_model[both].astype(str), sim.final_model[both].astype(str)
    )
    assert set(real.final_model[both].astype(str)) == {LIGHT, HEAVY}

    # the killed worker's new replica loads its model (the restart pays the load), and a query
    # it cannot serve within the drop limit is dropped, as simulated: ask once it is loaded
    wait_until_every_worker_is_loaded(session.controller.cluster)
    text = bundle.prompts["text"].iloc[11]
    ok = httpx.post(
        session.url + "/v1/images/generations", json={"prompt": text, "n": 2}, timeout=30
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert body["t2isim"]["prompt_id"] == 11


def test_a_plan_change_swaps_the_model_inside_the_running_worker(session):
    cluster = session.controller.cluster
    state_url = session.url + "/v1/t2isim/state"

    def swap_to(plan) -> dict:
        """Apply `plan` (one worker changes model, the demand it was made from 7.5 qps) and
        return its logged swap."""
        logged = len(httpx.get(state_url, timeout=30).json()["swaps"])
        cluster.apply_plan(plan, demand_qps=7.5)
        assert httpx.get(state_url, timeout=30).json()["plans"][-1]["demand_qps"] == 7.5
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cluster.check_swaps()  # as the controller thread does each tick
            swaps = httpx.get(state_url, timeout=30).json()["swaps"]
            if len(swaps) > logged:
                return swaps[logged]
            time.sleep(0.1)
        raise AssertionError("no swap logged")

    wait_until_every_worker_is_loaded(cluster)
    original = cluster.plan
    actors = [cluster.worker(w).actor_name.remote().result() for w in range(4)]
    deployed_s = {n: a.last_deployed_time_s for n, a in serve.status().applications.items()}
    light, heavy = original.workers[LIGHT], original.workers[HEAVY]
    workers = {LIGHT: light + 1, HEAVY: heavy - 1} if heavy > 1 else {LIGHT: light - 1, HEAVY: 2}
    model = LIGHT if heavy > 1 else HEAVY
    before = list(cluster.slots)
    swap = swap_to(dataclasses.replace(original, workers=workers))
    [w] = [w for w in range(4) if cluster.slots[w] != before[w]]  # fewest swaps: one
    load_s = cluster.models[cluster.bundle.model_index(model)].load_s
    assert swap["model"] == model
    # the model's load time from the worker's configure (it was idle), not a replica start
    # (tens of seconds)
    assert swap["requested_s"] < swap["configured_s"] == swap["load_from_s"]
    assert swap["worker"] == w
    due_s = swap["configured_s"] + load_s
    # (asyncio sleeps on the monotonic clock: a wake may read a wall time 0.1 ms early)
    assert -0.005 <= swap["loaded_s"] - due_s <= 0.5
    status = cluster.worker(w).status.remote().result()
    assert status["model"] == cluster.bundle.model_index(model) and status["loaded"]
    # every worker is the same replica as before the swap: reconfigured, never restarted
    assert [cluster.worker(k).actor_name.remote().result() for k in range(4)] == actors
    # and not redeployed: Serve takes a reconfiguring replica out of routing (queries waited)
    assert {n: a.last_deployed_time_s for n, a in serve.status().applications.items()} == (
        deployed_s
    )
    # its first batch is announced to the ingress (in service from its start, as simulated)
    generations = session.url + "/v1/images/generations"
    prompts = iter(range(cluster.bundle.n_prompts))
    deadline = time.monotonic() + 60
    while not any(
        b[0] == w and b[1] >= swap["loaded_s"]
        for b in httpx.get(state_url, timeout=30).json()["first_batches"]
    ):
        assert time.monotonic() < deadline, f"worker {w}'s first batch was never announced"
        prompt_id = next(prompts)
        text = cluster.bundle.prompts["text"].iloc[prompt_id]
        body = {"prompt": text, "prompt_id": prompt_id, "n": 4}
        httpx.post(generations, json=body, timeout=60)
    swap_to(original)  # back, loaded, for the other tests (any order)
    assert cluster.slots == before
