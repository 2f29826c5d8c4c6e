"""The generated C kernels from Python: compiled on first use, cached per user, called by ctypes.

``load("lstm")`` compiles the C of ``lstm_sym.kernels`` (``generated/lstm.c`` in a checkout)
with the system C compiler (``$CC``, else gcc, cc or clang) into a shared library, caches it in
the user's cache directory (:func:`cache_directory`: ``$XDG_CACHE_HOME/lstm_sym``, default
``~/.cache/lstm_sym`` on Linux, created private to the user) keyed by the hash of the sources,
the compiler and the flags, and returns a :class:`NativeCell`: the same ``Parameters``,
``forward`` and ``backward`` contract as the generated NumPy module, computed in C. A cached
library is loaded only if its bytes have the SHA-256 recorded when it was built (else it is
rebuilt); a cache returned by ``forward`` owns everything backward reads and is refused by
any other kernel's ``backward``.

Loading a kernel reads its ABI as data (``<cell>.abi.json``, written by ``lstm-sym generate``):
it imports neither SymPy nor the spec, the derivation or the code generators. The package is
split by job: :mod:`.building` (compiler, flags, cache), :mod:`.abi` (the ABI data),
:mod:`.calls` (the C calls planned per size), :mod:`.workspace` (work buffers reused between
forwards: those of finished forwards, at most 1 GiB, ``cell.release_buffers()`` frees them),
:mod:`.checks` (input checking) and :mod:`.cell` (:class:`NativeCell`, :class:`NativeCache`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from . import abi
from .building import (
    FLAGS,
    NativeBuildError,
    blas_flags,
    build,
    cache_directory,
    cell_sources,
    compile_library,
    find_compiler,
)
from .cell import SUFFIX, NativeCache, NativeCell
from .workspace import Workspace

__all__ = [
    "FLAGS",
    "SUFFIX",
    "NativeBuildError",
    "NativeCache",
    "NativeCell",
    "Workspace",
    "blas_flags",
    "build",
    "cache_directory",
    "cell_sources",
    "cells",
    "compile_library",
    "find_compiler",
    "kernels_directory",
    "load",
]


def kernels_directory() -> Path:
    """Where the built-in cells' generated files are: the ``lstm_sym.kernels`` package (the
    checkout's ``generated/`` folder)."""
    from .. import kernels

    return Path(next(iter(kernels.__path__)))


def cells(directory: Path | None = None) -> list[str]:
    """The cells whose C can be loaded from ``directory`` (default: the built-in kernels)."""
    return abi.cells(directory if directory is not None else kernels_directory())


def _module(name: str, directory: Path | None):
    """The generated NumPy module of cell ``name``: ``lstm_sym.kernels.<name>``, or the file
    ``directory/<name>.py`` under a private module name."""
    if directory is None:
        return importlib.import_module(f"lstm_sym.kernels.{name}")
    path = Path(directory) / f"{name}.py"
    module_name = f"_lstm_sym_kernel_{name}_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load(
    name: str = "lstm",
    *,
    extra_flags=(),
    compiler: str | None = None,
    blas: bool = False,
    openmp: bool = False,
    directory: Path | str | None = None,
    workspace: Workspace | None = None,
) -> NativeCell:
    """The cell ``name``'s generated C as a :class:`NativeCell` (compiled and cached on first use).

    ``extra_flags`` are added to the compiler flags (e.g. sanitizers) and to the cache key.
    ``blas=True`` builds the optional BLAS path: the matrix products call OpenBLAS from the
    ``scipy-openblas32`` wheel (see :func:`blas_flags`); the default build needs only libm.
    ``openmp=True`` builds with ``-fopenmp``: the tiles of the large matrix products are shared
    among OpenMP threads (``OMP_NUM_THREADS``, or ``threadpoolctl``), with results bitwise the
    same for every thread count; the default build runs on the calling thread only.
    ``directory``: a folder of generated files (``lstm-sym generate --spec cell.py --out DIR``:
    ``<name>.py``, ``<name>.c``, ``<name>.h``, ``<name>.abi.json``) instead of the built-in
    kernels. ``workspace``: work buffers shared with other cells (default: the cell's own).
    """
    where = Path(directory) if directory is not None else kernels_directory()
    if not abi.path(where, name).is_file():
        known = cells(where)
        raise ValueError(
            f"no generated cell {name!r} in {where}: the cells there are "
            f"{', '.join(known) if known else 'none (run `lstm-sym generate`)'}"
        )
    cell_abi = abi.read(where, name)
    module = _module(name, None if directory is None else where)
    compile_flags, link_flags = blas_flags(name) if blas else ((), ())
    if openmp:
        compile_flags, link_flags = (*compile_flags, "-fopenmp"), (*link_flags, "-fopenmp")
    sources, include_dirs = cell_sources(name, where)
    library = compile_library(
        name, sources, include_dirs, (*extra_flags, *compile_flags), compiler, link_flags
    )
    return NativeCell(cell_abi, library, module, workspace)
