"""A neighbour on a core: another process pinned to the same core as this one, running
`NEIGHBOUR_MODEL` (tiny-light, another CPU replica's work) back to back when let run and stopped
(SIGSTOP) otherwise. `benchmarks/shared_core_probe.py` times a tiny batch with it running during
the idle gap before the call, or throughout, against a quiet core (session 22: on the device
machine, running throughout, a batch after idle took 5-12% more CPU time; here, running during
the gap only, 12-15% less, as if the slowdown after idle came with the core going idle).

    python -m profiler.neighbour --core N   # the neighbour process itself
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

# source, steps, resolution: `profile all --tiny`'s tiny-light, the other replica's work
NEIGHBOUR_MODEL = ("tiny:1:8", 1, 32)
READY = "ready"
# the CPU probes' models (source, steps; `profile all --tiny`'s), their resolution and the calls
# each makes before timing
PROBE_MODELS = {"heavy": ("tiny:3:16", 4), "light": ("tiny:1:8", 1)}
PROBE_RESOLUTION = 32
PROBE_WARMUP_CALLS = 5


class NeighbourError(ValueError):
    """The neighbour cannot run here (no CPU affinity) or did not start."""


class CoreNeighbour:
    """A context manager: on entry this process is pinned to the lowest core it may use and the
    neighbour starts on it, stopped; `idle(seconds)` lets it run for that long; on exit it is
    killed and this process's cores are restored."""

    def __enter__(self) -> CoreNeighbour:
        if not hasattr(os, "sched_setaffinity"):
            raise NeighbourError("a neighbour on the core needs CPU affinity (Linux)")
        self.cores = os.sched_getaffinity(0)
        self.core = min(self.cores)
        os.sched_setaffinity(0, {self.core})
        command = [sys.executable, "-m", "profiler.neighbour", "--core", str(self.core)]
        self.errors = tempfile.TemporaryFile("w+")  # a pipe could fill and block it
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if self.process.stdout.readline().strip() != READY:
            self.__exit__()
            raise NeighbourError(f"the neighbour process did not start: {self.last_error}")
        self.stop()
        return self

    def run(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the neighbour and wait until it is stopped (on a shared core it would otherwise
        stay runnable until the kernel next schedules it)."""
        self.process.send_signal(signal.SIGSTOP)
        os.waitpid(self.process.pid, os.WUNTRACED)

    def idle(self, seconds: float) -> None:
        """Idle for `seconds` while the neighbour runs, then stop it."""
        self.run()
        try:
            time.sleep(seconds)
        finally:
            self.stop()

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.communicate()
        self.errors.seek(0)
        self.last_error = (self.errors.read().strip().splitlines() or ["no output"])[-1]
        self.errors.close()
        os.sched_setaffinity(0, self.cores)


def batch_of_one(source: str, steps: int, resolution: int):
    """A CPU replica's call: the tiny pipeline `source` loaded with a CPU worker's torch
    threads, and a function that serves it one batch of one (`profiler.generate.served_batch`)."""
    from profiler.cpu_threads import worker_threads
    from profiler.generate import served_batch
    from profiler.latency import PROFILE_PROMPT
    from profiler.sharding import PipelineSource

    with worker_threads("cpu"):
        pipe = PipelineSource(source, "fp32").load("cpu")
    return lambda: served_batch(pipe, [PROFILE_PROMPT], [0], steps=steps, resolution=resolution)


def probe_calls() -> dict:
    """model name -> its batch of one (`batch_of_one`), for each of `PROBE_MODELS`, warmed up."""
    calls = {name: batch_of_one(*model, PROBE_RESOLUTION) for name, model in PROBE_MODELS.items()}
    for call in calls.values():
        for _ in range(PROBE_WARMUP_CALLS):
            call()
    return calls


def thread_cpu_after_idle(calls: dict, n: int, idle_s: float) -> dict[str, list[float]]:
    """model name -> the thread CPU seconds (`time.thread_time`: the compute, not the wait for a
    core) of `n` of its calls, each after `idle_s` idle."""
    cpu_s = {}
    for name, call in calls.items():
        cpu_s[name] = []
        for _ in range(n):
            time.sleep(idle_s)
            cpu0 = time.thread_time()
            call()
            cpu_s[name].append(time.thread_time() - cpu0)
    return cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description="The neighbour process of `CoreNeighbour`.")
    parser.add_argument("--core", type=int, required=True)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    call = batch_of_one(*NEIGHBOUR_MODEL)
    print(READY, flush=True)
    while True:
        call()


if __name__ == "__main__":
    main()
