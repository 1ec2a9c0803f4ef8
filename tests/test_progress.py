"""experiments/progress.py: the command line's one progress bar, drawn only on a terminal."""

from __future__ import annotations

import io
import sys

from experiments.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_quiet_or_not_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress_bar(False, "x", 10) as update:
        assert update is None
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(True, "x", 10) as update:
        assert update is None


def test_a_bar_on_a_terminal_takes_counts_and_fields(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    columns = ("{task.completed:.0f}/{task.total:.0f} answered", "{task.fields[sent]} sent")
    with progress_bar(False, "replaying", 3, *columns, sent=0) as update:
        for k in range(1, 4):
            update(k - 1, sent=k)
        update(3, sent=3)
    assert "replaying" in terminal.getvalue() and "3/3 answered" in terminal.getvalue()
