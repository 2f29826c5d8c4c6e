"""PyTorch emitter: prints a :class:`~lstm_sym.plan.KernelPlan` as ``generated/<cell>_torch.py``.

The same plan the NumPy and C emitters print (the per-unit stages and what of them is live, the
runs of gates sharing a product, the saved slots, the masking of variable-length batches) as
torch operations on tensors of any device and floating dtype: the forward loop and the derived
backward, which reads only what the forward saved for it. The module's text lives in
``templates/torch_module.py.jinja``; every mathematical expression in it is printed from the
derivation by :mod:`.torch_printer`. Its tensor interface is the one the operators of
``lstm_sym.torch`` call for tensors the C kernels cannot take (see docs/architecture.md).
"""

from __future__ import annotations

import textwrap

import sympy as sp

from ..derive import Derivation, carry
from ..plan import H, KernelPlan, Reduce, Stage, Totals, as_plan
from ..scan import affine_recurrence
from ..spec import SpecError, gate_hidden
from .c_module import _cite, _eq, _labels
from .templates import render
from .torch_printer import torch_code


def _linear(derivation: Derivation, delta: str, inputs: str, weights: str, linear=None) -> dict:
    """The linear adjoints of ``Z = X W^T + 1 b^T`` (SymPy matrix calculus) with the named
    tensors in place of Delta, X and W, as torch code."""
    linear = linear or derivation.linear
    names = linear.symbols
    substitution = {
        names["Delta"]: sp.MatrixSymbol(delta, names["N"], names["K"]),
        names["X"]: sp.MatrixSymbol(inputs, names["N"], names["M"]),
        names["W"]: sp.MatrixSymbol(weights, names["K"], names["M"]),
    }
    return {
        kind: torch_code(getattr(linear, kind).xreplace(substitution))
        for kind in ("weights", "inputs", "bias")
        if getattr(linear, kind) is not None
    }


def _columns(first: int, count: int) -> str:
    return f"slice({first} * hidden_size, {first + count} * hidden_size)"


def _block(name: str, j: int, whole: bool) -> str:
    """Column block ``j`` (of hidden_size columns) of the (batch, n * hidden_size) ``name``."""
    return name if whole else f"{name}[:, {j} * hidden_size : {j + 1} * hidden_size]"


def _side_by_side(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"torch.cat(({', '.join(parts)}), dim=1)"


#: Where the loops' bodies start: a comment there has the rest of the line length.
_BODY = 8
_WIDTH = 100


def _comment(text: str, label: str = "", indent: int = _BODY) -> str:
    """``# text (label)`` as comment lines that fit the line length at ``indent`` (the label on
    a line of its own when it does not fit beside the text; text wrapped at spaces)."""
    room = _WIDTH - indent - 2
    lines = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]
    if label and len(lines[-1]) + len(label) + 3 <= room:
        lines[-1] += f" ({label})"
    elif label:
        lines.append(f"({label})")
    return f"\n{' ' * indent}".join(f"# {line}" for line in lines)


def _lines(assignments, labels, kind: str) -> list[dict]:
    return [
        {
            "comment": _comment(
                a.note, _cite(labels, _eq(kind, a.target.name), _eq("cse", a.target.name))
            ),
            "code": f"{a.target} = {torch_code(a.expr)}",
        }
        for a in assignments
    ]


def _item_lines(item, labels) -> list[dict]:
    """A step item of a cell with reductions over units as lines: a per-unit stage's live
    assignments; a :class:`~lstm_sym.plan.Reduce`'s statistics over the (batch, n) stacked
    vector in two passes (the mean, then the mean of the squared deviations from it; rstd
    printed from its definition), kept (batch, 1) so they broadcast over the units, and stored
    into ``statistics`` when the backward reads them; a :class:`~lstm_sym.plan.Totals`' sums
    over the units of the stage's adjoints of the statistics."""
    if isinstance(item, Stage):
        kind = "forward" if item.name.startswith("forward") else "cse"
        return _lines(item.live().assignments, labels, kind)
    lines = []
    if isinstance(item, Reduce):
        for st in item.statistics:
            if st.buffer == "event_projection":
                vector = "event_projection_t"
            elif st.buffer is not None:
                vector = st.buffer
            else:
                vector = _side_by_side([v.name for v in st.over])
            name = st.reduction.name
            over = ", ".join(v.name for v in st.over)
            comment = _comment(f"{name}: the row's mean and rstd over [{over}], two passes")
            lines.append(
                {"comment": comment, "code": f"{st.mean} = {vector}.mean(dim=1, keepdim=True)"}
            )
            lines.append(
                {
                    "comment": _comment(f"{name}: the biased variance"),
                    "code": f"{st.variance} = ({vector} - {st.mean}).square()"
                    ".mean(dim=1, keepdim=True)",
                }
            )
            lines.append(
                {
                    "comment": _comment(f"{name}: rstd"),
                    "code": f"{st.rstd} = {torch_code(st.rstd_expr)}",
                }
            )
            for symbol, slot in ((st.mean, st.mean_slot), (st.rstd, st.rstd_slot)):
                if slot is not None:
                    lines.append(
                        {
                            "comment": _comment("kept for backward"),
                            "code": f"statistics[{slot}, t] = {symbol}",
                            "kept": True,  # only for backward: infer leaves it out
                        }
                    )
        return lines
    assert isinstance(item, Totals)
    for total in item.totals:
        name = total.reduction.name
        lines.append(
            {
                "comment": _comment(f"{name}: D_mean, the sum over the row's units"),
                "code": f"{total.total_mean} = {total.d_mean}.sum(dim=1, keepdim=True)",
            }
        )
        lines.append(
            {
                "comment": _comment(f"{name}: D_var = (d rstd / d variance) * the sum"),
                "code": f"{total.total_variance} = ({torch_code(total.variance_factor)}) * "
                f"{total.d_rstd}.sum(dim=1, keepdim=True)",
            }
        )
    return lines


def _scan(kernel: KernelPlan) -> dict | None:
    """``forward_scan``/``backward_scan`` (the NumPy module's time-parallel form, as torch
    operations) when lstm_sym.scan proves the update affine: the forward assignments before the
    update and the backward chain printed for tensors of every step at once."""
    derivation = kernel.derivation
    recurrence = affine_recurrence(derivation)
    if recurrence is None:
        return None
    state, backward = recurrence.state, derivation.backward
    reads = set().union(*(a.expr.free_symbols for a in backward.chain))
    own = [slot for slot in kernel.saved if slot.state is None]
    kept = {slot.symbol for slot in own} | set(derivation.spec.unit_parameters)
    if not recurrence.coefficient.free_symbols <= kept:
        return None  # backward_scan recomputes A from what forward saved
    return {
        "prev": state.prev.name,
        "new": state.new.name,
        "carry": recurrence.carry.name,
        "coefficient": torch_code(recurrence.coefficient),
        "offset": torch_code(recurrence.offset),
        "forward_lines": [f"{a.target} = {torch_code(a.expr)}" for a in recurrence.assignments],
        # The saved values backward_scan reads, by part of saved_values (all steps)
        "reads": [
            {"symbol": slot.symbol.name, "index": slot.index}
            for slot in own
            if slot.symbol in reads
        ],
        "reads_prev": state.prev in reads,
        "reads_new": state.new in reads,
        "stores": [{"symbol": slot.symbol.name, "index": slot.index} for slot in own],
        "coefficient_reads": [
            {"symbol": slot.symbol.name, "index": slot.index}
            for slot in own
            if slot.symbol in recurrence.coefficient.free_symbols
        ],
        "backward_lines": [f"{a.target} = {torch_code(a.expr)}" for a in backward.chain],
        "deltas": [torch_code(d.adjoint) for d in kernel.deltas],
        "prev_adjoint": torch_code(backward.outputs[state.prev]),
        "unit_parameters": [
            {"name": p.name, "adjoint": torch_code(backward.outputs[p])}
            for p in derivation.spec.unit_parameters
        ],
    }


def context(kernel: KernelPlan, command: str) -> dict:
    """Everything the template needs, as plain strings and lists, read off the plan."""
    derivation = kernel.derivation
    spec = kernel.spec
    if kernel.summed and kernel.runs:
        raise SpecError(f"cell {spec.name!r}: a summed cell with hidden sources has no torch form")
    labels = _labels(kernel)
    outputs = derivation.backward.outputs
    gates = [{"name": g, "index": k, "slice": f"slice_{g}"} for k, g in enumerate(kernel.gates)]
    slices = {g["name"]: g["slice"] for g in gates}
    layouts = {s.state.prev: s for s in kernel.states}
    sequences = {s.state.prev: s.sequence for s in kernel.states}
    read_states: set[str] = set()  # the state sequences the backward reads

    def saved_array(symbol) -> str:
        """The tensor of a saved value over all steps, (T, B, H)."""
        slot = kernel.slot(symbol)
        if slot.state is not None:
            layout = next(s for s in kernel.states if s.name == slot.state)
            read_states.add(layout.name)
            return f"{layout.sequence}[1:]"
        return f"saved_values[{slot.index}]"

    def saved_step(symbol) -> str:
        """A saved value at step t, (B, H)."""
        slot = kernel.slot(symbol)
        if slot.state is not None:
            layout = next(s for s in kernel.states if s.name == slot.state)
            read_states.add(layout.name)
            return f"{layout.sequence}[t + 1]"
        return f"saved_values[{slot.index}, t]"

    # --- The hidden products of a step: the plan's runs (or one product of every gate) ---------
    sourced = bool(kernel.runs)
    event_part = {g: f"event_projection_t[:, {slices[g]}]" for g in kernel.gates}
    hidden_part: dict[str, str] = {}
    products = []  # per run: its weights, the forward product, the backward's
    if sourced:
        wide = kernel.wide
        for kind, runs in (("recurrent", kernel.recurrent_runs), ("grouped", kernel.runs)):
            for run in runs:
                k, count, width = run.index, len(run.gates), run.width
                name = f"{kind}_{k}"
                if wide:
                    size = f"{count * width} * hidden_size * hidden_size"
                    start = f"{run.offset} * hidden_size * hidden_size"
                    weights = (
                        f"hidden_weights[{start} : {start} + {size}]"
                        f".view({count} * hidden_size, {width} * hidden_size)"
                    )
                else:
                    weights = f"hidden_weights[columns_{name}]"  # the run's rows
                sources = [s.name for s in run.sources]
                gathered = len(sources) > 1
                projection = f"hidden_projection_{name}"
                for j, gate in enumerate(run.gates):
                    hidden_part[gate] = _block(projection, j, count == 1)
                if kind == "recurrent":
                    delta = f"delta_hidden[t][:, columns_{name}]"
                elif run.unit:  # Delta from the backward's second stage
                    source_outputs = derivation.source_backward.outputs
                    delta = _side_by_side(
                        [torch_code(source_outputs[gate_hidden(g)]) for g in run.gates]
                    )
                else:
                    delta = f"delta_hidden[t][:, columns_{name}]"
                step = _linear(derivation, delta, "", f"weights_{name}", derivation.sources)
                blocks = []
                for j, symbol in enumerate(run.sources):
                    if symbol in sequences:
                        layout = layouts[symbol]
                        read_states.add(layout.name)
                        over_steps = f"{layout.sequence}[:-1]"
                    else:
                        over_steps = saved_array(symbol)
                    blocks.append(
                        {
                            "symbol": symbol.name,
                            "unit": symbol not in sequences,
                            "adjoint": _block(f"adjoint_{name}", j, width == 1),
                            "inputs": f"{over_steps}.reshape(steps * batch, -1)",
                        }
                    )
                gradient = _linear(
                    derivation,
                    f"delta_hidden[:, columns_{name}]",
                    f"inputs_{name}",
                    "",
                    derivation.sources,
                )["weights"]
                products.append(
                    {
                        "name": name,
                        "kind": kind,
                        "gates": list(run.gates),
                        "first": run.first,
                        "unit": run.unit,
                        "columns": _columns(run.first, count),
                        "weights": weights,
                        "projection": projection,
                        "sources": _side_by_side(sources),
                        "gathered": gathered,
                        "gather": f"sources_{run.gathered_by}" if gathered else None,
                        "gather_here": gathered
                        and run.gathered_by == run.index
                        and kind == "grouped",
                        "parts": [
                            {
                                "symbol": gate_hidden(g).name,
                                "code": _block(projection, j, count == 1),
                            }
                            for j, g in enumerate(run.gates)
                        ],
                        "adjoint_name": f"adjoint_{name}",
                        "adjoint": step["inputs"],
                        "blocks": blocks,
                        "inputs": _side_by_side([b["inputs"] for b in blocks]),
                        "gradient": gradient,
                        "comment": _comment(
                            f"{', '.join(run.gates)}: Z = S W^T + b with S = [{', '.join(sources)}]"
                            + (" (this step's)" if run.unit else ""),
                            indent=4,
                        ),
                        "step_comment": _comment(
                            f"{', '.join(run.gates)}: Z = S W^T + b, one product",
                        ),
                    }
                )
        products.sort(key=lambda p: p["first"])
    else:
        read_states.add(kernel.recurrent.name)
        for g in kernel.gates:
            hidden_part[g] = f"hidden_projection[:, {slices[g]}]"
    # The gate inputs of the per-unit stages: event part, hidden part or their sum
    gate_inputs = []
    for d in kernel.deltas:
        if d.kind == "event":
            code = event_part[d.gate]
        elif d.kind == "hidden":
            code = hidden_part[d.gate]
        elif kernel.summed or not sourced:
            code = f"pre_activation[:, {slices[d.gate]}]"
        else:
            if kernel.run_of(d.gate).unit:
                raise SpecError(f"cell {spec.name!r}: gate {d.gate!r} sums a part computed later")
            code = f"{event_part[d.gate]} + {hidden_part[d.gate]}"
        gate_inputs.append({"symbol": d.symbol.name, "code": code, "after_run": d.after_run})
    # --- Forward stages; stores into the state sequences and the saved values ---------------------
    forward_stages = [s for s in kernel.forward_step if isinstance(s, Stage)]
    forward_lines = [
        _lines(stage.live().assignments, labels, "forward") for stage in forward_stages
    ]
    if kernel.reductions:  # the items in order: the statistics between the stages
        forward_lines = [
            [line for item in kernel.forward_step for line in _item_lines(item, labels)]
        ]
    # --- Backward ---------------------------------------------------------------------------------
    backward_stage = kernel.stage("backward")
    used_in_backward = frozenset().union(
        *(s.live().reads() for s in kernel.backward_step if isinstance(s, Stage))
    )
    if sourced:
        recurrent_terms = [p["adjoint"] for p in products if p["kind"] == "recurrent"]
    elif kernel.recurrent_gates:
        recurrent_terms = [_linear(derivation, "delta_hidden[t]", "", "hidden_weights")["inputs"]]
    else:  # no gate has a hidden part: the previous state's adjoint is per unit alone
        recurrent_terms = []
    states = []
    for layout in kernel.states:
        s = layout.state
        direct = outputs[s.prev]
        terms = [] if direct == 0 else [torch_code(direct)]
        if layout.is_recurrent:
            terms += recurrent_terms
        terms += [
            b["adjoint"]
            for p in products
            if p["kind"] == "grouped"
            for b in p["blocks"]
            if b["symbol"] == s.prev.name
        ]
        if s.prev in used_in_backward:
            read_states.add(layout.name)
        states.append(
            {
                "name": layout.name,
                "short": s.short,
                "prev": s.prev.name,
                "new": s.new.name,
                "unit": s.unit.name,
                "projected": layout.projected,
                "size": "hidden_size" if layout.size == H else "projection_size",
                "initial": f"{s.short}0",
                "last": f"{s.short}_last",
                "d_last": f"d_{s.short}_last",
                "sequence": layout.sequence,
                "next_adjoint": f"d_{s.short}_next",
                "carry": carry(s.unit).name,
                "is_output": layout.is_output,
                "prev_used": s.prev in used_in_backward,
                "prev_adjoint": " + ".join(terms) if terms else f"torch.zeros_like({s.short}0)",
            }
        )
    saved_reads = [
        {"symbol": slot.symbol.name, "code": saved_step(slot.symbol)}
        for slot in kernel.saved
        if slot.per_step
    ] + [
        {"symbol": slot.symbol.name, "code": f"statistics[{slot.index}, t]"}
        for slot in kernel.statistics
    ]
    deltas = {}  # (delta buffer, gate) -> the adjoint's code
    for d in kernel.deltas:
        for target in d.targets:
            if (target, d.gate) in deltas:
                raise SpecError(f"cell {spec.name!r}: two adjoints for gate {d.gate!r} in {target}")
            deltas[target, d.gate] = torch_code(d.adjoint)
    delta_stores = []
    for target in kernel.gate_deltas:
        if kernel.covered(target):
            parts = ", ".join(deltas[target, g] for g in kernel.gates)
            parts += "," if len(kernel.gates) == 1 else ""  # a tuple of one (IndRNN)
            delta_stores.append(f"torch.cat(({parts}), dim=1, out={target}[t])")
        else:
            delta_stores += [
                f"{target}[t, :, {slices[g]}] = {deltas[target, g]}"
                for g in kernel.gates
                if (target, g) in deltas
            ]
    carries = {}
    for p in products:
        for b in p["blocks"]:
            if b["unit"]:
                carries.setdefault(b["symbol"], []).append(b["adjoint"])
    source_carries = [
        {"carry": f"d_{symbol}_carry", "code": " + ".join(adjoints)}
        for symbol, adjoints in carries.items()
    ]
    source_stage = kernel.stage("backward_sources")
    source_lines = _lines(source_stage.live().assignments, labels, "cse") if source_stage else []
    projections = []
    for projected in kernel.projections:
        step = _linear(
            derivation, "delta_projection[t]", "", "projection_weights", derivation.projection
        )
        over_all = _linear(
            derivation,
            "delta_projection",
            "projection_inputs",
            "projection_weights",
            derivation.projection,
        )
        projections.append(
            {
                "state": projected.state.name,
                "new": projected.state.state.new.name,
                "unit": projected.unit.name,
                "carry": carry(projected.unit).name,
                "step": step["inputs"],
                "gradient": over_all["weights"],
                "inputs": f"{saved_array(projected.unit)}.reshape(steps * batch, hidden_size)",
                "comment": _comment(
                    f"The projected state {projected.state.state.new.name} = W_projection "
                    f"{projected.unit.name}",
                    _cite(labels, _eq("projection", projected.state.state.new.name)),
                ),
            }
        )
    event = _linear(derivation, "delta_event", "inputs", "event_weights")
    hidden = _linear(derivation, "delta_hidden", "hidden_inputs", "hidden_weights")
    math = _linear(derivation, "Delta", "X", "W")
    backward_lines = _lines(backward_stage.live().assignments, labels, "cse")
    if kernel.reductions:  # the stages and totals before the last stage
        items = kernel.backward_step[:-1]
        backward_lines = [line for i in items for line in _item_lines(i, labels)] + backward_lines
    own = kernel.own_saved
    for s, layout in zip(states, kernel.states, strict=True):
        s["saved"] = s["name"] in read_states
        s["stored"] = s["saved"] or layout.is_output
    weights = [b.name for b in kernel.buffers if b.role == "parameter"]
    # What the backward reads of them (the biases only through the deltas' sums)
    backward_reads = used_in_backward | (source_stage.reads() if source_stage else frozenset())
    backward_weights = [
        "_"
        if w == "event_bias"
        or (
            w in {p.name for p in spec.unit_parameters}
            and sp.Symbol(w, real=True) not in backward_reads
        )
        else w
        for w in weights
    ]
    delta_code = " ".join(delta_stores)
    forward_code = " ".join(gi["code"] for gi in gate_inputs)
    # The own saved values, in slot order: what each part of ``saved_values`` holds
    own_slots = [slot for slot in kernel.saved if slot.state is None]
    saved_names = [s["sequence"] for s in states if s["saved"]] + (["saved_values"] if own else [])
    saved_names += ["statistics"] if kernel.statistics else []
    return {
        "name": kernel.name,
        "title": spec.title,
        "description": spec.description.strip() + "\n",
        "source": spec.source,
        "command": command,
        "gates": gates,
        "states": states,
        "output": next(s for s in states if s["is_output"]),
        "recurrent": next(
            s for s, lay in zip(states, kernel.states, strict=True) if lay.is_recurrent
        ),
        "weights": weights,
        "backward_weights": backward_weights,
        # The gates' column slices each pass reads
        "forward_slices": [g for g in gates if g["slice"] in forward_code],
        "backward_slices": [g for g in gates if g["slice"] in delta_code],
        "unit_parameters": [
            {"name": p.name, "adjoint": torch_code(outputs[p])} for p in spec.unit_parameters
        ],
        "summed": kernel.summed,
        # Some gate has a hidden part; else no hidden weights, biases or product at all.
        "hidden": kernel.hidden,
        "sourced": sourced,
        "wide": kernel.wide,
        "any_pre": any(d.kind == "pre" for d in kernel.deltas),
        "products": products,
        "stage1_products": [p for p in products if not p["unit"]],
        "stage2_products": [p for p in products if p["unit"]],
        "gate_inputs": gate_inputs,
        "forward_lines": forward_lines[0],
        "forward_lines_2": forward_lines[1] if len(forward_lines) > 1 else [],
        "own": own,
        # Reductions over units: their statistics the backward reads, (n, T, batch, 1)
        "statistics": len(kernel.statistics),
        "own_stores": [{"index": slot.index, "symbol": slot.symbol.name} for slot in own_slots],
        "saved_names": saved_names,
        "scan": _scan(kernel),
        "saved_reads": saved_reads,
        "source_lines": source_lines,
        "source_carries": source_carries,
        "backward_lines": backward_lines,
        "delta_stores": delta_stores,
        "delta_hidden": "alias"
        if kernel.summed
        else ("empty" if kernel.covered("delta_hidden") else "zeros"),
        "delta_event": "empty" if kernel.covered("delta_event") else "zeros",
        "projections": projections,
        "projected": bool(projections),
        "linear": {
            "weights_math": math["weights"].replace(" ", ""),
            "inputs_math": math["inputs"].replace(" ", ""),
            "bias_math": math["bias"],
            "event_weights": event["weights"],
            "event_bias": event["bias"],
            "event_inputs": event["inputs"],
            "hidden_weights": hidden["weights"],
            "hidden_bias": hidden["bias"],
            "label": ", ".join(
                label
                for kind in ("weights", "bias", "inputs")
                if (label := _cite(labels, _eq("linear", kind)))
            ),
        },
        "projection_label": ", ".join(
            label
            for g in derivation.gate_inputs
            if (label := _cite(labels, _eq("projection", g.symbol.name)))
        ),
        "masked_label": _cite(labels, kernel.masking.label),
        "masked_adjoint_label": _cite(labels, kernel.masking.adjoint_label),
        "bptt_label": _cite(
            labels,
            *(_eq("bptt-through", s.name) for s in spec.states if s.prev == spec.recurrent),
        ),
    }


def emit(kernel: KernelPlan | Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``generated/<cell>_torch.py`` (a derivation is planned first)."""
    return render("torch_module.py.jinja", context(as_plan(kernel), command))
