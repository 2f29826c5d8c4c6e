"""The generated C kernels from Python: compiled on first use, cached per user, called by ctypes.

``load("lstm")`` compiles ``generated/lstm.c`` with the system C compiler (``$CC``, else gcc,
cc or clang) into a shared library, caches it under ``$XDG_CACHE_HOME/lstm_sym`` (default
``~/.cache/lstm_sym``, created private to the user) keyed by the hash of the sources, the
compiler and the flags, and returns a :class:`NativeCell`: the same ``Parameters``, ``forward``
and ``backward`` contract as ``generated/lstm.py``, computed in C.

Inputs are checked (and converted to contiguous float32/float64 arrays) with the generated
NumPy module's own helpers, so bad input gets the same errors; a final guard checks every
buffer's dtype, shape and contiguity right before the C call.
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
import tempfile
import threading
from pathlib import Path

import numpy as np

from .cells import get as get_spec
from .codegen import c_api

#: Flags of the binding's build only; the generated source itself stays portable C99.
FLAGS = ("-std=c99", "-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared")
SUFFIX = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}


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


def _carve(dtype, shapes: dict) -> tuple[dict, dict]:
    """Arrays of ``shapes`` (by name) carved out of one new buffer, and their addresses: one
    allocation and one address look-up instead of one per array (each costs microseconds)."""
    counts = [math.prod(shape) for shape in shapes.values()]
    flat = np.empty(sum(counts), dtype=dtype)
    base, itemsize = flat.ctypes.data, flat.itemsize
    arrays, addresses, offset = {}, {}, 0
    for (name, shape), count in zip(shapes.items(), counts, strict=True):
        arrays[name] = flat[offset : offset + count].reshape(shape)
        addresses[name] = base + offset * itemsize
        offset += count
    return arrays, addresses


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
        #: (gate index, Gradients attribute, stacked gradient) of every gate's blocks
        self._gate_gradients = [
            (k, f"{side}_{gate}_{kind}", f"d_{side}_{kind}")
            for k, gate in enumerate(self.GATES)
            for side, kind in (
                ("event", "weights"),
                ("event", "bias"),
                ("hidden", "weights"),
                ("hidden", "bias"),
            )
        ]
        self._attributes = operator.attrgetter(*module.Parameters.NAMES)
        #: Column blocks of each gate's hidden weights (hidden_sources); not all 1: the C takes
        #: every gate's (H, blocks * H) weights flattened one after the other.
        self._blocks = [len(self.spec.sources(g)) for g in self.GATES]
        self._wide = any(b != 1 for b in self._blocks)
        self._parameter_cache = None

    def _state_sizes(self, hidden, projection) -> dict:
        """Entries of each state by short name: hidden_size, or projection_size if projected."""
        return {s.short: hidden if s.projection is None else projection for s in self.spec.states}

    def __repr__(self):
        return f"lstm_sym.native.NativeCell({self.name!r}, {str(self.library_path)!r})"

    def call(
        self, function: str, dtype, arguments: dict, shapes: dict, known: dict | None = None
    ) -> dict:
        """Call ``<cell>_<function>_<f32|f64>`` with arguments by name (None: NULL).

        ``known``: addresses of buffers already checked (a forward's saved arrays, buffers
        carved by :func:`_carve`), used instead of checking them again. Returns the address
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
        """``(parameters.arrays(), dtype proxies)``, the checks skipped while the attributes are
        the same objects with the same shapes and dtypes as last time.

        Only arrays (used as they are: in-place updates are seen, the stacked copies are made
        on every call) and immutable scalars are cached; anything else (a list, a 0-d array
        expanded to a copy) is checked on every call. The proxies are one empty array per
        dtype of the parameters, for the dtype promotion."""
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
            and cached[2] == [(o.shape, o.dtype) for o in objects if isinstance(o, np.ndarray)]
        ):
            return cached[3], cached[4]
        arrays = parameters.arrays()
        proxies = tuple(np.empty(0, d) for d in dict.fromkeys(a.dtype for a in arrays.values()))
        cacheable = all(
            arrays[name] is value and value.ndim >= 1
            if isinstance(value, np.ndarray)
            else isinstance(value, (int, float, np.generic))
            for name, value in zip(parameters.NAMES, objects, strict=True)
        )
        if cacheable:
            shapes = [(o.shape, o.dtype) for o in objects if isinstance(o, np.ndarray)]
            self._parameter_cache = (sizes, objects, shapes, arrays, proxies)
        return arrays, proxies

    def _stacked(self, parameters, arrays, dtype):
        """``parameters.stacked(dtype)`` from the already checked ``arrays``: the gates'
        blocks of each (side, kind) concatenated in ``GATES`` order (fresh copies)."""
        flat = ("hidden", "weights") if self._wide else None
        return tuple(
            np.concatenate(
                [
                    arrays[f"{side}_{gate}_{kind}"].ravel()
                    if (side, kind) == flat
                    else arrays[f"{side}_{gate}_{kind}"]
                    for gate in self.GATES
                ]
            ).astype(dtype, copy=False)
            for side, kind in (
                ("event", "weights"),
                ("event", "bias"),
                ("hidden", "weights"),
                ("hidden", "bias"),
            )
        )

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
        initial = self._states("", "0", initial, named, "forward")
        if not isinstance(parameters, m.Parameters):
            raise TypeError(
                f"parameters must be a {self.CELL}.Parameters, got {type(parameters).__name__}"
            )
        events = m._real_array(events, "events")
        if (
            events.ndim not in (2, 3)
            or events.shape[-1] != parameters.event_size
            or 0 in events.shape
        ):
            raise ValueError(
                f"events must have shape (T, {parameters.event_size}) or "
                f"(T, batch, {parameters.event_size}) (steps, [batch,] event_size), "
                f"T and batch >= 1, got {events.shape}"
            )
        batched = events.ndim == 3
        inputs = events if batched else events[:, None, :]
        steps, batch, event_size = inputs.shape
        hidden = parameters.hidden_size
        projection = getattr(parameters, "projection_size", None)
        sizes = self._state_sizes(hidden, projection)
        if self._projected is None:
            initial = {
                n: m._initial_state(v, n, batched, batch, hidden) for n, v in initial.items()
            }
        else:  # the generated module's helper names each state's size in its errors
            initial = {
                f"{s.short}0": m._initial_state(
                    initial[f"{s.short}0"],
                    f"{s.short}0",
                    batched,
                    batch,
                    sizes[s.short],
                    "hidden_size" if s.projection is None else "projection_size",
                )
                for s in self.spec.states
            }
        arrays, proxies = self._parameter_arrays(parameters)
        dtype = m._float_dtype(inputs, *initial.values(), *proxies)
        stacked = self._stacked(parameters, arrays, dtype)
        arguments = {
            name: np.ascontiguousarray(value, dtype=dtype)
            for name, value in zip(
                ("event_weights", "event_bias", "hidden_weights", "hidden_bias"),
                stacked,
                strict=True,
            )
        }
        arguments.update(
            {
                p.name: np.ascontiguousarray(arrays[p.name], dtype=dtype)
                for p in self.spec.unit_parameters
            }
        )
        arguments.update(
            {
                n: None if v is None else np.ascontiguousarray(v, dtype=dtype)
                for n, v in initial.items()
            }
        )
        arguments["events"] = np.ascontiguousarray(inputs, dtype=dtype)
        extra = () if projection is None else (projection,)
        if projection is not None:
            arguments["projection_weights"] = np.ascontiguousarray(
                arrays["projection_weights"], dtype=dtype
            )
            arguments["projection_size"] = projection
        size = getattr(self.library, f"{self.name}_cache_size")(steps, batch, hidden, *extra)
        if size == 0:
            raise ValueError(
                f"sizes too large for one cache: steps={steps}, batch={batch}, hidden={hidden}"
            )
        results, known = _carve(
            dtype,
            {"outputs": (steps, batch, sizes[self.spec.output_state.short])}
            | {f"{s}_last": (batch, sizes[s]) for s in self._shorts},
        )
        outputs = results.pop("outputs")
        lasts = results
        buffer = np.empty(size, dtype=dtype)
        arguments.update(outputs=outputs, cache=buffer, **lasts)
        arguments.update(steps=steps, batch=batch, event_size=event_size, hidden_size=hidden)
        shapes = self._shapes(steps, batch, event_size, hidden, size, projection)
        addresses = self.call("forward", dtype, arguments, shapes, known)
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
            arguments={k: arguments[k] for k in ("events", "event_weights", "hidden_weights")}
            | {p.name: arguments[p.name] for p in self.spec.unit_parameters}
            | {k: arguments[k] for k in ("projection_weights",) if k in arguments},
            buffer=buffer,
        )
        # backward reuses the addresses of the arrays checked here (kept alive by the cache)
        cache.addresses = {k: addresses[k] for k in (*cache.arguments, "cache")}
        finals = tuple(lasts.values())
        if not batched:
            outputs, finals = outputs[:, 0], tuple(f[0] for f in finals)
        return outputs, finals if len(finals) > 1 else finals[0], cache

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
        output = sizes[self.spec.output_state.short]
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
        d_lasts = self._states("d_", "_last", d_lasts, named, "backward")
        if not isinstance(cache, NativeCache) or getattr(cache, "cell", None) != self.CELL:
            raise TypeError(
                f"cache must be the Cache returned by {self.CELL}.forward of this native module, "
                f"got {type(cache).__name__}"
            )
        steps, batch, hidden, dtype = cache.steps, cache.batch, cache.hidden_size, cache.dtype
        projection = cache.projection_size
        sizes = self._state_sizes(hidden, projection)
        names = {s.short: "hidden_size" for s in self.spec.states}
        if self._projected is not None:
            names[self._projected.short] = "projection_size"

        def state_shape(short):
            if cache.batched:
                return (batch, sizes[short]), f"(batch, {names[short]})"
            return (sizes[short],), f"({names[short]},)"

        output = sizes[self.spec.output_state.short]
        sequence_shape = (steps, batch, output) if cache.batched else (steps, output)
        arguments = dict(cache.arguments)
        arguments["d_outputs"] = np.ascontiguousarray(
            m._adjoint(d_outputs, "d_outputs", sequence_shape, "(like outputs)", dtype).reshape(
                steps, batch, output
            )
        )
        for short, (name, value) in zip(self._shorts, d_lasts.items(), strict=True):
            if value is not None:
                value = m._adjoint(value, name, *state_shape(short), dtype)
                value = np.ascontiguousarray(value.reshape(batch, sizes[short]))
            arguments[name] = value
        if projection is not None:
            arguments["projection_size"] = projection
        shapes = self._shapes(steps, batch, cache.event_size, hidden, cache.buffer.size, projection)
        outs = [a.name for a in self.functions["backward"].args if a.kind == "out"]
        gradients, known = _carve(dtype, {name: shapes[name] for name in outs})
        known.update(cache.addresses)
        arguments.update(gradients)
        arguments.update(
            cache=cache.buffer,
            steps=steps,
            batch=batch,
            event_size=cache.event_size,
            hidden_size=hidden,
        )
        with cache.lock:
            self.call("backward", dtype, arguments, shapes, known)
        grads = self.Gradients()
        for k, attribute, name in self._gate_gradients:
            if self._wide and name == "d_hidden_weights":
                start = sum(self._blocks[:k]) * hidden * hidden
                size = self._blocks[k] * hidden * hidden
                block = gradients[name][start : start + size].reshape(hidden, -1)
                setattr(grads, attribute, block)
                continue
            setattr(grads, attribute, gradients[name][k * hidden : (k + 1) * hidden])
        for p in self.spec.unit_parameters:
            setattr(grads, p.name, gradients[f"d_{p.name}"])
        if projection is not None:
            grads.projection_weights = gradients["d_projection_weights"]
        grads.events = gradients["d_events"] if cache.batched else gradients["d_events"][:, 0]
        for s in self._shorts:
            value = gradients[f"d_{s}0"]
            setattr(grads, f"{s}0", value if cache.batched else value[0])
        return grads


def load(
    name: str = "lstm", *, extra_flags=(), compiler: str | None = None, blas: bool = False
) -> NativeCell:
    """The cell ``name``'s generated C as a :class:`NativeCell` (compiled and cached on first use).

    ``extra_flags`` are added to the compiler flags (e.g. sanitizers) and to the cache key.
    ``blas=True`` builds the optional BLAS path: the matrix products call OpenBLAS from the
    ``scipy-openblas32`` wheel (see :func:`blas_flags`); the default build needs only libm.
    """
    module = importlib.import_module(f"generated.{name}")
    source_dir = Path(module.__file__).resolve().parent
    compile_flags, link_flags = blas_flags(name) if blas else ((), ())
    library = build(name, source_dir, (*extra_flags, *compile_flags), compiler, link_flags)
    return NativeCell(name, library, module)
