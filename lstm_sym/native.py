"""The generated C kernels from Python: compiled on first use, cached per user, called by ctypes.

``load("lstm")`` compiles ``generated/lstm.c`` with the system C compiler (``$CC``, else gcc,
cc or clang) into a shared library, caches it under ``$XDG_CACHE_HOME/lstm_sym`` (default
``~/.cache/lstm_sym``, created private to the user) keyed by the hash of the sources, the
compiler and the flags, and returns a :class:`NativeCell`: the same ``Parameters``, ``forward``
and ``backward`` contract as ``generated/lstm.py``, computed in C.

Inputs are checked with the generated NumPy module's own helpers, so bad input gets the same
errors. Per call, everything the C reads is copied (converted to float32/float64) into one work
buffer laid out once per size (a large events array is passed by address after a guard on its
dtype, shape and contiguity), and everything it writes goes to buffers made for it: the Python
side of a call costs a few allocations and address look-ups, not one per argument. A forward's
work buffer holds the C cache too; once its cache is gone (and no view of it is held), it is
reused by the next forward of the same size, which saves mapping fresh memory every call.
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

#: Flags of the binding's build only; the generated source itself stays portable C99.
FLAGS = ("-std=c99", "-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared")
SUFFIX = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}
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
    macro = name.upper()
    compile_flags = (f"-D{macro}_USE_CBLAS", f"-D{macro}_CBLAS_PREFIX=scipy_")
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
    if not source.exists() or not header.exists():
        raise NativeBuildError(f"{source} or {header} is missing: run `lstm-sym generate`")
    flags = (*FLAGS, *extra_flags)
    key = hashlib.sha256()
    for part in (
        source.read_bytes(),
        header.read_bytes(),
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
        command += [*link_flags, "-lm"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NativeBuildError(
                f"compiling {source} failed:\n{' '.join(command)}\n{result.stderr}"
            )
        os.replace(target, library)  # atomic: a concurrent loader sees all of it or nothing
    return library


class NativeCache:
    """What the C ``forward`` saved (one buffer, layout in the header) plus what backward reads."""

    def __init__(self, **fields):
        self.__dict__.update(fields)
        self.lock = threading.Lock()  # backward reuses the buffer's scratch part

    def __repr__(self):
        return (
            f"{self.cell}.NativeCache(steps={self.steps}, batch={self.batch}, dtype={self.dtype})"
        )

    def __del__(self):
        # The forward's work buffer (parameters, inputs and the C cache) goes back to its pool
        # for the next forward of the same sizes, unless something else still refers to it.
        fields = self.__dict__
        pool, work = fields.get("_pool"), fields.get("_work")
        fields.clear()  # drops this cache's own views of the buffer first
        if pool is not None and work is not None:
            pool.give(work)


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
        """``(parameters.arrays(), dtype proxies, blocks)``, the checks skipped while the
        attributes are the same objects with the same shapes and dtypes as last time.

        Only arrays (used as they are: in-place updates are seen, the stacked copies are made
        on every call) and immutable scalars are cached; anything else (a list, a 0-d array
        expanded to a copy) is checked on every call. The proxies are one empty array per
        dtype of the parameters, for the dtype promotion. ``blocks``: every parameter array
        flattened (views, when cached), in the order of the work buffer's parameter part."""
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
            and cached[2] == [(o.shape, o.dtype) for o in cached[6]]
        ):
            return cached[3], cached[4], cached[5]
        arrays = parameters.arrays()
        proxies = tuple(np.empty(0, d) for d in dict.fromkeys(a.dtype for a in arrays.values()))
        order = [name for _, names in self._stacked_names for name in names]
        order += self._copied_names
        blocks = [arrays[name].reshape(-1) for name in order]
        # a flattened non-contiguous array is a copy: it would not see in-place updates
        cacheable = all(map(np.may_share_memory, blocks, [arrays[n] for n in order])) and all(
            arrays[name] is value and value.ndim >= 1
            if isinstance(value, np.ndarray)
            else isinstance(value, (int, float, np.generic))
            for name, value in zip(parameters.NAMES, objects, strict=True)
        )
        if cacheable:
            held = [o for o in objects if isinstance(o, np.ndarray)]
            shapes = [(o.shape, o.dtype) for o in held]
            self._parameter_cache = (sizes, objects, shapes, arrays, proxies, blocks, held)
        return arrays, proxies, blocks

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

    def forward(self, parameters, events, *initial, **named):
        """As ``generated/<cell>.py``'s ``forward(parameters, events, h0=None, c0=None)``."""
        m = self.module
        shorts = self._shorts
        if named or len(initial) > len(shorts):
            initial = tuple(self._states("", "0", initial, named, "forward").values())
        elif len(initial) < len(shorts):
            initial = initial + (None,) * (len(shorts) - len(initial))
        if not isinstance(parameters, m.Parameters):
            raise TypeError(
                f"parameters must be a {self.CELL}.Parameters, got {type(parameters).__name__}"
            )
        events = m._real_array(events, "events")
        shape = events.shape
        if len(shape) not in (2, 3) or shape[-1] != parameters.event_size or 0 in shape:
            raise ValueError(
                f"events must have shape (T, {parameters.event_size}) or "
                f"(T, batch, {parameters.event_size}) (steps, [batch,] event_size), "
                f"T and batch >= 1, got {events.shape}"
            )
        batched = len(shape) == 3
        inputs = events if batched else events[:, None, :]
        steps, batch, event_size = inputs.shape
        hidden = parameters.hidden_size
        projection = getattr(parameters, "projection_size", None)
        if self._projected is None:
            states = tuple(
                None if v is None else m._initial_state(v, f"{s}0", batched, batch, hidden)
                for s, v in zip(shorts, initial, strict=True)
            )
        else:  # the generated module's helper names each state's size in its errors
            sizes = self._state_sizes(hidden, projection)
            states = tuple(
                None
                if v is None
                else m._initial_state(
                    v,
                    f"{s.short}0",
                    batched,
                    batch,
                    sizes[s.short],
                    "hidden_size" if s.projection is None else "projection_size",
                )
                for s, v in zip(self.spec.states, initial, strict=True)
            )
        _, proxies, blocks = self._parameter_arrays(parameters)
        dtype = inputs.dtype
        if not (
            dtype in SUFFIX
            and all(p.dtype == dtype for p in proxies)
            and all(v is None or v.dtype == dtype for v in states)
        ):
            dtype = m._float_dtype(inputs, *states, *proxies)
        given = tuple(v is not None for v in states)
        copy_events = steps * batch * event_size * dtype.itemsize <= _COPY_EVENTS
        plan = self._forward_plan(
            dtype, steps, batch, event_size, hidden, projection, given, copy_events
        )
        regions, packed, work_size, results, result_size, args = plan
        # One work buffer (from the pool) holds the parameters in the C layout, the initial
        # states, small events and the C cache, its first part written by one concatenation;
        # one new buffer holds the outputs and final states.
        work = self._pool.take(dtype, work_size)
        base = work.ctypes.data
        sources = blocks + [v.reshape(-1) for v in states if v is not None]
        if copy_events:
            sources.append(inputs.reshape(-1))
            kept, events_address = {}, None
        else:
            events = np.ascontiguousarray(inputs, dtype=dtype)
            events_address = _pointer(events, "events", dtype, (steps, batch, event_size))
            kept = {"events": events}  # alive as long as the cache
        np.concatenate(sources, out=work[:packed], casting="unsafe")
        result = np.empty(result_size, dtype=dtype)
        top = result.ctypes.data
        status = self._entries["forward", dtype][0](
            *[
                value
                if kind == 0
                else base + value
                if kind == 1
                else top + value
                if kind == 2
                else events_address
                for kind, value in args
            ]
        )
        if status != 0:
            self._fail("forward", dtype, status)
        outputs, *lasts = (result[o : o + n].reshape(s) for o, n, s in results)
        itemsize = dtype.itemsize
        addresses = {name: base + regions[name][0] * itemsize for name in self._kept_names}
        addresses["events"] = events_address or base + regions["events"][0] * itemsize
        addresses["cache"] = base + regions["cache"][0] * itemsize
        cache = NativeCache(
            cell=self.CELL,
            native=self.library_path,
            steps=steps,
            batch=batch,
            batched=batched,
            dtype=dtype,
            event_size=event_size,
            hidden_size=hidden,
            projection_size=projection,
            cache_size=regions["cache"][1],
            arguments=kept,
            # backward reads the arrays written here again at these addresses (kept alive by
            # the cache)
            addresses=addresses,
            _work=work,
            _pool=self._pool,
        )
        if not batched:
            outputs, lasts = outputs[:, 0], [f[0] for f in lasts]
        return outputs, tuple(lasts) if len(lasts) > 1 else lasts[0], cache

    def _fail(self, function, dtype, status):
        message = getattr(self.library, f"{self.name}_error_string")(status).decode()
        raise RuntimeError(f"{self.name}_{function}_{SUFFIX[dtype]} failed: {message}")

    def _forward_plan(self, dtype, steps, batch, event_size, hidden, projection, given, copy):
        """Per-size work done once: the regions of the work and result buffers and, for every
        C argument, where its value comes from: ``(0, value)`` (a size, or None for NULL),
        ``(1, byte offset)`` in the work buffer, ``(2, byte offset)`` in the result buffer or
        ``(3, None)`` the address of the events (not copied)."""
        key = (dtype, steps, batch, event_size, hidden, projection, given, copy)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        extra = () if projection is None else (projection,)
        size = getattr(self.library, f"{self.name}_cache_size")(steps, batch, hidden, *extra)
        if size == 0:
            raise ValueError(
                f"sizes too large for one cache: steps={steps}, batch={batch}, hidden={hidden}"
            )
        shapes = self._shapes(steps, batch, event_size, hidden, size, projection)
        names = [name for name, _ in self._stacked_names] + list(self._copied_names)
        names += [f"{s}0" for s, g in zip(self._shorts, given, strict=True) if g]
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
        args = []
        for name, is_size in self._entries["forward", dtype][1]:
            if is_size:
                args.append((0, values[name]))
            elif name in regions:
                args.append((1, regions[name][0] * dtype.itemsize))
            elif name in results:
                args.append((2, results[name][0] * dtype.itemsize))
            elif name == "events":
                args.append((3, None))
            else:  # an initial state not given: NULL, zeros
                args.append((0, None))
        results = [results[name] for name in outs]
        plan = (regions, packed, work_size, results, result_size, tuple(args))
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
        """As ``generated/<cell>.py``'s ``backward(cache, d_outputs, d_h_last=None, ...)``."""
        m = self.module
        shorts = self._shorts
        if named or len(d_lasts) > len(shorts):
            d_lasts = tuple(self._states("d_", "_last", d_lasts, named, "backward").values())
        elif len(d_lasts) < len(shorts):
            d_lasts = d_lasts + (None,) * (len(shorts) - len(d_lasts))
        if not isinstance(cache, NativeCache) or getattr(cache, "cell", None) != self.CELL:
            raise TypeError(
                f"cache must be the Cache returned by {self.CELL}.forward of this native module, "
                f"got {type(cache).__name__}"
            )
        steps, batch, hidden, dtype = cache.steps, cache.batch, cache.hidden_size, cache.dtype
        projection = cache.projection_size
        sizes = self._state_sizes(hidden, projection)
        output = sizes[self._output_short]
        sequence_shape = (steps, batch, output) if cache.batched else (steps, output)
        d_outputs = m._adjoint(d_outputs, "d_outputs", sequence_shape, "(like outputs)", dtype)
        d_outputs = np.ascontiguousarray(d_outputs.reshape(steps, batch, output))
        pointers = {"d_outputs": _pointer(d_outputs, "d_outputs", dtype, (steps, batch, output))}
        kept = [d_outputs]  # alive until the C call returns
        for short, value in zip(shorts, d_lasts, strict=True):
            name = f"d_{short}_last"
            if value is not None:
                size_name = "hidden_size"
                if self._projected is not None and short == self._projected.short:
                    size_name = "projection_size"
                if cache.batched:
                    shape, meaning = (batch, sizes[short]), f"(batch, {size_name})"
                else:
                    shape, meaning = (sizes[short],), f"({size_name},)"
                value = m._adjoint(value, name, shape, meaning, dtype)
                value = np.ascontiguousarray(value.reshape(batch, sizes[short]))
                kept.append(value)
                pointers[name] = _pointer(value, name, dtype, (batch, sizes[short]))
            else:
                pointers[name] = None
        regions, total, args = self._backward_plan(
            dtype, steps, batch, cache.event_size, hidden, cache.cache_size, projection
        )
        flat = np.empty(total, dtype=dtype)
        top = flat.ctypes.data
        known = cache.addresses
        with cache.lock:
            status = self._entries["backward", dtype][0](
                *[
                    value
                    if kind == 0
                    else top + value
                    if kind == 2
                    else known[value]
                    if kind == 1
                    else pointers[value]
                    for kind, value in args
                ]
            )
        if status != 0:
            self._fail("backward", dtype, status)
        gradients = {name: flat[o : o + n].reshape(s) for name, (o, n, s) in regions.items()}
        grads = self.Gradients()
        fields = grads.__dict__
        gates = len(self.GATES)
        for name, attributes in self._gate_attributes:  # one view per gate: rows of a block
            stacked = gradients[name]
            if self._wide and name == "d_hidden_weights":  # (H, blocks * H) per gate, flattened
                ends = np.cumsum(self._blocks)[:-1] * hidden * hidden
                fields.update(
                    zip(attributes, (b.reshape(hidden, -1) for b in np.split(stacked, ends)))
                )
                continue
            fields.update(zip(attributes, stacked.reshape(gates, hidden, *stacked.shape[1:])))
        for p in self.spec.unit_parameters:
            setattr(grads, p.name, gradients[f"d_{p.name}"])
        if projection is not None:
            grads.projection_weights = gradients["d_projection_weights"]
        grads.events = gradients["d_events"] if cache.batched else gradients["d_events"][:, 0]
        for s in shorts:
            value = gradients[f"d_{s}0"]
            setattr(grads, f"{s}0", value if cache.batched else value[0])
        return grads

    def _backward_plan(self, dtype, steps, batch, event_size, hidden, cache_size, projection):
        """The gradients' regions in one buffer and, for every C argument, where its value comes
        from: ``(0, size)``, ``(1, name)`` an address saved by forward, ``(2, byte offset)`` in
        the gradients' buffer, ``(3, name)`` an adjoint given to backward (or NULL)."""
        key = ("backward", dtype, steps, batch, event_size, hidden, cache_size, projection)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        shapes = self._shapes(steps, batch, event_size, hidden, cache_size, projection)
        outs = [a.name for a in self.functions["backward"].args if a.kind == "out"]
        regions, total = _layout({name: shapes[name] for name in outs})
        values = {
            "steps": steps,
            "batch": batch,
            "event_size": event_size,
            "hidden_size": hidden,
            "projection_size": projection,
        }
        adjoints = {"d_outputs", *(f"d_{s}_last" for s in self._shorts)}
        args = []
        for name, is_size in self._entries["backward", dtype][1]:
            if is_size:
                args.append((0, values[name]))
            elif name in regions:
                args.append((2, regions[name][0] * dtype.itemsize))
            elif name in adjoints:
                args.append((3, name))
            else:
                args.append((1, name))
        plan = (regions, total, tuple(args))
        if len(self._plans) > 64:
            self._plans.clear()
        self._plans[key] = plan
        return plan


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
