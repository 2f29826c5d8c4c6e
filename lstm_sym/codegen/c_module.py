"""C emitter: prints a :class:`~lstm_sym.plan.KernelPlan` as ``generated/<cell>.h`` and ``.c``.

The grouping of the gates' matrix products (runs, offsets), the saved values and the per-unit
stages are the plan's.

The layout (argument checks, loops, calls of the matrix products) lives in
``templates/c_header.h.jinja`` and ``templates/c_source.c.jinja``; every per-unit expression is
printed from the derivation by :mod:`.c_printer`, once per precision (``_f64`` and ``_f32``
entry points). The matrix products, exp/tanh/sigmoid and the OpenMP sharing are the
hand-written C runtime in ``lstm_sym/runtime`` (copied into ``generated/`` beside the cells);
each block of a cell cites the label of its equation in ``derivations/<cell>.tex``.
"""

from __future__ import annotations

import sympy as sp

from ..derive import Derivation, carry
from ..plan import H, KernelPlan, Stage, as_plan
from ..spec import SpecError, gate_hidden
from . import c_api, latex_document
from .c_printer import PRECISIONS, c_code
from .templates import render

#: Prefix of the hand-written runtime's functions (``lstm_sym/runtime``) the cells call.
RUNTIME = "lstm_sym"


def _linear_kernels(derivation: Derivation) -> dict[str, str]:
    """Check the matrix-calculus adjoints have the forms the C matrix products implement.

    Returns them as text for the comments: ``dW = Delta^T X``, ``dX = Delta W``, ``db = Delta^T 1``.
    """
    linear = derivation.linear
    names = linear.symbols
    delta, inputs, weights = names["Delta"], names["X"], names["W"]
    ones = sp.OneMatrix(names["N"], 1)
    expected = {
        "weights": sp.MatMul(delta.T, inputs),
        "inputs": sp.MatMul(delta, weights),
        "bias": sp.MatMul(delta.T, ones),
    }
    for kind, form in expected.items():
        if getattr(linear, kind) != form:
            raise SpecError(f"linear adjoint d{kind} = {getattr(linear, kind)} has no C kernel")
    return {"weights": "Delta^T X", "inputs": "Delta W", "bias": "Delta^T 1"}


def _projection_kernels(derivation: Derivation) -> dict[str, str] | None:
    """The matrix-calculus adjoints of a projected state's ``Z = X W^T`` (``new = W unit``),
    checked to have the forms the C matrix products implement; None without a projection."""
    linear = derivation.projection
    if linear is None:
        return None
    names = linear.symbols
    expected = {
        "weights": sp.MatMul(names["Delta"].T, names["X"]),
        "inputs": sp.MatMul(names["Delta"], names["W"]),
    }
    for kind, form in expected.items():
        if getattr(linear, kind) != form:
            raise SpecError(f"projection adjoint d{kind} = {getattr(linear, kind)} has no C kernel")
    return {"weights": "Delta^T X", "inputs": "Delta W"}


def _labels(kernel: KernelPlan) -> set[str]:
    """The ``\\label``s of the equations in ``derivations/<cell>.tex``, which the C cites."""
    document = latex_document.build(kernel)
    return {e.label for equations in document.sections.values() for e in equations}


def _cite(labels: set[str], *candidates: str) -> str:
    """The first of ``candidates`` that is an equation of the derivation, else ``""``."""
    return next((label for label in candidates if label in labels), "")


def _eq(kind: str, name: str) -> str:
    return f"eq:{kind}-{name.replace('_', '-')}"


def _precision(kernel: KernelPlan, prefix: str, suffix: str, labels: set[str]) -> dict:
    """Everything precision-dependent: the printed per-unit code and the numerics helpers."""
    derivation = kernel.derivation

    def code(expr) -> str:
        return c_code(expr, RUNTIME, suffix)

    ctype = PRECISIONS[suffix]["ctype"]
    return {
        "suffix": suffix,
        "real": ctype,
        # Columns of a packed panel of W_hidden (the runtime's tuning constant, lstm_sym_tuning.h)
        "panel": f"LSTM_SYM_PANEL_{suffix.upper()}",
        "zero": code(sp.Float(0)),
        # The per-unit stages, what their outputs read (the plan's liveness), each line with the
        # label of its equation in derivations/<cell>.tex
        "forward_lines": [
            {
                "note": a.note,
                "code": f"const {ctype} {a.target} = {code(a.expr)};",
                "label": _cite(labels, _eq("forward", a.target.name)),
            }
            for stage in kernel.forward_step
            if isinstance(stage, Stage)
            for a in stage.needed()
        ],
        "backward_lines": [
            {
                "note": a.note,
                "code": f"const {ctype} {a.target} = {code(a.expr)};",
                "label": _cite(labels, _eq("cse", a.target.name)),
            }
            for a in kernel.stage("backward").needed()
        ],
        "prev_adjoints": {
            s.prev.name: code(derivation.backward.outputs[s.prev]) for s in derivation.spec.states
        },
        "gate_adjoints": {
            g.symbol.name: code(derivation.backward.outputs[g.symbol])
            for g in derivation.gate_inputs
        },
        "unit_adjoints": {
            p.name: code(derivation.backward.outputs[p]) for p in derivation.spec.unit_parameters
        },
        **_source_stages(kernel, code, ctype, labels),
    }


def _source_stages(kernel: KernelPlan, code, ctype, labels: set[str]) -> dict:
    """Hidden sources: the forward's first per-unit stage (only what the sources need) and the
    backward's second stage (the sourced gates' hidden-part adjoints)."""
    sources = kernel.unit_sources
    if not sources:
        return {}
    first = kernel.forward_step[0].needed(sources)
    stage = kernel.stage("backward_sources")
    outputs = kernel.derivation.source_backward.outputs

    def line(a) -> dict:
        return {
            "note": a.note,
            "code": f"const {ctype} {a.target} = {code(a.expr)};",
            "label": _cite(labels, _eq("forward", a.target.name), _eq("cse", a.target.name)),
        }

    return {
        "source_forward_lines": [line(a) for a in first],
        "source_forward_reads": sorted(s.name for s in stage_reads(first)),
        "source_backward_lines": [line(a) for a in stage.assignments],
        "source_backward_reads": sorted(s.name for s in stage.reads()),
        "source_adjoints": {
            g: code(outputs[gate_hidden(g)]) for r in kernel.runs if r.unit for g in r.gates
        },
    }


def stage_reads(assignments) -> frozenset:
    return frozenset().union(*(a.expr.free_symbols for a in assignments))


def context(kernel: KernelPlan, command: str) -> dict:
    """Everything the templates need, as plain strings and lists."""
    derivation = kernel.derivation
    spec = derivation.spec
    api = c_api.functions(spec)
    prefix = spec.name
    gate_index = {g: k for k, g in enumerate(spec.gates)}
    forward_uses = set().union(*(s.reads() for s in kernel.forward_step if isinstance(s, Stage)))
    backward_uses = kernel.stage("backward").reads()
    gate_inputs = [
        {"symbol": g.symbol.name, "kind": g.kind, "gate": g.gate, "index": gate_index[g.gate]}
        for g in derivation.gate_inputs
    ]
    # Values backward reads per step: any gate input it needs, then the saved activations.
    cache_values = [slot.symbol.name for slot in kernel.saved]
    states = [
        {
            "name": layout.name,
            "short": s.short,
            "prev": s.prev.name,
            "new": s.new.name,
            "unit": s.unit.name,
            "projected": layout.projected,
            "size": "hidden_size" if layout.size == H else "projection_size",
            "units": "units" if layout.size == H else "projected_units",
            "carry": carry(s.unit).name,
            "carry_used": carry(s.unit) in backward_uses,
            "is_output": layout.is_output,
            "is_recurrent": layout.is_recurrent,
            "prev_in_forward": s.prev in forward_uses,
            "prev_in_backward": s.prev in backward_uses,
        }
        for layout in kernel.states
        for s in [layout.state]
    ]
    sources = _sources(kernel, cache_values)
    labels = _labels(kernel)
    return {
        "name": spec.name,
        "prefix": prefix,
        "PREFIX": prefix.upper(),
        "title": spec.title,
        "description": spec.description.strip(),
        "source": spec.source,
        "command": command,
        "gates": list(spec.gates),
        "states": states,
        "output": next(s for s in states if s["is_output"]),
        "recurrent": next(s for s in states if s["is_recurrent"]),
        "unit_parameters": [
            {"name": p.name, "in_forward": p in forward_uses, "in_backward": p in backward_uses}
            for p in spec.unit_parameters
        ],
        "gate_inputs": gate_inputs,
        # Pointers the per-unit loops test for NULL (they get a copy without the tests).
        "forward_optional": [f"{s['short']}_prev" for s in states if s["prev_in_forward"]]
        + ["saved"],
        "backward_optional": [
            "d_output" for s in states if s["is_output"] and s["carry_used"] and not s["projected"]
        ]
        + [f"{s['short']}_prev" for s in states if s["prev_in_backward"]],
        "summed": derivation.summed,
        "projected": kernel.projected is not None,
        "projected_state": next((s for s in states if s["projected"]), None),
        # Index in the saved values of a projected state's per-unit vector (dW_projection reads it).
        "projection_index": cache_values.index(kernel.projected.state.unit.name)
        if kernel.projected is not None
        else None,
        "cache_values": cache_values,
        # Saved values the per-unit backward reads (all but a projection's vector).
        "backward_values": [slot.symbol.name for slot in kernel.saved if slot.per_step],
        "forward_notes": [a.note for a in derivation.forward],
        "linear": _linear_kernels(derivation),
        "projection": _projection_kernels(derivation),
        "functions": [
            {
                "name": f.name,
                "summary": f.summary,
                "args": [vars(a) | {"pointer": a.pointer} for a in f.args],
            }
            for f in api
        ],
        "precisions": [_precision(kernel, prefix, suffix, labels) for suffix in ("f64", "f32")],
        # The equations of derivations/<cell>.tex the blocks of the C implement
        "cites": {
            "projections": ", ".join(
                label
                for g in derivation.gate_inputs
                if (label := _cite(labels, _eq("projection", g.symbol.name)))
            ),
            "projected": _cite(labels, _eq("projection", spec.projected_state.new.name))
            if spec.projected_state is not None
            else "",
            "bptt": _cite(
                labels,
                *(_eq("bptt-through", s.name) for s in spec.states if s.prev == spec.recurrent),
            ),
            "linear": ", ".join(
                label
                for kind in ("weights", "bias", "inputs")
                if (label := _cite(labels, _eq("linear", kind)))
            ),
        },
        **sources,
        # Both weight gradients (and the bias gradient) from one packing of the deltas: the
        # gates share their deltas, read only the recurrent state, one block each.
        "shared_gradients": kernel.product("d_event_weights").shared,
    }


def _sources(kernel: KernelPlan, cache_values: list[str]) -> dict:
    """Hidden sources, from the plan: the same-step sources (``sources``), the gates reading the
    recurrent state in runs of consecutive gates (``recurrent_runs``) and the other gates in
    runs reading the same sources (``groups``), each one matrix product over its sources side
    by side. ``offset``: where a run's hidden weights start, in (H x H) blocks: every gate's
    weights are (H, blocks * H), stored one gate after the other."""
    unit_sources = list(kernel.unit_sources)
    shorts = {s.state.prev: s.state.short for s in kernel.states}
    recurrent_runs = [
        {"start": r.first, "count": len(r.gates), "offset": r.offset} for r in kernel.recurrent_runs
    ]
    groups = [
        {
            "gate": run.gates[0],
            "gates": list(run.gates),
            "start": run.first,
            "count": len(run.gates),
            "offset": run.offset,
            "width": run.width,
            "unit": run.unit,
            "has_prev": any(s in shorts for s in run.sources),
            "symbols": ", ".join(s.name for s in run.sources),
            "blocks": [
                {"state": True, "short": shorts[s], "symbol": s.name}
                if s in shorts
                else {
                    "state": False,
                    "index": unit_sources.index(s),
                    "saved_index": cache_values.index(s.name),
                    "symbol": s.name,
                }
                for s in run.sources
            ],
            # The same sources as the run before (emitted right after it): gathered already
            "reuse": previous is not None and previous.sources == run.sources,
        }
        for previous, run in zip((None, *kernel.runs), kernel.runs, strict=False)
    ]
    counts = [len(r.gates) for r in kernel.recurrent_runs + kernel.runs]
    widths = [r.width for r in kernel.runs]
    return {
        "sourced": bool(kernel.runs),
        "wide": kernel.wide,
        "blocks": dict(zip(kernel.gates, kernel.blocks, strict=True)),
        "hidden_blocks": sum(kernel.blocks),
        "sources": [
            {
                "symbol": symbol.name,
                "saved_index": cache_values.index(symbol.name),
                "carry": carry(symbol).name,
            }
            for symbol in unit_sources
        ],
        "stage2_gates": [
            {"name": g, "index": run.first + k}
            for run in kernel.runs
            if run.unit
            for k, g in enumerate(run.gates)
        ],
        "groups": groups,
        "recurrent_runs": recurrent_runs,
        # Scratch of a step, in (B x H) blocks: the same-step sources (or their adjoints), the
        # sources of one run side by side (or their adjoints), one run's product.
        "gathered_at": len(unit_sources),
        "part_at": len(unit_sources) + max(widths, default=0),
        "scratch_units": len(unit_sources) + max(widths, default=0) + max(counts, default=0),
    }


def emit_header(kernel: KernelPlan | Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>.h`` (a derivation is planned first)."""
    return render("c_header.h.jinja", context(as_plan(kernel), command))


def emit_source(kernel: KernelPlan | Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>.c`` (a derivation is planned first)."""
    return render("c_source.c.jinja", context(as_plan(kernel), command))
