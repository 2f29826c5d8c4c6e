"""The derivation: from a cell spec to plain data that every emitter prints.

Named stages, each a function whose result tests can inspect:

1. :func:`lower` -- the forward equations as ordered assignments. Gates whose equations use the
   event and hidden parts only through their sum get one pre-activation ``g_pre``; every
   activation applied inside a larger expression (``tanh(cell)`` in ``output * tanh(cell)``)
   becomes its own named intermediate (``tanh_cell``), so it can be saved for the backward pass.
2. :func:`backward` -- reverse-mode differentiation over those assignments. Every local partial
   derivative comes from ``sympy.diff`` and is rewritten through the saved value
   (sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2); nothing is typed by hand.
3. :func:`eliminate` -- one joint common-subexpression elimination over all backward outputs.
4. :func:`linear_adjoints` -- the adjoints of the linear projections ``Z = X W^T + 1 b^T``
   (dW = Delta^T X, dX = Delta W, db = Delta^T 1) obtained by SymPy's matrix calculus.

:func:`derive` runs them all and returns a :class:`Derivation`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import sympy as sp

from .functions import ACTIVATIONS
from .spec import (
    CellSpec,
    gate_event,
    gate_hidden,
    real_symbol,
    source_stage,
    validate,
)


@dataclass(frozen=True)
class Assignment:
    """``target = expr``; ``note`` names the equation it implements (printed as a comment)."""

    target: sp.Symbol
    expr: sp.Expr
    note: str = ""


@dataclass(frozen=True)
class GateInput:
    """One per-unit input produced by the linear projections of gate ``gate``.

    ``kind`` is ``"pre"`` (event part + hidden part, the common case; the event part alone in a
    cell without hidden parts, :attr:`~lstm_sym.spec.CellSpec.hidden_parts`), ``"event"`` or
    ``"hidden"`` (a gate that uses the two parts differently, like GRU's candidate).
    """

    gate: str
    kind: str
    symbol: sp.Symbol


@dataclass(frozen=True)
class Partial:
    """One local derivative d target / d wrt as SymPy found it, and through saved values."""

    target: sp.Symbol
    wrt: sp.Symbol
    raw: sp.Expr
    saved_form: sp.Expr


@dataclass(frozen=True)
class Lowered:
    spec: CellSpec
    gate_inputs: tuple[GateInput, ...]
    forward: tuple[Assignment, ...]
    #: Assignments of the first per-unit stage (up to the last hidden source); 0 without sources.
    stage: int = 0

    @property
    def inputs(self) -> tuple[sp.Symbol, ...]:
        """Per-unit inputs of one step: gate inputs, previous states, per-unit parameters."""
        gates = tuple(g.symbol for g in self.gate_inputs)
        return gates + self.spec.prev_symbols + tuple(self.spec.unit_parameters)


@dataclass(frozen=True)
class Backward:
    """Per-unit backward step: ``chain`` computes ``outputs[u]`` (the adjoint of input u)."""

    carries: tuple[sp.Symbol, ...]
    chain: tuple[Assignment, ...]
    outputs: dict
    partials: tuple[Partial, ...]


@dataclass(frozen=True)
class LinearAdjoints:
    """Adjoints of ``Z = X W^T + 1 b^T`` for the loss ``tr(Delta^T Z)``, by matrix calculus
    (``Z = X W^T`` and ``bias`` None for a map without bias, a state's projection)."""

    projection: sp.MatrixExpr
    loss: sp.Expr
    weights: sp.MatrixExpr
    inputs: sp.MatrixExpr
    bias: sp.MatrixExpr
    symbols: dict


@dataclass(frozen=True)
class Derivation:
    """Plain data every emitter prints; see the module docstring for the stages."""

    spec: CellSpec
    lowered: Lowered
    raw_backward: Backward
    backward: Backward
    saved: tuple[sp.Symbol, ...]
    linear: LinearAdjoints
    #: Adjoints of a projected state's map ``new = W_projection projection`` (None: no such state).
    projection: LinearAdjoints | None = None
    #: Hidden sources (``spec.hidden_sources``): adjoints of ``Z = S W^T + 1 b^T`` (the sourced
    #: gates' hidden projections, S the sources side by side) and the backward's second stage,
    #: which computes the hidden-part adjoints of the gates reading a same-step source from the
    #: state carries alone (their sources' ``d_<source>_carry``, the blocks of Delta W, then feed
    #: the full per-unit ``backward``; a previous state's block adds to that state's adjoint, as
    #: Delta^h W_h does). None without sources; ``source_backward`` None without same-step ones.
    sources: LinearAdjoints | None = None
    source_backward: Backward | None = None
    #: Reductions over units (``spec.reductions``): one step's backward as per-unit
    #: :class:`~lstm_sym.reductions.Stage` s, each with its own joint CSE, alternating with tuples
    #: of :class:`~lstm_sym.reductions.ReductionAdjoint` (the totals over units), in execution
    #: order; ``backward`` is then their chains one after the other (the last stage's outputs).
    #: Empty without reductions.
    staged: tuple = ()
    #: The reductions' statistics the backward reads (one value per row and step, saved).
    statistics: tuple[sp.Symbol, ...] = ()

    @property
    def gate_inputs(self) -> tuple[GateInput, ...]:
        return self.lowered.gate_inputs

    @property
    def forward(self) -> tuple[Assignment, ...]:
        return self.lowered.forward

    @property
    def summed(self) -> bool:
        """True when every gate uses event and hidden parts only through their sum."""
        return all(g.kind == "pre" for g in self.gate_inputs)


def gate_pre(gate: str) -> sp.Symbol:
    """Symbol of gate ``gate``'s full pre-activation, event part + hidden part."""
    return real_symbol(f"{gate}_pre")


def adjoint(symbol: sp.Symbol) -> sp.Symbol:
    """The symbol holding dL/d``symbol`` (``d_cell`` for ``cell``)."""
    return real_symbol(f"d_{symbol.name}")


def carry(symbol: sp.Symbol) -> sp.Symbol:
    """The adjoint of new state ``symbol`` arriving from later steps and the outputs."""
    return real_symbol(f"d_{symbol.name}_carry")


# ---------------------------------------------------------------------------------------------
# Stage 1: lowering
# ---------------------------------------------------------------------------------------------


def _gate_inputs(spec: CellSpec):
    """Decide per gate whether its parts enter only as a sum, and the substitution that says so."""
    inputs, substitution = [], {}
    for gate in spec.gates:
        event, hidden, pre = gate_event(gate), gate_hidden(gate), gate_pre(gate)
        if not spec.hidden_parts:
            # No gate has a hidden part: the pre-activation is the event part alone.
            inputs.append(GateInput(gate, "pre", pre))
            substitution[event] = pre
            continue
        # Write event = pre - hidden: if hidden then cancels everywhere, only the sum is used.
        rewritten = [expr.xreplace({event: pre - hidden}) for _, expr in spec.equations]
        uses_event = any(event in e.free_symbols for _, e in spec.equations)
        uses_hidden = any(hidden in e.free_symbols for _, e in spec.equations)
        sourced = gate in spec.hidden_sources  # its hidden part comes from its own GEMM
        if (
            uses_event
            and uses_hidden
            and not sourced
            and not any(hidden in e.free_symbols for e in rewritten)
        ):
            inputs.append(GateInput(gate, "pre", pre))
            substitution[event] = pre - hidden
        else:
            inputs.append(GateInput(gate, "event", event))
            inputs.append(GateInput(gate, "hidden", hidden))
    return tuple(inputs), substitution


def _fresh_name(base: str, taken: set[str]) -> str:
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def lower(spec: CellSpec) -> Lowered:
    """Stage 1: ordered forward assignments with every nested activation named."""
    validate(spec)
    gate_inputs, substitution = _gate_inputs(spec)
    taken = {s.name for s in spec.gate_inputs + spec.prev_symbols + tuple(spec.unit_parameters)}
    taken |= {t.name for t, _ in spec.equations} | {g.symbol.name for g in gate_inputs}
    forward: list[Assignment] = []
    stage = 0
    for number, (target, expr) in enumerate(spec.equations, 1):
        expr = expr.xreplace(substitution)
        note = f"{target} = {spec_equation_text(target, expr)}"
        # Name nested activations, innermost first (post-order), so each can be saved.
        for node in sp.postorder_traversal(expr):
            if isinstance(node, ACTIVATIONS) and node != expr and node in expr.atoms(sp.Function):
                arg = node.args[0]
                base = f"{node.func.__name__}_{arg.name if arg.is_Symbol else target.name}"
                symbol = real_symbol(_fresh_name(base, taken))
                taken.add(symbol.name)
                forward.append(Assignment(symbol, node, f"{symbol} = {node}"))
                expr = expr.xreplace({node: symbol})
        forward.append(Assignment(target, expr, note))
        if number == source_stage(spec):
            stage = len(forward)
    return Lowered(spec, gate_inputs, tuple(forward), stage)


def spec_equation_text(target, expr) -> str:
    return sp.sstr(expr)


# ---------------------------------------------------------------------------------------------
# Stage 2: backward by reverse-mode differentiation over the assignments
# ---------------------------------------------------------------------------------------------


def backward(lowered: Lowered) -> Backward:
    """Stage 2: per-unit backward step, every partial from ``sympy.diff``.

    Inputs are the carried adjoints of the new states (``d_cell_carry``...) and the forward
    values; outputs are the adjoints of the step's inputs (gate pre-activations, previous
    states, per-unit parameters).
    """
    spec = lowered.spec
    contributions: dict[sp.Symbol, list[sp.Expr]] = defaultdict(list)
    # A projected state's carry arrives at its per-unit vector (d_m = d_h W_projection).
    carries = tuple(carry(s.unit) for s in spec.states)
    for state, symbol in zip(spec.states, carries, strict=True):
        contributions[state.unit].append(symbol)
    # A same-step hidden source's adjoint from its GEMM (d_source = Delta W) is one more carry.
    for source in spec.unit_sources:
        carries += (carry(source),)
        contributions[source].append(carry(source))
    chain: list[Assignment] = []
    partials: list[Partial] = []
    for assignment in reversed(lowered.forward):
        terms = contributions.get(assignment.target)
        if not terms:
            continue  # nothing downstream depends on this value
        d_target = adjoint(assignment.target)
        chain.append(Assignment(d_target, sp.Add(*terms), f"dL/d{assignment.target}"))
        for wrt in sorted(assignment.expr.free_symbols, key=lambda s: s.name):
            raw = sp.diff(assignment.expr, wrt)
            saved_form = raw.xreplace({assignment.expr: assignment.target})
            if saved_form == 0:
                continue
            partials.append(Partial(assignment.target, wrt, raw, saved_form))
            contributions[wrt].append(d_target * saved_form)
    outputs = {}
    for symbol in lowered.inputs:
        terms = contributions.get(symbol, [])
        d_symbol = adjoint(symbol)
        if terms:
            chain.append(Assignment(d_symbol, sp.Add(*terms), f"dL/d{symbol}"))
            outputs[symbol] = d_symbol
        else:
            outputs[symbol] = sp.S.Zero
    return Backward(carries, tuple(chain), outputs, tuple(partials))


# ---------------------------------------------------------------------------------------------
# Stage 3: joint common-subexpression elimination
# ---------------------------------------------------------------------------------------------


def _inline(chain) -> dict[sp.Symbol, sp.Expr]:
    values: dict[sp.Symbol, sp.Expr] = {}
    for a in chain:
        values[a.target] = a.expr.xreplace(values)
    return values


def eliminate(raw: Backward, start: int = 0) -> Backward:
    """Stage 3: inline the adjoint chain, then one joint ``sympy.cse`` over all outputs.

    A temporary that equals a named adjoint of the raw chain takes its name (``d_cell``);
    the others are ``tmp<start>``, ``tmp<start + 1>``... in order. Same result on every run
    and hash seed.
    """
    values = _inline(raw.chain)
    names = [d for d in raw.outputs.values() if d != 0]
    readable = {values[a.target]: a.target for a in raw.chain}
    temps, reduced = sp.cse(
        [values[n] for n in names],
        symbols=(real_symbol(f"_cse{k}") for k in itertools.count()),
        order="canonical",
    )
    renames: dict[sp.Symbol, sp.Symbol] = {}
    inlined: dict[sp.Symbol, sp.Expr] = {}
    chain: list[Assignment] = []
    numbered = itertools.count(start)
    for tmp, expr in temps:
        expr = expr.xreplace(renames)
        full = expr.xreplace(inlined)
        name = readable.get(full)
        if name is None or name in inlined:
            name = real_symbol(f"tmp{next(numbered)}")
            note = "common subexpression"
        else:
            note = f"dL/d{name.name[2:]}"
        renames[tmp], inlined[name] = name, full
        chain.append(Assignment(name, expr, note))
    for name, expr in zip(names, reduced, strict=True):
        expr = expr.xreplace(renames)
        if expr != name:  # else the temporary already carries this output's name
            chain.append(Assignment(name, expr, f"dL/d{name.name[2:]}"))
    return Backward(raw.carries, tuple(chain), raw.outputs, raw.partials)


# ---------------------------------------------------------------------------------------------
# Stage 4: linear adjoints by matrix calculus
# ---------------------------------------------------------------------------------------------


@cache
def linear_adjoints(bias: bool = True) -> LinearAdjoints:
    """Stage 4: differentiate ``tr(Delta^T (X W^T + 1 b^T))`` with SymPy's matrix calculus.

    Rows of X are the (time, batch) samples, rows of Delta the matching adjoints of Z; the
    results are single matrix products over all samples: one GEMM per weight gradient.
    ``bias=False``: the map ``Z = X W^T`` of a projected state (``h = W_projection m``).
    """
    n, m, k = sp.symbols("N M K", integer=True, positive=True)
    inputs = sp.MatrixSymbol("X", n, m)
    weights = sp.MatrixSymbol("W", k, m)
    delta = sp.MatrixSymbol("Delta", n, k)
    symbols = {"X": inputs, "W": weights, "Delta": delta, "N": n, "M": m, "K": k}
    projection = inputs * weights.T
    if bias:
        symbols["b"] = sp.MatrixSymbol("b", k, 1)
        projection = projection + sp.OneMatrix(n, 1) * symbols["b"].T
    loss = sp.Trace(delta.T * projection)
    return LinearAdjoints(
        projection=projection,
        loss=loss,
        weights=loss.diff(weights),
        inputs=loss.diff(inputs),
        bias=loss.diff(symbols["b"]) if bias else None,
        symbols={k: symbols[k] for k in ("X", "W", "b", "Delta", "N", "M", "K") if k in symbols},
    )


# ---------------------------------------------------------------------------------------------


def saved_values(lowered: Lowered, bwd: Backward) -> tuple[sp.Symbol, ...]:
    """Values of a step the backward pass reads: gate inputs (GRU's ``new_hidden``), then
    forward values in forward order. Previous states are excluded (the state sequences keep
    them) and so are per-unit parameters (the same at every step)."""
    used = set().union(*(a.expr.free_symbols for a in bwd.chain)) if bwd.chain else set()
    # A projection's per-unit vector: the weight gradient dW_projection = Delta^T M reads it.
    used |= {s.projection for s in lowered.spec.states if s.projection is not None}
    # A same-step hidden source: the sourced gates' weight gradients dW = Delta^T S read it.
    used |= set(lowered.spec.unit_sources)
    inputs = tuple(g.symbol for g in lowered.gate_inputs if g.symbol in used)
    return inputs + tuple(a.target for a in lowered.forward if a.target in used)


@cache
def derive(spec: CellSpec) -> Derivation:
    """Run every stage for ``spec``."""
    lowered = lower(spec)
    staged, statistics = (), ()
    if spec.reductions:
        from .reductions import eliminate_stages  # it imports this module

        staged, raw, reduced, statistics = eliminate_stages(spec, lowered)
    else:
        raw = backward(lowered)
        reduced = eliminate(raw)
    source_backward = None
    if spec.unit_sources:
        # Backward stage 2: the hidden-part adjoints of the gates reading a same-step source,
        # which never depend on the sources' carries (a source precedes every use of them).
        wanted = {gate_hidden(g) for g in spec.sourced_gates if spec.reads_unit_source(g)}
        outputs = {k: v for k, v in raw.outputs.items() if k in wanted}
        source_backward = eliminate(Backward(raw.carries, raw.chain, outputs, raw.partials))
        free = set().union(*(a.expr.free_symbols for a in source_backward.chain))
        assert not free & set(raw.carries[len(spec.states) :]), "a source feeds its own gate"
    return Derivation(
        spec=spec,
        lowered=lowered,
        raw_backward=raw,
        backward=reduced,
        saved=saved_values(lowered, reduced),
        linear=linear_adjoints(),
        projection=linear_adjoints(bias=False) if spec.projected_state is not None else None,
        sources=linear_adjoints() if spec.hidden_sources else None,
        source_backward=source_backward,
        staged=staged,
        statistics=statistics,
    )
