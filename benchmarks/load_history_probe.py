"""Does load on every core slow a tiny batch, during it and after it? One tiny pipeline's batch of
one, as a serving worker answers it (`profiler.neighbour.batch_of_one`: one torch thread), each
after --idle-s idle, timed by its thread CPU (`time.thread_time`: the compute, not the wait for a
core) in four segments per cycle: "before" (the machine quiet), "during" (the last part of
--load-s in which every core runs a load process: tiny-light back to back, one pinned per core,
`python -m profiler.neighbour`), "after" (right after the load processes are killed) and
"rested" (after --rest-s quiet). A profile is timed on a quiet machine; a replica serves on one
whose cores have been busy.

    python benchmarks/load_history_probe.py [--cycles 3] [--calls 30] [--idle-s 0.1]
        [--load-s 90] [--rest-s 90]

Prints one line per cycle and model, and last `during_over_before_cpu_heavy=<ratio>
during_over_before_cpu_light=<ratio> after_over_before_cpu_heavy=<ratio>
after_over_before_cpu_light=<ratio> rested_over_before_cpu_heavy=<ratio>
rested_over_before_cpu_light=<ratio>`: the p50 CPU of each segment over that before, all cycles
pooled.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time

import numpy as np

from profiler.neighbour import PROBE_MODELS, READY

SEGMENTS = ("before", "during", "after", "rested")


@contextlib.contextmanager
def loaded_cores():
    """A load process on each core this process may use, running until the block ends."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "profiler.neighbour", "--core"]
    loads = [
        subprocess.Popen([*command, str(core)], stdout=subprocess.PIPE, text=True, env=env)
        for core in sorted(os.sched_getaffinity(0))
    ]
    try:
        for load in loads:
            if load.stdout.readline().strip() != READY:
                raise SystemExit(f"a load process did not start (exit {load.poll()})")
        yield
    finally:
        for load in loads:
            load.kill()
            load.communicate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--calls", type=int, default=30, help="per model and segment")
    parser.add_argument("--idle-s", type=float, default=0.1)
    parser.add_argument("--load-s", type=float, default=90.0)
    parser.add_argument("--rest-s", type=float, default=90.0)
    args = parser.parse_args()
    if min(args.cycles, args.calls) < 1 or min(args.idle_s, args.load_s, args.rest_s) < 0:
        parser.error("expected --cycles >= 1, --calls >= 1 and --idle-s, --load-s, --rest-s >= 0")
    if not hasattr(os, "sched_getaffinity"):
        parser.error("the load processes are pinned to cores: this needs CPU affinity (Linux)")
    os.environ["OMP_NUM_THREADS"] = "1"
    from profiler.neighbour import probe_calls, thread_cpu_after_idle

    calls = probe_calls()
    pooled = {(name, seg): [] for name in PROBE_MODELS for seg in SEGMENTS}
    for k in range(1, args.cycles + 1):
        cpu = {"before": thread_cpu_after_idle(calls, args.calls, args.idle_s)}
        with loaded_cores():
            started = time.monotonic()
            cpu["during"] = thread_cpu_after_idle(calls, args.calls, args.idle_s)
            time.sleep(max(0.0, args.load_s - (time.monotonic() - started)))
        cpu["after"] = thread_cpu_after_idle(calls, args.calls, args.idle_s)
        time.sleep(args.rest_s)
        cpu["rested"] = thread_cpu_after_idle(calls, args.calls, args.idle_s)
        for name in PROBE_MODELS:
            p50 = {seg: np.median(cpu[seg][name]) * 1e3 for seg in SEGMENTS}
            for seg in SEGMENTS:
                pooled[name, seg] += cpu[seg][name]
            print(
                f"cycle {k} {name}: "
                + ", ".join(f"{seg} {p50[seg]:.2f} ms" for seg in SEGMENTS)
                + " ("
                + ", ".join(f"{seg} {p50[seg] / p50['before']:.3f}" for seg in SEGMENTS[1:])
                + ")",
                flush=True,
            )
    base = {name: np.median(pooled[name, "before"]) for name in PROBE_MODELS}
    print(
        " ".join(
            f"{seg}_over_before_cpu_{name}={np.median(pooled[name, seg]) / base[name]:.3f}"
            for seg in SEGMENTS[1:]
            for name in PROBE_MODELS
        )
    )


if __name__ == "__main__":
    main()
