"""What the CPU probes that start Ray share: the Serve stack named on their command line, in a
process set up as a CPU replica's (one torch thread, `OMP_NUM_THREADS` = 1) with Ray's usage
reporting off. Imported by the probe scripts beside it."""

from __future__ import annotations

import argparse
import os


def probe_stack(parser: argparse.ArgumentParser, name: str):
    """The Serve stack `name` (`serving.stack`); an unknown one is the parser's error (exit 2).
    Call before torch or Ray is imported: the variables are read then."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from serving.stack import serve_stack
    from simulator.errors import InputError

    try:
        return serve_stack(name)
    except InputError as exc:
        parser.error(str(exc))
