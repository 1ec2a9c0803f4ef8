"""Which processes block SIGTERM, read from Linux's /proc (the tests that need it skip
elsewhere)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

HAS_PROC = Path("/proc/self/status").exists()


def blocks_sigterm(status: str) -> bool:
    """Whether a /proc/PID/status text's signal mask (`SigBlk`) holds SIGTERM."""
    for line in status.splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    raise ValueError("no SigBlk line")


RAY_COMMANDS = (b"/ray/", b"ray::", b"raylet", b"gcs_server")  # in a Ray process's cmdline


def ray_descendants_exposed() -> list[str]:
    """`name (pid)` of each live descendant of this process that is Ray's (not, e.g., the
    resource tracker an earlier test's process pool left) and blocks SIGTERM or shares this
    process's group."""
    statuses: dict[int, str] = {}
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "status").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        statuses[int(entry.name)] = text
        parent[int(entry.name)] = int(fields["PPid"])
    mine = {os.getpid()}
    grew = True
    while grew:
        found = {pid for pid, ppid in parent.items() if ppid in mine} - mine
        grew = bool(found)
        mine |= found
    mine.discard(os.getpid())
    exposed = []
    for pid in sorted(mine):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            in_group = os.getpgid(pid) == os.getpgrp()
        except (OSError, ProcessLookupError):  # exited meanwhile
            continue
        if not any(mark in command for mark in RAY_COMMANDS):
            continue
        if blocks_sigterm(statuses[pid]) or in_group:
            exposed.append(f"{statuses[pid].split()[1]} ({pid})")
    return exposed
