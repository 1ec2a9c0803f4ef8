"""Reading a CSV input table: a file that is missing, empty, not text or not CSV is one error
naming it (pandas' own errors name no file)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.errors import InputError, one_line

CSV_READ_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


def read_csv_table(
    path: str | Path, error: type[Exception] = InputError, label: str | None = None, **read_csv
) -> pd.DataFrame:
    """`pd.read_csv(path, **read_csv)`; otherwise `error` naming the file (as `label`; default:
    its path): no such file, or not a CSV table and why, in one line."""
    label = str(path) if label is None else label
    if not Path(path).is_file():
        raise error(f"{label}: no such file")
    try:
        return pd.read_csv(path, **read_csv)
    except CSV_READ_ERRORS as exc:
        raise error(f"{label}: not a CSV table ({one_line(str(exc))})") from None
