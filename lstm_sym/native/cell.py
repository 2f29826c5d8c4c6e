"""A loaded cell: ``Parameters``, ``forward`` and ``backward`` of a generated module, in C.

Arrays of the expected type, dtype and shape are taken as they are; anything else is checked
(and converted) by :mod:`lstm_sym.native.checks`, whose errors are the generated NumPy
module's. Per call, everything the C reads is copied (converted to float32/float64) into one
work buffer taken from the cell's :class:`~lstm_sym.native.workspace.Workspace`, and everything
it writes goes to buffers made for it (see :mod:`lstm_sym.native.calls`).

A cache owns what backward reads: forward copies the events, the initial states and the
parameters into the cache's work buffer, so changing the caller's arrays after forward changes
nothing (the generated NumPy modules keep the same contract). A cache is bound to the kernel
that made it (:class:`Kernel`: the cell, the library's SHA-256, its ABI): backward refuses any
other cache with a TypeError instead of letting the C read a buffer laid out for another kernel.
"""

from __future__ import annotations

import ctypes
import hashlib
import operator
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import abi as abi_data
from . import checks, inference
from .building import file_digest
from .calls import address, backward_plan, forward_plan, pointer
from .prepared import PreparedParameters
from .workspace import Workspace

SUFFIX = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}
#: The dtype objects of SUFFIX by any equal dtype: identity compares them cheaply.
_CANONICAL = {dtype: dtype for dtype in SUFFIX}
_INT64 = np.dtype(np.int64)
_shape_and_dtype = operator.attrgetter("shape", "dtype")


@dataclass(frozen=True)
class Kernel:
    """What a :class:`NativeCache` is bound to: the cell, the SHA-256 of the shared library
    (its sources, compiler and build flags, as built) and of its ABI data; ``library`` names
    the file for messages only (the same build in another cache directory is the same kernel)."""

    cell: str
    library_digest: str
    abi_digest: str
    library: str

    def differences(self, other: Kernel) -> list[str]:
        """What differs from ``other``, in words."""
        found = []
        if self.cell != other.cell:
            found.append(f"cell {self.cell!r} instead of {other.cell!r}")
        if self.library_digest != other.library_digest:
            found.append(
                f"library {self.library} (sha256 {self.library_digest[:12]}) instead of "
                f"{other.library} (sha256 {other.library_digest[:12]})"
            )
        if self.abi_digest != other.abi_digest:
            found.append(
                f"ABI data sha256 {self.abi_digest[:12]} instead of {other.abi_digest[:12]}"
            )
        return found

    def matches(self, other: Kernel) -> bool:
        return (self.cell, self.library_digest, self.abi_digest) == (
            other.cell,
            other.library_digest,
            other.abi_digest,
        )


def _parameters_name(value) -> str:
    """``<cell>.Parameters`` for another generated module's Parameters, else the type's name."""
    kind = type(value)
    cell = getattr(sys.modules.get(kind.__module__), "CELL", None)
    return f"{cell}.{kind.__name__}" if isinstance(cell, str) else kind.__name__


def _lengths_address(lengths):
    """The address of a lengths array (int64, C-contiguous) for the C call; None: NULL."""
    return None if lengths is None else lengths.ctypes.data


def _owned(value, dtype, shape):
    """A C-contiguous, aligned ``dtype`` copy of ``value`` reshaped to ``shape``, unless it is
    one already (a misaligned array is copied once, as NumPy's kernels accept it)."""
    value = value.reshape(shape)
    if value.dtype != dtype or not (value.flags.c_contiguous and value.flags.aligned):
        value = np.array(value, dtype=dtype, order="C", copy=True)
    return value


class NativeCache:
    """What the C ``forward`` saved (one buffer, layout in the header) plus what backward reads.

    It owns the forward's work buffer (taken from the cell's workspace; no view of it is handed
    out) and gives it back on :meth:`release` or when garbage-collected: the parameters, the
    initial states and the events as forward read them, and the C cache. Nothing of the
    caller's is read again by backward. It is bound to the :class:`Kernel` that made it
    (``kernel``). Slotted and small (its sizes are read from the forward's per-size plan): one
    is made per forward."""

    __slots__ = ("_base", "_lengths", "_plan", "_work", "_workspace", "lock")

    def __init__(self, plan, work, workspace, base, lengths=None):
        self._plan = plan  # the sizes, the layout of ``work`` and the backward's plan
        self._work = work  # parameters, inputs and the C cache, at address ``base``
        self._workspace = workspace
        self._base = base
        self._lengths = lengths  # the rows' lengths forward ran (int64, its own copy), or None
        self.lock = threading.Lock()  # backward reuses the buffer's scratch part

    cell = property(lambda self: self._plan.cell)
    native = property(lambda self: self._plan.native)
    kernel = property(lambda self: self._plan.kernel)
    steps = property(lambda self: self._plan.steps)
    batch = property(lambda self: self._plan.batch)
    batched = property(lambda self: self._plan.batched)
    dtype = property(lambda self: self._plan.dtype)
    event_size = property(lambda self: self._plan.event_size)
    hidden_size = property(lambda self: self._plan.hidden_size)
    projection_size = property(lambda self: self._plan.projection_size)
    cache_size = property(lambda self: self._plan.cache_size)

    @property
    def lengths(self):
        """The rows' lengths forward ran (a copy), or None: every row ran every step."""
        return None if self._lengths is None else self._lengths.copy()

    @property
    def released(self) -> bool:
        """True once :meth:`release` gave the work buffer back: backward is refused."""
        return self._work is None

    @property
    def addresses(self) -> dict:
        """The addresses backward reads the forward's arrays at, by C argument name."""
        return {name: self._base + offset for name, offset in self._plan.kept.items()}

    def release(self) -> None:
        """Give the work buffer back to the workspace now (a later forward of the same sizes
        reuses it); backward of this cache is refused afterwards."""
        with self.lock:
            work, self._work = self._work, None
        if work is not None:
            self._workspace.give(work)

    def __repr__(self):
        return (
            f"{self.cell}.NativeCache(steps={self.steps}, batch={self.batch}, dtype={self.dtype})"
        )

    def __del__(self):
        try:
            work, workspace = self._work, self._workspace
        except AttributeError:  # __init__ did not finish
            return
        if work is not None:
            self._work = None
            workspace.give(work)


class NativeCell:
    """``Parameters``, ``forward`` and ``backward`` of one cell, computed by its generated C."""

    def __init__(self, cell, library_path: Path, module, workspace: Workspace | None = None):
        """``cell``: the cell's :class:`~lstm_sym.native.abi.Abi`, or its name (the ABI data is
        read beside ``module``), or a CellSpec; ``module``: its generated NumPy module (the
        ``Parameters`` and ``Gradients`` classes); ``workspace``: shared work buffers (default:
        the cell's own)."""
        if isinstance(cell, str):
            cell = abi_data.read(Path(module.__file__).resolve().parent, cell)
        elif not isinstance(cell, abi_data.Abi):  # a CellSpec: its ABI from the generator
            from ..codegen import c_api

            cell = abi_data.from_data(c_api.abi(cell))
        self.abi = abi = cell
        self.name = abi.cell
        self.module = module
        self.Parameters = module.Parameters
        self.Gradients = module.Gradients
        self.CELL, self.GATES, self.STATES = module.CELL, module.GATES, module.STATES
        self.workspace = workspace if workspace is not None else Workspace()
        self.library_path = library_path
        self.kernel = Kernel(
            abi.cell,
            file_digest(library_path),
            hashlib.sha256(repr(abi).encode()).hexdigest(),
            str(library_path),
        )
        self.library = library = ctypes.CDLL(str(library_path))
        self.functions = abi.functions
        #: (entry point, ((argument name, is a size), ...)) by (function, dtype)
        self._entries = {}
        for function in abi.functions.values():
            for dtype in SUFFIX:
                entry = getattr(library, function.symbols[dtype.name])
                entry.restype = ctypes.c_int
                entry.argtypes = [
                    ctypes.c_size_t if a.kind == "size" else ctypes.c_void_p for a in function.args
                ]
                args = tuple((a.name, a.kind == "size") for a in function.args)
                self._entries[function.name, dtype] = (entry, args)
        symbol, size_args = abi.cache_size
        self._cache_size = getattr(library, symbol)
        self._cache_size.restype = ctypes.c_size_t
        self._cache_size.argtypes = [ctypes.c_size_t] * len(size_args)
        self._cache_size_args = size_args
        #: <cell>_infer_work_size and its size arguments (None: a library without inference)
        self.infer_work_size = (
            inference.work_size_function(self) if abi.infer_work_size is not None else None
        )
        self._infer_plans: dict = {}
        self.step_work_size = (
            inference.work_size_function(self, "step_work_size")
            if abi.step_work_size is not None
            else None
        )
        self._step_plans: dict = {}
        #: Which state is the output (its index in STATES)
        self.output_index = [s.short for s in abi.states].index(abi.output_state)
        self.no_states = (None,) * len(abi.states)
        #: The C parameter arrays, in the order of the parameters' part of a work buffer
        self.packed_arrays = tuple(array for array, _ in abi.parameters)
        self._error_string = getattr(library, abi.error_string)
        self._error_string.restype = ctypes.c_char_p
        self._error_string.argtypes = [ctypes.c_int]
        self._shorts = [s.short for s in abi.states]
        self._attributes = operator.attrgetter(*module.Parameters.NAMES)
        #: Parameters attributes in the order of the work buffer's parameter part
        self._packed_names = [name for _, names in abi.parameters for name in names]
        self._parameter_cache = None
        self._sizes_cache: dict = {}
        #: Per-size plans of forward and backward (buffer regions, argument sources).
        self._plans: dict = {}

    def __repr__(self):
        return f"lstm_sym.native.NativeCell({self.name!r}, {str(self.library_path)!r})"

    def arguments(self, function: str) -> tuple:
        """``(name, is a size)`` of every argument of entry point ``function``, in order."""
        return self._entries[function, next(iter(SUFFIX))][1]

    def entry(self, function: str, dtype):
        """The ctypes function of ``<cell>_<function>_<f32|f64>`` (argument types set; it
        returns the C status: 0 ok, else :meth:`fail`) for a bindings' own planned calls."""
        return self._entries[function, np.dtype(dtype)][0]

    def release_buffers(self) -> None:
        """Free the work buffers kept for reuse by later forwards (at most 1 GiB)."""
        self.workspace.clear()

    def call(
        self, function: str, dtype, arguments: dict, shapes: dict, known: dict | None = None
    ) -> dict:
        """Call ``<cell>_<function>_<f32|f64>`` with arguments by name (None: NULL).

        ``known``: addresses of buffers already checked (a forward's saved arrays, buffers
        carved from a work buffer), used instead of checking them again. Returns the address
        of every pointer argument by name."""
        dtype = np.dtype(dtype)
        entry, args = self._entries[function, dtype]
        known = known or {}
        addresses = {
            name: known[name]
            if name in known
            else pointer(
                arguments.get(name),
                name,
                _INT64 if name == "lengths" else dtype,  # the one integer array
                shapes.get(name, ()),
            )
            for name, size in args
            if not size
        }
        status = entry(*[arguments.get(name) if size else addresses[name] for name, size in args])
        if status != 0:
            self.fail(function, dtype, status)
        return addresses

    def fail(self, function, dtype, status):
        """Raise the C's message for a nonzero ``status`` of ``<cell>_<function>_*``."""
        message = self._error_string(status).decode()
        raise RuntimeError(f"{self.name}_{function}_{SUFFIX[dtype]} failed: {message}")

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
        order = self._packed_names
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

    def packed_counts(self, parameters) -> list[int]:
        """The element count of each C parameter array (``packed_arrays``) for the sizes of
        ``parameters``."""
        values = {
            "event_size": parameters.event_size,
            "hidden_size": parameters.hidden_size,
            "projection_size": getattr(parameters, "projection_size", None),
        }
        return [int(np.prod(self.abi.shape(name, values))) for name in self.packed_arrays]

    def prepare(self, parameters, dtype=None) -> PreparedParameters:
        """``parameters`` stacked in the C layout and converted to ``dtype`` once (None: the
        parameters' own float dtype), frozen: ``forward`` and ``step`` take the result in place
        of the ``Parameters`` and skip their checks, stacking and conversion."""
        if not isinstance(parameters, self.Parameters):
            raise TypeError(
                f"parameters must be a {self.CELL}.Parameters, got {_parameters_name(parameters)}"
            )
        proxies, blocks, _ = self._parameter_arrays(parameters)
        dtype = checks.float_dtype(*proxies) if dtype is None else checks.dtype_argument(dtype)
        return PreparedParameters(self, parameters, blocks, dtype)

    def _checked_parameters(self, parameters):
        """``(proxies, blocks, dtype, prepared)`` of ``parameters`` (a ``Parameters`` or
        :class:`PreparedParameters` of this cell), as :meth:`_parameter_arrays`'s."""
        if type(parameters) is PreparedParameters:
            if parameters.cell != self.CELL:
                raise TypeError(
                    f"parameters must be prepared by {self.CELL}'s prepare, got parameters "
                    f"prepared for {parameters.cell}"
                )
            dtype = parameters.dtype
            return parameters.proxies, [parameters.buffer(dtype)], dtype, parameters
        if not isinstance(parameters, self.Parameters):
            raise TypeError(
                f"parameters must be a {self.CELL}.Parameters, got {_parameters_name(parameters)}"
            )
        return (*self._parameter_arrays(parameters), None)

    def step(self, parameters, event, state=None):
        """As ``generated/<cell>.py``'s ``step(parameters, event, state=None)``: one step through
        ``<cell>_step_forward_*`` (:mod:`lstm_sym.native.inference`). ``parameters``: a
        ``Parameters`` or the cell's :meth:`prepare` of them (no per-call stacking)."""
        return inference.step(self, parameters, event, state)

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
        """``(state, entries)`` of each state in order (hidden_size, or projection_size if
        projected), cached."""
        sizes = self._sizes_cache.get((hidden, projection))
        if sizes is None:
            if len(self._sizes_cache) > 64:
                self._sizes_cache.clear()
            values = {"hidden_size": hidden, "projection_size": projection}
            sizes = tuple((s, values[s.size]) for s in self.abi.states)
            self._sizes_cache[hidden, projection] = sizes
        return sizes

    def _plan(self, key):
        """The forward plan of ``key`` (see :func:`lstm_sym.native.calls.forward_plan`)."""
        _, steps, batch, _, hidden, projection = key[:6]
        values = {"steps": steps, "batch": batch, "hidden_size": hidden}
        values["projection_size"] = projection
        size = self._cache_size(*(values[n] for n in self._cache_size_args))
        if size == 0:
            raise ValueError(
                f"sizes too large for one cache: steps={steps}, batch={batch}, hidden={hidden}"
            )
        plan = forward_plan(self, key, size)
        if len(self._plans) > 64:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def forward(self, parameters, events, *initial, **named):
        """As ``generated/<cell>.py``'s ``forward(parameters, events, h0=None, c0=None,
        lengths=None, cache=True)``; ``cache=False`` runs ``<cell>_infer_*``
        (:mod:`lstm_sym.native.inference`): the same outputs and final states bit for bit,
        ``None`` for the cache.

        Arrays of the expected type, dtype and shape take a fast path; anything else is checked
        (and converted) by :mod:`lstm_sym.native.checks`, which names what is wrong."""
        if (  # inference on prepared parameters, events (and states) as they ran before
            type(parameters) is PreparedParameters
            and len(named) == 1
            and named.get("cache") is False
            and type(events) is np.ndarray
            and (fast := parameters.infers.get((self, events.shape, events.dtype, len(initial))))
            is not None
            and (flags := events.flags).c_contiguous
            and flags.aligned
            and (not initial or fast.takes(initial, events.dtype))
        ):
            return inference.fast_infer(self, fast, events, initial)
        return self._forward("forward", parameters, events, initial, named)

    def _forward(self, function, parameters, events, initial, named):
        """``forward`` or ``forward_scan`` (``function``, the C entry point: both have the same
        arguments, cache layout and results)."""
        count = len(self._shorts)
        lengths = named.pop("lengths", None) if named else None
        cache = named.pop("cache", True) if named and function == "forward" else True
        if cache is not True and cache is not False:
            cache = checks.cache_flag(cache)
        if named or len(initial) > count:
            initial = tuple(self._states("", "0", initial, named, function).values())
        elif len(initial) < count:
            initial = initial + (None,) * (count - len(initial))
        proxies, blocks, parameters_dtype, prepared = self._checked_parameters(parameters)
        if type(events) is not np.ndarray or events.dtype.kind not in "biuf":
            events = checks.real_array(events, "events")
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
        if lengths is not None:  # a copy of its own: the cache keeps it for backward
            lengths = checks.lengths(lengths, batched, batch, steps).copy()
        hidden = parameters.hidden_size
        projection = getattr(parameters, "projection_size", None)
        # No promotion to work out while every array has the events' float dtype (compared by
        # identity with the canonical dtypes: ``==`` between dtypes costs more than a view).
        dtype = _CANONICAL.get(events.dtype, events.dtype)
        same = parameters_dtype is dtype
        states, given = [], 0
        for (state, size), value in zip(self._sizes(hidden, projection), initial, strict=True):
            given <<= 1
            if value is None:
                continue
            given |= 1
            if (  # the events' dtype is real: so is the state's
                type(value) is not np.ndarray
                or value.dtype is not dtype
                or value.shape != ((batch, size) if batched else (size,))
            ):
                value = checks.initial_state(
                    value, f"{state.short}0", batched, batch, size, state.size
                )
                if value.dtype != dtype:
                    same = False
            states.append(value)
        if not same:
            dtype = _CANONICAL[checks.float_dtype(events, *states, *proxies)]
        key = (dtype, steps, batch, event_size, hidden, projection, given, batched)
        if not cache:
            return inference.infer(self, key, blocks, states, events, lengths, prepared)
        plan = self._plans.get(key) or self._plan(key)
        # One work buffer (from the workspace) holds the parameters in the C layout, the
        # initial states, the events and the C cache, its first part written by one
        # concatenation (the cache owns everything backward reads); one new buffer holds the
        # outputs and final states.
        workspace = self.workspace
        work = workspace.take(dtype, plan.work_size)
        base = address(work)
        sources = [*blocks, *[v.reshape(-1) for v in states], events.reshape(-1)]
        np.concatenate(sources, out=work[: plan.packed], casting="unsafe")
        result = np.empty(plan.result_size, dtype=dtype)
        entry = self._entries[function, dtype][0]
        status = plan.call(entry, base, address(result), _lengths_address(lengths))
        if status != 0:
            workspace.give(work)
            self.fail(function, dtype, status)
        outputs, *lasts = plan.results(result)
        cache = NativeCache(plan, work, workspace, base, lengths)
        return outputs, tuple(lasts) if len(lasts) > 1 else lasts[0], cache

    def backward(self, cache, d_outputs, *d_lasts, **named):
        """As ``generated/<cell>.py``'s ``backward(cache, d_outputs, d_h_last=None, ...)``.

        Adjoints of the expected type, dtype and shape (C-contiguous) take a fast path;
        anything else is checked (and converted) by :mod:`lstm_sym.native.checks`."""
        return self._backward("backward", cache, d_outputs, d_lasts, named)

    def _backward(self, function, cache, d_outputs, d_lasts, named):
        """``backward`` or ``backward_scan`` (``function``, the C entry point: both have the
        same arguments and results and take the cache of ``forward`` or ``forward_scan``)."""
        count = len(self._shorts)
        if named or len(d_lasts) > count:
            d_lasts = tuple(self._states("d_", "_last", d_lasts, named, function).values())
        elif d_lasts and len(d_lasts) < count:
            d_lasts = d_lasts + (None,) * (count - len(d_lasts))
        if type(cache) is not NativeCache:
            made_by = "forward or forward_scan" if "forward_scan" in self.functions else "forward"
            raise TypeError(
                f"cache must be the Cache returned by {self.CELL}.{made_by} of this native "
                f"module, got {type(cache).__name__}"
            )
        plan = cache._plan
        if plan.owner is not self and not plan.kernel.matches(self.kernel):
            raise TypeError(
                f"cache must be made by this kernel's forward ({self.CELL}, {self.library_path}), "
                f"got a cache of another kernel: {'; '.join(plan.kernel.differences(self.kernel))}"
            )
        back = plan.backward
        if back is None or back.owner is not self:
            back = backward_plan(self, plan)
            if plan.owner is self:
                plan.backward = back
        dtype = plan.dtype
        kept = []  # converted adjoints: alive until the C call returns
        if (
            type(d_outputs) is np.ndarray
            and d_outputs.dtype is dtype  # plan.dtype is canonical
            and d_outputs.shape == back.sequence_shape
            and (flags := d_outputs.flags).c_contiguous
            and flags.aligned
        ):
            addresses = [address(d_outputs)]
        else:
            value = checks.adjoint(
                d_outputs, "d_outputs", back.sequence_shape, "(like outputs)", dtype
            )
            value = _owned(value, dtype, back.outputs_shape)
            kept.append(value)
            addresses = [pointer(value, "d_outputs", dtype, back.outputs_shape)]
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
                addresses.append(address(value))
            else:
                value = checks.adjoint(value, name, shape, meaning, dtype)
                value = _owned(value, dtype, flat_shape)
                kept.append(value)
                addresses.append(pointer(value, name, dtype, flat_shape))
        flat = np.empty(back.total, dtype=dtype)
        entry = self._entries[function, dtype][0]
        with cache.lock:
            if cache._work is None:
                raise ValueError(
                    f"cache was released (NativeCache.release): run {self.CELL}.forward again"
                )
            status = back.call(
                entry, cache._base, address(flat), addresses, _lengths_address(cache._lengths)
            )
        if status != 0:
            self.fail(function, dtype, status)
        grads = self.Gradients()
        grads.__dict__.update(zip(back.views.names, back.views(flat)))
        return grads

    # -----------------------------------------------------------------------------------------
    # The blocked scan of a cell whose update is affine in the previous state (minGRU, minLSTM;
    # lstm_sym/codegen/c_scan.py): ``<cell>_forward_scan``/``<cell>_backward_scan``, bound as the
    # NumPy module's ``forward_scan``/``backward_scan``; other cells have neither attribute.
    # -----------------------------------------------------------------------------------------

    def _scan_entry(self, function: str):
        if function not in self.functions:
            raise AttributeError(
                f"{self.CELL} has no {function}: its C has no time-parallel form (the update is "
                "not affine in the previous state; lstm_sym.scan)"
            )

    @property
    def forward_scan(self):
        """As ``generated/<cell>.py``'s ``forward_scan(parameters, events, h0=None,
        lengths=None)``: ``forward``'s outputs, final states and cache (the same layout: either
        backward takes it), computed by ``<cell>_forward_scan_*``, a blocked scan over time."""
        self._scan_entry("forward_scan")
        return self._forward_scan

    @property
    def backward_scan(self):
        """As ``generated/<cell>.py``'s ``backward_scan(cache, d_outputs, d_h_last=None)``:
        ``backward``'s gradients by ``<cell>_backward_scan_*``, a blocked reverse scan, from the
        cache of ``forward`` or ``forward_scan``."""
        self._scan_entry("backward_scan")
        return self._backward_scan

    def _forward_scan(self, parameters, events, *initial, **named):
        if "cache" in named:
            raise TypeError("forward_scan() got an unexpected keyword argument 'cache'")
        return self._forward("forward_scan", parameters, events, initial, named)

    def _backward_scan(self, cache, d_outputs, *d_lasts, **named):
        return self._backward("backward_scan", cache, d_outputs, d_lasts, named)
