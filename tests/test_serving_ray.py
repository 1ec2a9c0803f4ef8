"""The serving path on a local Ray cluster (emulated backend, 4 replicas, time scale 0.1): the
HTTP API's errors, an end-to-end replay whose per-query routing and escalation match the
simulator's query by query, a replica killed mid-run with every query still accounted for.
One Serve instance for the module (Ray start-up dominates: ~30-60 s on 2 cores)."""

from __future__ import annotations

import socket

import httpx
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray.serve")

from experiments.inputs import resolve_bundle, resolve_trace  # noqa: E402
from serving.loadgen import run_loadgen  # noqa: E402
from serving.server import ServeSession  # noqa: E402
from serving.setup import ServeSetup  # noqa: E402
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def session():
    with ServeSession(SETUP, port=free_port(), num_cpus=2, chaos_kill_s=KILL_AFTER_S) as s:
        yield s


def test_malformed_http_requests_get_4xx_json(session):
    gen = session.url + "/v1/images/generations"
    cases = [
        (httpx.post(gen, content=b"{not json"), 400),
        (httpx.post(gen, json={"prompt": "a", "n": 99}), 400),
        (httpx.post(gen, json={"prompt": "no such prompt in the bundle"}), 422),
        (httpx.get(gen), 405),
        (httpx.post(session.url + "/v1/other", json={}), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]


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

    text = bundle.prompts["text"].iloc[11]
    ok = httpx.post(
        session.url + "/v1/images/generations", json={"prompt": text, "n": 2}, timeout=30
    )
    assert ok.status_code == 200
    body = ok.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert body["t2isim"]["prompt_id"] == 11
