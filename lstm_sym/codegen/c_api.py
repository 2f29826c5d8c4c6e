"""The public C API of a cell: entry points and their named arguments, from the spec alone.

Both the C emitter (which prints the prototypes and the NULL checks) and the Python binding
(which calls the entry points through ctypes) read the argument order from here, so the two
cannot drift apart. Nothing here needs the derivation.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import CellSpec


@dataclass(frozen=True)
class Arg:
    """One argument: ``kind`` is ``size`` (a ``size_t``), ``in`` (``const real *``), ``out``
    (``real *``, written) or ``inout``; an ``optional`` pointer may be NULL (see ``doc``)."""

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
    names = [n for n in shapes if only is None or n in only or n not in _STACKED]
    if gradient:
        return [Arg(f"d_{n}", "out", f"dL/d({n}), {shapes[n]}") for n in names]
    return [Arg(n, "in", shapes[n]) for n in names]


_STACKED = ("event_weights", "event_bias", "hidden_weights", "hidden_bias")
_SIZES = (
    Arg("batch", "size", "batch size B >= 1"),
    Arg("event_size", "size", "event (input) features X >= 1"),
    Arg("hidden_size", "size", "hidden units H >= 1"),
)
_STEPS = Arg("steps", "size", "sequence length T >= 1")


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
            Arg("d_events", "out", "dL/d(events), (steps, batch, event_size)"),
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
    return (forward, backward, step_forward, step_backward)


def names(spec: CellSpec) -> set[str]:
    """Every argument name of the API (spec symbols must not take them)."""
    return {a.name for f in functions(spec) for a in f.args}
