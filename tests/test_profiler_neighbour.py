"""profiler/neighbour.py: a neighbour process on this process's core, running only when let
run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
if not hasattr(os, "sched_setaffinity"):
    pytest.skip("CPU affinity is Linux's", allow_module_level=True)


from profiler.neighbour import CoreNeighbour  # noqa: E402


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_the_neighbour_shares_the_core_and_runs_only_while_idle():
    cores = os.sched_getaffinity(0)
    with CoreNeighbour() as neighbour:
        pid = neighbour.process.pid
        assert os.sched_getaffinity(0) == {min(cores)} == os.sched_getaffinity(pid)
        assert state(pid) == "T"  # stopped: nothing shares the core while a call is timed
        before = cpu_ticks(pid)
        time.sleep(0.5)
        assert cpu_ticks(pid) == before
        neighbour.idle(0.5)
        assert cpu_ticks(pid) > before  # it ran during the idle gap
        assert state(pid) == "T"
    assert neighbour.process.poll() is not None  # gone
    assert os.sched_getaffinity(0) == cores  # this process's cores restored
