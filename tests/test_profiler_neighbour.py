"""profiler/neighbour.py: a neighbour process on the profiled core, running while the profile
idles before a call timed after idle and stopped otherwise; `profile latency --idle-neighbour`
end to end."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
if not hasattr(os, "sched_setaffinity"):
    pytest.skip("CPU affinity is Linux's", allow_module_level=True)

from typer.testing import CliRunner  # noqa: E402

from profiler.cli import profile_app  # noqa: E402
from profiler.latency import LatencyError, LatencyTiming, profile_latency  # noqa: E402
from profiler.neighbour import CoreNeighbour  # noqa: E402
from profiler.sharding import PipelineSource  # noqa: E402


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


def test_a_profile_after_idle_with_a_neighbour_says_so():
    timing = LatencyTiming(0, 2, idle_gap_s=0.05, idle_neighbour=True)
    source = PipelineSource("tiny:1:8", "fp32")
    profile = profile_latency(
        lambda: source.load("cpu"), [1], timing, "cpu", model="m", steps=1, resolution=32
    )
    assert profile.idle_neighbour
    assert profile.table()["latency_idle_p50_s"].notna().all()


def test_a_neighbour_needs_an_idle_gap_and_a_cpu():
    with pytest.raises(LatencyError, match="needs an idle gap"):
        LatencyTiming(idle_neighbour=True)
    timing = LatencyTiming(0, 1, idle_gap_s=0.05, idle_neighbour=True)
    with pytest.raises(LatencyError, match="a CPU profile's option, not 'cuda'"):
        profile_latency(lambda: None, [1], timing, "cuda", model="m", steps=1, resolution=8)


def test_profile_latency_with_a_neighbour_end_to_end(tmp_path):
    args = ["latency", "--model", "tiny:1:8", "--name", "m", "--steps", "1"]
    args += ["--resolution", "32", "--batch-sizes", "1", "--dtype", "fp32", "--device", "cpu"]
    args += ["--warmup", "0", "--repeats", "2", "--work", str(tmp_path)]
    done = CliRunner().invoke(profile_app, [*args, "--idle-gap-s", "0.05", "--idle-neighbour"])
    assert done.exit_code == 0, done.output
    sidecar = json.loads((tmp_path / "latency" / "m.json").read_text())
    assert sidecar["idle_neighbour"] is True
    refused = CliRunner().invoke(profile_app, [*args, "--idle-neighbour"])  # no idle gap
    assert refused.exit_code == 2
    assert "error: idle_neighbour: needs an idle gap" in refused.output
