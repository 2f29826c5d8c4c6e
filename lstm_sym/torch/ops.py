"""Every cell as a PyTorch operator with the derived backward: ``torch.ops.lstm_sym.<cell>_forward``
and ``<cell>_backward``, and ``<cell>_infer`` for what needs no gradient.

Per cell, three ``torch.library.custom_op``\\ s on the tensors of the operator contract
(``/work/shared``'s issue 19; the generated emitter modules ``<cell>_torch.py`` take the same):

``<cell>_forward(events, initial_states, weights, lengths) -> (outputs, final_states, saved)``
    ``events`` (T, B, X); ``initial_states`` one (B, size) tensor per state in the cell's
    ``STATES`` order; ``weights`` the cell's C parameter arrays in the order and shapes of
    ``<cell>.abi.json`` (stacked event weights, event bias, hidden weights, hidden bias, then
    per-unit parameters and projection weights; :attr:`CellOps.weights`); ``lengths`` None or
    (B,) integers 1..T (PyTorch's packed sequences: rows past their length keep their states,
    output zeros). ``saved`` is what the backward reads: on CPU one tensor, the C cache.
``<cell>_backward(events, initial_states, weights, lengths, saved, d_outputs, d_final_states,
events_grad=True) -> (d_events, d_initial_states, d_weights)``
    the derived backward (gradients in the shapes of their inputs). With ``events_grad`` False
    ``d_events`` is an empty tensor and the C skips its matrix product (``d_events`` NULL):
    autograd asks for it only when the events require a gradient (a first layer's input
    usually does not).

``<cell>_infer(events, initial_states, weights, lengths) -> (outputs, final_states)``
    forward's outputs and final states, bit for bit on CPU, without the cache: the C's
    ``<cell>_infer_*`` (a work buffer of ``<cell>_infer_work_size`` elements, O(batch x
    hidden) plus the packed weights, whatever the number of steps), the emitter's ``infer``
    (its forward saving nothing) elsewhere. Not differentiable: :meth:`CellOps.apply` (what ``RNN``
    calls) takes it when no gradient is wanted (grad mode off, as under ``torch.no_grad`` or
    ``torch.inference_mode``, or no input requiring one).

``register_autograd`` wires the backward op as the forward op's gradient, so
``torch.autograd`` and ``torch.compile`` (``register_fake`` gives every output's shape) run the
derived backward, which reads only what forward saved.

CPU tensors run the generated C (:mod:`lstm_sym.native` compiles and caches the library;
:mod:`.c_calls` calls the entry points on the tensors' memory, ctypes releasing the GIL, each
call planned once per size): contiguous inputs
are not copied, non-contiguous ones are made contiguous first (one copy, as ``nn.LSTM`` does);
float32 and float64. On CPU ``saved`` is the first ``<cell>_saved_size`` elements of the C
cache (the state sequences and the saved values, which forward writes in full: no
uninitialized memory leaves the operator), a view of the cache forward filled. The C backward
rewrites the scratch after them: when ``saved`` is still that view of a cache this module made
(and no other backward is using it) it runs there, else on a fresh cache with ``saved`` copied
in; either way ``saved`` itself is never written (the op stays functional: autograd may call it
again). Tensors on any other device run the generated PyTorch emitter module
(``generated/<cell>_torch.py``), which prints the same kernel plan as torch operations; its
``saved`` is whatever it keeps. For a cell whose update the derivation proved affine in the
previous state (minGRU, minLSTM) that path runs the emitter's time-parallel scan
(``forward_scan``/``backward_scan``), not its loop over the steps. :func:`emitter_on_cpu`
runs CPU tensors through the emitter too (how the tests check the emitter against the C path
on a machine without another device).

Built-in cells are registered when this module is imported; a user's cell generated with
``lstm-sym generate --spec cell.py --out DIR`` is registered by :func:`load` (``name``,
``directory=DIR``) as ``lstm_sym::<cell>_<tag>_forward``/``_backward`` (the tag: a hash of the
directory, so cells of the same name in two folders do not collide).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import importlib.util
import sys
import threading
from pathlib import Path

import torch

from .. import native
from ..native import abi as abi_data
from . import c_calls

__all__ = ["CellOps", "cells", "emitter_on_cpu", "get", "load"]

_DTYPES = c_calls.DTYPES
_lock = threading.Lock()
#: CellOps by (name, resolved directory or None)
_registry: dict = {}
#: How many emitter_on_cpu() blocks are open (process-wide)
_emitter_on_cpu = 0


@contextlib.contextmanager
def emitter_on_cpu():
    """Within this block (process-wide), CPU tensors run the generated PyTorch emitter instead
    of the C, as tensors on other devices always do: a forward and its backward must both run
    inside it (their ``saved`` differ). For tests and comparisons; the C is the faster path."""
    global _emitter_on_cpu
    with _lock:
        _emitter_on_cpu += 1
    try:
        yield
    finally:
        with _lock:
            _emitter_on_cpu -= 1


def _runs_c(tensor) -> bool:
    """Whether the operators run the generated C on ``tensor``'s device."""
    return tensor.device.type == "cpu" and not _emitter_on_cpu


class CellOps:
    """The three operators of one cell and what they need: its ABI (shapes, names), the compiled
    C library (loaded on first use) and the generated emitter module (imported on first use)."""

    def __init__(self, name: str, directory: Path | None = None):
        self.name = name
        self.directory = directory
        where = directory if directory is not None else native.kernels_directory()
        self.abi = abi = abi_data.read(where, name)
        #: The states in the cell's order: (short name, size name), e.g. ("h", "hidden_size")
        self.states = tuple((s.short, s.size) for s in abi.states)
        #: The names of the weights tuple (the C parameter arrays), in order
        self.weights = tuple(array for array, _ in abi.parameters)
        #: The state whose sequence is the output (``h`` for every built-in cell)
        self.output_state = abi.output_state
        self.projected = abi.projected
        if directory is None:
            self.qualifier = name
        else:
            tag = hashlib.sha256(str(directory).encode()).hexdigest()[:8]
            self.qualifier = f"{name}_{tag}"
        self._native = None
        self._emitter = None
        self._cache_size = None
        self._saved_size = None
        #: shapes by (array name, *sizes.items()): parsing the ABI's dimensions costs more
        #: than a small call's kernel
        self._shapes: dict = {}
        #: sizes by the kinds of tensors that passed :meth:`check`
        self._checked: dict = {}
        self._infer_work_size = None
        #: c_calls.CCall plans by (function, dtype, lengths given, *sizes.items())
        self._c_calls: dict = {}
        self.forward = _define_forward(self)
        self.backward = _define_backward(self)
        self.infer = _define_infer(self)
        _register_autograd(self)

    def apply(self, events, initial_states, weights, lengths=None):
        """``(outputs, final_states)`` of the forward operator, differentiable by its derived
        backward: what ``RNN`` calls. Under ``torch.compile`` (and ``torch.export``) it is the
        custom operator with its registered autograd; in eager mode the same two computations
        (the C, or the emitter off the CPU) run through a ``torch.autograd.Function`` instead,
        which skips the custom operator's dispatch (about 0.2 ms per call, as much as the whole
        kernel at (1, 100, 16, 32)). Both give the same numbers bit for bit (tested).

        When no gradient is wanted (grad mode off, or no input requires one) it is the infer
        operator instead (called directly in eager mode): the same numbers bit for bit on CPU,
        no cache."""
        if not _wants_grad(events, initial_states, weights):
            if torch.compiler.is_compiling():
                outputs, finals = self.infer(events, initial_states, weights, lengths)
            else:
                outputs, finals = _infer(self, events, initial_states, weights, lengths)
            return outputs, tuple(finals)
        if torch.compiler.is_compiling():
            outputs, finals, _ = self.forward(events, initial_states, weights, lengths)
            return outputs, tuple(finals)
        count = len(initial_states)
        outputs, *finals = _Apply.apply(self, lengths, count, events, *initial_states, *weights)
        return outputs, tuple(finals)

    def __repr__(self):
        where = "" if self.directory is None else f", directory={str(self.directory)!r}"
        return f"lstm_sym.torch.ops.CellOps({self.name!r}{where})"

    # ---- sizes ---------------------------------------------------------------------------
    def sizes(self, events, initial_states, weights) -> dict:
        """The sizes of a call by name, read off the tensors' shapes (a dimension ``k*name``
        gives ``name``; :meth:`check` then compares every shape with the sizes)."""
        steps, batch, event_size = events.shape
        values = {"steps": steps, "batch": batch, "event_size": event_size}
        named = [(f"{s}0", v) for (s, _), v in zip(self.states, initial_states, strict=True)]
        named += list(zip(self.weights, weights, strict=True))
        for name, value in named:
            for text, size in zip(self.abi.shapes[name], value.shape, strict=False):
                factor, _, size_name = text.rpartition("*")
                if size_name in self.abi.sizes and size_name not in values:
                    values[size_name] = size // int(factor or 1)
        return values

    def shape(self, name: str, sizes: dict) -> tuple:
        key = (name, *sizes.items())
        try:
            found = self._shapes.get(key)
        except TypeError:  # symbolic sizes (torch.compile's dynamic shapes) do not hash
            return self.abi.shape(name, sizes)
        if found is None:
            if len(self._shapes) > 4096:
                self._shapes.clear()
            found = self._shapes[key] = self.abi.shape(name, sizes)
        return found

    # ---- the compiled C ------------------------------------------------------------------
    @property
    def native(self):
        """The cell's :class:`lstm_sym.native.NativeCell` (compiled and cached on first use)."""
        if self._native is None:
            with _lock:
                if self._native is None:
                    cell = native.load(self.name, directory=self.directory)
                    self._cache_size = _size_function(cell.library, *self.abi.cache_size)
                    self._saved_size = _size_function(cell.library, *self.abi.saved_size)
                    self._native = cell
        return self._native

    def cache_size(self, sizes: dict) -> int:
        """Elements of the C cache for ``sizes`` (the C's ``<cell>_cache_size``)."""
        self.native  # noqa: B018 -- loads the library
        function, args = self._cache_size
        count = function(*(int(sizes[a]) for a in args))
        if count == 0:
            raise ValueError(f"sizes too large for one {self.name} cache: {sizes}")
        return count

    def infer_work_size(self, sizes: dict) -> int:
        """Elements of the C inference's work buffer (``<cell>_infer_work_size``)."""
        if self._infer_work_size is None:
            if self.abi.infer_work_size is None:
                raise RuntimeError(
                    f"{self.name}: its generated C has no inference entry point "
                    "(<cell>_infer_*); regenerate it with `lstm-sym generate`"
                )
            self._infer_work_size = _size_function(self.native.library, *self.abi.infer_work_size)
        function, args = self._infer_work_size
        count = function(*(int(sizes[a]) for a in args))
        if count == 0:
            raise ValueError(f"sizes too large for one {self.name} inference: {sizes}")
        return count

    def saved_size(self, sizes: dict) -> int:
        """The cache's first elements, which backward reads (the C's ``<cell>_saved_size``)."""
        self.cache_size(sizes)  # loads the library, refuses sizes that overflow
        function, args = self._saved_size
        return function(*(int(sizes[a]) for a in args))

    # ---- the generated emitter -----------------------------------------------------------
    @property
    def emitter(self):
        """The generated PyTorch emitter module ``<cell>_torch`` (imported on first use)."""
        if self._emitter is None:
            module_name = f"{self.name}_torch"
            try:
                if self.directory is None:
                    module = importlib.import_module(f"lstm_sym.kernels.{module_name}")
                else:
                    module = _import_file(self.directory / f"{module_name}.py", self.qualifier)
            except (ImportError, FileNotFoundError) as error:
                raise RuntimeError(
                    f"{self.name}: tensors on a device other than the CPU run the generated "
                    f"PyTorch module {module_name}.py, which is missing ({error}); regenerate "
                    "with `lstm-sym generate`"
                ) from error
            self._emitter = module
        return self._emitter

    @property
    def emitter_forward(self):
        """The emitter's forward: its time-parallel ``forward_scan`` where the derivation proved
        the state update affine (``lstm_sym/scan.py``: minGRU, minLSTM; no loop over the steps,
        what a GPU wants), else its step loop ``forward``. Both keep the same ``saved``."""
        return getattr(self.emitter, "forward_scan", None) or self.emitter.forward

    @property
    def emitter_infer(self):
        """The emitter's forward saving nothing, ``(outputs, final_states)``: its ``infer``,
        except where the time-parallel ``forward_scan`` serves (its results, ``saved``
        dropped) or for an emitter generated before it had ``infer`` (``forward``'s)."""
        if not hasattr(self.emitter, "forward_scan") and hasattr(self.emitter, "infer"):
            return self.emitter.infer
        forward = self.emitter_forward

        def infer(events, initial_states, weights, lengths=None):
            outputs, finals, _ = forward(events, initial_states, weights, lengths)
            return outputs, finals

        return infer

    @property
    def emitter_backward(self):
        """The emitter's backward: ``backward_scan`` where there is one, else ``backward``."""
        return getattr(self.emitter, "backward_scan", None) or self.emitter.backward

    # ---- input checks --------------------------------------------------------------------
    def check(self, events, initial_states, weights, lengths, function="forward"):
        """Refuse what the kernels cannot take, PyTorch-style, naming the argument: device or
        dtype mix, wrong shapes or counts, lengths out of range. Returns the sizes.

        The tensors' kinds (shape, dtype, device) that passed are remembered: the same kinds
        again skip straight to the lengths' values (a small call's kernel costs less than
        the full check)."""
        try:
            key = (
                *((t.shape, t.dtype, t.device) for t in (events, *initial_states, *weights)),
                len(initial_states),
            )
            found = self._checked.get(key)
        except (AttributeError, TypeError):
            key = found = None
        if found is not None:
            if lengths is not None:
                _check_lengths(f"lstm_sym.{self.qualifier}_{function}", lengths, events)
            return dict(found)
        sizes = self._check(events, initial_states, weights, lengths, function)
        if key is not None:
            if len(self._checked) > 256:
                self._checked.clear()
            self._checked[key] = dict(sizes)
        return sizes

    def _check(self, events, initial_states, weights, lengths, function):
        op = f"lstm_sym.{self.qualifier}_{function}"
        if not isinstance(events, torch.Tensor):
            raise TypeError(f"{op}: events must be a Tensor, got {type(events).__name__}")
        if events.dtype not in _DTYPES:
            raise TypeError(
                f"{op}: events must be float32 or float64, got {events.dtype} "
                "(expected scalar type Float or Double)"
            )
        if events.dim() != 3 or 0 in events.shape:
            raise ValueError(
                f"{op}: events must have shape (steps, batch, event_size) with every size >= 1, "
                f"got {tuple(events.shape)}"
            )
        if len(initial_states) != len(self.states):
            raise ValueError(
                f"{op}: initial_states must hold {len(self.states)} tensors "
                f"({', '.join(s + '0' for s, _ in self.states)}), got {len(initial_states)}"
            )
        if len(weights) != len(self.weights):
            raise ValueError(
                f"{op}: weights must hold {len(self.weights)} tensors "
                f"({', '.join(self.weights)}), got {len(weights)}"
            )
        named = [
            (f"initial_states[{k}] ({s}0)", v)
            for k, ((s, _), v) in enumerate(zip(self.states, initial_states, strict=True))
        ]
        named += [(f"weights[{k}] ({w})", v) for k, (w, v) in enumerate(zip(self.weights, weights))]
        for label, value in named:
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{op}: {label} must be a Tensor, got {type(value).__name__}")
            if value.device != events.device:
                raise RuntimeError(
                    f"{op}: expected all tensors to be on the same device, but found events on "
                    f"{events.device} and {label} on {value.device}"
                )
            if value.dtype != events.dtype:
                raise TypeError(
                    f"{op}: expected all tensors to have the same dtype, but found events "
                    f"{events.dtype} and {label} {value.dtype}"
                )
        for k, name in enumerate(self.weights):
            if weights[k].dim() != len(self.abi.shapes[name]):
                raise ValueError(
                    f"{op}: weights[{k}] ({name}) must have shape "
                    f"({', '.join(self.abi.shapes[name])}), got {tuple(weights[k].shape)}"
                )
        sizes = self.sizes(events, initial_states, weights)
        expected = [
            (f"initial_states[{k}] ({s}0)", f"{s}0") for k, (s, _) in enumerate(self.states)
        ]
        expected += [(f"weights[{k}] ({w})", w) for k, w in enumerate(self.weights)]
        for (label, name), value in zip(expected, [*initial_states, *weights], strict=True):
            shape = self.shape(name, sizes)
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"{op}: {label} must have shape {shape} "
                    f"({', '.join(self.abi.shapes[name])}), got {tuple(value.shape)}"
                )
        if lengths is not None:
            _check_lengths(op, lengths, events)
        return sizes


def _check_lengths(op, lengths, events):
    """``lengths``: None or (batch,) integers on the events' device, 1 <= lengths[b] <= steps."""
    steps, batch = events.shape[0], events.shape[1]
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"{op}: lengths must be a Tensor or None, got {type(lengths).__name__}")
    if lengths.dtype != torch.int64:
        raise TypeError(f"{op}: lengths must be int64 (Long), got {lengths.dtype}")
    if tuple(lengths.shape) != (batch,):
        raise ValueError(
            f"{op}: lengths must have shape (batch,) = ({batch},), got {tuple(lengths.shape)}"
        )
    if lengths.device != events.device:
        raise RuntimeError(
            f"{op}: expected all tensors to be on the same device, but found events on "
            f"{events.device} and lengths on {lengths.device}"
        )
    if _is_fake(lengths):
        return
    bad = ((lengths < 1) | (lengths > steps)).nonzero()
    if bad.numel():
        index = int(bad[0, 0])
        raise ValueError(
            f"{op}: lengths must be between 1 and steps={steps}, got lengths[{index}] = "
            f"{int(lengths[index])}"
        )


def _size_function(library, symbol: str, args: tuple):
    function = getattr(library, symbol)
    function.restype = ctypes.c_size_t
    function.argtypes = [ctypes.c_size_t] * len(args)
    return function, args


def _is_fake(tensor) -> bool:
    from torch._subclasses.fake_tensor import is_fake

    return is_fake(tensor) or tensor.device.type == "meta"


def _fresh(tensors, inputs):
    """``tensors`` with any that shares memory with an input or an earlier one copied (an
    operator's outputs must not alias its inputs or each other)."""
    seen = {t.untyped_storage().data_ptr() for t in inputs if t is not None and t.numel()}
    result = []
    for t in tensors:
        pointer = t.untyped_storage().data_ptr() if t.numel() else None
        if pointer is not None and pointer in seen:
            t = t.clone()
            pointer = t.untyped_storage().data_ptr()
        if pointer is not None:
            seen.add(pointer)
        result.append(t)
    return result


# ---- the operators ---------------------------------------------------------------------------
def _schema_forward() -> str:
    return (
        "(Tensor events, Tensor[] initial_states, Tensor[] weights, Tensor? lengths) "
        "-> (Tensor, Tensor[], Tensor[])"
    )


def _schema_backward() -> str:
    return (
        "(Tensor events, Tensor[] initial_states, Tensor[] weights, Tensor? lengths, "
        "Tensor[] saved, Tensor d_outputs, Tensor[] d_final_states, bool events_grad=True) "
        "-> (Tensor, Tensor[], Tensor[])"
    )


def _forward(cell: CellOps, events, initial_states, weights, lengths, sizes=None):
    """What the forward operator computes (the custom op and :class:`_Apply` both call it);
    ``sizes``: :meth:`CellOps.check`'s, when the caller checked the inputs already."""
    if sizes is None:
        sizes = cell.check(events, initial_states, weights, lengths)
    if not _runs_c(events):
        outputs, finals, saved = cell.emitter_forward(
            events.contiguous(),
            tuple(c_calls.contiguous(initial_states)),
            tuple(c_calls.contiguous(weights)),
            lengths,
        )
        fresh = _fresh([outputs, *finals, *saved], [events, *initial_states, *weights])
        count = len(cell.states)
        return fresh[0], fresh[1 : 1 + count], fresh[1 + count :]
    return c_calls.forward(cell, sizes, events, initial_states, weights, lengths)


def _define_forward(cell: CellOps):
    name = f"lstm_sym::{cell.qualifier}_forward"

    def forward(events, initial_states, weights, lengths):
        return _forward(cell, events, initial_states, weights, lengths)

    op = torch.library.custom_op(name, forward, mutates_args=(), schema=_schema_forward())

    def fake(events, initial_states, weights, lengths):
        return _fake_forward(cell, events, initial_states, weights, lengths)

    op.register_fake(fake)
    return op


def _fake_forward(cell: CellOps, events, initial_states, weights, lengths, function="forward"):
    """The forward operator's outputs as fake tensors (their shapes, dtypes and devices)."""
    sizes = cell.check(events, initial_states, weights, lengths, function)
    if not _runs_c(events):
        outputs, finals, saved = cell.emitter_forward(
            events, tuple(initial_states), tuple(weights), lengths
        )
        return outputs, list(finals), list(saved)
    sizes = {k: int(v) for k, v in sizes.items()}
    new = events.new_empty
    outputs = new(cell.shape("outputs", sizes))
    finals = [new(cell.shape(f"{s}_last", sizes)) for s, _ in cell.states]
    return outputs, finals, [new((cell.saved_size(sizes),))]


def _backward(
    cell: CellOps,
    events,
    initial_states,
    weights,
    lengths,
    saved,
    d_outputs,
    d_final_states,
    events_grad=True,
    sizes=None,
):
    """What the backward operator computes (the custom op and :class:`_Apply` both call it).
    ``sizes`` given: the forward's inputs were checked (these sizes) and autograd matched the
    adjoints to its outputs (shape, dtype, device), so neither is checked again."""
    if sizes is None:
        sizes = cell.check(events, initial_states, weights, lengths, "backward")
        _check_adjoints(cell, sizes, events, d_outputs, d_final_states)
    if not _runs_c(events):
        d_events, d_initial, d_weights = cell.emitter_backward(
            events.contiguous(),
            tuple(c_calls.contiguous(initial_states)),
            tuple(c_calls.contiguous(weights)),
            lengths,
            tuple(saved),
            d_outputs.contiguous(),
            tuple(c_calls.contiguous(d_final_states)),
        )
        inputs = [events, *initial_states, *weights, *saved, d_outputs, *d_final_states]
        if not events_grad:
            d_events = events.new_empty((0,))
        fresh = _fresh([d_events, *d_initial, *d_weights], inputs)
        count = len(cell.states)
        return fresh[0], fresh[1 : 1 + count], fresh[1 + count :]
    return c_calls.backward(
        cell, sizes, events, weights, lengths, saved, d_outputs, d_final_states, events_grad
    )


def _define_backward(cell: CellOps):
    name = f"lstm_sym::{cell.qualifier}_backward"

    def backward(
        events, initial_states, weights, lengths, saved, d_outputs, d_final_states, events_grad=True
    ):
        return _backward(
            cell,
            events,
            initial_states,
            weights,
            lengths,
            saved,
            d_outputs,
            d_final_states,
            events_grad,
        )

    op = torch.library.custom_op(name, backward, mutates_args=(), schema=_schema_backward())

    def fake(
        events, initial_states, weights, lengths, saved, d_outputs, d_final_states, events_grad=True
    ):
        return (
            torch.empty_like(events) if events_grad else events.new_empty((0,)),
            [torch.empty_like(s) for s in initial_states],
            [torch.empty_like(w) for w in weights],
        )

    op.register_fake(fake)
    return op


def _check_adjoints(cell, sizes, events, d_outputs, d_final_states):
    op = f"lstm_sym.{cell.qualifier}_backward"
    named = [("d_outputs", "outputs", d_outputs)]
    if len(d_final_states) != len(cell.states):
        raise ValueError(
            f"{op}: d_final_states must hold {len(cell.states)} tensors, got {len(d_final_states)}"
        )
    named += [
        (f"d_final_states[{k}] (d_{s}_last)", f"{s}_last", v)
        for k, ((s, _), v) in enumerate(zip(cell.states, d_final_states, strict=True))
    ]
    for label, like, value in named:
        if value.device != events.device or value.dtype != events.dtype:
            raise RuntimeError(
                f"{op}: {label} must be {events.dtype} on {events.device} like events, got "
                f"{value.dtype} on {value.device}"
            )
        shape = cell.shape(like, sizes)
        if tuple(value.shape) != shape:
            raise ValueError(f"{op}: {label} must have shape {shape}, got {tuple(value.shape)}")


def _wants_grad(events, initial_states, weights) -> bool:
    """Whether autograd would record a call on these tensors."""
    return torch.is_grad_enabled() and any(
        t.requires_grad for t in (events, *initial_states, *weights)
    )


def _schema_infer() -> str:
    return (
        "(Tensor events, Tensor[] initial_states, Tensor[] weights, Tensor? lengths) "
        "-> (Tensor, Tensor[])"
    )


def _infer(cell: CellOps, events, initial_states, weights, lengths):
    """What the infer operator computes: forward's outputs and final states without a cache."""
    sizes = cell.check(events, initial_states, weights, lengths, "infer")
    if not _runs_c(events):
        outputs, finals = cell.emitter_infer(
            events.contiguous(),
            tuple(c_calls.contiguous(initial_states)),
            tuple(c_calls.contiguous(weights)),
            lengths,
        )
        fresh = _fresh([outputs, *finals], [events, *initial_states, *weights])
        return fresh[0], fresh[1:]
    if cell.abi.infer_work_size is None:  # a library generated before <cell>_infer_*
        with torch.no_grad():
            outputs, finals, _ = _forward(cell, events, initial_states, weights, lengths, sizes)
        return outputs, list(finals)
    return c_calls.infer(cell, sizes, events, initial_states, weights, lengths)


def _define_infer(cell: CellOps):
    name = f"lstm_sym::{cell.qualifier}_infer"

    def infer(events, initial_states, weights, lengths):
        return _infer(cell, events, initial_states, weights, lengths)

    op = torch.library.custom_op(name, infer, mutates_args=(), schema=_schema_infer())

    def fake(events, initial_states, weights, lengths):
        outputs, finals, _ = _fake_forward(cell, events, initial_states, weights, lengths, "infer")
        return outputs, finals

    op.register_fake(fake)
    return op


def _register_autograd(cell: CellOps):
    def setup_context(ctx, inputs, output):
        events, initial_states, weights, lengths = inputs
        _, _, saved = output
        ctx.counts = (len(initial_states), len(weights), len(saved))
        ctx.has_lengths = lengths is not None
        ctx.save_for_backward(
            events, *initial_states, *weights, *saved, *([lengths] if lengths is not None else [])
        )
        ctx.mark_non_differentiable(*saved)

    def backward(ctx, d_outputs, d_final_states, d_saved):
        tensors = ctx.saved_tensors
        n_states, n_weights, n_saved = ctx.counts
        events = tensors[0]
        initial = list(tensors[1 : 1 + n_states])
        weights = list(tensors[1 + n_states : 1 + n_states + n_weights])
        start = 1 + n_states + n_weights
        saved = list(tensors[start : start + n_saved])
        lengths = tensors[start + n_saved] if ctx.has_lengths else None
        d_final_states = [
            torch.zeros_like(f) if d is None else d
            for d, f in zip(d_final_states, initial, strict=True)
        ]
        if d_outputs is None:
            sizes = cell.sizes(events, initial, weights)
            d_outputs = events.new_zeros(cell.shape("outputs", sizes))
        events_grad = ctx.needs_input_grad[0]
        d_events, d_initial, d_weights = cell.backward(
            events, initial, weights, lengths, saved, d_outputs, d_final_states, events_grad
        )
        return d_events if events_grad else None, list(d_initial), list(d_weights), None

    cell.forward.register_autograd(backward, setup_context=setup_context)


class _Apply(torch.autograd.Function):
    """The forward operator and its derived backward as an eager ``autograd.Function``
    (:meth:`CellOps.apply`): the computations of :func:`_forward` and :func:`_backward`,
    without the custom operator's dispatch. Not differentiable twice, as the operators."""

    @staticmethod
    def forward(ctx, cell, lengths, count, events, *tensors):
        initial, weights = list(tensors[:count]), list(tensors[count:])
        sizes = cell.check(events, initial, weights, lengths)
        outputs, finals, saved = _forward(cell, events, initial, weights, lengths, sizes)
        ctx.cell, ctx.lengths, ctx.counts, ctx.sizes = cell, lengths, (count, len(weights)), sizes
        ctx.save_for_backward(events, *initial, *weights, *saved)
        return (outputs, *finals)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_outputs, *d_finals):
        events, *tensors = ctx.saved_tensors
        count, n_weights = ctx.counts
        initial, weights = tensors[:count], tensors[count : count + n_weights]
        saved = tensors[count + n_weights :]
        events_grad = ctx.needs_input_grad[3]
        d_events, d_initial, d_weights = _backward(
            ctx.cell,
            events,
            initial,
            weights,
            ctx.lengths,
            saved,
            d_outputs,
            list(d_finals),
            events_grad,
            ctx.sizes,
        )
        return None, None, None, d_events if events_grad else None, *d_initial, *d_weights


# ---- finding the operators ---------------------------------------------------------------
def _import_file(path: Path, qualifier: str):
    module_name = f"_lstm_sym_torch_{qualifier}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or not Path(path).is_file():
        raise FileNotFoundError(str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def cells() -> list[str]:
    """The built-in cells (each has its operators registered)."""
    return native.cells()


def get(name: str) -> CellOps:
    """The operators of built-in cell ``name``."""
    if isinstance(name, CellOps):
        return name
    found = _registry.get((name, None))
    if found is None:
        known = cells()
        raise ValueError(f"cell: no built-in cell {name!r}; the cells are {', '.join(known)}")
    return found


def load(name: str, directory: Path | str) -> CellOps:
    """The operators of a user's cell generated with ``lstm-sym generate --spec ... --out DIR``
    (``directory=DIR``), registered on first use as ``lstm_sym::<name>_<tag>_forward``."""
    where = Path(directory).resolve()
    if not abi_data.path(where, name).is_file():
        known = native.cells(where)
        there = ", ".join(known) if known else "none (run `lstm-sym generate --spec ... --out DIR`)"
        raise ValueError(f"no generated cell {name!r} in {where}: the cells there are {there}")
    with _lock:
        found = _registry.get((name, where))
        if found is None:
            found = _registry[name, where] = CellOps(name, where)
    return found


for _name in native.cells():
    _registry[_name, None] = CellOps(_name)
del _name
