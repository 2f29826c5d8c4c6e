"""The operators' C path: the generated C entry points called on the tensors' memory.

Per cell, entry point, dtype and sizes, a :class:`CCall` is planned once (as the NumPy-side
binding's plans, :mod:`lstm_sym.native.calls`): the C call with every size written in, the
shapes of what it returns and the size of its cache or work buffer. A call then costs its
tensors' allocations and addresses, not a look-up per argument by name: at (1, 100, 16, 32)
the operator's Python took about as long as the kernel.

The C cache of a forward (``saved`` is a view of its first ``<cell>_saved_size`` elements) comes
from :mod:`.cache_pool`; its backward runs in place on that cache when ``saved`` is still the
view this module made and no other backward is using it (:func:`whole_cache`), else on a fresh
cache with ``saved`` copied in: ``saved`` itself is never written.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
import torch

from ..native.calls import compiled_call
from . import cache_pool

DTYPES = {torch.float64: np.dtype(np.float64), torch.float32: np.dtype(np.float32)}

_lock = threading.Lock()
#: The C caches forward made, by id, while a view of them (``saved``) lives
_caches = weakref.WeakValueDictionary()
#: ids of the caches a backward is running on in place
_busy: set = set()

#: The compiled call's parameters, the addresses of the entry point's pointer arguments by
#: role: events, lengths (None: NULL), the cache or work buffer, the initial states, the
#: weights, outputs, final states; backward's d_outputs, d_events, d_final_states,
#: d_initial_states and d_weights. States, weights and their adjoints are sequences in the
#: cell's order.
_PARAMETERS = "e, n, w, s, p, o=None, last=None, do=None, de=None, dlast=None, ds=None, dp=None"


class CCall:
    """One entry point of a cell for one dtype and one set of sizes (see :func:`plan`):
    ``call(entry, <_PARAMETERS>)`` with the sizes written in, the shapes of ``outputs`` and of
    each state (the final states of forward and infer, the initial states' adjoints of
    backward), ``scratch`` elements of its cache or work buffer and the first ``saved`` of them
    what backward reads (forward, backward)."""

    __slots__ = (
        "call",
        "cell",
        "dtype",
        "entry",
        "function",
        "outputs",
        "saved",
        "scratch",
        "states",
    )

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)

    def run(self, *pointers, **named) -> None:
        """Call the entry point on these addresses (:data:`_PARAMETERS`); raise on a failure."""
        status = self.call(self.entry, *pointers, **named)
        if status != 0:
            self.cell.native.fail(self.function, self.dtype, status)


def plan(cell, function: str, dtype, sizes: dict, lengths: bool) -> CCall:
    """The :class:`CCall` of ``<cell>_<function>_*`` (forward, infer or backward) for these
    sizes, ``lengths`` given or not; made once, kept by ``cell`` (a :class:`~.ops.CellOps`)."""
    key = (function, dtype, lengths, *sizes.items())
    found = cell._c_calls.get(key)
    if found is not None:
        return found
    native = cell.native
    entry, args = native.entry(function, dtype), native.arguments(function)
    roles = {"events": "e", "lengths": "n" if lengths else "None", "cache": "w", "work": "w"}
    roles.update(outputs="o", d_outputs="do", d_events="de")
    for k, (short, _) in enumerate(cell.states):
        roles.update({f"{short}0": f"s[{k}]", f"{short}_last": f"last[{k}]"})
        roles.update({f"d_{short}_last": f"dlast[{k}]", f"d_{short}0": f"ds[{k}]"})
    for k, name in enumerate(cell.weights):
        roles.update({name: f"p[{k}]", f"d_{name}": f"dp[{k}]"})
    parts = []
    for name, is_size in args:
        if is_size:
            parts.append(str(int(sizes[name])))
        elif name in roles:
            parts.append(roles[name])
        else:  # every argument of the ABI has a role above
            raise RuntimeError(f"{cell.name}_{function}: no tensor for argument {name!r}")
    shapes = {s: cell.shape(f"{s}_last", sizes) for s, _ in cell.states}
    scratch = saved = 0
    if function == "forward":
        scratch, saved = cell.cache_size(sizes), cell.saved_size(sizes)
    elif function == "infer":
        scratch = cell.infer_work_size(sizes)
    elif function == "backward":
        scratch, saved = cell.cache_size(sizes), cell.saved_size(sizes)
        shapes = {s: cell.shape(f"{s}0", sizes) for s, _ in cell.states}
    found = CCall(
        call=compiled_call(parts, _PARAMETERS),
        cell=cell,
        dtype=dtype,
        entry=entry,
        states=tuple(shapes.values()),
        function=function,
        outputs=cell.shape("outputs", sizes),
        saved=saved,
        scratch=scratch,
    )
    if len(cell._c_calls) > 256:
        cell._c_calls.clear()
    cell._c_calls[key] = found
    return found


def contiguous(tensors):
    """``tensors`` with any that is not contiguous made so (one copy each, as ``nn.LSTM``)."""
    return [t if t.is_contiguous() else t.contiguous() for t in tensors]


def _pointers(tensors):
    return [t.data_ptr() for t in tensors]


def forward(cell, sizes, events, initial_states, weights, lengths):
    """``outputs, finals, [saved]`` of the C forward (``saved``: a view of its cache)."""
    dtype = DTYPES[events.dtype]
    call = plan(cell, "forward", dtype, sizes, lengths is not None)
    cache = cache_pool.take(call.scratch, dtype)  # reused: no fresh pages per call
    outputs, finals = _run(call, events, initial_states, weights, lengths, cache)
    _caches[id(cache)] = cache
    return outputs, finals, [cache[: call.saved]]


def infer(cell, sizes, events, initial_states, weights, lengths):
    """``outputs, finals`` of the C inference (forward's, bit for bit, without a cache)."""
    dtype = DTYPES[events.dtype]
    call = plan(cell, "infer", dtype, sizes, lengths is not None)
    work = cache_pool.take(call.scratch, dtype)
    return _run(call, events, initial_states, weights, lengths, work)


def _run(call, events, initial_states, weights, lengths, scratch):
    """Forward or infer on the tensors' memory (contiguous ones are not copied): new outputs
    and final states."""
    events = events if events.is_contiguous() else events.contiguous()
    initial_states = contiguous(initial_states)
    weights = contiguous(weights)
    new = events.new_empty
    outputs = new(call.outputs)
    finals = [new(shape) for shape in call.states]
    if lengths is not None:
        lengths = lengths.contiguous()
    call.run(
        events.data_ptr(),
        None if lengths is None else lengths.data_ptr(),
        scratch.data_ptr(),
        _pointers(initial_states),
        _pointers(weights),
        o=outputs.data_ptr(),
        last=_pointers(finals),
    )
    return outputs, finals


def backward(
    cell, sizes, events, weights, lengths, saved, d_outputs, d_final_states, events_grad=True
):
    """``d_events, d_initial, d_weights`` of the C backward on the cache ``saved`` begins
    (:func:`whole_cache`); ``d_events`` empty without ``events_grad``."""
    dtype = DTYPES[events.dtype]
    call = plan(cell, "backward", dtype, sizes, lengths is not None)
    (head,) = saved
    expected = call.saved
    if head.dim() != 1 or head.shape[0] != expected or head.dtype != events.dtype:
        raise ValueError(
            f"lstm_sym.{cell.qualifier}_backward: saved must be the forward's C cache's first "
            f"{expected} elements of {events.dtype}, got {tuple(head.shape)} {head.dtype}"
        )
    cache, key = whole_cache(head, call.scratch)
    try:
        return run_backward(
            call, events, weights, lengths, cache, d_outputs, d_final_states, events_grad
        )
    finally:
        if key is not None:
            with _lock:
                _busy.discard(key)


def whole_cache(head, size: int):
    """A whole C cache beginning with ``head``'s elements, and the key to release from
    ``_busy`` after: the cache forward made when ``head`` is still its view (and no other
    backward is running there), else a fresh cache with ``head`` copied in (key None)."""
    base = head._base
    key = id(base)
    if (
        base is not None
        and _caches.get(key) is base
        and base.numel() == size
        and head.storage_offset() == base.storage_offset() == 0
        and head.is_contiguous()
    ):
        with _lock:
            free = key not in _busy
            if free:
                _busy.add(key)
        if free:
            return base, key
    cache = cache_pool.take(size, DTYPES[head.dtype])
    cache[: head.shape[0]].copy_(head)
    return cache, None


def run_backward(call, events, weights, lengths, cache, d_outputs, d_final_states, events_grad):
    """The C backward (``call``: its :class:`CCall`) on a whole ``cache``."""
    events = events if events.is_contiguous() else events.contiguous()
    weights = contiguous(weights)
    d_outputs = d_outputs.contiguous()
    d_final_states = contiguous(d_final_states)
    # without events_grad the C skips dL/dX = Delta W_event (d_events NULL): empty, as fake's
    d_events = torch.empty_like(events) if events_grad else events.new_empty((0,))
    d_weights = [torch.empty_like(w) for w in weights]
    new = events.new_empty
    d_initial = [new(shape) for shape in call.states]
    if lengths is not None:
        lengths = lengths.contiguous()
    call.run(
        events.data_ptr(),
        None if lengths is None else lengths.data_ptr(),
        cache.data_ptr(),
        (),
        _pointers(weights),
        do=d_outputs.data_ptr(),
        de=d_events.data_ptr() if events_grad else None,
        dlast=_pointers(d_final_states),
        ds=_pointers(d_initial),
        dp=_pointers(d_weights),
    )
    return d_events, d_initial, d_weights
