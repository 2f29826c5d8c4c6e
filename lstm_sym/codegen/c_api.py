"""The public C API of a cell: entry points and their named arguments, from the spec alone.

Both the C emitter (which prints the prototypes and the NULL checks) and the Python binding
(which calls the entry points through ctypes) read the argument order from here, so the two
cannot drift apart. Nothing here needs the derivation but whether the cell has the scan entry
points (``forward_scan``/``backward_scan``: :func:`has_scan`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..spec import CellSpec


@dataclass(frozen=True)
class Arg:
    """One argument: ``kind`` is ``size`` (a ``size_t``), ``in`` (``const real *``), ``out``
    (``real *``, written), ``inout``, ``lengths`` (``const int64_t *``, each batch row's number
    of steps) or ``bound`` (``const uint64_t *``: :func:`step_bound`); an ``optional`` pointer
    may be NULL (see ``doc``)."""

    name: str
    kind: str
    doc: str
    optional: bool = False

    @property
    def pointer(self) -> bool:
        return self.kind != "size"


@dataclass(frozen=True)
class Function:
    name: str  # without the cell prefix and precision suffix, e.g. "forward"
    summary: str
    args: tuple[Arg, ...]


def _weights(spec: CellSpec, gradient: bool = False, only=None) -> list[Arg]:
    projected = spec.projected_state
    shapes = {
        "event_weights": "(gates * hidden_size, event_size), gates stacked",
        "event_bias": "(gates * hidden_size)",
        "hidden_weights": "(gates * hidden_size, hidden_size), gates stacked"
        if projected is None
        else "(gates * hidden_size, projection_size), gates stacked",
        "hidden_bias": "(gates * hidden_size)",
    }
    blocks = [len(spec.sources(g)) for g in spec.gates]
    if any(n != 1 for n in blocks):  # hidden_sources: gates read several sources side by side
        shapes["hidden_weights"] = (
            f"({sum(blocks)} * hidden_size * hidden_size): every gate's (hidden_size, n * "
            "hidden_size) weights one after the other, n = "
            + ", ".join(f"{n} ({g})" for g, n in zip(spec.gates, blocks, strict=True))
        )
    shapes.update({p.name: "(hidden_size): per-unit parameter" for p in spec.unit_parameters})
    if projected is not None:
        shapes["projection_weights"] = (
            f"(projection_size, hidden_size): {projected.new} = W {projected.projection}, no bias"
        )
    if not spec.hidden_parts:  # no gate has a hidden part: no hidden arrays at all
        del shapes["hidden_weights"], shapes["hidden_bias"]
    names = [n for n in shapes if only is None or n in only or n not in _STACKED]
    if gradient:
        return [Arg(f"d_{n}", "out", f"dL/d({n}), {shapes[n]}") for n in names]
    return [Arg(n, "in", shapes[n]) for n in names]


_STACKED = ("event_weights", "event_bias", "hidden_weights", "hidden_bias")


def stacked_arrays(spec: CellSpec) -> tuple[str, ...]:
    """The gate-stacked parameter arrays of ``spec``: the event weights and biases, and the
    hidden ones when some gate has a hidden part (``CellSpec.hidden_parts``)."""
    return _STACKED if spec.hidden_parts else _STACKED[:2]


_SIZES = (
    Arg("batch", "size", "batch size B >= 1"),
    Arg("event_size", "size", "event (input) features X >= 1"),
    Arg("hidden_size", "size", "hidden units H >= 1"),
)
_STEPS = Arg("steps", "size", "sequence length T >= 1")
_LENGTHS = Arg(
    "lengths",
    "lengths",
    "(batch): row b runs lengths[b] steps, 1 to steps (past it its states are kept and its "
    "outputs are zero); NULL: every row runs all steps",
    True,
)


def _sizes(spec: CellSpec) -> tuple[Arg, ...]:
    projected = spec.projected_state
    if projected is None:
        return _SIZES
    return (
        *_SIZES,
        Arg("projection_size", "size", f"entries P >= 1 of the {projected.name} state"),
    )


def _size(spec: CellSpec, state) -> str:
    """The size name of ``state``'s vectors: hidden_size, or projection_size if projected."""
    return "hidden_size" if state.projection is None else "projection_size"


def functions(spec: CellSpec) -> tuple[Function, ...]:
    """The entry points of ``spec``'s kernel, in the order the header declares them."""
    states = spec.states
    out = spec.output_state.short
    used_by_backward = ("event_weights", "hidden_weights", "projection_weights")
    sizes = _sizes(spec)
    forward = Function(
        "forward",
        "Run the cell over a whole batched sequence, saving what backward needs in `cache`.",
        (
            _STEPS,
            *sizes,
            Arg("events", "in", "(steps, batch, event_size)"),
            _LENGTHS,
            *(
                Arg(
                    f"{s.short}0",
                    "in",
                    f"initial {s.name} state (batch, {_size(spec, s)}); NULL: zeros",
                    True,
                )
                for s in states
            ),
            *_weights(spec),
            Arg(
                "outputs",
                "out",
                f"(steps, batch, {_size(spec, spec.output_state)}): "
                f"the {spec.output_state.name} state of every step",
            ),
            *(
                Arg(f"{s.short}_last", "out", f"final {s.name} state (batch, {_size(spec, s)})")
                for s in states
            ),
            Arg(
                "cache",
                "out",
                "CACHE_SIZE(steps, batch, hidden_size"
                + (", projection_size" if spec.projected_state is not None else "")
                + ") elements, layout above",
            ),
        ),
    )
    backward = Function(
        "backward",
        "Backpropagation through time of a sequence run by forward (same sizes and parameters).",
        (
            _STEPS,
            *sizes,
            Arg("events", "in", "(steps, batch, event_size), as given to forward"),
            Arg("lengths", "lengths", "as given to forward", True),
            *_weights(spec, only=used_by_backward),
            Arg(
                "cache",
                "inout",
                "as written by forward; its scratch part is overwritten, the rest is kept",
            ),
            Arg(
                "d_outputs",
                "in",
                f"dL/d(outputs), (steps, batch, {_size(spec, spec.output_state)})",
            ),
            *(
                Arg(
                    f"d_{s.short}_last",
                    "in",
                    f"dL/d({s.short}_last), (batch, {_size(spec, s)}); NULL: zeros",
                    True,
                )
                for s in states
            ),
            *_weights(spec, gradient=True),
            Arg(
                "d_events",
                "out",
                "dL/d(events), (steps, batch, event_size); NULL: not computed (one matrix "
                "product less)",
                True,
            ),
            *(
                Arg(f"d_{s.short}0", "out", f"dL/d({s.short}0), (batch, {_size(spec, s)})")
                for s in states
            ),
        ),
    )
    step_forward = Function(
        "step_forward",
        "One step of the cell for a batch (streaming inference, or training step by step).",
        (
            *sizes,
            Arg("event", "in", "(batch, event_size)"),
            *(
                Arg(
                    f"{s.short}_prev",
                    "in",
                    f"previous {s.name} state (batch, {_size(spec, s)}); NULL: zeros",
                    True,
                )
                for s in states
            ),
            *_weights(spec),
            *(
                Arg(f"{s.short}_next", "out", f"new {s.name} state (batch, {_size(spec, s)})")
                for s in states
            ),
            Arg(
                "saved",
                "out",
                "STEP_SAVED_SIZE(batch, hidden_size) values for step_backward; NULL: not kept",
                True,
            ),
            Arg("work", "out", "STEP_WORK_SIZE(batch, hidden_size) elements of scratch"),
        ),
    )
    step_backward = Function(
        "step_backward",
        "Backward of one step_forward: adds to the parameter gradients, writes the input adjoints.",
        (
            *sizes,
            Arg("event", "in", "(batch, event_size), as given to step_forward"),
            *(
                Arg(f"{s.short}_prev", "in", "as given to step_forward; NULL: zeros", True)
                for s in states
            ),
            *_weights(spec, only=used_by_backward),
            Arg("saved", "in", "as written by step_forward"),
            *(
                Arg(
                    f"d_{s.short}_next",
                    "in",
                    f"dL/d({s.short}_next), (batch, {_size(spec, s)})"
                    + (", including the output's part" if s.short == out else "")
                    + "; NULL: zeros",
                    True,
                )
                for s in states
            ),
            *(Arg(a.name, "inout", "+= " + a.doc) for a in _weights(spec, gradient=True)),
            Arg("d_event", "out", "dL/d(event), (batch, event_size)"),
            *(
                Arg(f"d_{s.short}_prev", "out", f"dL/d({s.short}_prev), (batch, {_size(spec, s)})")
                for s in states
            ),
            Arg("work", "out", "STEP_WORK_SIZE(batch, hidden_size) elements of scratch"),
        ),
    )
    bound = _bound_entries(spec, step_forward.args)
    step_forward_bound = Function(
        "step_forward_bound",
        "step_forward for a binding that pays for each argument of a call (Python's ctypes): "
        "the other arguments from `bound`, written once per size; the saved values not kept.",
        (
            Arg(
                "bound",
                "bound",
                "one uint64 per further argument of step_forward, in its order: "
                + ", ".join(f"{name} ({form})" for name, form in bound)
                + "; size: its value, address: the array's, offset: elements from `results`",
            ),
            *(a for a in step_forward.args if a.name in _step_passed(spec)),
            Arg("results", "out", "the new states and the work, at the offsets in `bound`"),
        ),
    )
    infer = Function(
        "infer",
        "Inference over a whole batched sequence: forward's outputs and final states, no cache.",
        (
            *forward.args[: -1 - len(states) - 1],
            Arg(
                "outputs",
                "out",
                f"(steps, batch, {_size(spec, spec.output_state)}): "
                f"the {spec.output_state.name} state of every step",
            ),
            *(
                Arg(f"{s.short}_last", "out", f"final {s.name} state (batch, {_size(spec, s)})")
                for s in states
            ),
            Arg(
                "work",
                "out",
                "INFER_WORK_SIZE(batch, event_size, hidden_size"
                + (", projection_size" if spec.projected_state is not None else "")
                + ") elements of scratch",
            ),
        ),
    )
    if not has_scan(spec):
        return (forward, backward, step_forward, step_backward, infer, step_forward_bound)
    # The blocked scan of an affine update (codegen/c_scan.py): forward's and backward's
    # arguments, cache layout and results
    forward_scan = Function(
        "forward_scan",
        "forward as a blocked scan over time (an affine update): its arguments, cache and "
        "results, to rounding.",
        forward.args,
    )
    backward_scan = Function(
        "backward_scan",
        "backward as a blocked reverse scan, to rounding; of a cache of forward or forward_scan.",
        backward.args,
    )
    return (
        forward,
        backward,
        step_forward,
        step_backward,
        infer,
        forward_scan,
        backward_scan,
        step_forward_bound,
    )


def _step_passed(spec: CellSpec) -> tuple[str, ...]:
    """step_forward's arguments step_forward_bound takes itself: the event, the previous states."""
    return ("event", *(f"{s.short}_prev" for s in spec.states))


def step_bound(spec: CellSpec) -> tuple[tuple[str, str], ...]:
    """The entries of ``step_forward_bound``'s ``bound`` array, ``(argument of step_forward,
    form)``: every argument but the event, the previous states and ``saved`` (not kept), in
    step_forward's order; form ``size`` (its value), ``address`` (a parameter array's) or
    ``offset`` (elements from ``results`` to a new state or the work)."""
    step_forward = next(f for f in functions(spec) if f.name == "step_forward")
    return _bound_entries(spec, step_forward.args)


def _bound_entries(spec: CellSpec, arguments) -> tuple[tuple[str, str], ...]:
    passed = _step_passed(spec)
    return tuple(
        (a.name, "size" if a.kind == "size" else "address" if a.kind == "in" else "offset")
        for a in arguments
        if a.name not in passed and a.name != "saved"
    )


def has_scan(spec: CellSpec) -> bool:
    """Whether ``spec``'s C has ``<cell>_forward_scan``/``<cell>_backward_scan``: its update is
    affine in the previous state (:func:`lstm_sym.codegen.c_scan.has_scan` decides it from the
    derivation and the plan, which only this question needs)."""
    from .c_scan import has_scan as decided  # SymPy: only when generating

    return decided(spec)


def names(spec: CellSpec) -> set[str]:
    """Every argument name of the API (spec symbols must not take them)."""
    return {a.name for f in functions(spec) for a in f.args}


# ---------------------------------------------------------------------------------------------
# The ABI as data: generated/<cell>.abi.json, read by the binding (lstm_sym.native) without
# SymPy, the spec or the derivation
# ---------------------------------------------------------------------------------------------

#: Bumped when the meaning of a field of the ABI data changes (the binding refuses others).
ABI_VERSION = 2
PRECISIONS = {"float64": "f64", "float32": "f32"}


def _dim(*factors) -> str:
    """One dimension as data: the product of integers and size names, e.g. ``4*hidden_size``."""
    if 0 in factors:
        return "0"
    return "*".join(str(f) for f in factors if f != 1) or "1"


def _dim_text(dimension) -> str:
    """One axis of a plan buffer's shape as ABI data: a product of an integer and size names,
    e.g. ``4*hidden_size`` for ``4 H`` (a power is written out: ``13*hidden_size*hidden_size``)."""
    from ..plan import SIZE_NAMES  # the plan imports SymPy; only generation comes here

    coefficient, factors = dimension.as_coeff_mul()
    names = []
    for factor in factors:
        base, exponent = factor.as_base_exp()
        if base not in SIZE_NAMES or not exponent.is_Integer or exponent < 1:
            raise ValueError(f"axis {dimension} is not a product of sizes")
        names += [SIZE_NAMES[base]] * int(exponent)
    return _dim(int(coefficient), *names)


def shapes(spec: CellSpec) -> dict[str, list[str]]:
    """Every array argument of forward and backward by name: its shape, one product of sizes per
    axis, read from the kernel plan's buffers (``cache_size`` is what ``<cell>_cache_size``
    returns for the sizes: the cache is opaque to the plan)."""
    from ..plan import plan_cell

    kernel_plan = plan_cell(spec)
    result = {b.name: [_dim_text(n) for n in b.shape] for b in kernel_plan.buffers if b.abi}
    result["cache"] = ["cache_size"]
    return result


def _parameter_layout(spec: CellSpec) -> tuple[list[dict], list[dict]]:
    """How the Python ``Parameters`` / ``Gradients`` attributes sit in the C arrays.

    ``parameters``: each C parameter array (in the order the binding packs them) with the
    attributes whose flattened values it holds, one after the other (gates in ``GATES`` order).
    ``gradients``: each ``Gradients`` attribute with the C output array it is a view of, its
    offset there in elements and its shape (``batch`` axes are dropped for unbatched calls)."""
    table = shapes(spec)
    blocks = [len(spec.sources(g)) for g in spec.gates]
    wide = any(n != 1 for n in blocks)
    parameters, gradients = [], []
    for array in stacked_arrays(spec):
        side, kind = array.split("_")
        rows = table[array][1:]  # one gate's block: hidden_size rows
        for k, gate in enumerate(spec.gates):
            if wide and array == "hidden_weights":  # (H, n * H) per gate, one after the other
                shape = ["hidden_size", _dim(blocks[k], "hidden_size")]
                offset = _dim(sum(blocks[:k]), "hidden_size", "hidden_size")
            else:
                shape = ["hidden_size", *rows]
                offset = _dim(k, *shape)
            gradients.append(
                {
                    "attribute": f"{side}_{gate}_{kind}",
                    "array": f"d_{array}",
                    "offset": offset,
                    "shape": shape,
                }
            )
        parameters.append(
            {"array": array, "attributes": [f"{side}_{gate}_{kind}" for gate in spec.gates]}
        )
    copied = [p.name for p in spec.unit_parameters]
    if spec.projected_state is not None:
        copied.append("projection_weights")
    inputs = [("events", "d_events"), *((f"{s.short}0", f"d_{s.short}0") for s in spec.states)]
    for name in copied:
        parameters.append({"array": name, "attributes": [name]})
    for attribute, array in [*((n, f"d_{n}") for n in copied), *inputs]:
        gradients.append(
            {"attribute": attribute, "array": array, "offset": "0", "shape": table[array]}
        )
    return parameters, gradients


def abi(spec: CellSpec, command: str = "lstm-sym generate") -> dict:
    """The ABI of ``spec``'s C kernel as data (``generated/<cell>.abi.json``): entry points with
    their symbols and arguments, the shape of every array, and where the Python ``Parameters``
    and ``Gradients`` attributes sit in the C arrays."""
    parameters, gradients = _parameter_layout(spec)
    sizes = [_STEPS, *_sizes(spec)]
    cache_args = ["steps", "batch", "hidden_size"]
    if spec.projected_state is not None:
        cache_args.append("projection_size")
    return {
        "generated_by": f"lstm_sym from the cell spec {spec.source} -- DO NOT EDIT",
        "regenerate": command,
        "abi_version": ABI_VERSION,
        "cell": spec.name,
        "sizes": [a.name for a in sizes],
        "gates": list(spec.gates),
        "states": [{"short": s.short, "name": s.name, "size": _size(spec, s)} for s in spec.states],
        "output_state": spec.output_state.short,
        "cache_size": {"symbol": f"{spec.name}_cache_size", "args": cache_args},
        "saved_size": {"symbol": f"{spec.name}_saved_size", "args": cache_args},
        "infer_work_size": {
            "symbol": f"{spec.name}_infer_work_size",
            "args": ["batch", "event_size", *cache_args[2:]],
        },
        "step_work_size": {
            "symbol": f"{spec.name}_step_work_size",
            "args": ["batch", "hidden_size"],
        },
        "error_string": f"{spec.name}_error_string",
        "step_bound": [list(entry) for entry in step_bound(spec)],
        **(
            {"module_init": {k: float(v) for k, v in sorted(spec.module_init.items())}}
            if spec.module_init
            else {}
        ),
        "functions": [
            {
                "name": f.name,
                "summary": f.summary,
                "symbols": {
                    dtype: f"{spec.name}_{f.name}_{suffix}" for dtype, suffix in PRECISIONS.items()
                },
                "args": [{"name": a.name, "kind": a.kind, "optional": a.optional} for a in f.args],
            }
            for f in functions(spec)
        ],
        "shapes": shapes(spec),
        "parameters": parameters,
        "gradients": gradients,
    }


def _json(value, indent: str = "") -> str:
    """``value`` as JSON, a container on one line when it fits in 100 columns, else one entry
    a line: a diff of the ABI then shows the argument or shape that changed."""
    flat = json.dumps(value)
    if not isinstance(value, (dict, list)) or not value or len(indent) + len(flat) <= 100:
        return flat
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + _json(v, inner) for v in value) + f"\n{indent}]"


def emit_abi(spec: CellSpec, command: str = "lstm-sym generate") -> str:
    """The text of ``generated/<cell>.abi.json``: deterministic (insertion order, no times)."""
    return _json(abi(spec, command)) + "\n"
