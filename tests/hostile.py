"""Helpers of the hostile-input tests: run `t2isim` in process and judge how it ended.

A command must end in exactly one of two ways: exit 0 with its complete output, or exit 2
with exactly one line `error: ...` on stderr and no output (and no staging leftovers)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from experiments.cli import OPTIONAL_APPS, app, mount_optional

RUNNER = CliRunner()
_MOUNTED: set[str] = set()
TIME_BOUND_S = 60.0  # one command, on a loaded 2-core machine
RUN_FILES = ("queries.parquet", "timeseries.csv", "summary.json", "config.json")


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


def invoke(*args: object) -> Outcome:
    """`t2isim ARGS` in this process (optional sub-apps mounted as `main` does)."""
    name = str(args[0]) if args else ""
    if name in OPTIONAL_APPS and name not in _MOUNTED:
        mount_optional((name,))
        _MOUNTED.add(name)
    start = time.perf_counter()
    result = RUNNER.invoke(app, [str(a) for a in args])
    seconds = time.perf_counter() - start
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: a bug, shown as such
    return Outcome(result.exit_code, result.stdout, result.stderr, seconds)


def strict_json(path: Path) -> object:
    """The file's JSON, refusing NaN and Infinity (not JSON)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{path}: {constant} is not strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def no_staging_left(folder: Path) -> None:
    leftovers = [
        p.name for p in folder.iterdir() if ".staging-" in p.name or ".replaced-" in p.name
    ]
    assert not leftovers, leftovers


def assert_one_line_error(outcome: Outcome, *fragments: str) -> str:
    assert outcome.exit_code == 2, outcome
    lines = outcome.error_lines
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_complete_or_error(
    outcome: Outcome, out: Path, check_complete: Callable[[Path], None]
) -> None:
    """Exit 0 with `out` complete (by `check_complete`), or exit 2, one line and no `out`."""
    assert outcome.seconds < TIME_BOUND_S, outcome
    if outcome.exit_code == 0:
        check_complete(out)
    else:
        assert_one_line_error(outcome)
        assert not out.exists(), f"{out} written by a failed command"
    if out.parent.is_dir():
        no_staging_left(out.parent)


def check_run_folder(out: Path) -> None:
    assert sorted(p.name for p in out.iterdir() if p.name in RUN_FILES) == sorted(RUN_FILES)
    summary = strict_json(out / "summary.json")
    strict_json(out / "config.json")
    assert summary["ok"] + summary["timeouts"] + summary["drops"] == summary["arrivals"] > 0


def save_damaged_npz(path: Path, **arrays) -> None:
    """A compressed .npz of `arrays` whose first member's deflate stream is damaged."""
    import numpy as np

    np.savez_compressed(path, **arrays)
    data = bytearray(path.read_bytes())
    data[200:600] = bytes(b ^ 0x55 for b in data[200:600])
    path.write_bytes(bytes(data))
