"""C emitter: prints a :class:`~lstm_sym.plan.KernelPlan` as ``generated/<cell>.h`` and ``.c``.

The grouping of the gates' matrix products (runs, offsets), the saved values and the per-unit
stages are the plan's.

The layout (argument checks, loops, matrix products) lives in ``templates/c_header.h.jinja``
and ``templates/c_source.c.jinja``; every per-unit expression is printed from the derivation
by :mod:`.c_printer`, once per precision (``_f64`` and ``_f32`` entry points).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from sympy.printing.c import reserved_words as c_keywords

from ..derive import Derivation, carry
from ..plan import H, KernelPlan, Stage, as_plan
from ..spec import SpecError, gate_hidden, real_symbol, where_used
from . import c_api
from .c_printer import PRECISIONS, c_code
from .templates import render

#: Names the generated C uses for its own locals and helpers; spec symbols must not take them.
RESERVED = (
    frozenset(
        """b k u t i j l units rows status gate_stride states saved pre event_part hidden_part
    delta delta_event delta_hidden projection scratch work x e r d_output size_t NULL
    projected_units unit d_unit d_projected projection_size projection_weights source source_part
    d_source gathered""".split()
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


def _literal(value: float, suffix: str) -> str:
    """A C floating literal: the shortest decimal that rounds back to ``value`` in precision
    ``suffix`` (``1.0F``-style literals for float)."""
    if suffix == "f64":
        return repr(float(value))
    return str(np.float32(value)) + "F"


def _activations(suffix: str) -> dict:
    """Constants of the vectorizable exp and tanh helpers (template ``c_source.c.jinja``)."""

    def lit(value: float) -> str:
        return _literal(value, suffix)

    double = suffix == "f64"
    # Taylor polynomial of exp(r), |r| <= ln2 / 2: the first omitted term is below half an ulp.
    degree = 13 if double else 7
    mantissa = 52 if double else 23
    # ln2 = high + low with trailing zero bits in high (fdlibm's / Cephes' splits): n * high is
    # exact for every n the clamped argument can give.
    ln2_high, ln2_low = (
        (6.93147180369123816490e-01, 1.90821492927058770002e-10)
        if double
        else (0.693145751953125, 1.428606765330187045e-06)
    )
    if double:  # Cephes tanh: x + x^3 P(x^2) / Q(x^2)
        small = [
            "const double p = (-9.64399179425052238628E-1 * z - 9.92877231001918586564E1) * z -"
            " 1.61468768441708447952E3;",
            "const double q = ((z + 1.12811678491632931402E2) * z + 2.23548839060100448583E3) * z +"
            " 4.84406305325125486048E3;",
        ]
        form = "x + x^3 P(x^2) / Q(x^2)"
    else:  # Cephes tanhf: x + x^3 P(x^2)
        small = [
            "const float poly = (((-5.70498872745E-3F * z + 2.06390887954E-2F) * z -"
            " 5.37397155531E-2F) * z + 1.33314422036E-1F) * z - 3.33332819422E-1F;",
            "const float small = x == 0.0F ? x : poly * z * x + x; /* tanh(-0) = -0 */",
        ]
        form = "x + x^3 P(x^2)"
    return {
        "exp": {
            "bits": "unsigned long long" if double else "unsigned int",
            "mantissa": mantissa,
            "bias": 1023 if double else 127,
            "shift": lit(1.5 * 2.0**mantissa),
            # Beyond these, exp is 0 (below the smallest subnormal) or inf; n1, n - n1 stay
            # inside the exponent range.
            "low": lit(-746.0 if double else -104.0),
            "high": lit(710.0 if double else 89.0),
            "log2e": lit(1.4426950408889634),
            "half": lit(0.5),
            "ln2_high": lit(ln2_high),
            "ln2_low": lit(ln2_low),
            "degree": degree,
            "coefficients": [lit(1.0 / math.factorial(k)) for k in range(degree, -1, -1)],
        },
        "tanh": {
            "abs": "fabs" if double else "fabsf",
            "two": lit(2.0),
            "minus_two": lit(-2.0),
            "threshold": lit(0.625),
            "form": form,
            "small": small,
            # float64's small form is a quotient too: one division serves both branches
            "rational": double,
        },
    }


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


def _precision(kernel: KernelPlan, prefix: str, suffix: str) -> dict:
    """Everything precision-dependent: the printed per-unit code and the numerics helpers."""
    derivation = kernel.derivation

    def code(expr) -> str:
        return c_code(expr, prefix, suffix)

    ctype = PRECISIONS[suffix]["ctype"]
    x, e, r = (real_symbol(n) for n in ("x", "e", "r"))
    return {
        "suffix": suffix,
        "real": ctype,
        "lanes": 8,  # partial sums per dot product (one 256-bit vector of float)
        "block_elements": 16384 if suffix == "f64" else 32768,
        # Register blocking of the matrix products: tiles of mr x nr outputs (nr: two or four
        # vectors of 256 bits), kc terms per pass, blocks of mc rows of A / nc rows of B^T.
        "mr": 4,
        "nr": 16 if suffix == "f64" else 32,
        "kc": 256,
        "mc": 256,
        "nc": 256,
        # Tiles of the packed products' kernel: pmr rows by pnr columns (four vectors of 512
        # bits; 24 sums in registers: few loads and broadcasts per multiply-add, measured 10-30%
        # faster than 4 x 4 and 8 x 2 vectors), pkc terms per pass (a panel of B of 64 KiB for
        # float, 32 KiB for double: measured best).
        "pmr": 6,
        "pnr": 32 if suffix == "f64" else 64,
        "pkc": 128 if suffix == "f64" else 256,
        "line": 8 if suffix == "f64" else 16,  # elements per 64-byte cache line
        **_activations(suffix),
        "zero": code(sp.Float(0)),
        "one": code(sp.Float(1)),
        # The stable logistic function: exp only ever sees -|x| (never overflows).
        "sigmoid": {"e": code(sp.exp(-sp.Abs(x))), "r": code(1 / (1 + e)), "negative": code(e * r)},
        # The per-unit stages, what their outputs read (the plan's liveness)
        "forward_lines": [
            {"note": a.note, "code": f"const {ctype} {a.target} = {code(a.expr)};"}
            for stage in kernel.forward_step
            if isinstance(stage, Stage)
            for a in stage.needed()
        ],
        "backward_lines": [
            {"note": a.note, "code": f"const {ctype} {a.target} = {code(a.expr)};"}
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
        **_source_stages(kernel, code, ctype),
    }


def _source_stages(kernel: KernelPlan, code, ctype) -> dict:
    """Hidden sources: the forward's first per-unit stage (only what the sources need) and the
    backward's second stage (the sourced gates' hidden-part adjoints)."""
    sources = kernel.unit_sources
    if not sources:
        return {}
    first = kernel.forward_step[0].needed(sources)
    stage = kernel.stage("backward_sources")
    outputs = kernel.derivation.source_backward.outputs
    line = lambda a: {"note": a.note, "code": f"const {ctype} {a.target} = {code(a.expr)};"}  # noqa: E731
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
    _check_names(derivation, _unit_scope(spec))
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
        "precisions": [_precision(kernel, prefix, suffix) for suffix in ("f64", "f32")],
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
