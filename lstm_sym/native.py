"""The generated C kernels from Python: compiled on first use, cached per user, called by ctypes.

``load("lstm")`` compiles ``generated/lstm.c`` with the system C compiler (``$CC``, else gcc,
cc or clang) into a shared library, caches it under ``$XDG_CACHE_HOME/lstm_sym`` (default
``~/.cache/lstm_sym``, created private to the user) keyed by the hash of the sources, the
compiler and the flags, and returns a :class:`NativeCell`: the same ``Parameters``, ``forward``
and ``backward`` contract as ``generated/lstm.py``, computed in C.

Arrays of the expected type, dtype and shape are taken as they are; anything else is checked
(and converted) with the generated NumPy module's own helpers, so bad input gets the same
errors. The per-size work (buffer layouts, the C calls with their constant arguments, the views
returned) is done once per size and reused. Per call, everything the C reads is copied
(converted to float32/float64) into one work buffer laid out once per size (a large events
array is passed by address after a guard on its dtype, shape and contiguity), and everything it
writes goes to buffers made for it: the Python side of a call costs a few allocations and
address look-ups, not one per argument. A forward's work buffer holds the C cache too; once its
cache is gone (and no view of it is held), it is reused by the next forward of the same size,
which saves mapping fresh memory every call.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import math
import operator
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .cells import get as get_spec
from .codegen import c_api
from .runtime import FILES as RUNTIME_FILES
from .runtime import SOURCE as RUNTIME_SOURCE

#: Flags of the binding's build only; the generated source itself stays portable C99.
FLAGS = ("-std=c99", "-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared")
SUFFIX = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}
#: The dtype objects of SUFFIX by any equal dtype: identity compares them cheaply.
_CANONICAL = {dtype: dtype for dtype in SUFFIX}
#: Events up to this many bytes are copied into the work buffer (no address look-up).
_COPY_EVENTS = 1 << 20


class NativeBuildError(RuntimeError):
    """No C compiler, or the generated C did not compile."""


def cache_directory() -> Path:
    """``$XDG_CACHE_HOME/lstm_sym`` or ``~/.cache/lstm_sym``: created 0700, refused if others
    could write to it (a shared library loaded from there runs as the user)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return _private_directory(Path(base) / "lstm_sym")


def _private_directory(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
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


def _compiler_identity(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return result.stdout


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


def build(
    name: str,
    source_dir: Path,
    extra_flags=(),
    compiler: str | None = None,
    link_flags=(),
) -> Path:
    """The cached shared library of ``source_dir/<name>.c``, compiling it if needed.

    ``link_flags`` (libraries) go after the source on the command line."""
    compiler = compiler or find_compiler()
    source, header = source_dir / f"{name}.c", source_dir / f"{name}.h"
    # The cell calls the C runtime copied beside it (lstm_sym/runtime): compiled with it, with the
    # same flags, and every runtime file is part of the cache key.
    runtime_files = [source_dir / file for file in RUNTIME_FILES]
    for path in (source, header, *runtime_files):
        if not path.exists():
            raise NativeBuildError(f"{path} is missing: run `lstm-sym generate`")
    flags = (*FLAGS, *extra_flags)
    key = hashlib.sha256()
    for part in (
        source.read_bytes(),
        header.read_bytes(),
        *(path.read_bytes() for path in runtime_files),
        compiler.encode(),
        " ".join(flags).encode(),
        " ".join(link_flags).encode(),
    ):
        key.update(part + b"\0")
    key.update(_compiler_identity(compiler).encode() + _cpu_identity().encode())
    directory = cache_directory()
    library = directory / f"{name}-{key.hexdigest()[:32]}.so"
    if library.exists():
        return library
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=directory) as tmp:
        target = Path(tmp) / library.name
        command = [compiler, *flags, "-I", str(source_dir), "-o", str(target), str(source)]
        command += [str(source_dir / RUNTIME_SOURCE)]
        command += [*link_flags, "-lm"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NativeBuildError(
                f"compiling {source} failed:\n{' '.join(command)}\n{result.stderr}"
            )
        os.replace(target, library)  # atomic: a concurrent loader sees all of it or nothing
    return library


class NativeCache:
    """What the C ``forward`` saved (one buffer, layout in the header) plus what backward reads.

    Slotted and small (its sizes are read from the forward's per-size plan): one is made per
    forward."""

    __slots__ = ("_base", "_events", "_plan", "_pool", "_work", "arguments", "lock")

    def __init__(self, plan, work, pool, base, events, arguments):
        self._plan = plan  # the sizes, the layout of ``work`` and the backward's plan
        self._work = work  # parameters, inputs and the C cache, at address ``base``
        self._pool = pool
        self._base = base
        self._events = events  # the events' address when not copied into ``work``, else None
        self.arguments = arguments  # arrays the C reads again, kept alive as long as the cache
        self.lock = threading.Lock()  # backward reuses the buffer's scratch part

    cell = property(lambda self: self._plan.cell)
    native = property(lambda self: self._plan.native)
    steps = property(lambda self: self._plan.steps)
    batch = property(lambda self: self._plan.batch)
    batched = property(lambda self: self._plan.batched)
    dtype = property(lambda self: self._plan.dtype)
    event_size = property(lambda self: self._plan.event_size)
    hidden_size = property(lambda self: self._plan.hidden_size)
    projection_size = property(lambda self: self._plan.projection_size)
    cache_size = property(lambda self: self._plan.cache_size)

    @property
    def addresses(self) -> dict:
        """The addresses backward reads the forward's arrays at, by C argument name."""
        addresses = {name: self._base + offset for name, offset in self._plan.kept.items()}
        if self._events is not None:
            addresses["events"] = self._events
        return addresses

    def __repr__(self):
        return (
            f"{self.cell}.NativeCache(steps={self.steps}, batch={self.batch}, dtype={self.dtype})"
        )

    def __del__(self):
        # The forward's work buffer (parameters, inputs and the C cache) goes back to its pool
        # for the next forward of the same sizes, unless something else still refers to it.
        try:
            pool, work = self._pool, self._work
        except AttributeError:  # __init__ did not finish
            return
        self._work = None  # drops this cache's own reference first
        if work is not None:
            pool.give(work)


class _Plan:
    """A forward's per-size work done once (see ``NativeCell._forward_plan``); ``backward`` is
    its backward's (``NativeCell._backward_plan``), made on first use."""

    __slots__ = (
        "backward",
        "batch",
        "batched",
        "cache_size",
        "call",
        "cell",
        "copy",
        "dtype",
        "event_size",
        "hidden_size",
        "kept",
        "native",
        "owner",
        "packed",
        "projection_size",
        "regions",
        "result_size",
        "results",
        "steps",
        "work_size",
    )

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


class _Backward:
    """A backward's per-size work done once (see ``NativeCell._backward_plan``)."""

    __slots__ = (
        "call",
        "lasts",
        "nulls",
        "outputs_shape",
        "owner",
        "sequence_shape",
        "total",
        "views",
    )

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


class _BufferPool:
    """Work buffers of finished forwards, reused by later ones of the same sizes.

    A fresh buffer of a few hundred KiB costs more than the tiny C forward itself (the kernel
    maps it page by page on first touch), and a fresh 70 MiB cache costs a tenth of a large
    forward+backward (measured at (B, T, X, H) = (64, 32, 256, 512), float32). Only buffers
    nothing else refers to are kept (no view of them survives), at most ``per_size`` per
    (dtype, size), each at most half of ``limit`` bytes, ``limit`` bytes in all (1 GiB; a
    cell's ``release_buffers()`` empties the pool)."""

    def __init__(self, per_size: int = 2, limit: int = 1 << 30):
        self.per_size, self.limit = per_size, limit
        self.free: dict = {}
        self.bytes = 0
        self.lock = threading.Lock()
        # The reference count of a buffer nothing else holds, measured through the same path
        # as a real give (a local variable, then this argument): interpreters differ.
        self.alone = None
        probe = np.empty(1)
        self.give(probe)

    def clear(self) -> None:
        with self.lock:
            self.free.clear()
            self.bytes = 0

    def take(self, dtype, size):
        """A free buffer of ``size`` elements of ``dtype`` (uninitialised), else a new one."""
        with self.lock:
            stack = self.free.get((dtype, size))
            if stack:
                buffer = stack.pop()
                self.bytes -= buffer.nbytes
                return buffer
        return np.empty(size, dtype=dtype)

    def give(self, buffer):
        """Keep ``buffer`` (a caller's local variable) for reuse if nothing else refers to it:
        more references than the probe's mean a view of it (or itself) is held somewhere."""
        count = sys.getrefcount(buffer)
        if self.alone is None:
            self.alone = count
            return
        if count > self.alone or buffer.nbytes > self.limit // 2:
            return
        with self.lock:
            stack = self.free.setdefault((buffer.dtype, buffer.size), [])
            if len(stack) < self.per_size and self.bytes + buffer.nbytes <= self.limit:
                stack.append(buffer)
                self.bytes += buffer.nbytes


#: Elements between the starts of two regions of a carved buffer: 64-byte aligned in float32.
_ALIGN = 16


def _layout(shapes: dict) -> tuple[dict, int]:
    """``{name: (offset, count, shape)}`` of regions of ``shapes`` in one buffer, and its size."""
    regions, total = {}, 0
    for name, shape in shapes.items():
        count = math.prod(shape)
        regions[name] = (total, count, tuple(shape))
        total += -(-count // _ALIGN) * _ALIGN
    return regions, max(total, 1)


def _pointer(value, name, dtype, shape):
    """The address of a C-contiguous, aligned ``dtype`` array of ``shape`` (None: NULL)."""
    if value is None:
        return None
    if not isinstance(value, np.ndarray) or value.dtype != dtype:
        raise TypeError(
            f"{name} must be a {dtype} ndarray, got {getattr(value, 'dtype', type(value).__name__)}"
        )
    if value.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {value.shape}")
    if not (value.flags.c_contiguous and value.flags.aligned):
        raise ValueError(f"{name} must be C-contiguous and aligned")
    return value.ctypes.data


_char_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof
_shape_and_dtype = operator.attrgetter("shape", "dtype")
#: np.concatenate without its __array_function__ dispatch (a third of its cost here): every
#: source is an exact ndarray (the checks convert anything else with np.asarray).
_concatenate = getattr(np.concatenate, "_implementation", np.concatenate)


def _address(array):
    """The address of a C-contiguous ndarray's data: by ``ctypes.c_char.from_buffer`` (a third
    of the cost of ``array.ctypes.data``) if it is writable, else by ``array.ctypes.data``."""
    try:
        return _addressof(_char_from_buffer(array))
    except (TypeError, ValueError, BufferError):
        return array.ctypes.data


class _Views:
    """Views of one buffer in the shapes returned, all made by one structured view of it: a
    dtype with one field per view (its offset and shape), read by one ``itemgetter`` (less than
    half the cost of slicing and reshaping the buffer once per view)."""

    __slots__ = ("get", "names", "record")

    def __init__(self, dtype, total, views):
        """``views``: ``(name, offset, shape)`` in elements of ``dtype``, of a buffer of
        ``total`` elements (at least two views)."""
        self.names = tuple(name for name, _, _ in views)
        self.record = np.dtype(
            {
                "names": list(self.names),
                "formats": [(dtype, tuple(shape)) for _, _, shape in views],
                "offsets": [offset * dtype.itemsize for _, offset, _ in views],
                "itemsize": total * dtype.itemsize,
            }
        )
        self.get = operator.itemgetter(*self.names)

    def __call__(self, buffer):
        """The views of ``buffer`` (C-contiguous, ``total`` elements) in ``names`` order."""
        return self.get(np.ndarray((), self.record, buffer))  # cheaper than buffer.view()


def _compiled_call(parts, parameters):
    """``lambda f, <parameters>: f(<parts>)``: the call of a C entry ``f`` with a plan's constants
    (sizes, NULLs, byte offsets from base addresses) written in, which costs a third of
    assembling the argument list on every call. ``parts`` are Python expressions made by the
    plans from integers and parameter names only."""
    return eval(f"lambda f, {parameters}: f({', '.join(parts)})", {})


class NativeCell:
    """``Parameters``, ``forward`` and ``backward`` of one cell, computed by its generated C."""

    def __init__(self, cell, library_path: Path, module):
        """``cell``: a built-in cell's name or a (user's) CellSpec; ``module`` its NumPy kernel."""
        self.spec = get_spec(cell) if isinstance(cell, str) else cell
        self.name = name = self.spec.name
        self.module = module
        self.Parameters = module.Parameters
        self.Gradients = module.Gradients
        self.CELL, self.GATES, self.STATES = module.CELL, module.GATES, module.STATES
        self.library_path = library_path
        self.library = ctypes.CDLL(str(library_path))
        self.functions = {f.name: f for f in c_api.functions(self.spec)}
        for function in self.functions.values():
            for suffix in ("f64", "f32"):
                entry = getattr(self.library, f"{name}_{function.name}_{suffix}")
                entry.restype = ctypes.c_int
                entry.argtypes = [
                    ctypes.c_size_t if a.kind == "size" else ctypes.c_void_p for a in function.args
                ]
        getattr(self.library, f"{name}_cache_size").restype = ctypes.c_size_t
        #: A projected state (LSTMP's h) has projection_size entries, not hidden_size.
        self._projected = self.spec.projected_state
        getattr(self.library, f"{name}_cache_size").argtypes = [ctypes.c_size_t] * (
            3 if self._projected is None else 4
        )
        getattr(self.library, f"{name}_error_string").restype = ctypes.c_char_p
        getattr(self.library, f"{name}_error_string").argtypes = [ctypes.c_int]
        self._shorts = [s.short for s in self.spec.states]
        self._output_short = self.spec.output_state.short
        # Per-call work done once: the entry points with their argument lists, the shapes of
        # every buffer by sizes, and the checked parameter arrays (see _parameter_arrays).
        self._entries = {
            (function.name, dtype): (
                getattr(self.library, f"{name}_{function.name}_{suffix}"),
                tuple((a.name, a.kind == "size") for a in function.args),
            )
            for function in self.functions.values()
            for dtype, suffix in SUFFIX.items()
        }
        self._shapes_cache: dict = {}
        self._attributes = operator.attrgetter(*module.Parameters.NAMES)
        self._parameter_cache = None
        #: Per-size plans of forward and backward (buffer regions, argument sources).
        self._plans: dict = {}
        self._pool = _BufferPool()
        #: (stacked name, attributes concatenated into it) in the C layout, GATES order
        self._stacked_names = [
            (f"{side}_{kind}", [f"{side}_{gate}_{kind}" for gate in self.GATES])
            for side, kind in (
                ("event", "weights"),
                ("event", "bias"),
                ("hidden", "weights"),
                ("hidden", "bias"),
            )
        ]
        #: Parameters copied as they are: per-unit ones and the projection's weights.
        self._copied_names = [p.name for p in self.spec.unit_parameters]
        if self._projected is not None:
            self._copied_names.append("projection_weights")
        #: (stacked gradient, its gates' Gradients attributes in GATES order)
        self._gate_attributes = [
            (f"d_{name}", [f"{side}_{gate}_{kind}" for gate in self.GATES])
            for name, side, kind in (
                ("event_weights", "event", "weights"),
                ("event_bias", "event", "bias"),
                ("hidden_weights", "hidden", "weights"),
                ("hidden_bias", "hidden", "bias"),
            )
        ]
        #: The inputs backward reads again (their addresses are saved in the cache).
        self._kept_names = ["event_weights", "hidden_weights", *self._copied_names]
        #: Column blocks of each gate's hidden weights (hidden_sources); not all 1: the C takes
        #: every gate's (H, blocks * H) weights flattened one after the other.
        self._blocks = [len(self.spec.sources(g)) for g in self.GATES]
        self._wide = any(b != 1 for b in self._blocks)
        #: Per state (``_shorts`` order): the name of its size, and the extra argument of the
        #: generated module's _initial_state that names it (a projected cell's only).
        self._size_names = [
            "hidden_size" if s.projection is None else "projection_size" for s in self.spec.states
        ]
        self._state_names = [
            (short, () if self._projected is None else (size_name,))
            for short, size_name in zip(self._shorts, self._size_names, strict=True)
        ]
        self._sizes_cache: dict = {}

    def _state_sizes(self, hidden, projection) -> dict:
        """Entries of each state by short name: hidden_size, or projection_size if projected."""
        return {s.short: hidden if s.projection is None else projection for s in self.spec.states}

    def __repr__(self):
        return f"lstm_sym.native.NativeCell({self.name!r}, {str(self.library_path)!r})"

    def release_buffers(self) -> None:
        """Free the work buffers kept for reuse by later forwards (at most 1 GiB)."""
        self._pool.clear()

    def call(
        self, function: str, dtype, arguments: dict, shapes: dict, known: dict | None = None
    ) -> dict:
        """Call ``<cell>_<function>_<f32|f64>`` with arguments by name (None: NULL).

        ``known``: addresses of buffers already checked (a forward's saved arrays, buffers
        carved from a work buffer), used instead of checking them again. Returns the address
        of every pointer argument by name."""
        entry, args = self._entries[function, dtype]
        known = known or {}
        addresses = {
            name: known[name]
            if name in known
            else _pointer(arguments.get(name), name, dtype, shapes.get(name, ()))
            for name, size in args
            if not size
        }
        status = entry(*[arguments.get(name) if size else addresses[name] for name, size in args])
        if status != 0:
            message = getattr(self.library, f"{self.name}_error_string")(status).decode()
            raise RuntimeError(f"{self.name}_{function}_{SUFFIX[dtype]} failed: {message}")
        return addresses

    def _parameter_arrays(self, parameters):
        """``(dtype proxies, blocks, dtype)``, the checks skipped while the attributes are the
        same objects with the same shapes and dtypes as last time.

        Only arrays (used as they are: in-place updates are seen, the stacked copies are made
        on every call) and immutable scalars are cached; anything else (a list, a 0-d array
        expanded to a copy) is checked on every call. The proxies are one empty array per
        dtype of the parameters, for the dtype promotion; ``dtype`` is their one dtype (None if
        they have several). ``blocks``: every parameter array flattened (views, when cached),
        in the order of the work buffer's parameter part."""
        objects = self._attributes(parameters)
        sizes = (
            type(parameters),
            parameters.event_size,
            parameters.hidden_size,
            getattr(parameters, "projection_size", None),
        )
        cached = self._parameter_cache
        if (
            cached is not None
            and cached[0] == sizes
            and all(map(operator.is_, objects, cached[1]))
            and list(map(_shape_and_dtype, cached[3])) == cached[2]
        ):
            return cached[4]
        arrays = parameters.arrays()
        proxies = tuple(np.empty(0, d) for d in dict.fromkeys(a.dtype for a in arrays.values()))
        order = [name for _, names in self._stacked_names for name in names]
        order += self._copied_names
        blocks = [arrays[name].reshape(-1) for name in order]
        result = (proxies, blocks, _CANONICAL.get(proxies[0].dtype) if len(proxies) == 1 else None)
        # a flattened non-contiguous array is a copy: it would not see in-place updates
        cacheable = all(map(np.may_share_memory, blocks, [arrays[n] for n in order])) and all(
            arrays[name] is value and value.ndim >= 1
            if isinstance(value, np.ndarray)
            else isinstance(value, (int, float, np.generic))
            for name, value in zip(parameters.NAMES, objects, strict=True)
        )
        if cacheable:
            held = [o for o in objects if isinstance(o, np.ndarray)]
            shapes = list(map(_shape_and_dtype, held))
            self._parameter_cache = (sizes, objects, shapes, held, result)
        return result

    def _states(self, prefix, suffix, args, kwargs, function):
        names = [f"{prefix}{s}{suffix}" for s in self._shorts]
        if len(args) > len(names):
            raise TypeError(
                f"{function}() takes at most {len(names)} state arguments, got {len(args)}"
            )
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names or key in values:
                raise TypeError(f"{function}() got an unexpected or repeated argument {key!r}")
            values[key] = value
        return {n: values.get(n) for n in names}

    def _sizes(self, hidden, projection) -> tuple:
        """Entries of each state in ``_shorts`` order (see _state_sizes), cached."""
        sizes = self._sizes_cache.get((hidden, projection))
        if sizes is None:
            if len(self._sizes_cache) > 64:
                self._sizes_cache.clear()
            sizes = tuple(self._state_sizes(hidden, projection).values())
            self._sizes_cache[hidden, projection] = sizes
        return sizes

    def forward(self, parameters, events, *initial, **named):
        """As ``generated/<cell>.py``'s ``forward(parameters, events, h0=None, c0=None)``.

        Arrays of the expected type, dtype and shape take a fast path; anything else is checked
        (and converted) by the generated module's helpers, which name what is wrong."""
        m = self.module
        count = len(self._shorts)
        if named or len(initial) > count:
            initial = tuple(self._states("", "0", initial, named, "forward").values())
        elif len(initial) < count:
            initial = initial + (None,) * (count - len(initial))
        if not isinstance(parameters, self.Parameters):
            raise TypeError(
                f"parameters must be a {self.CELL}.Parameters, got {type(parameters).__name__}"
            )
        if type(events) is not np.ndarray or events.dtype.kind not in "biuf":
            events = m._real_array(events, "events")
        shape = events.shape
        if len(shape) not in (2, 3) or shape[-1] != parameters.event_size or 0 in shape:
            raise ValueError(
                f"events must have shape (T, {parameters.event_size}) or "
                f"(T, batch, {parameters.event_size}) (steps, [batch,] event_size), "
                f"T and batch >= 1, got {events.shape}"
            )
        batched = len(shape) == 3
        if batched:
            steps, batch, event_size = shape
        else:
            (steps, event_size), batch = shape, 1
        hidden = parameters.hidden_size
        projection = getattr(parameters, "projection_size", None)
        proxies, blocks, parameters_dtype = self._parameter_arrays(parameters)
        # No promotion to work out while every array has the events' float dtype (compared by
        # identity with the canonical dtypes: ``==`` between dtypes costs more than a view).
        dtype = _CANONICAL.get(events.dtype, events.dtype)
        same = parameters_dtype is dtype
        states, given = [], 0
        for (short, size_name), value, size in zip(
            self._state_names, initial, self._sizes(hidden, projection), strict=True
        ):
            given <<= 1
            if value is None:
                continue
            given |= 1
            if (  # the events' dtype is real: so is the state's
                type(value) is not np.ndarray
                or value.dtype is not dtype
                or value.shape != ((batch, size) if batched else (size,))
            ):
                value = m._initial_state(value, f"{short}0", batched, batch, size, *size_name)
                if value.dtype != dtype:
                    same = False
            states.append(value)
        if not same:
            dtype = _CANONICAL[m._float_dtype(events, *states, *proxies)]
        copy = steps * batch * event_size * dtype.itemsize <= _COPY_EVENTS
        key = (dtype, steps, batch, event_size, hidden, projection, given, copy, batched)
        plan = self._plans.get(key) or self._forward_plan(key)
        # One work buffer (from the pool) holds the parameters in the C layout, the initial
        # states, small events and the C cache, its first part written by one concatenation;
        # one new buffer holds the outputs and final states.
        work = self._pool.take(dtype, plan.work_size)
        base = _address(work)
        sources = [*blocks, *[v.reshape(-1) for v in states]]
        if copy:
            sources.append(events.reshape(-1))
            kept, address = {}, None
        else:
            inputs = np.ascontiguousarray(events if batched else events[:, None, :], dtype=dtype)
            address = _pointer(inputs, "events", dtype, (steps, batch, event_size))
            kept = {"events": inputs}  # alive as long as the cache
        _concatenate(sources, out=work[: plan.packed], casting="unsafe")
        result = np.empty(plan.result_size, dtype=dtype)
        status = plan.call(self._entries["forward", dtype][0], base, _address(result), address)
        if status != 0:
            self._fail("forward", dtype, status)
        outputs, *lasts = plan.results(result)
        cache = NativeCache(plan, work, self._pool, base, address, kept)
        return outputs, tuple(lasts) if len(lasts) > 1 else lasts[0], cache

    def _fail(self, function, dtype, status):
        message = getattr(self.library, f"{self.name}_error_string")(status).decode()
        raise RuntimeError(f"{self.name}_{function}_{SUFFIX[dtype]} failed: {message}")

    def _forward_plan(self, key):
        """Per-size work done once: the regions of the work and result buffers (the results'
        views in the returned shapes) and the C call with every argument's source written in:
        a size, None (NULL: a zero initial state), a byte offset in the work buffer (``w``) or
        in the result buffer (``r``), or the address of the events (``e``: not copied)."""
        dtype, steps, batch, event_size, hidden, projection, given, copy, batched = key
        extra = () if projection is None else (projection,)
        size = getattr(self.library, f"{self.name}_cache_size")(steps, batch, hidden, *extra)
        if size == 0:
            raise ValueError(
                f"sizes too large for one cache: steps={steps}, batch={batch}, hidden={hidden}"
            )
        shapes = self._shapes(steps, batch, event_size, hidden, size, projection)
        flags = [bool(given >> (len(self._shorts) - 1 - i) & 1) for i in range(len(self._shorts))]
        names = [name for name, _ in self._stacked_names] + list(self._copied_names)
        names += [f"{s}0" for s, g in zip(self._shorts, flags, strict=True) if g]
        names += ["events"] if copy else []
        regions, packed = {}, 0  # the parameters and inputs: packed, one concatenation
        for name in names:
            count = math.prod(shapes[name])
            regions[name] = (packed, count, shapes[name])
            packed += count
        start = -(-packed // _ALIGN) * _ALIGN
        regions["cache"] = (start, size, (size,))
        work_size = start + size
        outs = ("outputs", *(f"{s}_last" for s in self._shorts))
        results, result_size = _layout({name: shapes[name] for name in outs})
        values = {
            "steps": steps,
            "batch": batch,
            "event_size": event_size,
            "hidden_size": hidden,
            "projection_size": projection,
        }
        itemsize = dtype.itemsize
        parts = []
        for name, is_size in self._entries["forward", dtype][1]:
            if is_size:
                parts.append(repr(values[name]))
            elif name in regions:
                parts.append(f"w + {regions[name][0] * itemsize}")
            elif name in results:
                parts.append(f"r + {results[name][0] * itemsize}")
            elif name == "events":
                parts.append("e")
            else:  # an initial state not given: NULL, zeros
                parts.append("None")
        views = []  # the outputs and final states as returned: (steps, [batch,] size)
        for name in outs:
            offset, _, shape = results[name]
            if not batched:
                shape = shape[:1] + shape[2:] if name == "outputs" else shape[1:]
            views.append((name, offset, shape))
        kept = ["cache", *self._kept_names, *(["events"] if copy else [])]
        plan = _Plan(
            owner=self,
            cell=self.CELL,
            native=self.library_path,
            dtype=dtype,
            steps=steps,
            batch=batch,
            batched=batched,
            event_size=event_size,
            hidden_size=hidden,
            projection_size=projection,
            cache_size=size,
            copy=copy,
            regions=regions,
            kept={name: regions[name][0] * itemsize for name in kept},
            packed=packed,
            work_size=work_size,
            results=_Views(dtype, result_size, views),
            result_size=result_size,
            call=_compiled_call(parts, "w, r, e"),
            backward=None,
        )
        if len(self._plans) > 64:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def _shapes(self, steps, batch, event_size, hidden, cache_size, projection=None):
        key = (steps, batch, event_size, hidden, cache_size, projection)
        shapes = self._shapes_cache.get(key)
        if shapes is None:
            if len(self._shapes_cache) > 64:
                self._shapes_cache.clear()
            shapes = self._shapes_cache[key] = self._compute_shapes(*key)
        return shapes

    def _compute_shapes(self, steps, batch, event_size, hidden, cache_size, projection):
        rows = len(self.GATES) * hidden
        sizes = self._state_sizes(hidden, projection)
        output = sizes[self._output_short]
        shapes = {
            "events": (steps, batch, event_size),
            "event_weights": (rows, event_size),
            "event_bias": (rows,),
            "hidden_weights": (sum(self._blocks) * hidden * hidden,)
            if self._wide
            else (rows, sizes[self.spec.recurrent_state.short]),
            "hidden_bias": (rows,),
            "outputs": (steps, batch, output),
            "d_outputs": (steps, batch, output),
            "d_events": (steps, batch, event_size),
            "cache": (cache_size,),
        }
        for p in self.spec.unit_parameters:
            shapes[p.name] = shapes[f"d_{p.name}"] = (hidden,)
        for s in self._shorts:
            for name in (f"{s}0", f"{s}_last", f"d_{s}_last", f"d_{s}0"):
                shapes[name] = (batch, sizes[s])
        if projection is not None:
            shapes["projection_weights"] = (projection, hidden)
        for name in ("event_weights", "event_bias", "hidden_weights", "hidden_bias"):
            shapes[f"d_{name}"] = shapes[name]
        if projection is not None:
            shapes["d_projection_weights"] = shapes["projection_weights"]
        return shapes

    def backward(self, cache, d_outputs, *d_lasts, **named):
        """As ``generated/<cell>.py``'s ``backward(cache, d_outputs, d_h_last=None, ...)``.

        Adjoints of the expected type, dtype and shape (C-contiguous) take a fast path;
        anything else is checked (and converted) by the generated module's helpers."""
        count = len(self._shorts)
        if named or len(d_lasts) > count:
            d_lasts = tuple(self._states("d_", "_last", d_lasts, named, "backward").values())
        elif d_lasts and len(d_lasts) < count:
            d_lasts = d_lasts + (None,) * (count - len(d_lasts))
        if not isinstance(cache, NativeCache) or getattr(cache, "cell", None) != self.CELL:
            raise TypeError(
                f"cache must be the Cache returned by {self.CELL}.forward of this native module, "
                f"got {type(cache).__name__}"
            )
        plan = cache._plan
        back = plan.backward
        if back is None or back.owner is not self:
            back = self._backward_plan(plan)
        dtype = plan.dtype
        kept = []  # converted adjoints: alive until the C call returns
        if (
            type(d_outputs) is np.ndarray
            and d_outputs.dtype is dtype  # plan.dtype is canonical
            and d_outputs.shape == back.sequence_shape
            and (flags := d_outputs.flags).c_contiguous
            and flags.aligned
        ):
            addresses = [_address(d_outputs)]
        else:
            value = self.module._adjoint(
                d_outputs, "d_outputs", back.sequence_shape, "(like outputs)", dtype
            )
            value = np.ascontiguousarray(value.reshape(back.outputs_shape))
            kept.append(value)
            addresses = [_pointer(value, "d_outputs", dtype, back.outputs_shape)]
        if not d_lasts:  # no final states' adjoints: NULL, zeros
            addresses += back.nulls
        for value, (name, shape, meaning, flat_shape) in zip(d_lasts, back.lasts):
            if value is None:
                addresses.append(None)
            elif (
                type(value) is np.ndarray
                and value.dtype is dtype
                and value.shape == shape
                and (flags := value.flags).c_contiguous
                and flags.aligned
            ):
                addresses.append(_address(value))
            else:
                value = self.module._adjoint(value, name, shape, meaning, dtype)
                value = np.ascontiguousarray(value.reshape(flat_shape))
                kept.append(value)
                addresses.append(_pointer(value, name, dtype, flat_shape))
        flat = np.empty(back.total, dtype=dtype)
        entry = self._entries["backward", dtype][0]
        with cache.lock:
            status = back.call(entry, cache._base, cache._events, _address(flat), addresses)
        if status != 0:
            self._fail("backward", dtype, status)
        grads = self.Gradients()
        grads.__dict__.update(zip(back.views.names, back.views(flat)))
        return grads

    def _backward_plan(self, plan):
        """The backward of a forward's plan: the gradients' regions in one buffer, the views
        of them returned (shapes as returned, one per gate of a gate-stacked block) and the C
        call with every argument's source written in: a size, an address saved by forward (a
        byte offset in its work buffer ``w``, or ``e`` the events not copied), a byte offset in
        the gradients' buffer (``r``) or an adjoint given to backward (``a[i]``, None: NULL)."""
        dtype, steps, batch, hidden = plan.dtype, plan.steps, plan.batch, plan.hidden_size
        event_size, projection, batched = plan.event_size, plan.projection_size, plan.batched
        shapes = self._shapes(steps, batch, event_size, hidden, plan.cache_size, projection)
        outs = [a.name for a in self.functions["backward"].args if a.kind == "out"]
        regions, total = _layout({name: shapes[name] for name in outs})
        values = {
            "steps": steps,
            "batch": batch,
            "event_size": event_size,
            "hidden_size": hidden,
            "projection_size": projection,
        }
        adjoints = ["d_outputs", *(f"d_{s}_last" for s in self._shorts)]
        itemsize = dtype.itemsize
        parts = []
        for name, is_size in self._entries["backward", dtype][1]:
            if is_size:
                parts.append(repr(values[name]))
            elif name in regions:
                parts.append(f"r + {regions[name][0] * itemsize}")
            elif name in adjoints:
                parts.append(f"a[{adjoints.index(name)}]")
            elif name == "events" and not plan.copy:
                parts.append("e")
            else:
                parts.append(f"w + {plan.kept[name]}")
        sizes = self._state_sizes(hidden, projection)
        output = sizes[self._output_short]
        lasts = []  # (name, shape, meaning, C shape) of each final state's adjoint
        for short, size_name in zip(self._shorts, self._size_names, strict=True):
            size = sizes[short]
            if batched:
                shape, meaning = (batch, size), f"(batch, {size_name})"
            else:
                shape, meaning = (size,), f"({size_name},)"
            lasts.append((f"d_{short}_last", shape, meaning, (batch, size)))
        views = []  # (attribute, offset, shape) of every gradient as returned
        for name, attributes in self._gate_attributes:  # a view per gate: a block of rows
            offset, count, shape = regions[name]
            for attribute, blocks in zip(attributes, self._blocks, strict=True):
                if self._wide and name == "d_hidden_weights":  # (H, blocks * H) per gate
                    views.append((attribute, offset, (hidden, blocks * hidden)))
                    offset += blocks * hidden * hidden
                else:
                    views.append((attribute, offset, (hidden, *shape[1:])))
                    offset += count // len(attributes)
        named = [(p.name, f"d_{p.name}") for p in self.spec.unit_parameters]
        if projection is not None:
            named.append(("projection_weights", "d_projection_weights"))
        for attribute, name in named:
            offset, _, shape = regions[name]
            views.append((attribute, offset, shape))
        for attribute, name in [
            ("events", "d_events"),
            *((f"{s}0", f"d_{s}0") for s in self._shorts),
        ]:
            offset, _, shape = regions[name]
            if not batched:  # without the batch axis
                shape = (steps, event_size) if name == "d_events" else shape[1:]
            views.append((attribute, offset, shape))
        back = _Backward(
            owner=self,
            total=total,
            sequence_shape=(steps, batch, output) if batched else (steps, output),
            outputs_shape=(steps, batch, output),
            lasts=lasts,
            nulls=[None] * len(lasts),
            views=_Views(dtype, total, views),
            call=_compiled_call(parts, "w, e, r, a"),
        )
        if plan.owner is self:
            plan.backward = back
        return back


def load(
    name: str = "lstm",
    *,
    extra_flags=(),
    compiler: str | None = None,
    blas: bool = False,
    openmp: bool = False,
) -> NativeCell:
    """The cell ``name``'s generated C as a :class:`NativeCell` (compiled and cached on first use).

    ``extra_flags`` are added to the compiler flags (e.g. sanitizers) and to the cache key.
    ``blas=True`` builds the optional BLAS path: the matrix products call OpenBLAS from the
    ``scipy-openblas32`` wheel (see :func:`blas_flags`); the default build needs only libm.
    ``openmp=True`` builds with ``-fopenmp``: the tiles of the large matrix products are shared
    among OpenMP threads (``OMP_NUM_THREADS``, or ``threadpoolctl``), with results bitwise the
    same for every thread count; the default build runs on the calling thread only.
    """
    module = importlib.import_module(f"generated.{name}")
    source_dir = Path(module.__file__).resolve().parent
    compile_flags, link_flags = blas_flags(name) if blas else ((), ())
    if openmp:
        compile_flags, link_flags = (*compile_flags, "-fopenmp"), (*link_flags, "-fopenmp")
    library = build(name, source_dir, (*extra_flags, *compile_flags), compiler, link_flags)
    return NativeCell(name, library, module)
