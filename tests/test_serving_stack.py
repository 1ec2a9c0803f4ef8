"""Ray Serve's stack (serving.stack): where each setting goes, an unknown name refused before
Ray starts, and the lean stack serving end to end with HAProxy in front while this process's
environment stays untouched."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serving.setup import ServeSetup
from serving.stack import (
    DEFAULT_STACK,
    SERVE_STACKS,
    SERVE_SYSTEM_ACTORS,
    free_port,
    serve_stack,
)
from simulator.errors import InputError

LIGHT, HEAVY = "SDXL-Lightning", "SD3.5-Large-Turbo"
HAPROXY_FIXED_PORTS = (9101, 8404)  # HAProxy's metrics and stats listeners by default
OPTIONS = {"light": LIGHT, "heavy": HEAVY, "router_ratio": 0.2, "disc_ratio": 0.3}


def test_shipped_stack_changes_nothing():
    stack = serve_stack("shipped")
    assert stack.controller_options() is None
    assert stack.system_config == {}
    assert stack.replica_options({"num_cpus": 1}) == {"num_cpus": 1}


def test_lean_stack_reaches_controller_replicas_and_ray():
    stack = serve_stack("lean")
    env = stack.controller_options()["runtime_env"]["env_vars"]
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"  # the controller starts HAProxy
    assert env["RAY_SERVE_CONTROL_LOOP_INTERVAL_S"] == "1"
    ports = [int(env[f"RAY_SERVE_HAPROXY_{k}_PORT"]) for k in ("METRICS", "STATS")]
    assert all(1024 <= p < 65536 for p in ports)  # free ones, not HAProxy's fixed 9101 / 8404
    options = stack.replica_options({"num_cpus": 0.1})
    assert options["num_cpus"] == 0.1
    # the ingress replica must know too: it then serves HTTP itself, behind HAProxy
    assert options["runtime_env"]["env_vars"]["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert stack.system_config == {
        "task_events_report_interval_ms": 0,
        "enable_metrics_collection": False,
    }
    assert all(isinstance(v, str) for s in SERVE_STACKS.values() for v in s.controller_env.values())


def test_unknown_stack_is_an_input_error_before_ray_starts():
    with pytest.raises(InputError, match="--serve-stack 'fast': expected one of lean, shipped"):
        ServeSetup("default", "static-cascade", OPTIONS, {"n_workers": 2}, stack="fast").build()


def test_a_local_cluster_starts_every_replicas_worker_process_at_once_on_either_stack():
    for stack in SERVE_STACKS.values():
        options = stack.local_ray_options(2, replicas=17)
        assert options["num_cpus"] == 2
        config = options["_system_config"]
        assert config["worker_maximum_startup_concurrency"] == 17 + SERVE_SYSTEM_ACTORS
        assert config.items() >= stack.system_config.items()
        assert (
            stack.local_ray_options(4)["_system_config"]["worker_maximum_startup_concurrency"] == 4
        )


@pytest.mark.parametrize(
    "ephemeral, quiet", [("32768\t60999\n", True), ("1024 65535\n", False), (None, False)]
)
def test_a_free_port_is_taken_below_the_ephemeral_range_where_there_is_room(
    ephemeral, quiet, tmp_path, monkeypatch
):
    """A port from the kernel's ephemeral range can go to any outgoing connection before
    HAProxy binds it; below it (above Ray's workers' ports) only a listener takes one. No
    room there, or no range to read: any free port."""
    import serving.stack as stack

    real = stack.EPHEMERAL_PORTS
    source = tmp_path / "ip_local_port_range"
    if ephemeral is not None:
        source.write_text(ephemeral)
    monkeypatch.setattr(stack, "EPHEMERAL_PORTS", source)
    ports = {free_port() for _ in range(20)}
    for port in ports:
        with socket.socket() as s:
            s.bind(("", port))  # free indeed
    if quiet:
        assert all(stack.QUIET_PORTS_FROM <= p < 32768 for p in ports)
    elif real.exists():  # the kernel's choice
        real_from = int(real.read_text().split()[0])
        assert all(p >= real_from for p in ports)


def test_setup_round_trip_keeps_the_stack_and_old_setups_read_as_shipped():
    setup = ServeSetup("default", "static-cascade", OPTIONS, {"n_workers": 2}, stack="shipped")
    assert ServeSetup.from_dict(setup.to_dict()) == setup
    assert ServeSetup("default", "static-cascade").stack == DEFAULT_STACK == "lean"
    old = {k: v for k, v in setup.to_dict().items() if k != "stack"}
    assert ServeSetup.from_dict(old).stack == "shipped"  # runs before the stacks were named
    assert ServeSetup.from_dict({**old, "stack": "default"}).stack == "shipped"  # its old name


def ray_processes() -> dict[str, bytes]:
    """Command line -> environment block of each readable process of this user."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            found[command] = (entry / "environ").read_bytes()
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_lean_stack_serves_a_replay_behind_haproxy_beside_another(tmp_path):
    """HAProxy in front, the settings in the controller's and replicas' environments, none in
    this one's; HAProxy's default ports held meanwhile, as by another lean run."""
    pytest.importorskip("ray.serve")
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to see Ray's processes")

    setup = ServeSetup(
        "default",
        "static-cascade",
        OPTIONS,
        {"n_workers": 2, "slo_s": 3.0, "time_scale": 0.1, "load_s": 0.0},  # no model load
        stack="lean",
    )
    environ = dict(os.environ)
    port = free_port()
    with contextlib.ExitStack() as held:
        for fixed in HAPROXY_FIXED_PORTS:  # as another lean run on this host would
            s = held.enter_context(socket.socket())
            with contextlib.suppress(OSError):  # in use already: held by someone else
                s.bind(("", fixed))
                s.listen()
        served(setup, port, tmp_path)
    stack_keys = {k for s in SERVE_STACKS.values() for k in s.controller_env | s.replica_env}
    added = {k for k in os.environ if k not in environ or os.environ[k] != environ[k]}
    assert not added & stack_keys  # the stack went to Ray's processes, not to this one


def served(setup: ServeSetup, port: int, tmp_path: Path) -> None:
    from serving.loadgen import run_loadgen
    from serving.server import ServeSession

    with ServeSession(setup, port=port, num_cpus=2) as session:
        processes = ray_processes()
        assert any(c.split(" ")[0].endswith("/haproxy") for c in processes)  # HAProxy in front
        for name in ("ServeController", "ServeReplica:t2isim:Ingress", "ServeReplica:t2isim-w0"):
            env = next(e for c, e in processes.items() if c.startswith(f"ray::{name}"))
            assert b"RAY_SERVE_ENABLE_HA_PROXY=1\0" in env, name
        summary = run_loadgen("constant:rate=5,duration=2", session.url, tmp_path / "run")
    assert summary["arrivals"] == summary["ok"] == 10
    config = (tmp_path / "run" / "config.json").read_text()
    assert '"stack": "lean"' in config


@pytest.mark.slow
def test_serve_and_loadgen_commands_with_chaos_on_the_shipped_stack(tmp_path):
    """`t2isim serve --serve-stack shipped --chaos kill-replica@1` and `t2isim loadgen` as a user
    runs them: the kill is reported, every query ends in one outcome, the run names its stack."""
    pytest.importorskip("ray.serve")
    port = free_port()
    cli = [sys.executable, "-m", "experiments.cli"]
    serve = [
        *cli, "serve", "--serve-stack", "shipped", "--policy", "static-cascade",
        *(f"--option={k}={v}" for k, v in OPTIONS.items()),
        "--workers", "4", "--time-scale", "0.1", "--slo", "3", "--num-cpus", "2",
        "--port", str(port), "--chaos", "kill-replica@1", "--duration", "60",
    ]  # fmt: skip
    lines: list[str] = []
    with subprocess.Popen(serve, stderr=subprocess.PIPE, text=True) as server:
        reader = threading.Thread(target=lambda: lines.extend(server.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 240
        while not any(line.startswith("serving ") for line in lines):  # Serve is up
            assert server.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        replay = subprocess.run(
            [*cli, "loadgen", "constant:rate=10,duration=4", "--url", f"http://127.0.0.1:{port}",
             "--out", str(tmp_path / "run")],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        server.terminate()  # SIGTERM: a clean stop, as at the end of --duration
        assert server.wait(timeout=120) == 0
        reader.join(timeout=10)
    stderr = "".join(lines)
    assert replay.returncode == 0, replay.stderr
    assert re.search(r"^40 queries: ok \d+, .* p50 [\d.]+ s, p99 [\d.]+ s -> ", replay.stdout)
    assert "chaos: killed a SDXL-Lightning worker's replica at" in stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    outcomes = summary["ok"] + summary["timeouts"] + summary["drops"] + summary["failed"]
    assert outcomes == summary["arrivals"] == 40
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["serving"]["stack"] == "shipped"


@pytest.mark.slow
def test_a_serve_that_already_runs_is_refused_and_left_running():
    """Serve's port and settings are fixed when it starts: on a cluster whose Serve runs, a run
    of either stack would answer at that Serve's port, not its own, and its stop would shut
    that Serve down with its applications; so it is refused, and that Serve left running."""
    pytest.importorskip("ray.serve")
    import ray
    from ray import serve

    from serving.server import ServeSession, serve_is_running

    @serve.deployment
    class Other:
        def __call__(self, request) -> str:
            return "other"

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
        serve.run(Other.bind(), name="other", route_prefix="/other")
        for stack in SERVE_STACKS:
            setup = ServeSetup("default", "static-cascade", OPTIONS, {"n_workers": 2}, stack=stack)
            with pytest.raises(InputError, match="^Serve already runs on this Ray cluster: "):
                with ServeSession(setup, port=free_port()):
                    pass
        assert ray.is_initialized() and serve_is_running()  # not ours to stop
        assert list(serve.status().applications) == ["other"]
    finally:
        serve.shutdown()
        ray.shutdown()
