"""`t2isim validate` on the diffusers backend end to end on CPU: one real run of the tiny
bundle on 2 CPU replicas against simulations whose workers take lognormal(p50, p95) service
times (the backend's model) after idle as the profile timed them, the profile's p50 alone, the
back-to-back p50 alone, and the profile at both ends of its rounds."""

from __future__ import annotations

import json
import resource
import socket

import pandas as pd
import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("diffusers")
pytest.importorskip("open_clip")

from test_serving_diffusers import SETUP_OPTIONS, work  # noqa: E402, F401  (the tiny profile)

from serving.setup import ServeSetup  # noqa: E402
from serving.validate import run_validation  # noqa: E402


def test_a_short_tiny_diffusers_validation(work, tmp_path):  # noqa: F811
    setup = ServeSetup(
        str(work.bundle),
        "static-cascade",
        SETUP_OPTIONS,
        {"n_workers": 2, "slo_s": 120.0, "dispatch": "jsq"},
        backend="diffusers",
        dispatch="jsq",
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    table = run_validation(
        setup,
        "constant:rate=2,duration=3",
        tmp_path / "v",
        repeats=1,
        port=port,
        num_cpus=2,
        log=lambda s: None,
        sim_repeats=1,
        profile_rounds=str(work.root / "latency"),
    ).set_index("metric")
    real = json.loads((tmp_path / "v" / "real-1" / "summary.json").read_text())
    assert real["arrivals"] == 6 and real["failed"] == 0
    assert real["ok"] + real["timeouts"] + real["drops"] == 6
    # each batch's thread CPU: the compute part of its service time, measured in the replica
    batches = pd.read_csv(tmp_path / "v" / "real-1" / "batches.csv")
    assert len(batches) > 0 and (batches["cpu_s"] > 0).all()
    assert (batches["cpu_s"] <= batches["service_s"] + 1e-3).all()
    if hasattr(resource, "RUSAGE_THREAD"):  # counted per thread (Linux)
        assert (batches["preemptions"] >= 0).all() and batches["preemptions"].dtype.kind == "i"
    # the ingress's calls to its workers: a part of each done query's hops, on Ray's real path
    queries = pd.read_parquet(tmp_path / "v" / "real-1" / "queries.parquet")
    done = queries[queries.outcome == "ok"]
    assert len(done) and (done.to_workers_s > 0).all() and (done.from_workers_s > 0).all()
    assert (done.to_workers_s + done.from_workers_s <= done.hops_s + 1e-3).all()
    simulated = json.loads((tmp_path / "v" / "sim" / "config.json").read_text())
    assert simulated["sim"]["service_time"] == "lognormal"
    assert "latency_p05_s" in pd.read_csv(work.bundle / "latency.csv").columns
    assert simulated["sim"]["idle_latency"] is True
    columns = {"error_deterministic_service", "error_shifted-lognormal_service"}
    columns |= {"error_profile_fast"}
    columns |= {"error_profile_slow"}
    assert columns | {"error_back_to_back_latency"} <= set(table.columns)
    p50 = table.loc["p50_latency_s"]
    assert p50["error_profile_fast"] <= p50["error"] <= p50["error_profile_slow"]
    report = (tmp_path / "v" / "fidelity.md").read_text()
    assert (
        "Service times: lognormal through the profile's p50 and p95 for the diffusers "
        "backend's workers, whose batch times vary; the same simulation with error "
        "deterministic service: each batch at its p50, error shifted-lognormal service: a "
        "floor plus a lognormal through the profile's p05, p50 and p95."
    ) in report
    assert "the p50 timed after the gap (tiny-light 0.05 s, tiny-heavy 0.05 s)" in report
    assert (tmp_path / "v" / "timeseries.png").stat().st_size > 10_000
    assert set(pd.read_csv(tmp_path / "v" / "fidelity.csv")["metric"]) >= {"p50_latency_s"}
