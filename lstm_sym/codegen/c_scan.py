"""The C emitter's time-parallel form: ``<cell>_forward_scan`` / ``<cell>_backward_scan``.

For a cell whose update :func:`lstm_sym.scan.affine_recurrence` proves affine in the previous
state, ``h_t = A_t h_{t-1} + B_t`` with A and B free of it (minGRU, minLSTM), the generated C
gets a *blocked scan* beside the step loop (``templates/c_scan.c.jinja``, included by
``c_source.c.jinja``): the same arguments, cache layout and results as ``forward``/``backward``.
After the event projections of every step (one product, as forward), per block of K steps:

* forward: every per-unit value of the block's K * B rows in one flat loop (none reads the
  previous state), saved as forward saves them, B_t written into the state sequence; then the
  recurrence ``h_t = A_t h_{t-1} + B_t`` step by step, vectorized over the B * H units (A_t
  printed from the saved values);
* backward: the state's adjoint scanned backwards in time, ``carry_t = d_outputs_t + d_h`` and
  ``d_h = A_t carry_t`` (the derivation's adjoint of h_{t-1}), each carry kept in its row's last
  gate delta; then the derivation's backward chain for the block's rows in one flat loop, which
  reads the carry and overwrites it with the deltas; the weight gradients as backward does.

Everything printed here is the derivation's: the forward assignments before the update, A and B
of :class:`~lstm_sym.scan.AffineRecurrence`, the backward chain (the plan's stage, kept to what
the deltas and the per-unit parameters' adjoints read) -- through :mod:`.c_printer`.

The C takes the form when, besides the affine recurrence, its cache holds what the scan needs:
one delta buffer (no hidden part), no projection, the state's new value not among the saved
values nor read by the backward chain, and A a function of the saved values and per-unit
parameters (backward recomputes it, as the torch module's ``backward_scan`` does).
"""

from __future__ import annotations

import sympy as sp

from ..plan import KernelPlan, plan_cell
from ..scan import AffineRecurrence, affine_recurrence
from ..spec import CellSpec
from .c_printer import PRECISIONS, c_code

#: The C name of B_t where the recurrence reads it back from the state sequence.
OFFSET = sp.Symbol("scan_offset", real=True)


def recurrence(kernel: KernelPlan) -> AffineRecurrence | None:
    """The cell's affine recurrence when its C gets the scan entry points, else None."""
    found = affine_recurrence(kernel.derivation)
    if found is None or kernel.hidden or kernel.projections or len(kernel.gate_deltas) != 1:
        return None
    state = found.state
    saved = {slot.symbol for slot in kernel.saved}
    chain = kernel.stage("backward")
    if state.new in saved or state.new in chain.reads():
        return None  # the state's value is known only after the recurrence
    own = {slot.symbol for slot in kernel.saved if slot.state is None}
    if not found.coefficient.free_symbols <= own | set(kernel.spec.unit_parameters):
        return None  # backward recomputes A from what forward saved
    return found


def has_scan(spec: CellSpec) -> bool:
    """Whether ``spec``'s C has ``<cell>_forward_scan`` and ``<cell>_backward_scan`` (the ABI,
    :mod:`.c_api`, asks)."""
    return recurrence(plan_cell(spec)) is not None


def context(kernel: KernelPlan, labels: set[str], cite) -> dict | None:
    """What ``templates/c_scan.c.jinja`` prints (None: no scan). ``cite(kind, name)``: the label
    of that equation of the derivation document, or ``""``."""
    found = recurrence(kernel)
    if found is None:
        return None
    derivation = kernel.derivation
    spec = kernel.spec
    state = found.state
    outputs = derivation.backward.outputs
    values = [slot.symbol for slot in kernel.saved]  # the cache's saved values, in order
    unit_parameters = list(spec.unit_parameters)
    chain = kernel.stage("backward")
    delta_reads = set().union(*(d.adjoint.free_symbols for d in kernel.deltas))
    delta_reads |= set().union(*(outputs[p].free_symbols for p in unit_parameters))
    lines = chain.needed(delta_reads)
    backward_reads = chain.reads(lines) | delta_reads
    forward_reads = set().union(*(a.expr.free_symbols for a in found.assignments))
    forward_reads |= found.offset.free_symbols
    coefficient_reads = found.coefficient.free_symbols

    def reads(symbols) -> dict:
        return {
            "saved": [{"name": v.name, "index": k} for k, v in enumerate(values) if v in symbols],
            "unit_parameters": [p.name for p in unit_parameters if p in symbols],
        }

    def precision(suffix: str) -> dict:
        ctype = PRECISIONS[suffix]["ctype"]

        def code(expr) -> str:
            return c_code(expr, "lstm_sym", suffix)

        return {
            "values": [
                {
                    "note": a.note,
                    "code": f"const {ctype} {a.target} = {code(a.expr)};",
                    "label": cite("forward", a.target.name),
                }
                for a in found.assignments
            ],
            "offset": code(found.offset),
            "recurrence": code(found.coefficient * state.prev + OFFSET),
            "prev_adjoint": code(found.coefficient * found.carry),
            "chain": [
                {
                    "note": a.note,
                    "code": f"const {ctype} {a.target} = {code(a.expr)};",
                    "label": cite("cse", a.target.name),
                }
                for a in lines
            ],
            "deltas": [code(d.adjoint) for d in kernel.deltas],
            "unit_adjoints": {p.name: code(outputs[p]) for p in unit_parameters},
        }

    gate_index = {g: k for k, g in enumerate(spec.gates)}
    return {
        "state": {
            "name": state.name,
            "short": state.short,
            "prev": state.prev.name,
            "new": state.new.name,
            "carry": found.carry.name,
        },
        "coefficient_text": sp.sstr(found.coefficient),
        "offset_text": sp.sstr(found.offset),
        "label": cite("scan", state.new.name),
        "gate_inputs": [
            {"symbol": d.symbol.name, "index": gate_index[d.gate]} for d in kernel.deltas
        ],
        # The gate whose delta holds a row's carry between the two passes of backward_scan
        "carry_gate": len(spec.gates) - 1,
        "saved": [v.name for v in values],
        "unit_parameters": [p.name for p in unit_parameters],
        "forward_reads": reads(forward_reads),
        "coefficient_reads": reads(coefficient_reads),
        "backward_reads": reads(backward_reads),
        "backward_reads_prev": state.prev in backward_reads,
        # The deltas pass indexes a unit's state or saved values
        "backward_reads_unit": state.prev in backward_reads
        or any(v in backward_reads for v in values),
        "backward_unit_adjoints": [p.name for p in unit_parameters],
        "precisions": {suffix: precision(suffix) for suffix in PRECISIONS},
    }
