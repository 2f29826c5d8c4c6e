"""C emitter: prints a :class:`~lstm_sym.derive.Derivation` as ``generated/<cell>.h`` and ``.c``.

The layout (argument checks, loops, matrix products) lives in ``templates/c_header.h.jinja``
and ``templates/c_source.c.jinja``; every per-unit expression is printed from the derivation
by :mod:`.c_printer`, once per precision (``_f64`` and ``_f32`` entry points).
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.c import reserved_words as c_keywords

from ..derive import Derivation, carry
from ..spec import SpecError, real_symbol, where_used
from . import c_api
from .c_printer import PRECISIONS, c_code
from .templates import render

#: Names the generated C uses for its own locals and helpers; spec symbols must not take them.
RESERVED = (
    frozenset(
        """b k u t i j l units rows status gate_stride states saved pre event_part hidden_part
    delta delta_event delta_hidden projection scratch work x e r d_output size_t NULL""".split()
    )
    | frozenset(c_keywords)
    | frozenset({"main", "restrict", "inline", "float", "double"})
)


def _unit_scope(spec) -> set[str]:
    """Parameter names of the per-unit functions, where the spec's symbols become locals."""
    names = set()
    for s in spec.states:
        names |= {f"{s.short}_prev", f"{s.short}_next", f"d_{s.short}"}
    for p in spec.unit_parameters:
        names |= {f"{p.name}_vector", f"d_{p.name}_vector"}
    return names


def _check_names(derivation: Derivation, api_names: set[str]) -> None:
    """Spec symbols become C locals of the per-unit functions: no clash with their parameters,
    the kernel's own names, C keywords or the cell's helper functions (``<cell>_...``)."""
    spec = derivation.spec
    symbols = {a.target for a in derivation.forward} | set(derivation.lowered.inputs)
    symbols |= {a.target for a in derivation.backward.chain} | set(derivation.backward.carries)
    for symbol in sorted(symbols, key=lambda s: s.name):
        if (
            symbol.name in RESERVED
            or symbol.name in api_names
            or symbol.name.startswith(spec.name + "_")
        ):
            raise SpecError(
                f"cell {spec.name!r}, {where_used(spec, symbol.name)}: symbol {symbol.name!r} "
                "is reserved by the generated C; rename it"
            )


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


def _precision(derivation: Derivation, prefix: str, suffix: str) -> dict:
    """Everything precision-dependent: the printed per-unit code and the numerics helpers."""

    def code(expr) -> str:
        return c_code(expr, prefix, suffix)

    ctype = PRECISIONS[suffix]["ctype"]
    x, e, r = (real_symbol(n) for n in ("x", "e", "r"))
    return {
        "suffix": suffix,
        "real": ctype,
        "lanes": 8 if suffix == "f64" else 16,
        "block_elements": 16384 if suffix == "f64" else 32768,
        "zero": code(sp.Float(0)),
        "one": code(sp.Float(1)),
        # The stable logistic function: exp only ever sees -|x| (never overflows).
        "sigmoid": {"e": code(sp.exp(-sp.Abs(x))), "r": code(1 / (1 + e)), "negative": code(e * r)},
        "forward_lines": [
            {"note": a.note, "code": f"const {ctype} {a.target} = {code(a.expr)};"}
            for a in derivation.forward
        ],
        "backward_lines": [
            {"note": a.note, "code": f"const {ctype} {a.target} = {code(a.expr)};"}
            for a in derivation.backward.chain
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
    }


def context(derivation: Derivation, command: str) -> dict:
    """Everything the templates need, as plain strings and lists."""
    spec = derivation.spec
    api = c_api.functions(spec)
    _check_names(derivation, _unit_scope(spec))
    prefix = spec.name
    gate_index = {g: k for k, g in enumerate(spec.gates)}
    forward_uses = set().union(*(a.expr.free_symbols for a in derivation.forward))
    backward_uses = set().union(*(a.expr.free_symbols for a in derivation.backward.chain))
    gate_inputs = [
        {"symbol": g.symbol.name, "kind": g.kind, "gate": g.gate, "index": gate_index[g.gate]}
        for g in derivation.gate_inputs
    ]
    # Values backward reads per step: any gate input it needs, then the saved activations.
    cache_values = [s.name for s in derivation.saved]
    states = [
        {
            "name": s.name,
            "short": s.short,
            "prev": s.prev.name,
            "new": s.new.name,
            "carry": carry(s.new).name,
            "carry_used": carry(s.new) in backward_uses,
            "is_output": s.new == spec.output,
            "is_recurrent": s.prev == spec.recurrent,
            "prev_in_forward": s.prev in forward_uses,
            "prev_in_backward": s.prev in backward_uses,
        }
        for s in spec.states
    ]
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
        "summed": derivation.summed,
        "cache_values": cache_values,
        "forward_notes": [a.note for a in derivation.forward],
        "linear": _linear_kernels(derivation),
        "functions": [
            {
                "name": f.name,
                "summary": f.summary,
                "args": [vars(a) | {"pointer": a.pointer} for a in f.args],
            }
            for f in api
        ],
        "precisions": [_precision(derivation, prefix, suffix) for suffix in ("f64", "f32")],
    }


def emit_header(derivation: Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>.h``."""
    return render("c_header.h.jinja", context(derivation, command))


def emit_source(derivation: Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>.c``."""
    return render("c_source.c.jinja", context(derivation, command))
