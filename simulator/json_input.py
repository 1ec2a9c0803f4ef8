"""Reading a JSON object from an input file (a bundle's meta, a run folder's summary or
config, a sidecar): whatever is wrong with the file is one error naming it, never a traceback
(a file nested thousands deep exceeds Python's recursion limit, not json's grammar)."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.errors import InputError


def read_json_object(
    path: str | Path, error: type[Exception] = InputError, keys: tuple[str, ...] = ()
) -> dict:
    """The JSON object in `path`, holding each of `keys`; otherwise `error` naming the file and
    the line or key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise error(f"{path}: invalid JSON (nested too deeply to read)") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [key for key in keys if key not in data]
    if missing:
        raise error(f"{path}: key {missing[0]!r}: missing")
    return data
