"""Write a folder atomically: fill a staging folder beside it, then rename it into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from simulator.errors import InputError


@contextlib.contextmanager
def atomic_folder(path: str | Path, marker: str) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces `path`, on any error it is deleted and
    `path` is left as it was. An existing non-empty `path` is replaced only if it holds
    `marker` (an older output of the same kind), never an unrelated folder."""
    target = Path(path)
    if target.exists() and (
        not target.is_dir() or (any(target.iterdir()) and not (target / marker).exists())
    ):
        raise InputError(
            f"{target}: exists and is not a folder this command wrote (no {marker}); "
            "refusing to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
