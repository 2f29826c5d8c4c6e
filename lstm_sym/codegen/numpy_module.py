"""NumPy emitter: prints a :class:`~lstm_sym.derive.Derivation` as ``generated/<cell>.py``.

The module layout (checks, loops, GEMMs) lives in ``templates/numpy_module.py.jinja``; every
mathematical expression in it is printed from the derivation by :mod:`.numpy_printer`.
"""

from __future__ import annotations

import sympy as sp

from ..derive import Derivation, adjoint, carry
from ..spec import SpecError
from .numpy_printer import numpy_code
from .templates import render

#: Names the generated module uses for its own locals; spec symbols must not take them.
RESERVED = frozenset(
    """np CELL GATES STATES Parameters Cache Gradients forward backward parameters events inputs
    batched steps batch event_size hidden_size arrays dtype event_weights event_bias hidden_weights
    hidden_bias hidden_weights_t saved t event_projection hidden_projection pre_activation cache
    outputs lasts d_outputs delta_event delta_hidden hidden_inputs grads gate rows k event
    hidden_state sequence_shape state_shape meaning value name""".split()
)


def _check_names(derivation: Derivation) -> None:
    spec = derivation.spec
    symbols = {a.target for a in derivation.forward} | set(derivation.lowered.inputs)
    symbols |= {a.target for a in derivation.backward.chain} | set(derivation.backward.carries)
    for symbol in sorted(symbols, key=lambda s: s.name):
        if symbol.name in RESERVED or symbol.name.startswith(("grad_", "slice_")):
            raise SpecError(
                f"cell {spec.name!r}: symbol {symbol.name!r} is reserved by the generated module; rename it"
            )


def _linear_code(derivation: Derivation, delta: str, inputs: str, weights: str) -> dict[str, str]:
    linear = derivation.linear
    names = linear.symbols
    substitution = {
        names["Delta"]: sp.MatrixSymbol(delta, names["N"], names["K"]),
        names["X"]: sp.MatrixSymbol(inputs, names["N"], names["M"]),
        names["W"]: sp.MatrixSymbol(weights, names["K"], names["M"]),
    }
    return {
        kind: numpy_code(getattr(linear, kind).xreplace(substitution))
        for kind in ("weights", "inputs", "bias")
    }


def _step_function(spec, function) -> dict:
    """Body lines of a seed-style one-step function: gate parts, then the expression."""
    bound = {symbol: arg for symbol, arg in function.bindings.items()}
    lines = []
    if "parameters" in function.args:
        lines.append("event, hidden_state = _step_inputs(parameters, event, hidden_state)")
        shape_of = "hidden_state.shape"
    else:
        first = function.args[0]
        lines.append(f'{first} = _real_array({first}, "{first}")')
        shape_of = f"{first}.shape"
    for symbol, arg in bound.items():
        if "parameters" in function.args or arg != function.args[0]:
            lines.append(f'{arg} = _step_state({arg}, "{arg}", {shape_of})')
    used = function.expr.free_symbols
    substitution = dict(bound)
    for gate in spec.gates:
        for side, symbol, vector in (
            ("event", spec.event_input(gate), "event"),
            ("hidden", spec.hidden_input(gate), "hidden_state"),
        ):
            if symbol in used:
                lines.append(f'{symbol} = _gate_part(parameters, "{side}", "{gate}", {vector})')
    unknown = used - set(bound) - set(spec.gate_inputs)
    if unknown:
        names = ", ".join(sorted(s.name for s in unknown))
        raise SpecError(f"cell {spec.name!r}, step function {function.name}: unbound symbol(s) {names}")
    expr = function.expr.xreplace({s: sp.Symbol(a) for s, a in substitution.items()})
    lines.append(f"return {numpy_code(expr)}")
    return {
        "name": function.name,
        "args": function.args,
        "doc": function.doc,
        "summary": " ".join(function.doc.split()),
        "equation": f"``{sp.sstr(function.expr)}``",
        "body": lines,
    }


def context(derivation: Derivation, command: str) -> dict:
    """Everything the template needs, as plain strings and lists."""
    _check_names(derivation)
    spec = derivation.spec
    backward_outputs = derivation.backward.outputs
    gates = [
        {"name": g, "index": k, "slice": f"slice_{g}"} for k, g in enumerate(spec.gates)
    ]
    slices = {g["name"]: g["slice"] for g in gates}
    gate_inputs = []
    for gi in derivation.gate_inputs:
        source = {"pre": "pre_activation", "event": "event_projection[t]", "hidden": "hidden_projection"}
        targets = {"pre": ["delta_event"], "event": ["delta_event"], "hidden": ["delta_hidden"]}
        if derivation.summed:
            targets["pre"] = ["delta_event"]  # delta_hidden is the same array
        elif gi.kind == "pre":
            targets["pre"] = ["delta_event", "delta_hidden"]
        d = backward_outputs[gi.symbol]
        gate_inputs.append(
            {
                "symbol": gi.symbol.name,
                "source": source[gi.kind],
                "slice": slices[gi.gate],
                "delta_targets": targets[gi.kind],
                "adjoint": numpy_code(d),
            }
        )
    hidden_step = _linear_code(derivation, "delta_hidden[t]", "hidden_prev", "hidden_weights")
    used_in_backward = set().union(*(a.expr.free_symbols for a in derivation.backward.chain))
    states = []
    for s in spec.states:
        direct = backward_outputs[s.prev]
        terms = [] if direct == 0 else [numpy_code(direct)]
        if s.prev == spec.recurrent:
            terms.append(hidden_step["inputs"])
        states.append(
            {
                "name": s.name,
                "prev": s.prev.name,
                "new": s.new.name,
                "initial": f"{s.short}0",
                "last": f"{s.short}_last",
                "d_last": f"d_{s.short}_last",
                "sequence": f"{s.name}_states",
                "next_adjoint": f"d_{s.short}_next",
                "carry": carry(s.new).name,
                "is_output": s.new == spec.output,
                "prev_used": s.prev in used_in_backward,
                "prev_adjoint_code": " + ".join(terms) if terms else "np.zeros((batch, hidden_size), dtype=dtype)",
            }
        )
    event = _linear_code(derivation, "delta_event", "inputs", "event_weights")
    hidden = _linear_code(derivation, "delta_hidden", "hidden_inputs", "hidden_weights")
    math = _linear_code(derivation, "Delta", "X", "W")
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description.strip() + "\n",
        "source": spec.source,
        "command": command,
        "gates": gates,
        "states": states,
        "output": next(s for s in states if s["is_output"]),
        "recurrent": next(s for s in states if s["prev"] == spec.recurrent.name),
        "recurrent_prev": spec.recurrent.name,
        "attributes": [
            {"name": f"{side}_{g}_{kind}"}
            for g in spec.gates
            for side in ("event", "hidden")
            for kind in ("weights", "bias")
        ]
        + [{"name": p.name} for p in spec.unit_parameters],
        "unit_parameters": [
            {"name": p.name, "adjoint": numpy_code(backward_outputs[p])} for p in spec.unit_parameters
        ],
        "gate_inputs": gate_inputs,
        "any_pre": any(g.kind == "pre" for g in derivation.gate_inputs),
        "summed": derivation.summed,
        "forward_lines": [
            {"note": a.note, "code": f"{a.target} = {numpy_code(a.expr)}"} for a in derivation.forward
        ],
        "backward_lines": [
            {"note": a.note, "code": f"{a.target} = {numpy_code(a.expr)}"} for a in derivation.backward.chain
        ],
        "saved": [s.name for s in derivation.saved],
        "step_functions": [_step_function(spec, f) for f in spec.step_functions],
        "exports": sorted(
            ["Cache", "Gradients", "Parameters", "backward", "forward"]
            + [f.name for f in spec.step_functions]
        ),
        "linear": {
            "weights_math": math["weights"].replace(" ", ""),
            "inputs_math": math["inputs"].replace(" ", ""),
            "bias_math": math["bias"],
            "event_weights": event["weights"],
            "event_bias": event["bias"],
            "event_inputs": event["inputs"],
            "hidden_weights": hidden["weights"],
            "hidden_bias": hidden["bias"],
        },
        "adjoint": adjoint,
    }


def emit(derivation: Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>.py``."""
    return render("numpy_module.py.jinja", context(derivation, command))
