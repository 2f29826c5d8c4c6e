"""The backward pass through reductions over units (``spec.reductions``), derived by SymPy.

A :class:`~lstm_sym.spec.Normalization` of the stacked vector v (n entries) gives every unit the
same ``mean`` and ``rstd``. Its partials are differentiated on a symbolic vector of size n
(:func:`normalization_partials`: ``sympy.diff`` of the sums over an ``IndexedBase`` with respect
to one entry v_j, the sums then written through ``mean``): d mean / d v_j = 1/n,
d var / d v_j = 2 (v_j - mean) / n, d rstd / d var = -rstd^3 / 2.

That couples units in the backward pass: the adjoint of every v_j reads the totals over all
units D_mean = sum_u dL/dmean|_u and D_var = (d rstd / d var) sum_u dL/drstd|_u,

    dL/dv_j += D_mean / n + D_var 2 (v_j - mean) / n,

so one step's backward is per-unit stages separated by these reductions, in reverse order
of the forward's (:func:`staged_backward`): the stage after a reduction's boundary delivers
the per-unit contributions to dL/dmean and dL/drstd, the reduction sums them over the units,
the stage before it reads the totals. Through time nothing changes: the states' adjoints
leave the step's first stage as in every cell and enter the previous step's last one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import sympy as sp

from .derive import Assignment, Backward, Lowered, Partial, adjoint, carry, eliminate, lower
from .spec import CellSpec, Normalization, SpecError, real_symbol

#: The hidden size as the plan writes shapes (``lstm_sym.plan.H``): a vector over the four
#: gates' parts has 4 H entries.
HIDDEN_SIZE = sp.Symbol("H", integer=True, positive=True)


def variance_symbol(reduction: Normalization) -> sp.Symbol:
    """The symbol of a reduction's biased variance (the forward computes it, nothing saves it)."""
    return sp.Symbol(f"{reduction.name}_variance", nonnegative=True)


def rstd_definition(variance: sp.Expr, epsilon: sp.Expr) -> sp.Expr:
    """rstd = (var + epsilon)^(-1/2), the definition :func:`normalization_partials`
    differentiates (``spec.Normalization``)."""
    return (variance + epsilon) ** sp.Rational(-1, 2)


@dataclass(frozen=True)
class NormalizationPartials:
    """d mean/d v_j, d var/d v_j (through ``value`` v_j, ``mean`` and ``size`` n) and
    d rstd / d var (through ``rstd``), as SymPy derived them."""

    value: sp.Symbol
    mean: sp.Symbol
    rstd: sp.Symbol
    size: sp.Symbol
    d_mean: sp.Expr
    d_variance: sp.Expr
    d_rstd: sp.Expr


@cache
def normalization_partials() -> NormalizationPartials:
    """Differentiate mean = sum_k v_k / n and var = sum_k v_k^2 / n - mean^2 with respect to
    one entry v_j of a symbolic vector of size n, and rstd = (var + eps)^(-1/2) by var."""
    n = sp.Symbol("n", integer=True, positive=True)
    j, k = sp.symbols("j k", integer=True, nonnegative=True)
    v = sp.IndexedBase("v", real=True)
    total = sp.Sum(v[k], (k, 0, n - 1))
    mean = total / n
    variance = sp.Sum(v[k] ** 2, (k, 0, n - 1)) / n - mean**2
    value, mean_symbol = real_symbol("value"), real_symbol("mean")
    rstd = sp.Symbol("rstd", positive=True)
    variance_symbol, epsilon = sp.symbols("variance epsilon", positive=True)

    def partial(expr):
        d = sp.diff(expr, v[j]).doit()
        # The Kronecker sums are 1 for an entry of the vector (0 <= j < n): take that branch.
        d = d.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[0][0])
        return sp.simplify(d.xreplace({v[j]: value, total: n * mean_symbol}))

    d_rstd = sp.diff(rstd_definition(variance_symbol, epsilon), variance_symbol)
    d_rstd = d_rstd.xreplace({variance_symbol + epsilon: rstd**-2})
    return NormalizationPartials(
        value, mean_symbol, rstd, n, partial(mean), partial(variance), sp.simplify(d_rstd)
    )


@dataclass(frozen=True)
class Stage:
    """Per-unit assignments of the backward; ``outputs`` maps a symbol to its adjoint's.
    ``later``: the values of the chain later stages read (after :func:`eliminate_stages`)."""

    chain: tuple[Assignment, ...]
    outputs: dict
    later: tuple[sp.Symbol, ...] = ()


@dataclass(frozen=True)
class ReductionAdjoint:
    """The totals over units of one reduction: ``total_mean = sum_u d_mean``, ``total_variance
    = d_rstd_d_variance * sum_u d_rstd``, and per entry ``contributions[v]`` to dL/dv."""

    reduction: Normalization
    total_mean: sp.Symbol
    total_variance: sp.Symbol
    variance_factor: sp.Expr
    contributions: dict


def total(symbol: sp.Symbol) -> sp.Symbol:
    return real_symbol(f"D_{symbol.name}")


def staged_backward(spec: CellSpec, hidden_size: sp.Expr | int) -> tuple:
    """One step's backward as alternating :class:`Stage` and tuples of
    :class:`ReductionAdjoint` (the reductions at one boundary), in execution order (last
    forward stage first). Every partial by ``sympy.diff``."""
    return _staged(spec, lower(spec), hidden_size)[0]


def _staged(spec: CellSpec, lowered: Lowered, hidden_size) -> tuple[tuple, tuple]:
    """The items of :func:`staged_backward` and the per-unit partials SymPy found."""
    found_partials: list[Partial] = []
    partials = normalization_partials()
    boundary = {}  # reduction -> index of the first assignment reading its statistics
    for reduction in spec.reductions:
        boundary[reduction] = next(
            i for i, a in enumerate(lowered.forward) if set(reduction.symbols) & a.expr.free_symbols
        )
    contributions: dict = defaultdict(list)
    for state in spec.states:
        contributions[state.unit].append(carry(state.unit))
    items: list = []
    chain: list[Assignment] = []
    for index in range(len(lowered.forward) - 1, -1, -1):
        assignment = lowered.forward[index]
        terms = contributions.get(assignment.target)
        if terms:
            d_target = adjoint(assignment.target)
            chain.append(Assignment(d_target, sp.Add(*terms), f"dL/d{assignment.target}"))
            for wrt in sorted(assignment.expr.free_symbols, key=lambda s: s.name):
                raw = sp.diff(assignment.expr, wrt)
                saved = raw.xreplace({assignment.expr: assignment.target})
                if saved != 0:
                    found_partials.append(Partial(assignment.target, wrt, raw, saved))
                    contributions[wrt].append(d_target * saved)
        here = [r for r in spec.reductions if boundary[r] == index]
        if not here:
            continue
        outputs = {}
        for reduction in here:
            for symbol in reduction.symbols:
                d = adjoint(symbol)
                chain.append(Assignment(d, sp.Add(*contributions.pop(symbol, [])), f"dL/d{symbol}"))
                outputs[symbol] = d
        items.append(Stage(tuple(chain), outputs))
        chain = []
        adjoints = []
        for reduction in here:
            size = hidden_size * len(reduction.over)
            rule = {partials.mean: reduction.mean, partials.rstd: reduction.rstd}
            rule[partials.size] = sp.sympify(size)
            mean_total = total(reduction.mean)
            variance_total = real_symbol(f"D_{reduction.name}_variance")
            found = {}
            for value in reduction.over:
                at = {**rule, partials.value: value}
                term = mean_total * partials.d_mean.xreplace(at)
                term += variance_total * partials.d_variance.xreplace(at)
                contributions[value].append(term)
                found[value] = term
            factor = partials.d_rstd.xreplace(rule)
            adjoints.append(ReductionAdjoint(reduction, mean_total, variance_total, factor, found))
        items.append(tuple(adjoints))
    outputs = {}
    for symbol in lowered.inputs:
        terms = contributions.get(symbol, [])
        d = adjoint(symbol)
        if terms:
            chain.append(Assignment(d, sp.Add(*terms), f"dL/d{symbol}"))
        outputs[symbol] = d if terms else sp.S.Zero
    items.append(Stage(tuple(chain), outputs))
    return tuple(items), tuple(found_partials)


def eliminate_stages(spec: CellSpec, lowered: Lowered) -> tuple:
    """The staged backward of ``spec`` (sizes in :data:`HIDDEN_SIZE`) with one joint
    ``sympy.cse`` per stage (:func:`~lstm_sym.derive.eliminate`), last stage first: a stage's
    outputs are its adjoints of the statistics and the values later stages read. Returns
    ``(items, raw, backward, statistics)``: the items in execution order, the raw and the
    eliminated chains one after the other as :class:`~lstm_sym.derive.Backward` (the last
    stage's outputs), and the statistics the backward reads, in the reductions' order."""
    if spec.hidden_sources or spec.projected_state is not None:
        raise SpecError(
            f"cell {spec.name!r}: reductions over units with hidden_sources or a projected state "
            "are not planned"
        )
    staged, partials = _staged(spec, lowered, HIDDEN_SIZE)
    items = list(staged)
    carries = tuple(carry(s.unit) for s in spec.states)
    stages = [k for k, item in enumerate(items) if isinstance(item, Stage)]
    # Last stage first: a stage's outputs include what the stages after it read. (The totals
    # read the stage outputs and forward values only.)
    later_of, read_later = {}, set()
    for k in reversed(stages):
        item = items[k]
        targets = {a.target for a in item.chain}
        later_of[k] = tuple(sorted(targets & read_later, key=lambda s: s.name))
        outputs = {**item.outputs, **{symbol: symbol for symbol in later_of[k]}}
        reduced = eliminate(Backward(carries, item.chain, outputs, ()))
        read_later |= set().union(*(a.expr.free_symbols for a in reduced.chain))
    # Then in execution order, the temporaries numbered on from one stage to the next.
    eliminated, start = list(items), 0
    for k in stages:
        item = items[k]
        outputs = {**item.outputs, **{symbol: symbol for symbol in later_of[k]}}
        reduced = eliminate(Backward(carries, item.chain, outputs, ()), start)
        start += sum(a.note == "common subexpression" for a in reduced.chain)
        eliminated[k] = Stage(reduced.chain, item.outputs, later_of[k])
    final = eliminated[-1]
    raw_chain = tuple(a for item in items if isinstance(item, Stage) for a in item.chain)
    chain = tuple(a for item in eliminated if isinstance(item, Stage) for a in item.chain)
    raw = Backward(carries, raw_chain, items[-1].outputs, partials)
    reduced = Backward(carries, chain, final.outputs, ())
    reads = set().union(*(a.expr.free_symbols for a in chain))
    for item in eliminated:
        if not isinstance(item, Stage):
            reads |= set().union(*(r.variance_factor.free_symbols for r in item))
    statistics = tuple(s for r in spec.reductions for s in r.symbols if s in reads)
    return tuple(eliminated), raw, reduced, statistics
