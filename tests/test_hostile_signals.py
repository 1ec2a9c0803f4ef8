"""SIGINT and SIGTERM end a command with its outputs complete or absent, one stderr line, exit
128 + signal, and no orphaned worker processes (real subprocesses, signalled mid-run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hostile import check_run_folder, no_staging_left

from experiments.sweep import part_problem

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
CLI = [sys.executable, "-m", "experiments.cli"]
LONG_TRACE = "poisson:rate=20,duration=60000"  # ~60 CPU s to simulate: far longer than the wait


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in listed.split()]


def wait_until(condition, timeout_s: float = 120.0) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, "condition not reached in time"
        time.sleep(0.2)


def signalled(args: list[str], cwd: Path, number: int, busy) -> tuple[int, str, list[int]]:
    """Run `t2isim ARGS`, wait until `busy(pid)`, send signal `number`; (exit code, stderr,
    the process's children at the time of the signal)."""
    proc = subprocess.Popen([*CLI, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: busy(proc.pid) or proc.poll() is not None)
        kids = children(proc.pid)
        proc.send_signal(number)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stderr, kids


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_signalled_simulate_leaves_no_run_and_no_staging(tmp_path, number):
    code, stderr, _ = signalled(
        ["simulate", "--policy", "hadis", "--trace", LONG_TRACE, "--out", "run", "--quiet"],
        tmp_path, number, lambda pid: cpu_seconds(pid) > 3.0,
    )
    if code == 0:  # finished before the signal (a very fast machine): complete
        check_run_folder(tmp_path / "run")
        return
    assert code == 128 + number, stderr
    assert stderr == f"error: interrupted by {signal.Signals(number).name}\n"
    assert not (tmp_path / "run").exists()
    no_staging_left(tmp_path)


def pool_busy(pid: int) -> bool:
    """The sweep's pool workers have started running (spent CPU beyond their start-up)."""
    try:
        return sum(cpu_seconds(k) for k in children(pid)) > 8.0
    except FileNotFoundError:  # a child ended between listing and reading
        return False


def test_signalled_sweep_stops_its_pool_and_keeps_only_complete_parts(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "bundle": "default", "trace": "poisson:rate={load},duration=60000",
        "grid": {"policy": ["hadis"], "load": [4, 8, 12, 16]},
    }))
    code, stderr, kids = signalled(
        ["sweep", str(spec), "--out", "store", "--jobs", "2", "--quiet"],
        tmp_path, signal.SIGTERM, pool_busy,
    )
    assert code == 128 + signal.SIGTERM, stderr
    assert stderr.endswith("error: interrupted by SIGTERM\n") and stderr.count("\n") == 1
    assert kids, "the pool had started"
    wait_until(lambda: not any(Path(f"/proc/{k}").exists() for k in kids), timeout_s=20)
    parts = tmp_path / "store" / "parts"
    for part in parts.glob("*.parquet") if parts.is_dir() else ():
        assert part_problem(part) is None, part
    if parts.is_dir():
        no_staging_left(parts)
