"""Torch threads of a CPU worker: every CPU pipeline call (`profiler.generate.render`) and every
timed CPU call runs with `CPU_WORKER_THREADS` threads, whatever the process's count.

Pinned on purpose: a CPU pipeline's pixels depend on its thread count (a reduction split over
2 threads rounds differently from one over 1), so images generated serially, by sharded
workers (threads of one process or other processes) and by the diffusers backend's replicas
are byte-identical only when all use the same count; and the diffusers backend's replicas
share the cores, so a profile timed with as many threads times the pipeline as it is served.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

CPU_WORKER_THREADS = 1

_lock = threading.Lock()
_pinned = threading.local()  # .on: this thread is inside `worker_threads`
_holders = 0  # threads inside `worker_threads`
_ambient = 0  # the process's count before the first of them entered


@contextmanager
def worker_threads(device: str) -> Iterator[None]:
    """Inside: the calling thread's torch ops on `device` "cpu" use `CPU_WORKER_THREADS` threads
    (other devices: nothing changes). Nests, and threads may hold it at once: torch's
    process-wide count (what threads that start later get) is set back to the one before the
    first holder entered, not to whatever a concurrent holder had set. While any thread holds
    it, a thread that makes its first parallel op gets `CPU_WORKER_THREADS` too (torch keeps
    one process-wide count for them)."""
    global _holders, _ambient
    if device != "cpu" or getattr(_pinned, "on", False):
        yield
        return
    import torch

    with _lock:
        # torch sets a thread's count from the process-wide one at its first parallel op, even
        # after set_num_threads: reading the count first makes that happen now, not mid-call
        count = torch.get_num_threads()
        if _holders == 0:
            _ambient = count
        _holders += 1
        torch.set_num_threads(CPU_WORKER_THREADS)
    _pinned.on = True
    try:
        yield
    finally:
        _pinned.on = False
        with _lock:
            _holders -= 1
            torch.set_num_threads(_ambient)
