"""Compiling a cell's C into a shared library: compiler, flags, cache key, per-user cache.

The library is cached in the user's cache directory (``platformdirs``: ``~/.cache/lstm_sym``
on Linux, ``$XDG_CACHE_HOME/lstm_sym`` when that is set, ``~/Library/Caches/lstm_sym`` on
macOS), created private to the user, under a name keyed by the hash of the sources, the
compiler, its version, the CPU and the flags: a second load of the same build compiles nothing.
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
from collections.abc import Sequence
from pathlib import Path

import platformdirs

from ..runtime import FILES as RUNTIME_FILES
from ..runtime import SOURCE as RUNTIME_SOURCE

#: Flags of the binding's build only; the generated source itself stays portable C99.
FLAGS = ("-std=c99", "-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared")


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
    if library.exists():
        return library
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
        os.replace(target, library)  # atomic: a concurrent loader sees all of it or nothing
    return library


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
