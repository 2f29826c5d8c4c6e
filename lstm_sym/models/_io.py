"""Small shared helpers: checked arrays and dtypes, atomic ``.npz`` files read safely."""

from __future__ import annotations

import os
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np

#: Version of the model ``.npz`` layouts written here; loaders refuse any other.
FORMAT_VERSION = 1

#: Largest size, in bytes, a header entry (a scalar or the sizes' vector) may declare.
HEADER_ENTRY_BYTES = 4096
#: A file's arrays may take at most this many times the file's own size (deflate expands at
#: most about 1032-fold; a file that claims more is refused as a zip bomb) ...
EXPANSION_LIMIT = 64
#: ... or this many bytes, whichever is more.
ALWAYS_ALLOWED_BYTES = 64 << 20


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


def float_dtype(dtype, name: str = "dtype") -> np.dtype | None:
    """A ``dtype`` argument as float32 or float64 (None stays None), else TypeError: weights are
    floating-point (an integer dtype would truncate them)."""
    if dtype is None:
        return None
    try:
        dtype = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from error
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def save_npz(path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (exactly that name) atomically: all of it or nothing.

    The file is created like any other (mode 0666 less the umask, as ``open(path, "wb")``
    and the generated ``Parameters.save``), written under a temporary name beside ``path``,
    flushed to disk and renamed over it; on any exception (KeyboardInterrupt included) the
    temporary file is removed and an existing ``path`` stays as it was; one a killed process
    left is removed by the next save of ``path`` (:func:`remove_orphans`).
    """
    path = Path(path)
    remove_orphans(path)
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.{os.getpid()}.tmp")
    try:
        with open(temporary, "xb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def remove_orphans(path) -> None:
    """Remove the temporary files (``<path>.<hex>.<pid>.tmp``) that saves of ``path`` left when
    their process was killed: those of a process id that no longer runs (POSIX only; a live
    or unknown process's are left alone). The generated modules hold the same function."""
    if os.name != "posix":
        return
    directory, name = os.path.split(os.fspath(path))
    try:
        candidates = os.listdir(directory or ".")
    except OSError:
        return
    for candidate in candidates:
        parts = candidate[len(name) :].split(".")
        if not candidate.startswith(name) or len(parts) != 4 or parts[0] or parts[3] != "tmp":
            continue
        if len(parts[1]) != 32 or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
            continue  # running
        except ProcessLookupError:
            pass
        except (OSError, OverflowError):
            continue  # another user's process (running), or no process id
        try:
            os.unlink(os.path.join(directory, candidate))
        except OSError:
            pass


class Archive:
    """An ``.npz`` file read entry by entry, pickles never loaded: an entry's declared size,
    shape and dtype are checked before its data is read, and no more than it declares is read
    (a lying entry fails its CRC check). Errors are ValueErrors naming the file.

    (The generated modules hold the same reader as ``_Archive``: they import only NumPy.)
    """

    def __init__(self, path):
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            raise ValueError(f"{path} is not an .npz file (a zip archive): {error}") from None
        try:
            self.entries = {}
            for info in self._zip.infolist():
                name = info.filename[: -len(".npy")]
                if not info.filename.endswith(".npy") or name in self.entries:
                    raise ValueError(
                        f"{path}: unexpected entry {info.filename!r} (an .npz file holds "
                        "distinct <name>.npy entries)"
                    )
                self.entries[name] = info
            file = self._zip.fp
            position = file.tell()
            self.size = file.seek(0, os.SEEK_END)
            file.seek(position)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info) -> None:
        self._zip.close()

    def _failed(self, name, error) -> ValueError:
        return ValueError(
            f"{self.path}: entry {name!r} is not a readable .npy array "
            f"({type(error).__name__}: {error})"
        )

    def check_total(self, nbytes: int) -> None:
        """Refuse arrays of ``nbytes`` in all, if more than the file's size can hold."""
        allowed = max(ALWAYS_ALLOWED_BYTES, EXPANSION_LIMIT * self.size)
        if nbytes > allowed:
            raise ValueError(
                f"{self.path}: its sizes need {nbytes} bytes of arrays, more than a file of "
                f"{self.size} bytes may hold ({allowed}): a corrupt or hostile file"
            )

    def header(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """``(shape, dtype)`` of entry ``name`` from its .npy header alone, the entry's declared
        size checked against them."""
        info = self.entries[name]
        try:
            with self._zip.open(info) as file:
                version = np.lib.format.read_magic(file)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(file)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(file)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                offset = file.tell()
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as error:
            raise self._failed(name, error) from None
        if (
            dtype.hasobject
            or dtype.fields is not None
            or dtype.subdtype is not None
            or (dtype.kind != "U" and dtype.itemsize > 8)
        ):
            raise ValueError(
                f"{self.path}: entry {name!r} has dtype {dtype}: not a plain number or string"
            )
        if any(n < 0 for n in shape):
            raise ValueError(f"{self.path}: entry {name!r} has shape {shape}")
        needed = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size != needed:
            raise ValueError(
                f"{self.path}: entry {name!r} declares {info.file_size} bytes, but its header "
                f"(shape {shape}, dtype {dtype}) needs {needed}"
            )
        return shape, dtype

    def small(self, name: str, kinds: str, shape: tuple, meaning: str) -> np.ndarray:
        """The small header entry ``name`` of ``shape``, its dtype kind one of ``kinds``."""
        found, dtype = self.header(name)
        if (
            self.entries[name].file_size > HEADER_ENTRY_BYTES
            or found != shape
            or dtype.kind not in kinds
        ):
            raise ValueError(
                f"{self.path}: {name} must be {meaning}, got dtype {dtype}, shape {found}"
            )
        return self.read(name)

    def read(self, name: str) -> np.ndarray:
        """Entry ``name``'s array: the bytes it declares and no more, its CRC checked."""
        try:
            with self._zip.open(self.entries[name]) as file:
                array = np.lib.format.read_array(file, allow_pickle=False)
                if file.read(1):
                    raise ValueError("data beyond the array")
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as error:
            raise self._failed(name, error) from None
        return array


def open_model(path, kind: str) -> Archive:
    """The archive of a file written by :func:`save_npz` for a ``kind`` model, its
    ``__model__`` and ``__format__`` checked (nothing else read yet); close it after use."""
    archive = Archive(path)
    try:
        if "__model__" not in archive.entries or "__format__" not in archive.entries:
            raise ValueError(
                f"{path} is not an lstm_sym model file (no __model__/__format__ entries)"
            )
        found = str(archive.small("__model__", "U", (), "a string (the model's kind)")[()])
        if found != kind:
            raise ValueError(f"{path} holds a {found!r} model, not a {kind!r} model")
        version = int(archive.small("__format__", "iu", (), "an integer (the format)")[()])
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{path} has format version {version}; this version reads {FORMAT_VERSION}"
            )
    except BaseException:
        archive.__exit__()
        raise
    return archive
