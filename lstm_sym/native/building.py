"""Compiling a cell's C into a shared library: compiler, flags, cache key, per-user cache.

The library is cached in the user's cache directory (``platformdirs``: ``~/.cache/lstm_sym``
on Linux, ``$XDG_CACHE_HOME/lstm_sym`` when that is set, ``~/Library/Caches/lstm_sym`` on
macOS), created private to the user, under a name keyed by the hash of the sources, the
compiler, its version, the CPU and the flags: a second load of the same build compiles nothing.

What is loaded is verified: beside every library ``<name>-<key>.so`` a sidecar
``<name>-<key>.so.sha256`` records the library's SHA-256, written (atomically, after an fsync of
the library) once the library is in place. A library whose sidecar is missing or does not match
(truncated, overwritten) is rebuilt before anything loads it. Temporary files and directories
left by interrupted compiles (``.<name>-*``, ``*.tmp``) are removed once they are
:data:`ORPHAN_AGE` seconds old.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from ..runtime import FILES as RUNTIME_FILES
from ..runtime import SOURCE as RUNTIME_SOURCE

#: Flags of the binding's build only; the generated source itself stays portable C99.
#: ``-fno-trapping-math``: GCC vectorizes the cells' per-unit loops (their activations' selects)
#: on AVX2 only when floating-point operations may not trap (AVX-512 has masked operations and
#: needs no such promise); nothing here reads floating-point exception flags, and values are
#: unchanged. Without it those loops run scalar on AVX2: a step at (B, X, H) = (1, 16, 32) float32
#: about 2.5x slower.
FLAGS = (
    "-std=c99",
    "-O3",
    "-march=native",
    "-ffp-contract=fast",
    "-fno-trapping-math",
    "-fPIC",
    "-shared",
)


#: Seconds after which a compile's temporary file or directory in the cache is an orphan (no
#: compile takes that long) and is removed.
ORPHAN_AGE = 15 * 60
#: Suffix of the file recording a cached library's SHA-256.
DIGEST_SUFFIX = ".sha256"


class NativeBuildError(RuntimeError):
    """No C compiler, or the generated C did not compile."""


def cache_directory() -> Path:
    """The per-user build cache, ``lstm_sym`` in ``platformdirs.user_cache_dir()``
    (``$XDG_CACHE_HOME/lstm_sym`` when set, else ``~/.cache/lstm_sym`` on Linux): created 0700,
    refused if others could write to it (a shared library loaded from there runs as the user)."""
    return _private_directory(Path(platformdirs.user_cache_dir("lstm_sym", appauthor=False)))


def _private_directory(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if (hasattr(os, "getuid") and info.st_uid != os.getuid()) or info.st_mode & (
        stat.S_IWGRP | stat.S_IWOTH
    ):
        raise NativeBuildError(
            f"refusing the build cache {path}: it must belong to you and not be writable by "
            "others (fix its permissions or set XDG_CACHE_HOME)"
        )
    return path


def find_compiler() -> str:
    """``$CC``, else the first of gcc, cc, clang on PATH."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["gcc", "cc", "clang"]
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    raise NativeBuildError(
        f"no C compiler found (tried {', '.join(candidates)}): install one, e.g. "
        "`apt-get install gcc` (Debian/Ubuntu), `dnf install gcc` (Fedora) or "
        "`xcode-select --install` (macOS), or set CC"
    )


@functools.lru_cache(maxsize=8)
def _compiler_identity(compiler: str, stat_key: tuple) -> str:
    """``compiler --version``, run once per process and compiler binary (``stat_key``)."""
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return result.stdout


_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.MULTILINE)


def _local_headers(sources: Sequence[Path], include_dirs: Sequence[Path]) -> list[Path]:
    """The headers ``sources`` include with ``#include "..."`` (found beside the including
    file or in ``include_dirs``), and those they include in turn, in a stable order."""
    found: dict = {}
    pending = [Path(s) for s in sources]
    while pending:
        current = pending.pop(0)
        for name in _INCLUDE.findall(current.read_bytes()):
            for directory in (current.parent, *map(Path, include_dirs)):
                header = directory / name.decode()
                if header.is_file():
                    if header.resolve() not in found:
                        found[header.resolve()] = header
                        pending.append(header)
                    break
    return sorted(found.values())


def _cpu_identity() -> str:
    """``-march=native`` code is only valid on this kind of CPU: key the cache by its flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return os.uname().machine
    lines = [line for line in text.splitlines() if line.startswith(("flags", "model name"))]
    return "\n".join(sorted(set(lines)))


def blas_flags(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Compile and link flags of the optional BLAS build: the ``scipy-openblas32`` wheel
    (``pip install scipy-openblas32``), whose CBLAS symbols carry the prefix ``scipy_``."""
    try:
        import scipy_openblas32
    except ImportError as error:
        raise NativeBuildError(
            "the BLAS build needs the scipy-openblas32 wheel: pip install scipy-openblas32"
        ) from error
    lib_dir = scipy_openblas32.get_lib_dir()
    compile_flags = ("-DLSTM_SYM_USE_CBLAS", "-DLSTM_SYM_CBLAS_PREFIX=scipy_")
    link_flags = (f"-L{lib_dir}", f"-Wl,-rpath,{lib_dir}", f"-l{scipy_openblas32.get_library()}")
    return compile_flags, link_flags


def cell_sources(name: str, directory: Path) -> tuple[list[Path], list[Path]]:
    """The C files compiled into cell ``name``'s library, and the include directories: the
    cell's own ``<name>.c`` beside its ``<name>.h``, and the C runtime copied beside them
    (``lstm_sym_runtime.c``, compiled with the same flags; its headers join the cache key as
    headers the sources include)."""
    directory = Path(directory)
    source, header = directory / f"{name}.c", directory / f"{name}.h"
    for path in (source, header, *(directory / file for file in RUNTIME_FILES)):
        if not path.exists():
            raise NativeBuildError(f"{path} is missing: run `lstm-sym generate`")
    return [source, directory / RUNTIME_SOURCE], [directory]


def compile_library(
    name: str,
    sources: Sequence[Path],
    include_dirs: Sequence[Path] = (),
    extra_flags=(),
    compiler: str | None = None,
    link_flags=(),
) -> Path:
    """The cached shared library ``<name>-<key>.so`` of ``sources``, compiling it if needed.

    The key hashes every source and every header they include (``#include "..."``), the
    compiler, its version, the CPU and the flags. ``link_flags`` (libraries) go after the
    sources."""
    compiler = compiler or find_compiler()
    flags = (*FLAGS, *extra_flags)
    key = hashlib.sha256()
    for path in [*sources, *_local_headers(sources, include_dirs)]:
        key.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    for part in (compiler, " ".join(flags), " ".join(link_flags)):
        key.update(part.encode() + b"\0")
    info = os.stat(compiler)
    identity = _compiler_identity(compiler, (info.st_ino, info.st_size, info.st_mtime_ns))
    key.update(identity.encode() + _cpu_identity().encode())
    directory = cache_directory()
    library = directory / f"{name}-{key.hexdigest()[:32]}.so"
    if verified(library):
        return library
    remove_orphans(directory)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=directory) as tmp:
        target = Path(tmp) / library.name
        command = [compiler, *flags]
        for include in include_dirs:
            command += ["-I", str(include)]
        command += ["-o", str(target), *map(str, sources), *link_flags, "-lm"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NativeBuildError(
                f"compiling {', '.join(map(str, sources))} failed:\n{' '.join(command)}\n"
                f"{result.stderr}"
            )
        digest = file_digest(target)
        _fsync(target)
        os.replace(target, library)  # atomic: a concurrent loader sees all of it or nothing
        _write_atomically(digest_path(library), digest + "\n")
        _fsync(directory)
    return library


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def digest_path(library: Path) -> Path:
    """Where the SHA-256 of a cached library is recorded: ``<library>.sha256``."""
    return library.with_name(library.name + DIGEST_SUFFIX)


def recorded_digest(library: Path) -> str | None:
    """The SHA-256 recorded for a cached library when it was built, or None."""
    try:
        return digest_path(library).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def verified(library: Path) -> bool:
    """Whether ``library`` exists and its bytes have the SHA-256 recorded when it was built (a
    truncated or overwritten library, or one without a record, is not: it is rebuilt)."""
    recorded = recorded_digest(library)
    try:
        return recorded is not None and file_digest(library) == recorded
    except OSError:
        return False


def remove_orphans(directory: Path, age: float = ORPHAN_AGE) -> list[Path]:
    """Remove what interrupted compiles left in the cache ``directory`` (temporary build
    directories ``.<name>-*``, temporary files ``*.tmp``) once older than ``age`` seconds;
    returns what was removed. Only names this module makes are touched."""
    removed, now = [], time.time()
    for path in Path(directory).iterdir():
        if not (path.name.startswith(".") or path.name.endswith(".tmp")):
            continue
        try:
            info = path.lstat()
            if now - info.st_mtime < age or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
                continue
            if stat.S_ISDIR(info.st_mode) and path.name.startswith("."):
                shutil.rmtree(path)
            elif stat.S_ISREG(info.st_mode) and path.name.endswith(".tmp"):
                path.unlink()
            else:
                continue
        except OSError:  # removed by a concurrent loader
            continue
        removed.append(path)
    return removed


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else os.O_RDONLY
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # a file system without fsync of directories
        pass
    finally:
        os.close(descriptor)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` by a temporary file in the same directory, fsynced, renamed."""
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}-", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def build(
    name: str,
    source_dir: Path,
    extra_flags=(),
    compiler: str | None = None,
    link_flags=(),
) -> Path:
    """The cached shared library of cell ``name`` from the generated files in ``source_dir``
    (see :func:`cell_sources`), compiling it if needed."""
    sources, include_dirs = cell_sources(name, source_dir)
    return compile_library(name, sources, include_dirs, extra_flags, compiler, link_flags)
