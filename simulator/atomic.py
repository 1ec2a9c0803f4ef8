"""Atomic outputs: every file or folder a command writes appears complete or not at all.

A writer fills a *staging* path beside its target (`.NAME.staging-PID-RANDOM`) and renames it
into place when it is complete; on any error (or a signal the CLI turns into an exception) the
staging path is deleted and the target is left as it was. Staging paths of processes that no
longer run (killed with SIGKILL, say) are deleted by the next writer of the same target.

`check_output_folder` / `check_output_file` refuse an unusable `--out` before any work starts:
a parent that is a file, a folder where a file is meant (or the reverse), a place that cannot
be written, or an existing folder this kind of command did not write (no `marker` file in it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from simulator.errors import InputError

_STAGING = re.compile(r"\.(?P<name>.+)\.(?:staging|replaced)-(?P<pid>\d+)-.+")


class OutputPathError(InputError):
    """An output path that cannot be written; the message names the path and why."""


def _check_parent(target: Path) -> None:
    """The nearest existing ancestor of `target` must be a writable folder."""
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link
            raise OutputPathError(f"{target}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{target}: cannot write in {parent} (permission denied)")


def check_output_folder(path: str | Path, marker: str) -> Path:
    """Refuse (OutputPathError) a folder output that could not be written or would replace
    something else: `path` must be absent, empty, or hold `marker` (an older output of the
    same kind, which the writer replaces)."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise OutputPathError(f"{target}: exists and is a file; give a folder path")
        if any(target.iterdir()) and not (target / marker).exists():
            raise OutputPathError(
                f"{target}: exists and is not a folder this command wrote (no {marker}); "
                "refusing to replace it"
            )
        if not os.access(target.parent, os.W_OK | os.X_OK):
            raise OutputPathError(f"{target}: cannot write in {target.parent} (permission denied)")
        return target
    _check_parent(target)
    return target


def check_output_file(path: str | Path) -> Path:
    """Refuse (OutputPathError) a file output whose path is a folder or cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"{target}: is a folder; give a file path")
    if target.exists() and not target.is_file():
        raise OutputPathError(f"{target}: exists and is not a regular file")
    _check_parent(target)
    return target


def clean_stale_staging(target: Path) -> None:
    """Delete staging paths of `target` left by processes that no longer run."""
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        match = _STAGING.fullmatch(entry.name)
        if match is None or match["name"] != target.name or _alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _staging_prefix(target: Path, kind: str = "staging") -> str:
    return f".{target.name}.{kind}-{os.getpid()}-"


@contextlib.contextmanager
def atomic_folder(path: str | Path, marker: str) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces `path`, on any error it is deleted and
    `path` is left as it was. An existing non-empty `path` is replaced only if it holds
    `marker` (an older output of the same kind), never an unrelated folder."""
    target = check_output_folder(path, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(target)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
    try:
        yield staging
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace(staging: Path, target: Path) -> None:
    """Move `staging` to `target`; an older `target` is first moved aside, then deleted."""
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=_staging_prefix(target, "replaced"), dir=target.parent))
        os.replace(target, old / target.name)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a staging file path beside `path` for a writer to fill (any library's `to_csv`,
    `savefig`, `write_table`); on success it is renamed to `path`, on any error deleted."""
    target = check_output_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(target)
    suffix = "".join(target.suffixes[-1:])  # keep the extension: writers infer the format
    fd, name = tempfile.mkstemp(prefix=_staging_prefix(target), suffix=suffix, dir=target.parent)
    os.close(fd)
    staging = Path(name)
    try:
        yield staging
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (UTF-8, `\\n` line ends)."""
    with atomic_file(path) as staging:
        staging.write_text(text, encoding="utf-8", newline="\n")
