"""NumPy emitter: prints a :class:`~lstm_sym.derive.Derivation` as ``generated/<cell>.py``.

The module layout (checks, loops, GEMMs) lives in ``templates/numpy_module.py.jinja``; every
mathematical expression in it is printed from the derivation by :mod:`.numpy_printer`.
"""

from __future__ import annotations

import re

import sympy as sp

from ..derive import Derivation, adjoint, carry
from ..spec import SpecError, where_used
from .numpy_printer import numpy_code
from .templates import render

#: Names the generated module uses for its own locals; spec symbols must not take them.
RESERVED = frozenset(
    """np CELL GATES STATES Parameters Cache Gradients forward backward parameters events inputs
    batched steps batch event_size hidden_size arrays dtype event_weights event_bias hidden_weights
    hidden_bias hidden_weights_t saved t event_projection hidden_projection pre_activation cache
    outputs lasts d_outputs delta_event delta_hidden hidden_inputs grads gate rows k event
    hidden_state sequence_shape state_shape meaning value name projection_size projection_weights
    projection_weights_t delta_projection projection_inputs size_name source_inputs
    recurrent_columns recurrent_weights recurrent_weights_t""".split()
)


def _check_names(derivation: Derivation) -> None:
    spec = derivation.spec
    symbols = {a.target for a in derivation.forward} | set(derivation.lowered.inputs)
    symbols |= {a.target for a in derivation.backward.chain} | set(derivation.backward.carries)
    for symbol in sorted(symbols, key=lambda s: s.name):
        if symbol.name in RESERVED or symbol.name.startswith(("grad_", "slice_")):
            raise SpecError(
                f"cell {spec.name!r}, {where_used(spec, symbol.name)}: symbol {symbol.name!r} is "
                "reserved by the generated NumPy module; rename it"
            )


def _linear_code(
    derivation: Derivation, delta: str, inputs: str, weights: str, linear=None
) -> dict[str, str]:
    linear = linear or derivation.linear
    names = linear.symbols
    substitution = {
        names["Delta"]: sp.MatrixSymbol(delta, names["N"], names["K"]),
        names["X"]: sp.MatrixSymbol(inputs, names["N"], names["M"]),
        names["W"]: sp.MatrixSymbol(weights, names["K"], names["M"]),
    }
    code = {
        kind: numpy_code(getattr(linear, kind).xreplace(substitution))
        for kind in ("weights", "inputs", "bias")
        if getattr(linear, kind) is not None
    }
    if linear.weights is not None:
        # dW's transpose (X^T Delta for dW = Delta^T X): the same product with the operands in
        # the order OpenBLAS runs faster (measured up to 1.25x in float64, same in float32).
        code["weights_transposed"] = numpy_code(linear.weights.xreplace(substitution).T)
    return code


#: Functions whose NumPy form is a ufunc-like call taking ``out=`` (``_sigmoid`` included).
_OUT_FUNCTIONS = ("sigmoid", "tanh", "exp", "log")


def _into(expr, destination: str) -> str | None:
    """NumPy code evaluating ``expr`` straight into the array ``destination`` (one pass fewer
    than computing a temporary and copying it), or None when ``expr`` has no such form.

    The outermost operation takes ``out=``: an activation, a product or a sum (split as its
    other factors or terms times/plus the last one).
    """
    if isinstance(expr, sp.Function) and len(expr.args) == 1:
        if type(expr).__name__ not in _OUT_FUNCTIONS:
            return None
        code = numpy_code(expr)
        return f"{code[:-1]}, out={destination})" if code.endswith(")") else None
    for kind, ufunc in ((sp.Mul, "np.multiply"), (sp.Add, "np.add")):
        if isinstance(expr, kind) and len(expr.args) >= 2:
            rest = kind(*expr.args[:-1], evaluate=False)
            return f"{ufunc}({numpy_code(rest)}, {numpy_code(expr.args[-1])}, out={destination})"
    return None


def _lines_into(assignments, destinations: dict) -> tuple[list[dict], set]:
    """Printed assignments, each target with a destination written in place; returns the
    lines and the targets so written (their copies are not needed)."""
    lines, written = [], set()
    for a in assignments:
        code = None
        if a.target in destinations:
            into = _into(a.expr, destinations[a.target])
            if into is not None:
                code, _ = f"{a.target} = {into}", written.add(a.target)
        lines.append({"note": a.note, "code": code or f"{a.target} = {numpy_code(a.expr)}"})
    return lines, written


def _drop_unread(lines: list[dict], assignments, written: set, later_code: list[str]) -> None:
    """A target written in place and read neither by a later assignment nor by ``later_code``
    (the code after the lines) is not bound to a name."""
    for index, a in enumerate(assignments):
        if a.target not in written:
            continue
        read = any(a.target in b.expr.free_symbols for b in assignments[index + 1 :])
        pattern = re.compile(rf"\b{re.escape(a.target.name)}\b")
        if not read and not any(pattern.search(code) for code in later_code):
            lines[index]["code"] = lines[index]["code"].split(" = ", 1)[1]


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
    for arg in bound.values():
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
        raise SpecError(
            f"cell {spec.name!r}, step function {function.name}: unbound symbol(s) {names}"
        )
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


def derivation_symbol(derivation: Derivation, name: str):
    """The gate-input symbol of ``derivation`` called ``name``."""
    return next(gi.symbol for gi in derivation.gate_inputs if gi.symbol.name == name)


def context(derivation: Derivation, command: str) -> dict:
    """Everything the template needs, as plain strings and lists."""
    _check_names(derivation)
    spec = derivation.spec
    backward_outputs = derivation.backward.outputs
    gates = [{"name": g, "index": k, "slice": f"slice_{g}"} for k, g in enumerate(spec.gates)]
    slices = {g["name"]: g["slice"] for g in gates}
    gate_inputs = []
    for gi in derivation.gate_inputs:
        source = {
            "pre": "pre_activation",
            "event": "event_projection[t]",
            "hidden": "hidden_projection",
        }
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
                "sourced": gi.kind == "hidden" and gi.gate in spec.hidden_sources,
            }
        )
    sourced = bool(spec.hidden_sources)
    if sourced:  # only the recurrent state's gates feed dL/dh_{t-1} through W_hidden
        hidden_step = _linear_code(
            derivation, "delta_hidden[t][:, recurrent_columns]", "hidden_prev", "recurrent_weights"
        )
    else:
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
                "unit": s.unit.name,
                "projected": s.projection is not None,
                "size": "hidden_size" if s.projection is None else "projection_size",
                "initial": f"{s.short}0",
                "last": f"{s.short}_last",
                "d_last": f"d_{s.short}_last",
                "sequence": f"{s.name}_states",
                "next_adjoint": f"d_{s.short}_next",
                "carry": carry(s.unit).name,
                "is_output": s.new == spec.output,
                "prev_used": s.prev in used_in_backward,
                "prev_adjoint_code": " + ".join(terms)
                if terms
                else "np.zeros((batch, hidden_size), dtype=dtype)",
            }
        )
    # Forward: saved values and new states are computed straight into the cache.
    destinations = {}
    for s in spec.states:
        if s.projection is None:
            destinations.setdefault(s.new, f"{s.name}_states[t + 1]")
    for v in derivation.saved:
        destinations[v] = f'saved["{v.name}"][t]'
    forward_lines, written = _lines_into(derivation.forward, destinations)
    forward_stores = [
        f'saved["{v.name}"][t] = {v.name}'
        for v in derivation.saved
        if v not in written or destinations[v] != f'saved["{v.name}"][t]'
    ] + [
        f"{s['sequence']}[t + 1] = {s['new']}"
        if state.projection is None
        # A projected state: new = W_projection unit, one GEMM (Z = X W^T) into its sequence.
        else f"np.matmul({s['unit']}, projection_weights_t, out={s['sequence']}[t + 1])"
        for s, state in zip(states, spec.states, strict=True)
        if state.projection is not None
        or state.new not in written
        or destinations[state.new] != f"{s['sequence']}[t + 1]"
    ]
    # Backward: a gate input's adjoint goes straight into its slice of the single delta array.
    delta_destinations = {}
    for gi in gate_inputs:
        symbol = backward_outputs[derivation_symbol(derivation, gi["symbol"])]
        if len(gi["delta_targets"]) == 1 and isinstance(symbol, sp.Symbol):
            delta_destinations.setdefault(symbol, f"{gi['delta_targets'][0]}[t, :, {gi['slice']}]")
    counts = {}
    for gi in gate_inputs:
        counts[gi["adjoint"]] = counts.get(gi["adjoint"], 0) + 1
    delta_destinations = {k: v for k, v in delta_destinations.items() if counts.get(k.name) == 1}
    backward_lines, delta_written = _lines_into(derivation.backward.chain, delta_destinations)
    for gi in gate_inputs:
        gi["delta_stored"] = any(s.name == gi["adjoint"] for s in delta_written)
    # Hidden sources: the forward's per-unit stages split at the sources' GEMM; the backward's
    # second stage gives the sourced gates' hidden-part adjoints, whose GEMM (dX = Delta W,
    # matrix calculus) gives each source's carry before the full per-unit backward runs.
    sources = []
    for gate, symbol in spec.hidden_sources.items():
        d_part = derivation.source_backward.outputs[spec.hidden_input(gate)]
        step = _linear_code(
            derivation,
            numpy_code(d_part),
            "",
            f"hidden_weights[{slices[gate]}]",
            derivation.sources,
        )
        over_all = _linear_code(
            derivation,
            f"delta_hidden[:, {slices[gate]}]",
            "source_inputs",
            f"hidden_weights[{slices[gate]}]",
            derivation.sources,
        )
        sources.append(
            {
                "gate": gate,
                "symbol": symbol.name,
                "part": spec.hidden_input(gate).name,
                "slice": slices[gate],
                "carry": carry(symbol).name,
                "step_inputs": step["inputs"],
                "weights": over_all["weights"],
            }
        )
    stage = derivation.lowered.stage
    _drop_unread(
        forward_lines,
        derivation.forward,
        written,
        forward_stores + [f"{s['symbol']} @" for s in sources],
    )
    _drop_unread(
        backward_lines,
        derivation.backward.chain,
        delta_written,
        [gi["adjoint"] for gi in gate_inputs if not gi["delta_stored"]]
        + [s["prev_adjoint_code"] for s in states]
        + [numpy_code(backward_outputs[p]) for p in spec.unit_parameters],
    )
    source_lines = []
    if sourced:
        source_lines, _ = _lines_into(derivation.source_backward.chain, {})
    event = _linear_code(derivation, "delta_event", "inputs", "event_weights")
    hidden = _linear_code(derivation, "delta_hidden", "hidden_inputs", "hidden_weights")
    math = _linear_code(derivation, "Delta", "X", "W")
    projected = spec.projected_state
    projection = None
    if projected is not None:
        step = _linear_code(
            derivation, "delta_projection[t]", "", "projection_weights", derivation.projection
        )
        over_all = _linear_code(
            derivation,
            "delta_projection",
            "projection_inputs",
            "projection_weights",
            derivation.projection,
        )
        pmath = _linear_code(derivation, "Delta", "M", "W", derivation.projection)
        projection = {
            "state": projected.name,
            "unit": projected.unit.name,
            "carry": carry(projected.unit).name,
            "step_inputs": step["inputs"],
            "weights": over_all["weights"],
            "weights_math": pmath["weights"].replace(" ", ""),
            "inputs_math": pmath["inputs"].replace(" ", ""),
        }
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
        + [{"name": p.name} for p in spec.unit_parameters]
        + ([{"name": "projection_weights"}] if projected is not None else []),
        "unit_parameters": [
            {"name": p.name, "adjoint": numpy_code(backward_outputs[p])}
            for p in spec.unit_parameters
        ],
        "gate_inputs": gate_inputs,
        "any_pre": any(g.kind == "pre" for g in derivation.gate_inputs),
        "projected": projected is not None,
        "projection": projection,
        "summed": derivation.summed,
        "forward_lines": forward_lines[:stage] if sourced else forward_lines,
        "forward_lines_2": forward_lines[stage:] if sourced else [],
        "sourced": sourced,
        "sources": sources,
        "source_lines": source_lines,
        "recurrent_gates": [g for g in gates if g["name"] not in spec.hidden_sources],
        "forward_stores": forward_stores,
        "backward_lines": backward_lines,
        "saved": [s.name for s in derivation.saved],
        # What the per-step backward reads (a projection's vector only feeds dW_projection).
        "saved_read": [s.name for s in derivation.saved if s in used_in_backward],
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
            "event_weights_transposed": event["weights_transposed"],
            "hidden_weights_transposed": hidden["weights_transposed"],
            "event_bias": event["bias"],
            "event_inputs": event["inputs"],
            "hidden_weights": hidden["weights"],
            "recurrent_weights": _linear_code(
                derivation,
                "delta_hidden[:, recurrent_columns]",
                "hidden_inputs",
                "hidden_weights[recurrent_columns]",
            )["weights"],
            "hidden_bias": hidden["bias"],
        },
        "adjoint": adjoint,
    }


def emit(derivation: Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>.py``."""
    return render("numpy_module.py.jinja", context(derivation, command))
