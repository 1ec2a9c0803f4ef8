"""What `t2isim serve` does before it serves: it refuses a cluster without room for its
workers (Serve would wait for the resources without end), Ray's failure to start is one line,
and a SIGTERM while it starts stops what it started (Ray's own handler aborted the process and
left Ray's processes running)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ray.serve")

from proc_signals import HAS_PROC, blocks_sigterm  # noqa: E402

from serving.server import ServeSession, check_cluster_room, sigterm_deferred  # noqa: E402
from serving.setup import ServeSetup  # noqa: E402
from serving.stack import free_port  # noqa: E402
from simulator.errors import InputError, RunFailure  # noqa: E402

CLI = [sys.executable, "-m", "experiments.cli"]
SERVE = [
    *CLI, "serve", "--policy", "static-cascade", "--option", "light=SDXL-Lightning",
    "--option", "heavy=SD3.5-Large-Turbo", "--time-scale", "0.1", "--slo", "3",
    "--num-cpus", "2", "--duration", "60",
]  # fmt: skip
INGRESS = {"num_cpus": 0.1}


def test_a_cluster_with_room_passes():
    check_cluster_room({"num_cpus": 1, "num_gpus": 1}, 4, INGRESS, {"CPU": 4.1, "GPU": 4.0})
    check_cluster_room({"num_cpus": 0.01}, 16, INGRESS, {"CPU": 2.0})  # emulated, 2 cores


@pytest.mark.parametrize(
    ("worker", "available", "message"),
    [
        (
            {"num_cpus": 1, "num_gpus": 1},
            {"CPU": 16.0},
            "--workers 2: the workers (1 GPU each) and the ingress need 2 GPU, and the Ray "
            "cluster has 0 free (serve fewer workers, or join a cluster with more GPUs "
            "(--ray-address))",
        ),
        (
            {"num_cpus": 1, "num_gpus": 1},
            {"CPU": 2.0, "GPU": 2.0},
            "--workers 2: the workers (1 CPU each) and the ingress need 2.1 CPU, and the Ray "
            "cluster has 2 free (serve fewer workers, raise --num-cpus, or join a larger "
            "cluster (--ray-address))",
        ),
    ],
)
def test_a_cluster_without_room_is_refused_naming_the_resource(worker, available, message):
    with pytest.raises(InputError) as caught:
        check_cluster_room(worker, 2, INGRESS, available)
    assert str(caught.value) == message


TIMED_OUT = (
    "The current node timed out during startup. This could happen because some of the raylet "
    "failed to startup or the GCS has become overloaded."
)


@pytest.mark.parametrize(
    ("address", "raised", "error", "message"),
    [
        (  # as a loaded machine's raylet that never registered (a suite run, session 35)
            None,
            Exception(TIMED_OUT),
            RunFailure,
            f"the local Ray cluster did not start: Exception: {TIMED_OUT}",
        ),
        (
            "10.0.0.1:6379",
            ConnectionError("Could not find any running Ray instance."),
            InputError,
            "--ray-address '10.0.0.1:6379': Could not find any running Ray instance.",
        ),
        (
            "10.0.0.1:6379",
            RuntimeError("Failed to connect to GCS.\nmore detail"),
            RunFailure,
            "--ray-address '10.0.0.1:6379': Ray did not start: RuntimeError: Failed to connect "
            "to GCS. more detail",
        ),
    ],
)
def test_rays_failure_to_start_is_one_line(monkeypatch, address, raised, error, message):
    """Whatever `ray.init` raises ends as one line: the address's fault (exit 2) or the run's
    (exit 1), never a traceback; Ray is left stopped."""
    import ray

    def fail(**_):
        raise raised

    monkeypatch.setattr(ray, "init", fail)
    monkeypatch.setattr("serving.server.check_ray_address", lambda *_: None)  # no probe
    setup = ServeSetup("default", "static-cascade", {}, {"n_workers": 2})
    with pytest.raises(error) as caught:
        with ServeSession(setup, port=free_port(), ray_address=address):
            pass
    assert type(caught.value) is error and str(caught.value) == message
    assert not ray.is_initialized()


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc")
def test_a_process_started_while_sigterm_is_deferred_takes_it_in_a_group_of_its_own():
    """`sigterm_deferred` blocks SIGTERM here while Ray starts; a process started meanwhile
    with a `preexec_fn` (as Ray starts its raylet, GCS and monitors) must not inherit the
    block (`ray.shutdown`'s SIGTERM would go unheard, and each would be killed a second
    later), and must not share this process's group (a SIGTERM to the group would kill the
    raylet under the running session). Without a `preexec_fn` the fork hooks do not run
    (Python's subprocess)."""

    def child_state() -> tuple[bool, bool]:
        with subprocess.Popen(["sleep", "30"], preexec_fn=lambda: None) as child:
            try:
                status = Path(f"/proc/{child.pid}/status").read_text()
                return blocks_sigterm(status), os.getpgid(child.pid) == os.getpgrp()
            finally:
                child.kill()

    with sigterm_deferred():
        here_blocked = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert child_state() == (False, False)
    assert here_blocked
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert child_state() == (False, True)  # outside the block: as ever


@pytest.mark.slow
def test_the_cli_refuses_more_workers_than_the_cluster_holds_in_one_line(tmp_path):
    done = subprocess.run(
        [*SERVE, "--workers", "200", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --workers 200: the workers (0.01 CPU each) and the ingress need 2.1 CPU, and "
        "the Ray cluster has 2 free (serve fewer workers, raise --num-cpus, or join a larger "
        "cluster (--ray-address))"
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_sigterm_while_serve_starts_stops_serve_and_ray_and_exits_143():
    """SIGTERM once Serve has started and before it serves: exit 143 with one line, and no
    process of its Ray cluster left (each inherits the tag in its environment)."""
    value = uuid.uuid4().hex
    env = {**os.environ, "T2ISIM_STARTUP_TEST": value}
    tag = f"T2ISIM_STARTUP_TEST={value}"
    lines: list[str] = []
    with subprocess.Popen(
        [*SERVE, "--workers", "2", "--port", str(free_port())],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as server:
        deadline = time.monotonic() + 120
        for line in server.stderr:  # up to Serve's start, inside `serve.start`
            lines.append(line)
            if "Started Serve" in line or time.monotonic() > deadline:
                break
        assert any("Started Serve" in line for line in lines), "".join(lines)
        server.send_signal(signal.SIGTERM)
        rest = server.stderr.read()
        assert server.wait(timeout=120) == 143, "".join(lines) + rest
    assert rest.strip().splitlines()[-1] == "error: interrupted by SIGTERM"
    deadline = time.monotonic() + 30  # Ray's processes exit on their own once told to
    while (left := _tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_sigterm_to_the_process_group_while_serving_stops_serve_and_ray_cleanly():
    """`serve` in a process group of its own (as a service manager or a batch system runs
    it), the whole group sent SIGTERM while it serves: it stops as on its own SIGTERM (exit
    0), without waiting out Serve's controller, and leaves no process of its Ray cluster."""
    value = uuid.uuid4().hex
    env = {**os.environ, "T2ISIM_STARTUP_TEST": value}
    with subprocess.Popen(
        [*SERVE, "--workers", "2", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as server:
        lines = []
        for line in server.stderr:  # up to "serving ... at URL", once it serves
            lines.append(line)
            if line.startswith("serving "):
                break
        assert lines and lines[-1].startswith("serving "), "".join(lines)
        ready = re.search(
            r", ready after ([\d.]+) s \(ray ([\d.]+), serve ([\d.]+), "
            r"deployments ([\d.]+)\)$",
            lines[-1].strip(),
        )
        assert ready, lines[-1]  # the start's steps add up to its total (each rounded)
        total, *steps = map(float, ready.groups())
        assert all(s > 0 for s in steps) and abs(sum(steps) - total) <= 0.15
        os.killpg(server.pid, signal.SIGTERM)
        out, err = server.communicate(timeout=120)
    assert server.returncode == 0, err
    assert "failed to shut down" not in err, err
    deadline = time.monotonic() + 30
    tag = f"T2ISIM_STARTUP_TEST={value}"
    while (left := _tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left


def _tagged_processes(tag: str) -> list[str]:
    """The command lines of the processes whose environment holds `tag`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and tag.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found
