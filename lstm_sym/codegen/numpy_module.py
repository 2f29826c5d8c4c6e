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
    recurrent_columns recurrent_weights recurrent_weights_t grouped_weights grouped_weights_t
    grad_recurrent_weights buffer""".split()
)


def _check_names(derivation: Derivation) -> None:
    spec = derivation.spec
    symbols = {a.target for a in derivation.forward} | set(derivation.lowered.inputs)
    symbols |= {a.target for a in derivation.backward.chain} | set(derivation.backward.carries)
    for symbol in sorted(symbols, key=lambda s: s.name):
        if symbol.name in RESERVED or symbol.name.startswith(("grad_", "slice_", "grouped_")):
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


def _runs(spec) -> list[list[str]]:
    """Runs of consecutive sourced gates with the same sources: one GEMM each."""
    runs: list[list[str]] = []
    previous = None
    for gate in spec.gates:
        if gate not in spec.hidden_sources:
            previous = None
            continue
        if previous is not None and spec.sources(previous) == spec.sources(gate):
            runs[-1].append(gate)
        else:
            runs.append([gate])
        previous = gate
    return runs


def _groups(derivation: Derivation, slices: dict) -> list[dict]:
    """The sourced gates' GEMMs: per run of gates reading the same sources, the code of
    ``Z = [s_1, s_2, ...] W^T + b`` (forward), ``[ds_1, ds_2, ...] = Delta W`` (backward, split
    in column blocks) and ``dW = Delta^T [S_1, S_2, ...]`` (all steps), from matrix calculus."""
    spec = derivation.spec
    prevs = {s.prev: s for s in spec.states}
    index = {g: k for k, g in enumerate(spec.gates)}
    groups = []
    for k, run in enumerate(_runs(spec)):
        first, count = index[run[0]], len(run)
        columns = f"slice({first} * hidden_size, {first + count} * hidden_size)"
        symbols = spec.sources(run[0])
        unit = spec.reads_unit_source(run[0])

        def side_by_side(parts):
            return parts[0] if len(parts) == 1 else f"np.concatenate(({', '.join(parts)}), axis=1)"

        if unit:  # Delta from the backward's second stage
            parts = [
                numpy_code(derivation.source_backward.outputs[spec.hidden_input(g)]) for g in run
            ]
            delta = side_by_side(parts)
        else:
            delta = f"delta_hidden[t][:, {columns}]"
        linear = derivation.sources
        step = _linear_code(derivation, delta, "", f"grouped_weights[{k}]", linear)["inputs"]
        name = f"grouped_adjoint_{k}"
        blocks = []
        for j, symbol in enumerate(symbols):
            whole = len(symbols) == 1
            blocks.append(
                {
                    "symbol": symbol.name,
                    "unit": symbol not in prevs,
                    "adjoint": name
                    if whole
                    else f"{name}[:, {j} * hidden_size : {j + 1} * hidden_size]",
                    "sequence": f'cache.states["{prevs[symbol].name}"][:-1]'
                    if symbol in prevs
                    else f'cache.saved["{symbol.name}"]',
                }
            )
        inputs = side_by_side(
            [b["sequence"] + ".reshape(steps * batch, hidden_size)" for b in blocks]
        )
        weights = _linear_code(
            derivation, f"delta_hidden[:, {columns}]", "source_inputs", "", linear
        )["weights"]
        groups.append(
            {
                "index": k,
                "gates": run,
                "columns": columns,
                "unit": unit,
                "parts": [spec.hidden_input(g).name for g in run],
                "slices": [slices[g] for g in run],
                "forward": side_by_side([s.name for s in symbols]),
                "adjoint_name": name,
                "adjoint": step,
                "blocks": blocks,
                "inputs": inputs,
                "weights": weights,
                "symbols": ", ".join(s.name for s in symbols),
                "doc": ", ".join(f"``hidden_{g}_weights``" for g in run)
                + f": (hidden, {f'{len(symbols)} * ' if len(symbols) > 1 else ''}hidden), the "
                + f"hidden projection of [{', '.join(s.name for s in symbols)}] (column blocks"
                + " in this order).",
            }
        )
    # Sources side by side are gathered once per step, by the first run reading them.
    gathered: dict[str, str] = {}
    for g in groups:
        g["gather"] = None
        g["read"] = g["forward"]
        if g["forward"].startswith("np.concatenate"):
            if g["forward"] not in gathered:
                gathered[g["forward"]] = g["gather"] = f"sources_{g['index']}"
            g["read"] = gathered[g["forward"]]
    return groups


def _hidden_grads(derivation: Derivation, groups: list[dict]) -> list[dict]:
    """Per gate of a cell with hidden sources: its rows of the GEMM's weight gradient."""
    spec = derivation.spec
    if not spec.hidden_sources:
        return []
    out = []
    recurrent = [g for g in spec.gates if g not in spec.hidden_sources]
    for gate in spec.gates:
        if gate in recurrent:
            k, array = recurrent.index(gate), "grad_recurrent_weights"
        else:
            group = next(g for g in groups if gate in g["gates"])
            k, array = group["gates"].index(gate), f"grad_grouped_weights_{group['index']}"
        out.append({"name": gate, "expr": f"{array}[{k} * hidden_size : {k + 1} * hidden_size]"})
    return out


def derivation_symbol(derivation: Derivation, name: str):
    """The gate-input symbol of ``derivation`` called ``name``."""
    return next(gi.symbol for gi in derivation.gate_inputs if gi.symbol.name == name)


def _saved_arrays(saved, state_views: dict) -> dict[str, str]:
    """``{name: expression}`` of each saved value's (T, batch, hidden) array: a state's new value
    is a view of the state's sequence, the others are parts k = 0, 1, ... of ``buffer``."""
    arrays, k = {}, 0
    for symbol in saved:
        if symbol in state_views:
            arrays[symbol.name] = state_views[symbol]
        else:
            arrays[symbol.name] = f"buffer[{k}]"
            k += 1
    return arrays


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
                # Bound after the GEMM of a gate reading a same-step source
                "sourced": gi.kind == "hidden" and spec.reads_unit_source(gi.gate),
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
    # (delta array, gate slice) pairs that every backward step writes
    delta_slices = {(t, gi["slice"]) for gi in gate_inputs for t in gi["delta_targets"]}
    groups = _groups(derivation, slices)
    states = []
    for s in spec.states:
        direct = backward_outputs[s.prev]
        terms = [] if direct == 0 else [numpy_code(direct)]
        if s.prev == spec.recurrent and (not sourced or len(spec.sourced_gates) < len(spec.gates)):
            terms.append(hidden_step["inputs"])
        # A previous state read by a sourced gate: its column block of Delta W
        terms += [b["adjoint"] for g in groups for b in g["blocks"] if b["symbol"] == s.prev.name]
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
    # Forward: saved values and new states are computed straight into the cache. A saved value
    # that is a state's new value is that state's sequence after step 0 (saved once, not twice).
    destinations = {}
    state_views = {}
    for s in spec.states:
        if s.projection is None:
            destinations.setdefault(s.new, f"{s.name}_states[t + 1]")
            state_views.setdefault(s.new, f"{s.name}_states[1:]")
    for v in derivation.saved:
        if v not in state_views:
            destinations[v] = f'saved["{v.name}"][t]'
    forward_lines, written = _lines_into(derivation.forward, destinations)
    forward_stores = [
        f'saved["{v.name}"][t] = {v.name}'
        for v in derivation.saved
        if v not in state_views and (v not in written or destinations[v] != f'saved["{v.name}"][t]')
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
    # Hidden sources: the forward's per-unit stages split at the GEMM of the gates reading a
    # same-step source; the backward's second stage gives those gates' hidden-part adjoints,
    # whose GEMM (dX = Delta W, matrix calculus) gives each such source's carry before the full
    # per-unit backward runs. A previous state's block joins that state's adjoint.
    carries = {}
    for g in groups:
        for b in g["blocks"]:
            if b["unit"]:
                carries.setdefault(b["symbol"], []).append(b["adjoint"])
    sources = [
        {
            "symbol": symbol.name,
            "carry": carry(symbol).name,
            "code": " + ".join(carries[symbol.name]),
        }
        for symbol in spec.unit_sources
    ]
    stage = derivation.lowered.stage
    _drop_unread(
        forward_lines,
        derivation.forward,
        written,
        forward_stores + [g["forward"] for g in groups],
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
    if derivation.source_backward is not None:
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
        # A delta array every step writes whole (each gate's slice) needs no zeros first.
        "delta_allocation": {
            target: "empty" if all((target, g["slice"]) in delta_slices for g in gates) else "zeros"
            for target in ("delta_event", "delta_hidden")
        },
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
        "groups": groups,
        "stage1_groups": [g for g in groups if not g["unit"]],
        "stage2_groups": [g for g in groups if g["unit"]],
        "wide": any(len(spec.sources(g)) > 1 for g in spec.gates),
        "blocks": {g: len(spec.sources(g)) for g in spec.gates},
        "hidden_grads": _hidden_grads(derivation, groups),
        "forward_stores": forward_stores,
        "backward_lines": backward_lines,
        "saved": [s.name for s in derivation.saved],
        # Each saved value's array: a part of the forward's one buffer, or the sequence of the
        # state it is the new value of.
        "saved_arrays": _saved_arrays(derivation.saved, state_views),
        "own_saved": sum(s not in state_views for s in derivation.saved),
        "saved_in_states": [s.name for s in derivation.saved if s in state_views],
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
