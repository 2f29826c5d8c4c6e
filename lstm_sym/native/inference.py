"""Inference through the C: ``forward(..., cache=False)`` (``<cell>_infer_*``) and ``step``
(``<cell>_step_forward_*``), with the training forward's checks and no cache.

Per size, a plan lays out one work buffer, taken from the cell's
:class:`~lstm_sym.native.workspace.Workspace` and given back when the call returns: the
parameters in the C layout, the initial states given, then the C work area
(``<cell>_infer_work_size``: O(batch x hidden) plus the packed recurrent weights). The events
are read where they are when they have the dtype and are C-contiguous (converted once
otherwise): nothing of the size of the sequence is allocated but the outputs.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from . import checks
from .calls import ALIGN, Views, address, compiled_call, layout, returned_shape
from .prepared import PreparedParameters

_CANONICAL = {
    np.dtype(np.float64): np.dtype(np.float64),
    np.dtype(np.float32): np.dtype(np.float32),
}


class InferPlan:
    """An inference call's per-size work done once (see :func:`infer_plan`)."""

    __slots__ = ("call", "packed", "parameters", "result_size", "results", "work_size")

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


def work_size_function(cell, field="infer_work_size"):
    """``<cell>_infer_work_size`` (or the size function of ABI ``field``) of the cell's
    library, typed, and its size arguments."""
    symbol, size_args = getattr(cell.abi, field)
    function = getattr(cell.library, symbol)
    function.restype = ctypes.c_size_t
    function.argtypes = [ctypes.c_size_t] * len(size_args)
    return function, size_args


def infer_plan(cell, key) -> InferPlan:
    """The regions of the work and result buffers and the C call of ``<cell>_infer_*`` with
    every argument's source written in: a size, None (NULL: a zero initial state), a byte
    offset in the work buffer (``w``) or in the result buffer (``r``), the events' address
    (``e``) or the lengths' (``n``). ``key`` as :func:`lstm_sym.native.calls.forward_plan`'s."""
    dtype, steps, batch, event_size, hidden, projection, given, batched = key
    abi = cell.abi
    values = {
        "steps": steps,
        "batch": batch,
        "event_size": event_size,
        "hidden_size": hidden,
        "projection_size": projection,
    }
    function, size_args = cell.infer_work_size
    work = function(*(values[n] for n in size_args))
    if work == 0:
        raise ValueError(f"sizes too large for the inference work: batch={batch}, hidden={hidden}")
    shorts = [s.short for s in abi.states]
    flags = [bool(given >> (len(shorts) - 1 - i) & 1) for i in range(len(shorts))]
    parameters, at = {}, 0  # the parameters in the C layout, at ``p``
    for name, count in zip(cell.packed_arrays, _counts(abi, cell.packed_arrays, values)):
        parameters[name] = at
        at += count
    names = [f"{s}0" for s, g in zip(shorts, flags, strict=True) if g]
    regions, packed = {}, at  # the initial states after them (when not prepared)
    for name, count in zip(names, _counts(abi, names, values)):
        regions[name] = packed
        packed += count
    start = -(-packed // ALIGN) * ALIGN
    regions["work"] = start
    outs = ("outputs", *(f"{s}_last" for s in shorts))
    results, result_size = layout({name: abi.shape(name, values) for name in outs})
    itemsize = dtype.itemsize
    parts = []
    for name, is_size in cell.arguments("infer"):
        if is_size:
            parts.append(repr(values[name]))
        elif name in parameters:
            parts.append(f"p + {parameters[name] * itemsize}")
        elif name in regions:
            parts.append(f"w + {regions[name] * itemsize}")
        elif name in results:
            parts.append(f"r + {results[name][0] * itemsize}")
        elif name == "events":
            parts.append("e")
        elif name == "lengths":
            parts.append("n")
        else:  # an initial state not given: NULL, zeros
            parts.append("None")
    views = [(name, results[name][0], returned_shape(abi, name, values, batched)) for name in outs]
    return InferPlan(
        parameters=at,
        packed=packed,
        work_size=start + work,
        results=Views(dtype, result_size, views),
        result_size=result_size,
        call=compiled_call(parts, "p, w, r, e, n"),
    )


def _counts(abi, names, values) -> list[int]:
    return [math.prod(abi.shape(name, values)) for name in names]


def infer(cell, key, blocks, states, events, lengths, prepared=None):
    """``outputs, final states, None`` of ``<cell>_infer_*`` for checked inputs (``key``,
    ``blocks`` and ``states`` as :meth:`NativeCell.forward` makes them; ``prepared``: the
    :class:`~lstm_sym.native.prepared.PreparedParameters` given, read in place)."""
    dtype = key[0]
    plans = cell._infer_plans
    plan = plans.get(key)
    if plan is None:
        if len(plans) > 64:
            plans.clear()
        plan = plans[key] = infer_plan(cell, key)
    in_place = events.dtype is dtype and (flags := events.flags).c_contiguous and flags.aligned
    if not in_place:  # the C reads the events in place when it can
        events = np.ascontiguousarray(events, dtype=dtype)
    if (
        prepared is not None
        and in_place
        and lengths is None
        and len(states) in (0, len(cell._shorts))  # none given, or every one
    ):
        # the next call of this shape on these parameters (with initial states of these shapes
        # and this dtype, when given) takes NativeCell.forward's fast path
        prepared.infers[cell, events.shape, dtype, len(states)] = FastInfer(
            plan=plan,
            entry=cell._entries["infer", dtype][0],
            parameters=prepared.address(dtype),
            states=tuple(v.shape for v in states),
        )
    workspace = cell.workspace
    work = workspace.take(dtype, plan.work_size)
    try:
        base = address(work)
        flat = [v.reshape(-1) for v in states]
        if prepared is None:  # the parameters in the C layout, then the initial states
            parameters = base
            np.concatenate([*blocks, *flat], out=work[: plan.packed], casting="unsafe")
        else:
            parameters = prepared.address(dtype)
            if flat:
                np.concatenate(flat, out=work[plan.parameters : plan.packed], casting="unsafe")
        result = np.empty(plan.result_size, dtype=dtype)
        entry = cell._entries["infer", dtype][0]
        status = plan.call(
            entry,
            parameters,
            base,
            address(result),
            address(events),
            None if lengths is None else lengths.ctypes.data,
        )
    finally:
        workspace.give(work)
    if status != 0:
        cell.fail("infer", dtype, status)
    outputs, *lasts = plan.results(result)
    return outputs, tuple(lasts) if len(lasts) > 1 else lasts[0], None


class FastInfer:
    """What :func:`fast_infer` needs for one events shape (and one shape of each initial state
    when they are given), kept by the prepared parameters."""

    __slots__ = ("entry", "parameters", "plan", "states")

    def __init__(self, plan, entry, parameters, states=()):
        self.plan, self.entry, self.parameters = plan, entry, parameters
        self.states = states  # the initial states' shapes; () when none are given

    def takes(self, states, dtype) -> bool:
        """``states`` (one per state) are arrays of ``dtype`` and the shapes this call ran
        with, C-contiguous: the fast path copies them as they are."""
        for value, shape in zip(states, self.states, strict=True):
            if (
                type(value) is not np.ndarray
                or value.dtype is not dtype
                or value.shape != shape
                or not value.flags.c_contiguous
            ):
                return False
        return True


def fast_infer(cell, fast: FastInfer, events, states=()):
    """``forward(prepared, events, *states, cache=False)`` for events of a shape and dtype
    these prepared parameters ran before (C-contiguous, aligned; no lengths), and no initial
    states or every one as :meth:`FastInfer.takes` accepts: no further checks."""
    plan = fast.plan
    dtype = events.dtype
    workspace = cell.workspace
    work = workspace.take(dtype, plan.work_size)
    try:
        if states:  # copied after the (unused) parameter part, where the plan reads them
            flat = [v.reshape(-1) for v in states]
            np.concatenate(flat, out=work[plan.parameters : plan.packed], casting="no")
        result = np.empty(plan.result_size, dtype=dtype)
        status = plan.call(
            fast.entry, fast.parameters, address(work), address(result), address(events), None
        )
    finally:
        workspace.give(work)
    if status != 0:
        cell.fail("infer", dtype, status)
    outputs, *lasts = plan.results(result)
    return outputs, tuple(lasts) if len(lasts) > 1 else lasts[0], None


# ---------------------------------------------------------------------------------------------
# Streaming: one step through <cell>_step_forward_*
# ---------------------------------------------------------------------------------------------


class StepPlan:
    """A step's per-size work done once (see :func:`step_plan`)."""

    __slots__ = ("bound", "call", "offsets", "parameters", "size", "views")

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)


def step_plan(cell, key) -> StepPlan:
    """One buffer per call holds the C work and the results (the output, then each new state);
    the parameters are read at ``p`` (a prepared buffer, or the workspace's copy in the C
    layout), the event at ``e`` and the previous states at ``s[k]`` (None: zeros). The C call
    of ``<cell>_step_forward_*`` with every other argument written in (``saved``: NULL)."""
    dtype, batch, event_size, hidden, projection, batched = key
    abi = cell.abi
    values = {
        "batch": batch,
        "event_size": event_size,
        "hidden_size": hidden,
        "projection_size": projection,
    }
    function, size_args = cell.step_work_size
    work = function(*(values[n] for n in size_args))
    if work == 0:
        raise ValueError(f"sizes too large for a step: batch={batch}, hidden={hidden}")
    parameters, at = {}, 0
    for name, count in zip(cell.packed_arrays, _counts(abi, cell.packed_arrays, values)):
        parameters[name] = at
        at += count
    shorts = [s.short for s in abi.states]
    sizes = {s.short: values[s.size] for s in abi.states}
    counts = {"work": work, "output": batch * sizes[abi.output_state]}
    counts.update({f"{s}_next": batch * sizes[s] for s in shorts})
    regions, total = {}, 0
    for name, count in counts.items():
        regions[name] = total
        total += -(-count // ALIGN) * ALIGN
    previous = [f"{s}_prev" for s in shorts]
    itemsize = dtype.itemsize
    parts = []
    for name, is_size in cell.arguments("step_forward"):
        if is_size:
            parts.append(repr(values[name]))
        elif name in parameters:
            parts.append(f"p + {parameters[name] * itemsize}")
        elif name in regions:
            parts.append(f"b + {regions[name] * itemsize}")
        elif name == "event":
            parts.append("e")
        elif name in previous:
            parts.append(f"s[{previous.index(name)}]")
        else:  # the saved values (not kept): NULL
            parts.append("None")

    def shape(short):
        return (batch, sizes[short]) if batched else (sizes[short],)

    views = [("output", regions["output"], shape(abi.output_state))]
    views += [(f"{s}_next", regions[f"{s}_next"], shape(s)) for s in shorts]
    # step_forward_bound's `bound` array but the parameters' base address (added per
    # prepared parameters): sizes, the parameter arrays' byte offsets, the results' offsets
    bound = []
    for name, form in abi.step_bound:
        if form == "size":
            bound.append((form, values[name]))
        elif form == "address":
            bound.append((form, parameters[name] * itemsize))
        else:
            bound.append((form, regions[name]))
    return StepPlan(
        bound=tuple(bound),
        parameters=at,
        offsets=tuple(regions[f"{s}_next"] * itemsize for s in shorts),
        size=max(total, 1),
        views=Views(dtype, max(total, 1), views),
        call=compiled_call(parts, "p, b, e, s"),
    )


def _state_address(value, dtype, kept):
    """The address of a previous state for the C (converted to a C-contiguous ``dtype`` copy,
    kept alive in ``kept``, unless it is one already)."""
    if not (value.dtype is dtype and (flags := value.flags).c_contiguous and flags.aligned):
        value = np.ascontiguousarray(value, dtype=dtype)
        kept.append(value)
    return address(value)


def _usable(value, dtype, shape) -> bool:
    """Whether the C can read ``value`` in place as a ``dtype`` array of ``shape``."""
    return (
        type(value) is np.ndarray
        and value.dtype is dtype
        and value.shape == shape
        and (flags := value.flags).c_contiguous
        and flags.aligned
    )


def step(cell, parameters, event, state):
    """``output, state`` of one step (see :meth:`NativeCell.step`), with the checks and errors
    of the generated module's ``step``.

    The streaming loop's usual call (prepared parameters, an event and previous states of
    their dtype and shapes, C-contiguous: the states a step returned) goes straight to the C
    with the plan its prepared parameters keep for the event's shape; anything else takes the
    checked path below."""
    if type(parameters) is PreparedParameters and type(event) is np.ndarray:
        fast = parameters.steps.get((cell, event.shape, event.dtype))
        if (
            fast is not None
            and (flags := event.flags).c_contiguous
            and flags.aligned
            and (addresses := fast.addresses(state)) is not None
        ):
            buffer = np.empty(fast.size, dtype=fast.dtype)
            at = address(buffer)
            status = fast.call(at, address(event), addresses)
            if status != 0:
                cell.fail("step_forward", fast.dtype, status)
            output, *new = fast.views(buffer)
            output[...] = new[fast.output]
            result = tuple(new) if len(new) > 1 else new[0]
            # the next step usually passes these states back: their addresses are known
            fast.returned = (result, [at + offset for offset in fast.offsets])
            return output, result
    if type(parameters) is PreparedParameters and parameters.cell == cell.CELL:
        prepared, proxies, parameters_dtype = parameters, parameters.proxies, parameters.dtype
    else:
        proxies, blocks, parameters_dtype, prepared = cell._checked_parameters(parameters)
    if type(event) is not np.ndarray or event.dtype.kind not in "biuf":
        event = checks.real_array(event, "event")
    shape = event.shape
    event_size = parameters.event_size
    if len(shape) not in (1, 2) or shape[-1] != event_size or 0 in shape:
        raise ValueError(
            f"event must have shape ({event_size},) or (batch, {event_size}) "
            f"([batch,] event_size), got {shape}"
        )
    batched = len(shape) == 2
    batch = shape[0] if batched else 1
    hidden = parameters.hidden_size
    projection = parameters.projection_size if cell.abi.projected else None
    dtype = _CANONICAL.get(event.dtype, event.dtype)
    same = parameters_dtype is dtype
    states = cell.no_states
    if state is not None:
        count = len(cell.STATES)
        if count == 1:
            state = (state,)
        elif type(state) not in (tuple, list) or len(state) != count:
            raise TypeError(
                f"state must be a tuple of {count} arrays {cell.STATES} (forward's final states) "
                f"or None, got {type(state).__name__}"
                + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else "")
            )
        states = []
        for k, ((entry, size), value) in enumerate(
            zip(cell._sizes(hidden, projection), state, strict=True)
        ):
            if type(value) is not np.ndarray or value.dtype.kind not in "biuf":
                value = checks.real_array(value, "state" if count == 1 else f"state[{k}]")
            expected = (batch, size) if batched else (size,)
            if value.shape != expected:
                name = "state" if count == 1 else f"state[{k}]"
                raise ValueError(
                    f"{name} ({entry.name}) must have shape {expected} (the event's batch, the "
                    f"state's size), got {value.shape}"
                )
            if value.dtype is not dtype:
                same = False
            states.append(value)
    if not same:
        given = [v for v in states if v is not None]
        dtype = _CANONICAL[checks.float_dtype(event, *given, *proxies)]
    key = (dtype, batch, event_size, hidden, projection, batched)
    plan = cell._step_plans.get(key)
    if plan is None:
        if len(cell._step_plans) > 64:
            cell._step_plans.clear()
        plan = cell._step_plans[key] = step_plan(cell, key)
    kept = []  # converted inputs: alive until the C call returns
    if not (event.dtype is dtype and (flags := event.flags).c_contiguous and flags.aligned):
        event = np.ascontiguousarray(event, dtype=dtype)
    addresses = [None if v is None else _state_address(v, dtype, kept) for v in states]
    buffer = np.empty(plan.size, dtype=dtype)
    entry = cell._entries["step_forward", dtype][0]
    if prepared is not None:
        status = plan.call(
            entry, prepared.address(dtype), address(buffer), address(event), addresses
        )
    else:
        workspace = cell.workspace
        work = workspace.take(dtype, plan.parameters)
        try:
            np.concatenate(blocks, out=work, casting="unsafe")
            status = plan.call(entry, address(work), address(buffer), address(event), addresses)
        finally:
            workspace.give(work)
    if status != 0:
        cell.fail("step_forward", dtype, status)
    output, *new = plan.views(buffer)
    output[...] = new[cell.output_index]
    if prepared is not None and event.dtype is dtype and event.dtype is parameters.dtype:
        # the next call of this shape with states of this dtype takes the fast path above
        parameters.steps[cell, event.shape, event.dtype] = _fast_step(
            cell, plan, prepared.address(dtype), dtype, new
        )
    return output, tuple(new) if len(new) > 1 else new[0]


def _fast_step(cell, plan: StepPlan, parameters: int, dtype, new) -> FastStep:
    """The fast path's call of ``<cell>_step_forward_bound_*``: five arguments (a ctypes call
    costs about 0.1 us per argument) with the sizes, the parameters' addresses and the results'
    offsets in a ``bound`` array written here once."""
    bound = np.array(
        [parameters + value if form == "address" else value for form, value in plan.bound],
        dtype=np.uint64,
    )
    count = len(new)
    states = ", ".join(f"s[{k}]" for k in range(count))
    call = eval(  # the call with the entry and the bound array's address written in
        f"lambda r, e, s: f(b, e, {states}, r)",
        {"f": cell._entries["step_forward_bound", dtype][0], "b": address(bound)},
    )
    return FastStep(
        bound=bound,
        call=call,
        offsets=plan.offsets,
        size=plan.size,
        dtype=dtype,
        views=plan.views,
        output=cell.output_index,
        shapes=tuple(value.shape for value in new),
        dtypes=(dtype,) * count,
    )


class FastStep:
    """What the fast path of :func:`step` needs for one event shape, kept by the prepared
    parameters: the call of the C entry and its ``bound`` array (:func:`_fast_step`), the
    buffer's size and views, the states' shapes and dtypes, and the addresses of the last
    states it returned and the last it was given (a streaming loop passes the same states
    again or the ones just returned)."""

    __slots__ = (
        "bound",
        "call",
        "dtype",
        "dtypes",
        "given",
        "no_states",
        "offsets",
        "output",
        "returned",
        "shapes",
        "size",
        "views",
    )

    def __init__(self, **fields):
        self.given = self.returned = (None, None)
        for name, value in fields.items():
            setattr(self, name, value)
        self.no_states = (None,) * len(self.shapes)

    def addresses(self, state):
        """The C addresses of ``state`` (None: zeros), or None if the fast path cannot take it.

        States seen last (returned or given) keep their addresses: they are held here, so
        their memory cannot move, and only their dtype and shape (which can be reassigned in
        place) are checked again."""
        if state is None:
            return self.no_states
        known, addresses = self.returned
        if state is not known:
            known, addresses = self.given
        if state is known:
            if len(self.shapes) == 1:
                state = (state,)
            for value, dtype, shape in zip(state, self.dtypes, self.shapes):
                if value.dtype is not dtype or value.shape != shape:
                    return None
            return addresses
        if type(state) is tuple:
            if len(state) != len(self.shapes) or not all(
                map(_usable, state, self.dtypes, self.shapes)
            ):
                return None
            addresses = [address(v) for v in state]
        elif len(self.shapes) == 1 and _usable(state, self.dtypes[0], self.shapes[0]):
            addresses = [address(state)]
        else:
            return None
        self.given = (state, addresses)
        return addresses
