"""Reading named arrays from an .npz input file (a bundle's features, the profiler's features
and reference statistics): whatever is wrong with the file is one error naming it, never a
traceback (numpy's own errors name no file; a damaged compressed member raises zlib.error)."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simulator.errors import InputError


def read_npz_arrays(
    path: str | Path,
    names: Sequence[str],
    error: type[Exception] = InputError,
    label: str | None = None,
) -> dict[str, np.ndarray]:
    """The arrays `names` of the .npz file `path`, read without pickles; otherwise `error`
    naming the file (as `label`; default: its path) and the first missing array or the problem."""
    path = Path(path)
    label = str(path) if label is None else label
    if not path.exists():
        raise error(f"{label}: no such file")
    if not zipfile.is_zipfile(path):
        raise error(f"{label}: not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = sorted(data.files)
            arrays = {name: data[name] for name in names if name in files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{label}: unreadable .npz ({problem})") from None
    missing = [name for name in names if name not in arrays]
    if missing:
        raise error(f"{label}: {missing[0]}: missing array (the file has {files})")
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):  # a zip member that is not a .npy
            raise error(f"{label}: {name}: not a .npy array")
    return arrays
