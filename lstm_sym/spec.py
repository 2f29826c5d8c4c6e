"""Cell specifications: a recurrent cell written once as per-unit SymPy equations.

A cell with hidden size H works on H independent *units*. All mixing between units is linear
and lives outside the spec: for every gate ``g`` the generated code computes the event part
``g_event = W_event_g x + b_event_g`` and the hidden part ``g_hidden = W_hidden_g h + b_hidden_g``
(``h`` is the spec's *recurrent* state, the previous hidden state for an LSTM). Everything
non-linear is per unit and is what a spec writes down: ordered scalar equations over those
gate inputs, the previous state components and per-unit parameters (peephole weights, say).

A gate may read only its event part (``<gate>_event``, never ``<gate>_hidden``); when every
gate does, the cell has no hidden projection at all (minGRU, minLSTM), and a previous state
reaches the step per unit, through per-unit parameters (IndRNN's ``u * h_{t-1}``, as the
peephole weights ``p * c_{t-1}``). (In a cell whose other gates read their hidden parts, such a
gate still has hidden weights in the stacked layout, unused: their gradient is zero.)

One exception to the per-unit rule is a reduction over units (:class:`Normalization`,
``CellSpec.reductions``): the mean and reciprocal standard deviation of a stacked per-unit
vector, a layer norm's statistics, read by the per-unit equations as one value per row.

This is enough for the seed LSTM, peepholes, CIFG, GRU (which uses the hidden part of one gate
on its own) and user-defined cells: a new cell is new data, never a new code path.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from types import SimpleNamespace

import sympy as sp

from .functions import FUNCTIONS


class SpecError(ValueError):
    """A cell spec that is not well-formed; the message names the offending equation."""


@dataclass(frozen=True)
class State:
    """One recurrent state component, e.g. the LSTM's hidden state ``h`` or cell state ``c``.

    ``name`` is the long name used in the mathematics ("hidden", "cell"); ``short`` names the
    arguments of the generated API (``h0``, ``h_last``, ``d_h_last``); ``prev`` is the symbol
    for the value at t-1 and ``new`` the symbol the equations assign at t.

    ``projection`` (optional) makes a *projected* state: the equations assign the per-unit
    symbol ``projection`` (a vector of size hidden) and the new state is its linear map
    ``new = W_projection projection`` (no bias), a vector of another size, ``projection_size``
    (LSTMP: ``h_t = W_hr (o_t * tanh(c_t))``). Its previous value is read only by the gates'
    hidden projections, so a projected state must be the recurrent one.
    """

    name: str
    short: str
    prev: sp.Symbol
    new: sp.Symbol
    projection: sp.Symbol | None = None
    #: Positive by meaning (sLSTM's normalizer n, which h = o c / n divides by): the checks'
    #: random problems draw its initial values as 1 + |N(0, 1)| (:func:`initial_values`).
    positive: bool = False

    @property
    def unit(self) -> sp.Symbol:
        """The per-unit symbol the equations assign: ``new``, or ``projection`` if projected."""
        return self.new if self.projection is None else self.projection


#: ``torch.nn.LayerNorm``'s default epsilon, 1e-5.
LAYER_NORM_EPSILON = sp.Rational(1, 100000)


@dataclass(frozen=True)
class Normalization:
    """A reduction over units: the statistics a layer norm needs of one vector.

    The vector is the per-unit symbols ``over`` stacked, each over all H units, in tuple order
    (the gates' event parts of an LSTM stacked as PyTorch's 4H projection, or one per-unit
    value such as the cell state before its normalization: H entries). With n = H len(over)
    entries v_1 .. v_n:

        mean = (1/n) sum_k v_k,   rstd = ((1/n) sum_k (v_k - mean)^2 + epsilon)^(-1/2)

    (the biased variance, as ``torch.nn.LayerNorm``). ``mean`` and ``rstd`` are symbols the
    per-unit equations read (one value for all units of a row); an equation reading them comes
    after every equation that assigns one of ``over``: the step's per-unit stage ends there,
    the reduction runs over the units, the next stage starts. Nothing else mixes units.
    """

    name: str
    over: tuple[sp.Symbol, ...]
    mean: sp.Symbol
    rstd: sp.Symbol
    epsilon: sp.Expr = LAYER_NORM_EPSILON

    @property
    def symbols(self) -> tuple[sp.Symbol, sp.Symbol]:
        return (self.mean, self.rstd)


@dataclass(frozen=True, eq=False)
class StepFunction:
    """A one-step convenience function of the generated module, like the seed's ``forget_gate``.

    ``args`` are the Python argument names in order; ``bindings`` maps each spec symbol that
    ``expr`` uses to the argument that provides it. Gate inputs (``forget_event``...) need no
    binding: they are computed from the ``event``, ``hidden_state`` and ``parameters`` arguments.
    """

    name: str
    doc: str
    args: tuple[str, ...]
    expr: sp.Expr
    bindings: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class CellSpec:
    """Everything that defines a cell; see the module docstring and ``lstm_sym/cells/lstm.py``."""

    name: str
    title: str
    gates: tuple[str, ...]
    states: tuple[State, ...]
    output: sp.Symbol
    recurrent: sp.Symbol
    equations: tuple[tuple[sp.Symbol, sp.Expr], ...]
    unit_parameters: tuple[sp.Symbol, ...] = ()
    step_functions: tuple[StepFunction, ...] = ()
    description: str = ""
    source: str = ""
    #: LaTeX letters of gates or values where the conventional one misleads (GRU: update -> z).
    letters: dict = field(default_factory=dict)
    #: ``{gate: symbol or tuple of symbols}``: what the gate's hidden projection reads instead
    #: of the recurrent state (the default source tuple is ``(recurrent,)``). A source is a
    #: per-unit value assigned earlier in the same step (Cho's GRU: ``{"new": reset_state}``,
    #: ``reset_state = reset * hidden_prev``) or the ``prev`` symbol of a state that is not
    #: projected (FGR LSTM: the previous gate activations). ``hidden_<gate>_weights`` is then
    #: (hidden, sum of the sources' sizes), column blocks in tuple order:
    #: ``g_hidden = W[:, block 1] s_1 + W[:, block 2] s_2 + ... + b``. With a same-step source
    #: the step has two per-unit stages, the equations up to the last such source and the rest,
    #: with the sourced gates' GEMM between them.
    hidden_sources: dict = field(default_factory=dict)
    #: ``{stabilizer state name: (state names, ...)}`` (xLSTM's sLSTM: ``{"stabilizer": ("cell",
    #: "normalizer")}``): each listed state s_t is exp(-m_t) times the state s~_t of a recurrence
    #: that m does not enter. The derivation document derives that recurrence by substituting
    #: s = exp(-m) s~ and shows that the output does not read m; nothing else uses this.
    stabilizer: dict = field(default_factory=dict)
    #: Reductions over units (:class:`Normalization`), in the order the step computes them.
    reductions: tuple[Normalization, ...] = ()
    #: The state dict of a PyTorch module this cell reads and writes when it is not one of
    #: torch.nn's recurrent modules (a recipe's own cell: lstm_ln's fastrnns
    #: ``LayerNormLSTMCell``): ``((key, (attribute, ...)), ...)``, each key the named
    #: ``Parameters`` attributes stacked by rows. Attributes no key names (the projection
    #: biases of a recipe without them) are zero on read and must be zero to write.
    torch_layout: tuple = ()
    #: ``{unit parameter name: number}``: what a PyTorch module (``lstm_sym.torch.RNN``)
    #: initializes those per-unit parameters to (a layer norm's scale 1 and shift 0, as
    #: ``torch.nn.LayerNorm``); every other parameter gets PyTorch's recurrent initialization.
    module_init: dict = field(default_factory=dict)

    @property
    def reduction_symbols(self) -> tuple[sp.Symbol, ...]:
        """Every reduction's ``mean`` and ``rstd``, in reduction order."""
        return tuple(s for r in self.reductions for s in r.symbols)

    def event_input(self, gate: str) -> sp.Symbol:
        return gate_event(gate)

    def hidden_input(self, gate: str) -> sp.Symbol:
        return gate_hidden(gate)

    @property
    def gate_inputs(self) -> tuple[sp.Symbol, ...]:
        return tuple(s for g in self.gates for s in (gate_event(g), gate_hidden(g)))

    @property
    def prev_symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(s.prev for s in self.states)

    @property
    def output_state(self) -> State:
        return next(s for s in self.states if s.new == self.output)

    @property
    def recurrent_state(self) -> State:
        return next(s for s in self.states if s.prev == self.recurrent)

    def sources(self, gate: str) -> tuple[sp.Symbol, ...]:
        """What gate ``gate``'s hidden projection reads, in column-block order."""
        value = self.hidden_sources.get(gate)
        if value is None:
            return (self.recurrent,)
        return (value,) if isinstance(value, sp.Symbol) else tuple(value)

    @property
    def sourced_gates(self) -> tuple[str, ...]:
        """Gates with their own ``hidden_sources`` entry, in gate order."""
        return tuple(g for g in self.gates if g in self.hidden_sources)

    @property
    def unit_sources(self) -> tuple[sp.Symbol, ...]:
        """The distinct same-step (per-unit) sources, in gate then tuple order."""
        prevs = set(self.prev_symbols)
        found = [s for g in self.sourced_gates for s in self.sources(g) if s not in prevs]
        return tuple(dict.fromkeys(found))

    def reads_unit_source(self, gate: str) -> bool:
        """True when gate ``gate``'s hidden projection reads a value of the same step."""
        prevs = set(self.prev_symbols)
        return gate in self.hidden_sources and any(s not in prevs for s in self.sources(gate))

    @property
    def hidden_parts(self) -> bool:
        """True when some gate reads a hidden projection (its ``<gate>_hidden`` symbol or a
        ``hidden_sources`` entry). False: every gate reads the event alone (minGRU, IndRNN, whose
        recurrence is per unit): the cell has no hidden weights, no hidden biases and no hidden
        product at all."""
        hidden = {gate_hidden(g) for g in self.gates}
        return bool(self.hidden_sources) or any(
            hidden & expr.free_symbols for _, expr in self.equations
        )

    @property
    def projected_state(self) -> State | None:
        """The state with a ``projection`` (at most one, the recurrent state), else None."""
        return next((s for s in self.states if s.projection is not None), None)


def initial_values(state: State, drawn):
    """A random problem's initial values of ``state`` from ``drawn`` ~ N(0, 1): unchanged, or
    ``1 + |drawn|`` for a positive state (the same draws either way)."""
    return 1 + abs(drawn) if state.positive else drawn


def real_symbol(name: str) -> sp.Symbol:
    """All spec symbols are real scalars; using one constructor keeps them identical."""
    return sp.Symbol(name, real=True)


def gate_event(gate: str) -> sp.Symbol:
    """Symbol of gate ``gate``'s event part, ``W_event x + b_event`` (per unit)."""
    return real_symbol(f"{gate}_event")


def gate_hidden(gate: str) -> sp.Symbol:
    """Symbol of gate ``gate``'s hidden part, ``W_hidden h + b_hidden`` (per unit)."""
    return real_symbol(f"{gate}_hidden")


def gate_symbols(gates) -> tuple[SimpleNamespace, SimpleNamespace]:
    """``(event, hidden)`` namespaces of gate-input symbols (``event.forget``: ``forget_event``)."""
    return (
        SimpleNamespace(**{g: gate_event(g) for g in gates}),
        SimpleNamespace(**{g: gate_hidden(g) for g in gates}),
    )


def _check_identifier(name: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise SpecError(f"{what} {name!r} is not a valid identifier in both C and Python")
    if name.startswith("_"):
        raise SpecError(f"{what} {name!r} must not start with an underscore (reserved)")


def _check_printable(expr: sp.Expr, where: str) -> None:
    """Only what every emitter prints: symbols, finite real numbers, sums, products, powers and
    the supported functions (``Min``, ``pi``, ``I``, ``zoo``... are not; ``Max`` of two)."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Max) and len(node.args) != 2:
            raise SpecError(
                f"{where}: {node} has {len(node.args)} arguments: Max is supported with two "
                "(nest it for more)"
            )
        if isinstance(node, (sp.Symbol, sp.Add, sp.Mul, sp.Pow, *FUNCTIONS)):
            continue
        if isinstance(node, (sp.Rational, sp.Float)) and node.is_finite:
            continue
        supported = ", ".join(f.__name__ for f in FUNCTIONS)
        raise SpecError(
            f"{where}: {node} ({type(node).__name__}) is not supported per unit: only real "
            f"finite numbers, +, -, *, /, powers and {supported}"
        )


def where_used(spec: CellSpec, name: str) -> str:
    """``equation N (target = expr)``, the first equation that assigns or uses symbol ``name``."""
    for number, (target, expr) in enumerate(spec.equations, 1):
        if target.name == name or name in {s.name for s in expr.free_symbols}:
            return f"equation {number} ({target} = {expr})"
    return "its declaration"


def validate(spec: CellSpec) -> None:
    """Raise :class:`SpecError` naming the offending equation unless ``spec`` is well-formed."""
    _check_identifier(spec.name, "cell name")
    if not spec.title or "\n" in spec.title or len(spec.title) > 64:
        raise SpecError(
            f"cell {spec.name!r}: the title must be one line of at most 64 characters "
            f"(it heads the generated files), got {spec.title!r}"
        )
    if not spec.gates:
        raise SpecError(f"cell {spec.name!r}: at least one gate is needed")
    _check_module_init(spec)
    if len(set(spec.gates)) != len(spec.gates):
        raise SpecError(f"cell {spec.name!r}: gate names repeat: {spec.gates}")
    for gate in spec.gates:
        _check_identifier(gate, "gate name")
    if not spec.states:
        raise SpecError(f"cell {spec.name!r}: at least one state is needed")
    for state in spec.states:
        _check_identifier(state.name, "state name")
        _check_identifier(state.short, "state short name")
    for what, values in (
        ("state names", [s.name for s in spec.states]),
        ("state short names", [s.short for s in spec.states]),
        ("state symbols", [s.prev for s in spec.states] + [s.new for s in spec.states]),
    ):
        if len(set(values)) != len(values):
            raise SpecError(f"cell {spec.name!r}: {what} repeat: {values}")
    if spec.output not in {s.new for s in spec.states}:
        raise SpecError(f"cell {spec.name!r}: output {spec.output} is not a new state symbol")
    if spec.recurrent not in spec.prev_symbols:
        raise SpecError(f"cell {spec.name!r}: recurrent {spec.recurrent} is not a previous state")
    projected = [s for s in spec.states if s.projection is not None]
    for state in projected:
        where = f"cell {spec.name!r}, state {state.name} (projection={state.projection})"
        if not isinstance(state.projection, sp.Symbol):
            raise SpecError(f"{where}: the projection must be a Symbol (the per-unit vector)")
        _check_identifier(state.projection.name, "projection symbol")
        if state.projection in {s.prev for s in spec.states} | {s.new for s in spec.states}:
            raise SpecError(f"{where}: the projection must be its own symbol, not a state")
        if state.prev != spec.recurrent:
            raise SpecError(
                f"{where}: only the recurrent state can be projected (its previous value has "
                "projection_size entries and is read by the gates' hidden projections only)"
            )
    if len(projected) > 1:
        raise SpecError(f"cell {spec.name!r}: at most one state can have a projection")
    if projected and not spec.hidden_parts:
        raise SpecError(
            f"cell {spec.name!r}: the projected state {projected[0].name} is read only by the "
            "gates' hidden projections, but no gate reads its hidden part (<gate>_hidden)"
        )
    if "projection_weights" in {p.name for p in spec.unit_parameters} and projected:
        raise SpecError(
            f"cell {spec.name!r}: the per-unit parameter name 'projection_weights' is taken by "
            "the projection's weights"
        )
    # Symbols of a projected state have projection_size entries: not per-unit values.
    projected_symbols = {s.prev: s for s in projected} | {s.new: s for s in projected}

    _validate_sources(spec)
    names = {s.name for s in spec.states}
    if not isinstance(spec.stabilizer, dict):
        raise SpecError(
            f"cell {spec.name!r}: stabilizer must be a dict {{state name: (state names, ...)}}"
        )
    for key, scaled in spec.stabilizer.items():
        where = f"cell {spec.name!r}, stabilizer {{{key!r}: {scaled!r}}}"
        if key not in names or not isinstance(scaled, tuple) or not scaled:
            raise SpecError(f"{where}: give {{state name: (state names, ...)}}")
        if not set(scaled) <= names - {key}:
            raise SpecError(f"{where}: the rescaled states must be other states of the cell")
    known = set(spec.gate_inputs) | set(spec.prev_symbols) | set(spec.unit_parameters)
    for symbol in known:
        _check_identifier(symbol.name, "symbol")
    reduced = _validate_reductions(spec, known)
    assigned: list[sp.Symbol] = []
    for number, equation in enumerate(spec.equations, 1):
        if not (isinstance(equation, tuple) and len(equation) == 2):
            raise SpecError(
                f"cell {spec.name!r}, equation {number}: "
                "write each equation as (target, expression)"
            )
        target, expr = equation
        where = f"cell {spec.name!r}, equation {number} ({target} = {expr})"
        if not isinstance(target, sp.Symbol):
            raise SpecError(f"{where}: the left-hand side must be a Symbol")
        if not isinstance(expr, sp.Expr):
            raise SpecError(
                f"{where}: the right-hand side must be a SymPy expression, "
                f"got {type(expr).__name__} (wrap constants in sympy.Integer or sympy.Rational)"
            )
        try:
            _check_identifier(target.name, "symbol")
        except SpecError as error:
            raise SpecError(f"{where}: {error}") from None
        if target in known or target in assigned:
            raise SpecError(f"{where}: {target} is assigned twice or shadows an input")
        for symbol in sorted(projected_symbols, key=lambda s: s.name):
            if symbol == target or symbol in expr.free_symbols:
                state = projected_symbols[symbol]
                raise SpecError(
                    f"{where}: {symbol} belongs to the projected state {state.name} "
                    f"({state.new} = W_projection {state.projection}, projection_size entries): "
                    f"per-unit equations assign {state.projection} and never read {state.prev} "
                    f"or {state.new} (the gates' hidden projections read {state.prev})"
                )
        for atom in expr.atoms(sp.MatrixSymbol, sp.Indexed, sp.Sum, sp.MatrixExpr):
            raise SpecError(
                f"{where}: {atom} mixes units; per-unit equations are scalar (a linear mixing "
                "across units belongs in the gates' projections: use <gate>_event/<gate>_hidden)"
            )
        names = {s.name for s in known | set(assigned)}
        for reduction in spec.reductions:
            if set(reduction.symbols) & expr.free_symbols:
                missing = [v for v in reduction.over if v not in known and v not in assigned]
                if missing:
                    raise SpecError(
                        f"{where}: reads the statistics of reduction {reduction.name!r} before "
                        f"{', '.join(map(str, missing))} (what it reduces) is assigned"
                    )
        unknown = sorted(str(s) for s in expr.free_symbols - known - reduced - set(assigned))
        if unknown:
            hint = ""
            if any(name in names for name in unknown):
                hint = (
                    " (a symbol of that name exists but with other assumptions: create every "
                    "symbol with lstm_sym.spec.real_symbol or gate_symbols)"
                )
            elif any(name in {s.new.name for s in spec.states} for name in unknown):
                hint = " (a new state is used before the equation that assigns it)"
            raise SpecError(f"{where}: unknown symbol(s) {', '.join(unknown)}{hint}")
        for func in expr.atoms(sp.Function):
            if not isinstance(func, FUNCTIONS):
                raise SpecError(
                    f"{where}: {func.func} is not a supported per-unit function "
                    f"(supported: {', '.join(f.__name__ for f in FUNCTIONS)})"
                )
        if expr.has(sp.Derivative, sp.Integral, sp.Piecewise):
            supported = ", ".join(f.__name__ for f in FUNCTIONS)
            raise SpecError(f"{where}: only arithmetic and {supported}")
        _check_printable(expr, where)
        assigned.append(target)
    for state in spec.states:
        if state.unit not in assigned:
            raise SpecError(
                f"cell {spec.name!r}: state {state.name} ({state.unit}) is never updated: "
                f"no equation assigns {state.unit}"
            )
    used = set().union(*(expr.free_symbols for _, expr in spec.equations))
    for gate in spec.gates:
        if not ({gate_event(gate), gate_hidden(gate)} & used):
            raise SpecError(f"cell {spec.name!r}: gate {gate!r} is declared but never used")
    units = {state.unit for state in spec.states} | set(spec.unit_sources)
    for number, (target, expr) in enumerate(spec.equations, 1):
        if target not in units and target not in used:
            raise SpecError(
                f"cell {spec.name!r}, equation {number} ({target} = {expr}): {target} is "
                "assigned but no later equation uses it and it is no state's new value"
            )
    for parameter in spec.unit_parameters:
        if parameter not in used:  # its gradient would be a constant 0 (no array to sum)
            raise SpecError(
                f"cell {spec.name!r}: unit parameter {parameter.name!r} is declared but no "
                "equation uses it"
            )
    for function in spec.step_functions:
        _check_identifier(function.name, "step function name")


def _validate_reductions(spec: CellSpec, known: set) -> set:
    """``reductions``: Normalization entries with their own symbols over known or assigned
    per-unit symbols; returns the set of their ``mean`` and ``rstd`` symbols."""
    if not isinstance(spec.reductions, tuple):
        raise SpecError(f"cell {spec.name!r}: reductions must be a tuple of Normalization")
    targets = {t for t, _ in spec.equations if isinstance(t, sp.Symbol)}
    symbols: set = set()
    for reduction in spec.reductions:
        if not isinstance(reduction, Normalization):
            raise SpecError(
                f"cell {spec.name!r}: reductions hold Normalization entries, got {reduction!r}"
            )
        where = f"cell {spec.name!r}, reduction {reduction.name!r}"
        _check_identifier(reduction.name, "reduction name")
        if not reduction.over or not all(isinstance(v, sp.Symbol) for v in reduction.over):
            raise SpecError(f"{where}: over must be a non-empty tuple of per-unit Symbols")
        for value in reduction.over:
            if value not in known | targets or value in spec.prev_symbols:
                raise SpecError(f"{where}: {value} is no gate input or per-unit value of the step")
        epsilon = sp.sympify(reduction.epsilon)
        if not (epsilon.is_Number and epsilon.is_finite and epsilon > 0):
            raise SpecError(f"{where}: epsilon must be a positive number, got {epsilon}")
        for symbol in reduction.symbols:
            _check_identifier(getattr(symbol, "name", "?"), "reduction symbol")
            if symbol in known | targets | symbols:
                raise SpecError(f"{where}: {symbol} is assigned twice or shadows an input")
            symbols.add(symbol)
    return symbols


def source_stage(spec: CellSpec) -> int:
    """Number of equations in the first per-unit stage: up to the last same-step hidden source
    (0: none)."""
    if not spec.unit_sources:
        return 0
    targets = [t for t, _ in spec.equations]
    return 1 + max(targets.index(s) for s in spec.unit_sources)


def _validate_sources(spec: CellSpec) -> None:
    """``hidden_sources``: known gates; each source a symbol assigned by a per-unit equation or
    the previous value of a state that is not projected, none repeated; and no equation of the
    first stage (up to the last same-step source) reading the hidden part of a gate that reads
    a same-step source."""
    sources = spec.hidden_sources
    if not sources:
        return
    if not isinstance(sources, dict):
        raise SpecError(
            f"cell {spec.name!r}: hidden_sources must be a dict {{gate: symbol or tuple}}"
        )
    targets = [t for t, _ in spec.equations if isinstance(t, sp.Symbol)]
    news = {s.new: s for s in spec.states}
    prevs = {s.prev: s for s in spec.states}
    for gate, value in sources.items():
        where = f"cell {spec.name!r}, hidden_sources[{gate!r}] = {value}"
        if gate not in spec.gates:
            raise SpecError(f"{where}: {gate!r} is not a gate (gates: {', '.join(spec.gates)})")
        symbols = (value,) if isinstance(value, sp.Symbol) else value
        if not isinstance(symbols, tuple) or not symbols:
            raise SpecError(f"{where}: give a Symbol or a non-empty tuple of Symbols")
        for symbol in symbols:
            if not isinstance(symbol, sp.Symbol):
                raise SpecError(
                    f"{where}: the source {symbol!r} must be a Symbol (a per-unit value assigned "
                    "by an equation, or a state's prev symbol)"
                )
            if symbols.count(symbol) > 1:
                raise SpecError(f"{where}: the source {symbol} repeats")
            if symbol in prevs and prevs[symbol].projection is not None:
                raise SpecError(
                    f"{where}: {symbol} is the previous value of the projected state "
                    f"{prevs[symbol].name} (projection_size entries): not supported as a "
                    "hidden source"
                )
            if symbol in news:
                raise SpecError(
                    f"{where}: the source {symbol} is the new value of state "
                    f"{news[symbol].name}: read its previous value {news[symbol].prev}, or a "
                    "per-unit value of the step that is not a state"
                )
            if symbol not in prevs and symbol not in targets:
                raise SpecError(
                    f"{where}: no equation assigns the source {symbol}, and it is no state's "
                    "prev symbol"
                )
        if symbols == (spec.recurrent,):
            raise SpecError(
                f"{where}: ({spec.recurrent},) is the default source tuple; leave the gate out"
            )
    if spec.projected_state is not None:
        raise SpecError(
            f"cell {spec.name!r}: hidden_sources and a projected state cannot be combined yet"
        )
    stage_gates = [g for g in spec.sourced_gates if spec.reads_unit_source(g)]
    sourced = {gate_hidden(g) for g in stage_gates}
    for number, (target, expr) in enumerate(spec.equations[: source_stage(spec)], 1):
        read = sorted(s.name for s in expr.free_symbols & sourced)
        if read:
            raise SpecError(
                f"cell {spec.name!r}, equation {number} ({target} = {expr}): reads "
                f"{', '.join(read)}, the projection of a hidden source of this step, before (or "
                "while) the last such source is computed: every same-step source must come first"
            )


def _check_module_init(spec: CellSpec) -> None:
    """``module_init``: unit parameter names mapped to finite real numbers."""
    if not isinstance(spec.module_init, dict):
        raise SpecError(
            f"cell {spec.name!r}: module_init must be a dict of unit parameter names to numbers, "
            f"got {type(spec.module_init).__name__}"
        )
    names = {p.name for p in spec.unit_parameters}
    for name, value in spec.module_init.items():
        if name not in names:
            raise SpecError(
                f"cell {spec.name!r}: module_init names {name!r}, which is not a unit parameter "
                f"(they are {sorted(names)})"
            )
        number = sp.sympify(value) if not isinstance(value, bool) else None
        if number is None or not (number.is_real and number.is_finite and number.is_number):
            raise SpecError(
                f"cell {spec.name!r}: module_init[{name!r}] must be a finite real number, "
                f"got {value!r}"
            )
