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
from ..plan import SIZE_NAMES, SIZES, H, KernelPlan, P, Stage, as_plan
from ..spec import SpecError, gate_hidden
from . import c_api, c_scan, latex_document
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
            for a in _backward_assignments(kernel)
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
        **_reduction_loops(kernel, code, ctype, labels),
    }


def _reduction_loops(kernel: KernelPlan, code, ctype, labels: set[str]) -> dict:
    """A step with reductions over units, row by row: before the per-unit loop of the whole
    step, per :class:`~lstm_sym.plan.Reduce` the statistics of each reduction in two passes
    over the row (the mean, then the mean of the squared deviations from it), a per-unit
    value recomputed in each pass from the stages before it (no per-row scratch); per
    :class:`~lstm_sym.plan.Totals` the sums over the row's units of the stage's adjoints of the
    statistics, recomputed likewise. Liveness from ``free_symbols`` (``Stage.needed``)."""
    if not kernel.reductions:
        return {"reduce_forward": [], "reduce_backward": []}

    def lines(assignments, kind) -> list[dict]:
        return [
            {
                "note": a.note,
                "code": f"const {ctype} {a.target} = {code(a.expr)};",
                "label": _cite(labels, _eq(kind, a.target.name)),
            }
            for a in assignments
        ]

    forward, done = [], []
    for item in kernel.forward_step:
        if isinstance(item, Stage):
            done += item.assignments
            continue
        for st in item.statistics:
            before = Stage("before", tuple(done), ())
            value = None
            if st.buffer is None:
                value = st.over[0] if len(st.over) == 1 else None
                if value is None:
                    raise SpecError(
                        f"cell {kernel.name!r}, reduction {st.reduction.name!r}: the C emitter "
                        "reduces one per-unit value or a whole projection row"
                    )
            forward.append(
                {
                    "name": st.reduction.name,
                    "mean": st.mean.name,
                    "rstd": st.rstd.name,
                    "variance": st.variance.name,
                    "rstd_code": code(st.rstd_expr),
                    "size": f"{len(st.over)}u * hidden_size",
                    "buffer": {
                        "event_projection": "event_part",
                        "hidden_projection": "hidden_part",
                    }.get(st.buffer),
                    "value": None if value is None else value.name,
                    "lines": lines(before.needed({value}), "forward") if value is not None else [],
                    "cites": ", ".join(
                        _cite(labels, f"eq:reduction-{st.reduction.name.replace('_', '-')}-{k}")
                        for k in ("mean", "rstd")
                    ),
                    # What the pass loops read per unit (only those are declared)
                    "reads": sorted(
                        s.name
                        for s in before.reads(before.needed({value})) | {value}
                        if value is not None
                    ),
                    "over": ", ".join(v.name for v in st.over),
                }
            )
    backward, done = [], []
    for item in kernel.backward_step:
        if isinstance(item, Stage):
            done += item.assignments
            continue
        for total in item.totals:
            before = Stage("before", tuple(done), ())
            backward.append(
                {
                    "name": total.reduction.name,
                    "d_mean": total.d_mean.name,
                    "d_rstd": total.d_rstd.name,
                    "total_mean": total.total_mean.name,
                    "total_variance": total.total_variance.name,
                    "factor": code(total.variance_factor),
                    "lines": lines(before.needed({total.d_mean, total.d_rstd}), "cse"),
                    "cites": ", ".join(
                        _cite(labels, f"eq:total-{total.reduction.name.replace('_', '-')}-{k}")
                        for k in ("mean", "variance")
                    ),
                    "reads": sorted(
                        s.name
                        for s in before.reads(before.needed({total.d_mean, total.d_rstd}))
                        | {total.d_mean, total.d_rstd}
                    ),
                }
            )
    return {"reduce_forward": forward, "reduce_backward": backward}


def _backward_assignments(kernel: KernelPlan) -> tuple:
    """The per-unit backward's assignments the last stage's outputs need: with reductions, the
    stages before it recomputed in the same loop (the totals between them are row values)."""
    last = kernel.stage("backward")
    if not kernel.reductions:
        return last.needed()
    chain = tuple(a for s in kernel.backward_step if isinstance(s, Stage) for a in s.assignments)
    return Stage("all", chain, last.outputs, last.read_after).needed()


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


#: The C locals holding B times a state's size.
SIZE_UNITS = {H: "units", P: "projected_units"}


def _cache_at(k: int, state_units: list[str], count: str = "") -> str:
    """Where the cache's ``k``-th sequence of ``steps + 1`` states starts (``k`` past the last
    state: the saved values; ``count``: how ``k`` is printed): multiples of (steps + 1) B H when
    every state is H wide, else the sum of the sizes before it."""
    if all(units == "units" for units in state_units):
        return f"cache + {count or f'{k}u'} * (steps + 1u) * units"
    if k == 0:
        return "cache"
    return f"cache + (steps + 1u) * ({' + '.join(state_units[:k])})"


def _size_macro(buffer, gates: int, big: str) -> dict:
    """A buffer's element count as a C macro: its name, its size parameters (in the order
    ``T, B, X, H, P``) and its factors, from the plan's symbolic shape (a factor ``G * H``
    printed with the ``<CELL>_GATES`` macro)."""
    factors = []
    for dim in buffer.shape:
        coefficient, symbols = sp.Mul(dim).as_coeff_mul()
        if coefficient != 1:
            factors.append(f"{big}_GATES" if dim == gates * H else f"{coefficient}")
        for factor in symbols:
            base, power = factor.as_base_exp()
            factors += [f"({SIZE_NAMES[base]})"] * int(power)
    used = set().union(*(sp.sympify(d).free_symbols for d in buffer.shape))
    return {
        "name": f"{big}_{buffer.name.upper()}_SIZE",
        "arguments": ", ".join(SIZE_NAMES[s] for s in SIZES.values() if s in used),
        "product": " * ".join(f"(size_t){f}" for f in factors),
    }


def _cache_blocks(kernel: KernelPlan, sources: dict) -> list[dict]:
    """The cache before its packing area, per size: ``count`` blocks of (B x size) elements.
    H wide: the states' sequences (``with_states``: (steps + 1) * STATES), the saved values and
    the deltas (``per_unit``), a step's scratch; a projected state's sequence is P wide instead,
    which leaves one H block (its unit vector of a step). P wide: the projected state's
    sequence and its adjoint's scratch of a step."""
    count = "per_unit + with_states" + " - steps" * len(kernel.projections)
    if sources["sourced"]:
        count += f" + {sources['scratch_units']}u"
    blocks = [{"units": "units", "size": "hidden_size", "count": count, "total": "total"}]
    blocks += [
        {
            "units": SIZE_UNITS[pr.state.size],
            "size": SIZE_NAMES[pr.state.size],
            "count": "steps + 2u",
            "total": "projected_total",
        }
        for pr in kernel.projections
    ]
    return blocks


def _split_parts(kind: str) -> list[str]:
    """The pre-activation arrays a gate input of ``kind`` adds up, its parts kept apart."""
    return ["event_part", "hidden_part"] if kind == "pre" else [f"{kind}_part"]


def context(kernel: KernelPlan, command: str) -> dict:
    """Everything the templates need, as plain strings and lists."""
    derivation = kernel.derivation
    spec = derivation.spec
    api = c_api.functions(spec)
    prefix = spec.name
    gate_index = {g: k for k, g in enumerate(spec.gates)}
    forward_uses = set().union(*(s.reads() for s in kernel.forward_step if isinstance(s, Stage)))
    backward_uses = set().union(
        *(s.live().reads() for s in kernel.backward_step if isinstance(s, Stage))
    )
    gate_inputs = [
        {
            "symbol": g.symbol.name,
            "kind": g.kind,
            "gate": g.gate,
            "index": gate_index[g.gate],
            # The pre-activation parts it adds up (apart: event and hidden), and the per-unit
            # backward's delta arrays it is written to (the plan's delta slot)
            "split_parts": _split_parts(g.kind),
            "parts": ["pre"] if kernel.summed else _split_parts(g.kind),
            "deltas": ["delta"] if kernel.summed else list(slot.targets),
        }
        for g, slot in zip(derivation.gate_inputs, kernel.deltas, strict=True)
    ]
    # Values backward reads per step: any gate input it needs, then the saved activations.
    # (A reduction's statistics, one value per row, are kept in per-unit slots like the others:
    # every unit of the row holds the row's value.)
    cache_values = [slot.symbol.name for slot in kernel.saved + kernel.statistics]
    through = {pr.state.name for pr in kernel.projections}
    state_units = [SIZE_UNITS[layout.size] for layout in kernel.states]
    states = [
        {
            "name": layout.name,
            "short": s.short,
            "prev": s.prev.name,
            "new": s.new.name,
            "unit": s.unit.name,
            "projected": layout.projected,
            "size": "hidden_size" if layout.size == H else "projection_size",
            "units": SIZE_UNITS[layout.size],
            "carry": carry(s.unit).name,
            "carry_used": carry(s.unit) in backward_uses,
            "is_output": layout.is_output,
            "is_recurrent": layout.is_recurrent,
            "prev_in_forward": s.prev in forward_uses,
            "prev_in_backward": s.prev in backward_uses,
            # What the per-unit kernels write the new value to and read its adjoint from: the
            # state's own arrays, or (a projected state) the per-unit vector the projection reads
            "sequence_next": "unit"
            if layout.name in through
            else f"{s.short}_states + (t + 1u) * units",
            "step_next": "unit" if layout.name in through else f"{s.short}_next",
            "sequence_adjoint": "d_unit" if layout.name in through else f"d_{s.short}0",
            "step_adjoint": "d_unit" if layout.name in through else f"d_{s.short}_prev",
            # The output's adjoint is added per unit (a projected output's reaches its
            # projection instead)
            "adds_output": layout.is_output and layout.name not in through,
            # The step's backward seeds d_<state>_prev with d_<state>_next (it adds in place)
            "adjoint_in_place": layout.name not in through,
            # Back-propagation through time adds to the adjoint, or (its adjoint used up by the
            # projection) sets it
            "bptt": "=" if layout.name in through else "+=",
            "size_symbol": str(layout.size),
            "at": _cache_at(k, state_units),
        }
        for k, layout in enumerate(kernel.states)
        for s in [layout.state]
    ]
    sources = _sources(kernel, cache_values)
    labels = _labels(kernel)
    # The sizes the states' (and so the cache's) layout depends on, as C parameters
    unit_sizes = [SIZE_NAMES[size] for size in kernel.sizes if size in SIZE_UNITS]
    state_units = [s["units"] for s in states]
    big = prefix.upper()
    parts = ["pre"] if kernel.summed else ["event_part", "hidden_part"]
    saved_at = _cache_at(len(states), state_units, f"{big}_STATES")
    if all(units == "units" for units in state_units):
        delta_at = f"cache + ({big}_STATES * (steps + 1u) + {big}_SAVED * steps) * units"
    else:
        delta_at = f"{saved_at} + {big}_SAVED * steps * units"
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
        # Arguments of <cell>_cache_base and <cell>_check_sizes
        "cache_arguments": ", ".join(["steps", "batch", *unit_sizes]),
        "size_arguments": ", ".join(["batch", "event_size", *unit_sizes]),
        # Where the saved values and the deltas start in the cache
        # The pre-activation arrays of a step the per-unit forward reads (one when every gate
        # adds its parts: the hidden product adds into it), and the deltas backward writes
        "parts": ", ".join(parts),
        # The per-unit kernels' parameters for them
        "part_parameters": parts,
        "delta_parameters": ["delta"] if kernel.summed else list(kernel.gate_deltas),
        "event_target": parts[0],
        "hidden_target": parts[-1],
        "delta_arguments": ", ".join(kernel.gate_deltas),
        "delta_step_arguments": ", ".join(f"{d} + t * batch * rows" for d in kernel.gate_deltas),
        "saved_at": saved_at,
        # Where the deltas start: the elements before it are what backward reads
        "saved_end": delta_at.removeprefix("cache + "),
        # The recurrent weights' (and a projection's) element counts, from the plan's shapes
        "weight_sizes": [
            _size_macro(b, len(spec.gates), big)
            for b in kernel.buffers
            if b.role == "parameter" and b.name in ("hidden_weights", "projection_weights")
        ],
        "cache_sizes": ["steps", "batch", *unit_sizes],
        # Parameters and arguments of <cell>_infer_base, and of <cell>_infer_work_size (which
        # also counts W_event packed whole)
        "infer_parameters": ", ".join(f"size_t {n}" for n in ["batch", *unit_sizes]),
        "infer_arguments": ", ".join(["batch", *unit_sizes]),
        "infer_work_parameters": ", ".join(
            f"size_t {n}" for n in ["batch", "event_size", *unit_sizes]
        ),
        "infer_work_arguments": ", ".join(["batch", "event_size", *unit_sizes]),
        # ... and of <cell>_infer_pack (the training forward's packing area)
        "infer_pack_parameters": ", ".join(
            f"size_t {n}" for n in (["hidden_size"] if sources["sourced"] else unit_sizes)
        ),
        "infer_pack_arguments": ", ".join(["hidden_size"] if sources["sourced"] else unit_sizes),
        # The cache before its packing area, per size: (B x size) blocks ``count`` times
        "cache_blocks": _cache_blocks(kernel, sources),
        # (B x H) blocks of the states in the cache: a projected state's are P wide, but one
        # holds the unit vector of a step
        "cache_state_blocks": f"(size_t)({big}_STATES - {len(kernel.projections)}) * "
        "((size_t)(steps) + 1u) + " + f"{len(kernel.projections)}u"
        if kernel.projections
        else f"(size_t){big}_STATES * ((size_t)(steps) + 1u)",
        # (B x H) blocks of a step's work beyond the deltas: each projection's dL/d(unit
        # vector), the hidden sources' scratch
        "work_extra": [1 for _ in kernel.projections]
        + ([sources["scratch_units"]] if sources["sourced"] else []),
        "delta_at": delta_at,
        "projections": [
            {
                "name": pr.state.name,
                "short": pr.state.state.short,
                "new": pr.state.state.new.name,
                "unit": pr.unit.name,
                "is_output": pr.state.is_output,
                "recurrent": pr.recurrent,
                # Index in the saved values of the per-unit vector (dW_projection reads it)
                "saved_index": cache_values.index(pr.unit.name),
                # The equation of derivations/<cell>.tex the projection implements
                "cite": _cite(labels, _eq("projection", pr.state.state.new.name)),
            }
            for pr in kernel.projections
        ],
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
            "d_outputs" for s in states if s["is_output"] and s["carry_used"] and not s["projected"]
        ]
        + [f"{s['short']}_prev" for s in states if s["prev_in_backward"]],
        "summed": derivation.summed,
        # Some gate has a hidden part; else no hidden arrays, products or packing at all.
        "hidden": kernel.hidden,
        "projected": kernel.projected is not None,
        "projected_state": next((s for s in states if s["projected"]), None),
        "cache_values": cache_values,
        # Saved values the per-unit backward reads (all but a projection's vector).
        "backward_values": [slot.symbol.name for slot in kernel.saved if slot.per_step],
        # Reductions over units: the statistics backward reads once per row.
        "reductions": kernel.reductions,
        "statistics": [
            {"name": slot.symbol.name, "index": cache_values.index(slot.symbol.name)}
            for slot in kernel.statistics
        ],
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
        "step_bound": [
            {"name": name, "form": form, "index": index}
            for index, (name, form) in enumerate(c_api.step_bound(spec))
        ],
        "precisions": [_precision(kernel, prefix, suffix, labels) for suffix in ("f64", "f32")],
        # The equations of derivations/<cell>.tex the blocks of the C implement
        "cites": {
            # The masked update of variable-length batches (sec:lengths of the document)
            "masked": _cite(labels, kernel.masking.label),
            "masked_adjoint": _cite(labels, kernel.masking.adjoint_label),
            "projections": ", ".join(
                label
                for g in derivation.gate_inputs
                if (label := _cite(labels, _eq("projection", g.symbol.name)))
            ),
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
        # The blocked scan of an affine update (<cell>_forward_scan/_backward_scan; None: none)
        "scan": c_scan.context(kernel, labels, lambda kind, name: _cite(labels, _eq(kind, name))),
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
        {
            "gates": list(r.gates),
            "start": r.first,
            "count": len(r.gates),
            "offset": r.offset,
            "packed": f"packed_hidden_{k}",
        }
        for k, r in enumerate(kernel.recurrent_runs)
    ]
    groups = [
        {
            "gate": run.gates[0],
            "gates": list(run.gates),
            "start": run.first,
            "count": len(run.gates),
            "offset": run.offset,
            "packed": f"packed_hidden_{len(recurrent_runs) + k}",
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
        for k, (previous, run) in enumerate(zip((None, *kernel.runs), kernel.runs, strict=False))
    ]
    # W_hidden's blocks the per-step products read, each packed once per call at its own place
    # in the packing area, one after the other: (count H x width H) at ``offset`` H x H blocks
    packed_blocks = [
        {
            "name": r["packed"],
            "gates": ", ".join(r["gates"]),
            "symbols": kernel.spec.recurrent.name,
            "offset": r["offset"],
            "count": r["count"],
            "width": 1,
        }
        for r in recurrent_runs
    ] + [
        {
            "name": g["packed"],
            "gates": ", ".join(g["gates"]),
            "symbols": g["symbols"],
            "offset": g["offset"],
            "count": g["count"],
            "width": g["width"],
        }
        for g in groups
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
        "packed_blocks": packed_blocks,
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
