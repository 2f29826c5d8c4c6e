"""Time-parallel evaluation where the derivation proves it possible (issue 18, part 4).

A cell whose one state's update is *affine* in its previous value, with coefficients that do
not depend on it,

    h_t = A_t * h_{t-1} + B_t        (per unit; A_t, B_t functions of the event x_t alone)

(minGRU: A = 1 - z, B = z * h~; minLSTM: A = f', B = i' * h~) runs over time as a scan of the
associative operator (A2, B2) o (A1, B1) = (A2 A1, A2 B1 + B2): all steps at once, in log2(T)
vectorized rounds, no loop over steps. Its backward pass is the same scan backwards in time,
g_t = c_t + A_{t+1} g_{t+1} (g the state's adjoint, c what the outputs pass back), and the
per-unit backward chain of the derivation evaluated for every step at once with g as the carry.

:func:`affine_recurrence` decides it symbolically from the derivation: the state's equation is
differentiated twice with ``sympy.diff`` (zero: affine), its coefficient and offset are
``diff(e, h_prev)`` and ``e`` at ``h_prev = 0``, and none of them, nor any other forward
assignment, may read a previous state (after substituting every earlier assignment). A cell with
a hidden projection (the previous state mixed across units by a matrix), several states, a
projected state or a non-affine update (IndRNN's relu, every LSTM and GRU) is not a scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .derive import Derivation, carry
from .spec import State


@dataclass(frozen=True)
class AffineRecurrence:
    """``state.new = coefficient * state.prev + offset``: ``coefficient`` and ``offset`` are
    expressions in the step's forward values (``assignments``, every forward assignment before
    the state's, none reading a previous state) and per-unit parameters. ``adjoint`` is the
    backward's ``d_<prev>`` in terms of the state's carry: ``coefficient * d_<new>_carry``
    (SymPy's, checked equal)."""

    state: State
    coefficient: sp.Expr
    offset: sp.Expr
    assignments: tuple
    carry: sp.Symbol


def _inline(assignments) -> dict:
    values: dict = {}
    for a in assignments:
        values[a.target] = a.expr.xreplace(values)
    return values


def affine_recurrence(derivation: Derivation) -> AffineRecurrence | None:
    """The cell's recurrence as :class:`AffineRecurrence` when it is affine with coefficients
    free of the previous state (see the module docstring), else None."""
    spec = derivation.spec
    if len(spec.states) != 1 or spec.hidden_parts or spec.projected_state is not None:
        return None  # the previous state reaches the step only per unit, through one equation
    (state,) = spec.states
    forward = derivation.forward
    if forward[-1].target != state.new:
        return None  # the state's update must be the step's last assignment
    before, update = forward[:-1], forward[-1]
    prevs = set(spec.prev_symbols)
    inlined = _inline(before)
    if any(prevs & value.free_symbols for value in inlined.values()):
        return None  # a gate reads the previous state: the coefficients depend on it
    expr, prev = update.expr, state.prev
    if sp.simplify(sp.diff(expr, prev, 2)) != 0:
        return None  # not affine in the previous state (IndRNN: relu of it)
    coefficient = sp.diff(expr, prev)
    offset = expr.xreplace({prev: sp.S.Zero})
    if prev in coefficient.free_symbols or prev in offset.free_symbols:
        return None
    if sp.simplify(coefficient * prev + offset - expr) != 0:
        return None
    d_carry = carry(state.unit)
    d_prev = derivation.backward.outputs[prev]
    chain = {a.target: a.expr for a in derivation.backward.chain}
    # The derivation's adjoint of h_{t-1} is the coefficient times the carry: the reverse scan.
    d_prev = d_prev.xreplace(chain) if d_prev != 0 else d_prev
    for _ in range(len(chain)):  # inline the CSE temporaries
        d_prev = d_prev.xreplace(chain)
    if sp.simplify(d_prev - coefficient * d_carry) != 0:
        return None
    return AffineRecurrence(state, coefficient, offset, tuple(before), d_carry)
