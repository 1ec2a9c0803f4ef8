"""`serve --ray-address`, `--port`, `--host`, `--num-cpus` and `--duration`: joining a Ray
cluster that runs already (started here with `ray start --head --block` with token
authentication, which Ray enables by default from 2.61; stopped at the end), serving a replay on
it and leaving it running; and an address where no cluster answers, which is one line and exit
2 within seconds (a Ray driver pointed at nothing retries for minutes); likewise a port in use
or out of range, a host that does not resolve, no CPUs or no duration, before Ray starts."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

pytest.importorskip("ray.serve")

from serving.loadgen import run_loadgen  # noqa: E402
from serving.server import check_port_free, check_ray_address  # noqa: E402
from simulator.errors import InputError  # noqa: E402

START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nonsense", "expected HOST:PORT, ray://HOST:PORT or auto"),
        ("127.0.0.1:0", "expected HOST:PORT"),
        ("127.0.0.1:99999", "expected HOST:PORT"),
        (":6379", "expected HOST:PORT"),
    ],
)
def test_a_malformed_address_is_refused(address, message):
    with pytest.raises(InputError, match=message):
        check_ray_address(address)


def test_an_address_where_nothing_answers_is_refused():
    port = free_port()  # bound, then released: nothing listens there
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(InputError, match=f"nothing answers at 127.0.0.1:{port}"):
            check_ray_address(address)
    check_ray_address("auto")  # Ray looks it up; it says so if there is none


def test_a_server_that_is_not_ray_is_refused():
    """An HTTP/1 server (the dashboard's port, say) answers, but not as Ray's gRPC does."""
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with pytest.raises(InputError, match=f"answers at 127.0.0.1:{port} is not a Ray cluster"):
            check_ray_address(f"127.0.0.1:{port}")
    finally:
        server.shutdown()
        server.server_close()


def test_the_cli_refuses_an_unreachable_cluster_in_one_line():
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "serve", "--ray-address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --ray-address '127.0.0.1:1': nothing answers at 127.0.0.1:1 (Connection refused)"
    ]
    assert time.monotonic() - start < 60  # not Ray's minutes of retries


@pytest.mark.slow
def test_serve_joins_a_running_cluster_and_leaves_it_running(tmp_path):
    """`t2isim serve --ray-address` as a user runs it against a cluster of theirs, with its
    token in the environment; `t2isim loadgen`'s replay against it adds up."""
    port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    head = subprocess.Popen(
        [
            sys.executable, "-m", "ray.scripts.scripts",  # the `ray` CLI of this Python
            "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
            "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    serve = [
        sys.executable, "-m", "experiments.cli", "serve", "--policy", "static-cascade",
        "--option", "light=SDXL-Lightning", "--option", "heavy=SD3.5-Large-Turbo",
        "--workers", "2", "--time-scale", "0.1", "--slo", "3", "--port", str(http_port),
        "--ray-address", f"127.0.0.1:{port}", "--duration", "120",
    ]  # fmt: skip
    try:
        wait_until(lambda: check_ray_address(f"127.0.0.1:{port}"), head)
        lines: list[str] = []
        with subprocess.Popen(serve, stderr=subprocess.PIPE, text=True, env=env) as server:
            reader = threading.Thread(target=lambda: lines.extend(server.stderr), daemon=True)
            reader.start()
            wait_until(lambda: _served(lines), server, lines)
            summary = run_loadgen(
                "constant:rate=5,duration=2", f"http://127.0.0.1:{http_port}", tmp_path / "run"
            )
            server.terminate()  # SIGTERM: a clean stop
            assert server.wait(timeout=120) == 0, "".join(lines)
        assert summary["arrivals"] == 10 and summary["failed"] == 0
        assert summary["ok"] + summary["timeouts"] + summary["drops"] == 10
        assert head.poll() is None  # the cluster it joined still runs
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _served(lines: list[str]) -> None:
    if not any(line.startswith("serving ") for line in lines):
        raise InputError("not serving yet")


def wait_until(ready, process: subprocess.Popen, lines: list[str] = ()) -> None:
    """Call `ready` until it stops raising InputError, while `process` runs."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            return ready()
        except InputError:
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)


def test_a_port_another_server_listens_at_is_refused():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=f"--port {port}: cannot serve at 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port, wait_s=0.5)
    check_port_free("127.0.0.1", port, wait_s=0.0)  # closed: free again


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("127.0.0.1", 0, "--port 0: expected a port in 1..65535"),
        ("127.0.0.1", 70000, "--port 70000: expected a port in 1..65535"),
        ("nonexistent.invalid", 8000, "--host 'nonexistent.invalid': "),
    ],
)
def test_a_port_out_of_range_or_an_unknown_host_is_refused_at_once(host, port, message):
    with pytest.raises(InputError, match=message):
        check_port_free(host, port, wait_s=0.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "-1"], "error: --duration -1: expected seconds > 0 (or none: until ^C)"),
        (["--num-cpus", "0"], "error: --num-cpus 0: expected at least 1"),
    ],
)
def test_serve_refuses_no_time_or_no_cpus_in_one_line(args, message):
    done = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [message]
