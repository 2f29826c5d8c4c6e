"""The C calls of a cell, planned once per size: buffer regions, argument sources, views.

A call's Python side is kept to a few allocations and address look-ups: per size, a plan lays
out one work buffer (the parameters in the C layout, the initial states, the events and the C
cache: everything backward reads, owned by the cache) and one result buffer, and compiles the C
call with every constant argument written in (sizes, NULLs, byte offsets from the buffers'
addresses). The shapes come from the cell's ABI data (:mod:`lstm_sym.native.abi`), nothing
here knows a particular cell.
"""

from __future__ import annotations

import ctypes
import math
import operator

import numpy as np

from .abi import Abi, dimension

#: Elements between the starts of two regions of a carved buffer: 64-byte aligned in float32.
ALIGN = 16

_char_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof


def layout(shapes: dict) -> tuple[dict, int]:
    """``{name: (offset, count, shape)}`` of regions of ``shapes`` in one buffer, and its size."""
    regions, total = {}, 0
    for name, shape in shapes.items():
        count = math.prod(shape)
        regions[name] = (total, count, tuple(shape))
        total += -(-count // ALIGN) * ALIGN
    return regions, max(total, 1)


def pointer(value, name, dtype, shape):
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


def address(array):
    """The address of a C-contiguous ndarray's data: by ``ctypes.c_char.from_buffer`` (a third
    of the cost of ``array.ctypes.data``) if it is writable, else by ``array.ctypes.data``."""
    try:
        return _addressof(_char_from_buffer(array))
    except (TypeError, ValueError, BufferError):
        return array.ctypes.data


class Views:
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


def compiled_call(parts, parameters):
    """``lambda f, <parameters>: f(<parts>)``: the call of a C entry ``f`` with a plan's constants
    (sizes, NULLs, byte offsets from base addresses) written in, which costs a third of
    assembling the argument list on every call. ``parts`` are Python expressions made by the
    plans from integers and parameter names only."""
    return eval(f"lambda f, {parameters}: f({', '.join(parts)})", {})


def returned_shape(abi: Abi, name: str, values: dict, batched: bool) -> tuple[int, ...]:
    """The shape of array ``name`` as the Python API returns it: without its ``batch`` axis for
    an unbatched call."""
    return tuple(dimension(d, values) for d in abi.shapes[name] if batched or d != "batch")


class ForwardPlan:
    """A forward's per-size work done once (see :func:`forward_plan`); ``backward`` is its
    backward's (:func:`backward_plan`), made on first use."""

    __slots__ = (
        "backward",
        "batch",
        "batched",
        "cache_size",
        "call",
        "cell",
        "dtype",
        "event_size",
        "hidden_size",
        "kept",
        "kernel",
        "native",
        "owner",
        "packed",
        "projection_size",
        "regions",
        "result_size",
        "results",
        "steps",
        "values",
        "work_size",
    )

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


class BackwardPlan:
    """A backward's per-size work done once (see :func:`backward_plan`)."""

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


def forward_plan(cell, key, cache_size: int) -> ForwardPlan:
    """Per-size work done once: the regions of the work and result buffers (the results' views
    in the returned shapes) and the C call with every argument's source written in: a size,
    None (NULL: a zero initial state), a byte offset in the work buffer (``w``) or in the result
    buffer (``r``). The events are always copied into the work buffer: the cache owns
    everything backward reads, so changing the caller's arrays after forward changes nothing.

    ``key``: (dtype, steps, batch, event_size, hidden, projection, given, batched);
    ``given`` has one bit per state, first state first, set if its initial state is given."""
    dtype, steps, batch, event_size, hidden, projection, given, batched = key
    abi = cell.abi
    values = {
        "steps": steps,
        "batch": batch,
        "event_size": event_size,
        "hidden_size": hidden,
        "projection_size": projection,
        "cache_size": cache_size,
    }
    shorts = [s.short for s in abi.states]
    flags = [bool(given >> (len(shorts) - 1 - i) & 1) for i in range(len(shorts))]
    names = [array for array, _ in abi.parameters]
    names += [f"{s}0" for s, g in zip(shorts, flags, strict=True) if g]
    names += ["events"]
    regions, packed = {}, 0  # the parameters and inputs: packed, one concatenation
    for name in names:
        shape = abi.shape(name, values)
        count = math.prod(shape)
        regions[name] = (packed, count, shape)
        packed += count
    start = -(-packed // ALIGN) * ALIGN
    regions["cache"] = (start, cache_size, (cache_size,))
    outs = ("outputs", *(f"{s}_last" for s in shorts))
    results, result_size = layout({name: abi.shape(name, values) for name in outs})
    itemsize = dtype.itemsize
    parts = []
    for name, is_size in cell.arguments("forward"):
        if is_size:
            parts.append(repr(values[name]))
        elif name in regions:
            parts.append(f"w + {regions[name][0] * itemsize}")
        elif name in results:
            parts.append(f"r + {results[name][0] * itemsize}")
        elif name == "lengths":  # the rows' lengths (None: NULL, every row runs all steps)
            parts.append("n")
        else:  # an initial state not given: NULL, zeros
            parts.append("None")
    views = [  # the outputs and final states as returned: (steps, [batch,] size)
        (name, results[name][0], returned_shape(abi, name, values, batched)) for name in outs
    ]
    kept = [name for name, is_size in cell.arguments("backward") if name in regions]
    return ForwardPlan(
        owner=cell,
        cell=cell.CELL,
        native=cell.library_path,
        kernel=cell.kernel,
        dtype=dtype,
        steps=steps,
        batch=batch,
        batched=batched,
        event_size=event_size,
        hidden_size=hidden,
        projection_size=projection,
        cache_size=cache_size,
        values=values,
        regions=regions,
        kept={name: regions[name][0] * itemsize for name in kept},
        packed=packed,
        work_size=start + cache_size,
        results=Views(dtype, result_size, views),
        result_size=result_size,
        call=compiled_call(parts, "w, r, n"),
        backward=None,
    )


def backward_plan(cell, plan: ForwardPlan) -> BackwardPlan:
    """The backward of a forward's plan: the gradients' regions in one buffer, the views of them
    returned (``Gradients`` attributes, from the ABI data) and the C call with every argument's
    source written in: a size, an address saved by forward (a byte offset in its work buffer
    ``w``), a byte offset in the gradients' buffer (``r``) or an
    adjoint given to backward (``a[i]``, None: NULL)."""
    abi, values, dtype, batched = cell.abi, plan.values, plan.dtype, plan.batched
    outs = [a.name for a in abi.functions["backward"].args if a.kind == "out"]
    regions, total = layout({name: abi.shape(name, values) for name in outs})
    adjoints = ["d_outputs", *(f"d_{s.short}_last" for s in abi.states)]
    itemsize = dtype.itemsize
    parts = []
    for name, is_size in cell.arguments("backward"):
        if is_size:
            parts.append(repr(values[name]))
        elif name in regions:
            parts.append(f"r + {regions[name][0] * itemsize}")
        elif name in adjoints:
            parts.append(f"a[{adjoints.index(name)}]")
        elif name == "lengths":  # as forward recorded them in the cache
            parts.append("n")
        else:
            parts.append(f"w + {plan.kept[name]}")
    lasts = []  # (name, shape, meaning, C shape) of each final state's adjoint
    for state in abi.states:
        size = values[state.size]
        if batched:
            shape, meaning = (plan.batch, size), f"(batch, {state.size})"
        else:
            shape, meaning = (size,), f"({state.size},)"
        lasts.append((f"d_{state.short}_last", shape, meaning, (plan.batch, size)))
    views = [  # (attribute, offset, shape) of every gradient as returned
        (
            view.attribute,
            regions[view.array][0] + dimension(view.offset, values),
            tuple(dimension(d, values) for d in view.shape if batched or d != "batch"),
        )
        for view in abi.gradients
    ]
    return BackwardPlan(
        owner=cell,
        total=total,
        sequence_shape=returned_shape(abi, "d_outputs", values, batched),
        outputs_shape=abi.shape("d_outputs", values),
        lasts=lasts,
        nulls=[None] * len(lasts),
        views=Views(dtype, total, views),
        call=compiled_call(parts, "w, r, a, n"),
    )
