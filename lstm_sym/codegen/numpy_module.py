"""NumPy emitter: prints a :class:`~lstm_sym.plan.KernelPlan` as ``generated/<cell>.py``.

The layout (buffers, saved slots, the runs of gates sharing a GEMM, the per-unit stages and
what of them is live) is the plan's; the module's text (checks, loops, GEMMs) lives in
``templates/numpy_module.py.jinja``; every mathematical expression in it is printed from the
derivation by :mod:`.numpy_printer`.
"""

from __future__ import annotations

import sympy as sp

from ..derive import Derivation, adjoint, carry
from ..plan import SIZE_NAMES, H, KernelPlan, Reduce, Stage, Totals, X, as_plan
from ..scan import affine_recurrence
from ..spec import SpecError, gate_hidden
from .numpy_printer import numpy_code
from .templates import render


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

    The outermost operation takes ``out=``: an activation, a quotient (the numerator over the
    denominator, as the printer prints it), a product or a sum (split as its other factors or
    terms times/plus the last one).
    """
    if isinstance(expr, sp.Function) and len(expr.args) == 1:
        if type(expr).__name__ not in _OUT_FUNCTIONS:
            return None
        code = numpy_code(expr)
        return f"{code[:-1]}, out={destination})" if code.endswith(")") else None
    if isinstance(expr, sp.Mul):
        numerator, denominator = sp.fraction(expr)
        if denominator != 1:  # as the printer prints it, numerator / denominator
            return (
                f"np.divide({numpy_code(numerator)}, {numpy_code(denominator)}, out={destination})"
            )
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


def _groups(kernel: KernelPlan, slices: dict) -> list[dict]:
    """The runs' GEMMs (the plan's grouping): per run of gates reading the same sources, the
    code of ``Z = [s_1, s_2, ...] W^T + b`` (forward), ``[ds_1, ds_2, ...] = Delta W`` (backward,
    split in column blocks) and ``dW = Delta^T [S_1, S_2, ...]`` (all steps), from matrix
    calculus."""
    derivation = kernel.derivation
    sequences = {s.state.prev: s.name for s in kernel.states}
    groups = []

    def side_by_side(parts):
        return parts[0] if len(parts) == 1 else f"np.concatenate(({', '.join(parts)}), axis=1)"

    for run in kernel.runs:
        k, first, count = run.index, run.first, len(run.gates)
        columns = f"slice({first} * hidden_size, {first + count} * hidden_size)"
        if run.unit:  # Delta from the backward's second stage
            outputs = derivation.source_backward.outputs
            delta = side_by_side([numpy_code(outputs[gate_hidden(g)]) for g in run.gates])
        else:
            delta = f"delta_hidden[t][:, {columns}]"
        linear = derivation.sources
        step = _linear_code(derivation, delta, "", f"grouped_weights[{k}]", linear)["inputs"]
        name = f"grouped_adjoint_{k}"
        blocks = []
        for j, symbol in enumerate(run.sources):
            whole = run.width == 1
            blocks.append(
                {
                    "symbol": symbol.name,
                    "unit": symbol not in sequences,
                    "adjoint": name
                    if whole
                    else f"{name}[:, {j} * hidden_size : {j + 1} * hidden_size]",
                    "sequence": f'cache.states["{sequences[symbol]}"][:-1]'
                    if symbol in sequences
                    else f'cache.saved["{symbol.name}"]',
                }
            )
        inputs = side_by_side(
            [b["sequence"] + ".reshape(steps * batch, hidden_size)" for b in blocks]
        )
        weights = _linear_code(
            derivation, f"delta_hidden[:, {columns}]", "source_inputs", "", linear
        )["weights"]
        names = [s.name for s in run.sources]
        gathered = side_by_side(names).startswith("np.concatenate")
        groups.append(
            {
                "index": k,
                "gates": list(run.gates),
                "columns": columns,
                "unit": run.unit,
                "parts": [gate_hidden(g).name for g in run.gates],
                "slices": [slices[g] for g in run.gates],
                "forward": side_by_side(names),
                # Sources side by side are gathered once per step, by the first run reading them.
                "gather": f"sources_{k}" if gathered and run.gathered_by == k else None,
                "read": f"sources_{run.gathered_by}" if gathered else side_by_side(names),
                "adjoint_name": name,
                "adjoint": step,
                "blocks": blocks,
                "inputs": inputs,
                "weights": weights,
                "symbols": ", ".join(names),
                "doc": ", ".join(f"``hidden_{g}_weights``" for g in run.gates)
                + f": (hidden, {f'{run.width} * ' if run.width > 1 else ''}hidden), the "
                + f"hidden projection of [{', '.join(names)}] (column blocks"
                + " in this order).",
            }
        )
    return groups


def _hidden_grads(kernel: KernelPlan) -> list[dict]:
    """Per gate of a cell with hidden sources: its rows of its run's weight gradient."""
    if not kernel.runs:
        return []
    out = []
    recurrent = list(kernel.recurrent_gates)
    for gate in kernel.gates:
        if gate in recurrent:
            k, array = recurrent.index(gate), "grad_recurrent_weights"
        else:
            run = kernel.run_of(gate)
            k, array = run.gates.index(gate), f"grad_grouped_weights_{run.index}"
        out.append({"name": gate, "expr": f"{array}[{k} * hidden_size : {k + 1} * hidden_size]"})
    return out


def _printed(stage: Stage, destinations: dict) -> tuple[list[dict], set]:
    """A stage's lines, each target with a destination written in place; a target so written
    and read neither later in the stage nor after it (the plan's liveness) is not bound to a
    name. Returns the lines and the targets written in place."""
    stage = stage.live()
    lines, written = _lines_into(stage.assignments, destinations)
    for index, a in enumerate(stage.assignments):
        if a.target in written and not stage.read_later(index):
            lines[index]["code"] = lines[index]["code"].split(" = ", 1)[1]
    return lines, written


def _statistics_lines(item: Reduce, stores: bool) -> list[dict]:
    """The reductions of a :class:`~lstm_sym.plan.Reduce` over the (batch, n) stacked vector of
    each: the mean, then the mean of the squared deviations from it (two passes, as the
    statistics' definition; ``torch.nn.LayerNorm`` computes the same biased moments), rstd
    printed from its definition; ``stores``: the saved statistics written to the cache."""
    lines = []
    for st in item.statistics:
        if st.buffer == "event_projection":
            vector = "event_projection[t]"
        elif st.buffer is not None:
            vector = st.buffer
        elif len(st.over) == 1:
            vector = st.over[0].name
        else:
            vector = f"np.concatenate(({', '.join(v.name for v in st.over)}), axis=1)"
        name = st.reduction.name
        over = ", ".join(v.name for v in st.over)
        lines.append({"note": f"{name}: mean and rstd over the units of [{over}]", "code": None})
        if st.buffer is None and len(st.over) > 1:
            lines.append({"note": None, "code": f"{name}_vector = {vector}"})
            vector = f"{name}_vector"
        lines.append(
            {"note": None, "code": f"{st.mean} = np.mean({vector}, axis=1, keepdims=True)"}
        )
        lines.append(
            {
                "note": None,
                "code": f"{st.variance} = np.mean(np.square({vector} - {st.mean}), axis=1, "
                "keepdims=True)",
            }
        )
        lines.append({"note": None, "code": f"{st.rstd} = {numpy_code(st.rstd_expr)}"})
        if stores:
            for symbol, slot in ((st.mean, st.mean_slot), (st.rstd, st.rstd_slot)):
                if slot is not None:
                    lines.append({"note": None, "code": f'saved["{symbol}"][t] = {symbol}'})
    return lines


def _totals_lines(item: Totals) -> list[dict]:
    """Sums over each row's units of the stage's per-unit adjoints of the statistics."""
    lines = []
    for total in item.totals:
        lines.append(
            {
                "note": f"{total.reduction.name}: totals over the units (D_mean, D_var)",
                "code": None,
            }
        )
        lines.append(
            {
                "note": None,
                "code": f"{total.total_mean} = {total.d_mean}.sum(axis=1, keepdims=True)",
            }
        )
        lines.append(
            {
                "note": None,
                "code": f"{total.total_variance} = ({numpy_code(total.variance_factor)}) * "
                f"{total.d_rstd}.sum(axis=1, keepdims=True)",
            }
        )
    return lines


def _reduced_items(kernel: KernelPlan, destinations: dict, stores: bool) -> tuple[list, set]:
    """A forward step with reductions: its items in order, each a list of lines (per-unit
    stages printed as :func:`_printed`, the reductions as :func:`_statistics_lines`)."""
    items, written = [], set()
    for item in kernel.forward_step:
        if isinstance(item, Stage):
            lines, done = _printed(item, destinations)
            written |= done
            items.append(lines)
        else:
            items.append(_statistics_lines(item, stores))
    return items, written


def _torch_layout(kernel: KernelPlan) -> dict:
    """``spec.torch_layout`` as the template prints it: the keys, the attributes each stacks, and
    the keys the sizes are read from (the event weights' columns, the hidden weights')."""
    layout = kernel.spec.torch_layout
    if not layout:
        return {"torch_layout": [], "torch_event_key": None, "torch_hidden_key": None}
    shapes = {a.name: a.shape for a in kernel.attributes}
    known = set(shapes)
    for key, names in layout:
        unknown = [n for n in names if n not in known]
        widths = {shapes[n][1:] for n in names if n in known}
        if unknown or len(widths) != 1:
            raise SpecError(
                f"cell {kernel.name!r}: torch_layout key {key!r} must stack Parameters attributes "
                f"of one shape, got {', '.join(names)}"
            )

    def key_of(columns):
        return next(k for k, names in layout if shapes[names[0]][1:] == (columns,))

    return {
        "torch_layout": [{"key": key, "names": list(names)} for key, names in layout],
        "torch_event_key": key_of(X),
        "torch_hidden_key": key_of(H),
    }


def context(kernel: KernelPlan, command: str) -> dict:
    """Everything the template needs, as plain strings and lists, read off the plan."""
    derivation = kernel.derivation
    spec = kernel.spec
    backward_outputs = derivation.backward.outputs
    for p in spec.unit_parameters:
        if backward_outputs[p].is_number:  # no array to sum: the parameter changes nothing
            raise SpecError(
                f"cell {spec.name!r}: unit parameter {p.name!r} does not change the outputs "
                f"(its gradient is identically {backward_outputs[p]}): remove it"
            )
    gates = [{"name": g, "index": k, "slice": f"slice_{g}"} for k, g in enumerate(kernel.gates)]
    slices = {g["name"]: g["slice"] for g in gates}
    source = {
        "pre": "pre_activation",
        "event": "event_projection[t]",
        "hidden": "hidden_projection",
    }
    gate_inputs = [
        {
            "symbol": d.symbol.name,
            "source": source[d.kind],
            "slice": slices[d.gate],
            "delta_targets": list(d.targets),
            "adjoint": numpy_code(d.adjoint),
            "sourced": d.after_run,  # bound after the product of its run
        }
        for d in kernel.deltas
    ]
    sourced = bool(kernel.runs)
    if sourced:  # only the recurrent state's gates feed dL/dh_{t-1} through W_hidden
        hidden_step = _linear_code(
            derivation, "delta_hidden[t][:, recurrent_columns]", "hidden_prev", "recurrent_weights"
        )
    else:
        hidden_step = _linear_code(derivation, "delta_hidden[t]", "hidden_prev", "hidden_weights")
    backward_stage = kernel.stage("backward")
    used_in_backward = frozenset().union(
        *(s.live().reads() for s in kernel.backward_step if isinstance(s, Stage))
    )
    groups = _groups(kernel, slices)
    states = []
    for layout in kernel.states:
        s = layout.state
        direct = backward_outputs[s.prev]
        terms = [] if direct == 0 else [numpy_code(direct)]
        if layout.is_recurrent and kernel.recurrent_gates:
            terms.append(hidden_step["inputs"])
        # A previous state read by a run: its column block of Delta W
        terms += [b["adjoint"] for g in groups for b in g["blocks"] if b["symbol"] == s.prev.name]
        size = "hidden_size" if layout.size == H else "projection_size"
        states.append(
            {
                "name": layout.name,
                "prev": s.prev.name,
                "new": s.new.name,
                "unit": s.unit.name,
                "projected": layout.projected,
                "size": size,
                "initial": f"{s.short}0",
                "last": f"{s.short}_last",
                "d_last": f"d_{s.short}_last",
                "sequence": layout.sequence,
                "next_adjoint": f"d_{s.short}_next",
                "carry": carry(s.unit).name,
                "is_output": layout.is_output,
                "prev_used": s.prev in used_in_backward,
                "prev_adjoint_code": " + ".join(terms)
                if terms
                else "np.zeros((batch, hidden_size), dtype=dtype)",
            }
        )
    # Forward: saved values and new states are computed straight into the cache: a saved value
    # into its slot (a state's new value is that state's sequence after step 0, saved once).
    destinations = {}
    for layout in kernel.states:
        if not layout.projected:
            destinations.setdefault(layout.state.new, f"{layout.sequence}[t + 1]")
    for slot in kernel.saved:
        if slot.state is None:
            destinations[slot.symbol] = f'saved["{slot.symbol.name}"][t]'
    forward_stages = [s for s in kernel.forward_step if isinstance(s, Stage)]
    printed = [_printed(stage, destinations) for stage in forward_stages]
    written = set().union(*(w for _, w in printed))
    forward_items, infer_items, backward_items = [], [], []
    if kernel.reductions:  # the step's items in order, the reductions between the stages
        forward_items, written = _reduced_items(kernel, destinations, stores=True)
        printed = [([], set())]
    forward_stores = [
        f'saved["{slot.symbol.name}"][t] = {slot.symbol.name}'
        for slot in kernel.saved
        if slot.state is None and slot.symbol not in written
    ] + [
        f"{s['sequence']}[t + 1] = {s['new']}"
        if not layout.projected
        # A projected state: new = W_projection unit, one GEMM (Z = X W^T) into its sequence.
        else f"np.matmul({s['unit']}, projection_weights_t, out={s['sequence']}[t + 1])"
        for s, layout in zip(states, kernel.states, strict=True)
        if layout.projected
        or layout.state.new not in written
        or destinations[layout.state.new] != f"{s['sequence']}[t + 1]"
    ]
    # Forward without a cache: the same per-unit lines, a state's new value written into its
    # next array (the current and next value of each state alternate), nothing saved.
    infer_destinations = {
        layout.state.new: f"next_{layout.name}" for layout in kernel.states if not layout.projected
    }
    infer_printed = [_printed(stage, infer_destinations) for stage in forward_stages]
    infer_written = set().union(*(w for _, w in infer_printed))
    if kernel.reductions:
        infer_items, infer_written = _reduced_items(kernel, infer_destinations, stores=False)
        infer_printed = [([], set())]
        for item in kernel.backward_step[:-1]:  # the stages and totals before the last stage
            if isinstance(item, Stage):
                backward_items.append(_printed(item, {})[0])
            else:
                backward_items.append(_totals_lines(item))
    infer_stores = [
        f"next_{s['name']}[...] = {s['new']}"
        if not layout.projected
        else f"np.matmul({s['unit']}, projection_weights_t, out=next_{s['name']})"
        for s, layout in zip(states, kernel.states, strict=True)
        if layout.projected or layout.state.new not in infer_written
    ]
    # Backward: a gate input's adjoint goes straight into its slice of the single delta array.
    delta_destinations = {
        d.adjoint: f"{d.targets[0]}[t, :, {slices[d.gate]}]" for d in kernel.deltas if d.direct
    }
    backward_lines, delta_written = _printed(backward_stage, delta_destinations)
    for gi, d in zip(gate_inputs, kernel.deltas, strict=True):
        gi["delta_stored"] = d.adjoint in delta_written
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
        {"symbol": symbol, "carry": f"d_{symbol}_carry", "code": " + ".join(adjoints)}
        for symbol, adjoints in carries.items()
    ]
    source_stage = kernel.stage("backward_sources")
    source_lines = _lines_into(source_stage.live().assignments, {})[0] if source_stage else []
    event = _linear_code(derivation, "delta_event", "inputs", "event_weights")
    hidden = _linear_code(derivation, "delta_hidden", "hidden_inputs", "hidden_weights")
    math = _linear_code(derivation, "Delta", "X", "W")
    scan = _scan(kernel)
    projections = []
    for projected in kernel.projections:
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
        projections.append(
            {
                "state": projected.state.name,
                "unit": projected.unit.name,
                "carry": carry(projected.unit).name,
                "step_inputs": step["inputs"],
                "weights": over_all["weights"],
                "weights_math": pmath["weights"].replace(" ", ""),
                "inputs_math": pmath["inputs"].replace(" ", ""),
            }
        )
    return {
        "name": kernel.name,
        "title": spec.title,
        "description": spec.description.strip() + "\n",
        "source": spec.source,
        "command": command,
        "gates": gates,
        "states": states,
        "output": next(s for s in states if s["is_output"]),
        "recurrent": states[kernel.states.index(kernel.recurrent)],
        "recurrent_prev": kernel.recurrent.state.prev.name,
        "attributes": [{"name": a.name} for a in kernel.attributes],
        # Attributes not stacked by gate: each has its own gradient array, grad_<name>.
        "own_attributes": [a.name for a in kernel.attributes if a.role == "attribute"],
        "unit_parameters": [
            {
                "name": p.name,
                "adjoint": numpy_code(backward_outputs[p]),
                # What backward's per-unit chain reads (lstm_ln's layer-norm shifts only add)
                "read": p in used_in_backward,
            }
            for p in spec.unit_parameters
        ],
        "gate_inputs": gate_inputs,
        **_torch_layout(kernel),
        # A delta array every step writes whole (each gate's slice) needs no zeros first.
        "delta_allocation": {
            target: "empty" if kernel.covered(target) else "zeros"
            for target in ("delta_event", "delta_hidden")
        },
        "any_pre": any(d.kind == "pre" for d in kernel.deltas),
        # Whether the cell has a projected state: the parameters' API and docstrings differ
        "projected": bool(projections),
        "projection": projections[0] if projections else None,
        # The projected states' products (none or one): the kernels print one block each
        "projections": projections,
        # Sizes the parameters take beyond event_size and hidden_size (a projection's).
        "extra_sizes": [SIZE_NAMES[n] for n in kernel.parameter_sizes if n not in (X, H)],
        "summed": kernel.summed,
        # Some gate has a hidden part; else no hidden weights, biases or product at all.
        "hidden": kernel.hidden,
        "forward_lines": printed[0][0],
        "forward_lines_2": printed[1][0] if len(printed) > 1 else [],
        "sourced": sourced,
        "sources": sources,
        "source_lines": source_lines,
        "recurrent_gates": [g for g in gates if g["name"] in kernel.recurrent_gates],
        "groups": groups,
        "stage1_groups": [g for g in groups if not g["unit"]],
        "stage2_groups": [g for g in groups if g["unit"]],
        "wide": kernel.wide,
        "blocks": dict(zip(kernel.gates, kernel.blocks, strict=True)),
        "hidden_grads": _hidden_grads(kernel),
        "forward_stores": forward_stores,
        "infer_lines": infer_printed[0][0],
        "infer_lines_2": infer_printed[1][0] if len(infer_printed) > 1 else [],
        "infer_stores": infer_stores,
        # A step with reductions over units: its items in order (lists of lines), forward
        # (with the statistics' stores), without a cache, and backward before its last stage.
        "forward_items": forward_items,
        "infer_items": infer_items,
        "backward_items": backward_items,
        "statistics": [slot.symbol.name for slot in kernel.statistics],
        "backward_lines": backward_lines,
        "saved": [slot.symbol.name for slot in kernel.saved],
        # Each saved value's array: a part of the forward's one buffer, or the sequence of the
        # state it is the new value of (from index 1 on).
        "saved_arrays": {
            slot.symbol.name: f"buffer[{slot.index}]"
            if slot.state is None
            else f"{slot.state}_states[1:]"
            for slot in kernel.saved
        }
        | {slot.symbol.name: f"statistics[{slot.index}]" for slot in kernel.statistics},
        "own_saved": kernel.own_saved,
        "saved_in_states": [slot.symbol.name for slot in kernel.saved if slot.state is not None],
        # What the per-step backward reads (a projection's vector only feeds dW_projection).
        "saved_read": [slot.symbol.name for slot in kernel.saved if slot.per_step]
        + [slot.symbol.name for slot in kernel.statistics],
        "step_functions": [_step_function(spec, f) for f in spec.step_functions],
        "scan": scan,
        "exports": sorted(
            ["Cache", "Gradients", "Parameters", "backward", "forward", "step"]
            + [f.name for f in spec.step_functions]
            + (["ScanCache", "backward_scan", "forward_scan"] if scan else [])
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


def _scan(kernel: KernelPlan) -> dict | None:
    """The time-parallel form (``forward_scan``/``backward_scan``) when the derivation proves the
    state update affine with coefficients free of the previous state (lstm_sym/scan.py): the
    per-unit forward assignments before the update and the backward chain, printed for arrays of
    every step at once (the same elementwise expressions), the coefficient and the offset."""
    derivation = kernel.derivation
    recurrence = affine_recurrence(derivation)
    if recurrence is None:
        return None
    state = recurrence.state
    backward = derivation.backward
    reads = set().union(*(a.expr.free_symbols for a in backward.chain))
    saved = [s for s in derivation.saved if s != state.new]
    outputs = backward.outputs
    return {
        "prev": state.prev.name,
        "new": state.new.name,
        "short": state.short,
        "carry": recurrence.carry.name,
        "coefficient": numpy_code(recurrence.coefficient),
        "offset": numpy_code(recurrence.offset),
        "coefficient_text": sp.sstr(recurrence.coefficient),
        "offset_text": sp.sstr(recurrence.offset),
        "forward_lines": [
            {"note": a.note, "code": f"{a.target} = {numpy_code(a.expr)}"}
            for a in recurrence.assignments
        ],
        "saved": [s.name for s in saved],
        "reads_prev": state.prev in reads,
        "reads_new": state.new in reads,
        "reads_saved": [s.name for s in saved if s in reads],
        "backward_lines": [
            {"note": a.note, "code": f"{a.target} = {numpy_code(a.expr)}"} for a in backward.chain
        ],
        "deltas": [numpy_code(d.adjoint) for d in kernel.deltas],
        "prev_adjoint": numpy_code(outputs[state.prev]),
        "unit_parameters": [
            {"name": p.name, "adjoint": numpy_code(outputs[p])}
            for p in derivation.spec.unit_parameters
        ],
    }


def emit(kernel: KernelPlan | Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>.py`` (a derivation is planned first)."""
    return render("numpy_module.py.jinja", context(as_plan(kernel), command))
