"""Small shared helpers: checked arrays and atomic ``.npz`` files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

#: Version of the model ``.npz`` layouts written here; loaders refuse any other.
FORMAT_VERSION = 1


def float_array(value, name: str) -> np.ndarray:
    """``value`` as a float32/float64 ndarray (integers become float64), else a clear error."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a real numeric array, got {type(value).__name__}"
        ) from error
    if array.dtype.kind in "biu":
        return array.astype(np.float64)
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {array.dtype}")
    return array


def save_npz(path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (exactly that name) atomically: all of it or nothing."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_npz(path, kind: str) -> dict[str, np.ndarray]:
    """The arrays of a file written by :func:`save_npz` for a ``kind`` model; checks the header."""
    with np.load(path, allow_pickle=False) as data:
        entries = {name: data[name] for name in data.files}
    if "__model__" not in entries or "__format__" not in entries:
        raise ValueError(f"{path} is not an lstm_sym model file (no __model__/__format__ entries)")
    found = str(entries.pop("__model__"))
    if found != kind:
        raise ValueError(f"{path} holds a {found!r} model, not a {kind!r} model")
    version = int(entries.pop("__format__"))
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {version}; this version reads {FORMAT_VERSION}"
        )
    return entries
