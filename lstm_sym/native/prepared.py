"""Prepared parameters: a cell's weights stacked in the C layout and converted once per dtype.

``NativeCell.prepare(parameters)`` copies a ``Parameters`` object into one read-only buffer
laid out as the C entry points read it (the ABI's parameter arrays one after the other);
``forward`` and ``step`` take the result in place of the ``Parameters``, so a call neither
checks nor stacks nor converts the weights again. It is frozen: changing the ``Parameters``
afterwards changes nothing (prepare again), and its buffers cannot be written.
"""

from __future__ import annotations

import threading

import numpy as np


class PreparedParameters:
    """A cell's parameters in the C layout (see the module's docstring). ``dtype``: the dtype
    the parameters were prepared in (the promotion of theirs); ``buffer(dtype)``: the layout in
    ``dtype`` (another dtype is converted once, on first use, and kept)."""

    __slots__ = (
        "_addresses",
        "_buffers",
        "_lock",
        "cell",
        "dtype",
        "event_size",
        "hidden_size",
        "infers",
        "kernel",
        "offsets",
        "projection_size",
        "proxies",
        "steps",
    )

    def __init__(self, cell, parameters, blocks, dtype):
        flat = np.concatenate(blocks).astype(dtype, copy=False)  # a new array: our own copy
        flat.flags.writeable = False
        set_ = object.__setattr__
        set_(self, "cell", cell.CELL)
        set_(self, "kernel", cell.kernel)
        set_(self, "dtype", np.dtype(flat.dtype.type))  # the canonical dtype object
        set_(self, "proxies", (np.empty(0, flat.dtype),))  # for the dtype promotion
        set_(self, "event_size", parameters.event_size)
        set_(self, "hidden_size", parameters.hidden_size)
        set_(self, "projection_size", getattr(parameters, "projection_size", None))
        offsets, at = {}, 0
        for name, block in zip(cell.packed_arrays, cell.packed_counts(parameters), strict=True):
            offsets[name] = (at, block)
            at += block
        set_(self, "offsets", offsets)
        set_(self, "_buffers", {flat.dtype: flat})
        set_(self, "_addresses", {flat.dtype: flat.ctypes.data})
        set_(self, "_lock", threading.Lock())
        #: the binding's per-shape step plans (lstm_sym.native.inference.FastStep), by
        #: (cell, event shape, event dtype): filled by NativeCell.step
        set_(self, "steps", {})
        #: the same for forward(..., cache=False) without initial states or lengths
        #: (lstm_sym.native.inference.FastInfer), by (cell, events shape, dtype)
        set_(self, "infers", {})

    def __setattr__(self, name, value):
        raise AttributeError(f"PreparedParameters are frozen: prepare again to change {name}")

    def __delattr__(self, name):
        raise AttributeError("PreparedParameters are frozen")

    def buffer(self, dtype) -> np.ndarray:
        """The parameters in the C layout in ``dtype`` (read-only)."""
        flat = self._buffers.get(dtype)
        if flat is None:
            with self._lock:
                flat = self._buffers.get(dtype)
                if flat is None:
                    flat = self._buffers[self.dtype].astype(dtype)
                    flat.flags.writeable = False
                    self._buffers[np.dtype(dtype)] = flat
                    self._addresses[np.dtype(dtype)] = flat.ctypes.data
        return flat

    def address(self, dtype) -> int:
        """The address of :meth:`buffer` of ``dtype``, for the C calls."""
        found = self._addresses.get(dtype)
        return found if found is not None else (self.buffer(dtype), self._addresses[dtype])[1]

    def arrays(self, dtype=None) -> dict:
        """The C parameter arrays by name (read-only views), in ``dtype`` (None: ``dtype``)."""
        flat = self.buffer(np.dtype(dtype or self.dtype))
        return {name: flat[at : at + count] for name, (at, count) in self.offsets.items()}

    def __repr__(self):
        sizes = f"event_size={self.event_size}, hidden_size={self.hidden_size}"
        if self.projection_size is not None:
            sizes += f", projection_size={self.projection_size}"
        return f"{self.cell}.PreparedParameters({sizes}, dtype={self.dtype})"
