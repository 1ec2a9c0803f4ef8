"""The one progress bar of the command line: a transient Rich bar on stderr, none when the
command is quiet or stderr is not a terminal (a log file or a test gets no control codes)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(
    quiet: bool, label: str, total: float, *columns: str, completed: float = 0.0, **fields
) -> Iterator[Callable[..., None] | None]:
    """Yields `update(completed, **fields)` of a bar over `total`, or None with no bar;
    `columns` are Rich text-column templates shown after the bar (`{task.fields[NAME]}` for a
    field, whose first value is among `fields`; `{task.completed}`, `{task.percentage}`)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        *(TextColumn(c) for c in columns),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total, completed=completed, **fields)
        yield lambda done, **fields: bar.update(task, completed=done, **fields)
