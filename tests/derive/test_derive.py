"""The derivation's stages, inspected: sigmoid, lowering, saved-value rewriting, matrix calculus."""

from __future__ import annotations

import numpy as np
import sympy as sp

from lstm_sym.cells import get
from lstm_sym.derive import derive
from lstm_sym.functions import sigmoid


def test_sigmoid_derivative_and_exact_rewrite():
    x = sp.Symbol("x", real=True)
    assert sp.simplify(sp.diff(sigmoid(x), x) - sigmoid(x) * (1 - sigmoid(x))) == 0
    assert sp.simplify(sigmoid(x).rewrite(sp.exp) - 1 / (1 + sp.exp(-x))) == 0
    value = sigmoid(sp.Rational(3, 7)).evalf(50)
    assert abs(value - (1 / (1 + sp.exp(-sp.Rational(3, 7)))).evalf(50)) < sp.Float("1e-48")
    assert sigmoid(0) == sp.S.Half


def test_lowering_names_nested_activations_and_sums_gate_parts():
    d = derive(get("lstm"))
    assert [g.kind for g in d.gate_inputs] == ["pre"] * 4 and d.summed
    targets = [a.target.name for a in d.forward]
    assert "tanh_cell" in targets and targets.index("tanh_cell") < targets.index("hidden")
    for a in d.forward:  # every activation is the whole right-hand side of its assignment
        for f in a.expr.atoms(sp.Function):
            assert f == a.expr


def test_backward_reads_only_saved_values_carries_and_previous_states():
    d = derive(get("lstm"))
    spec = d.spec
    allowed = set(d.saved) | set(d.backward.carries) | set(spec.prev_symbols)
    allowed |= {a.target for a in d.backward.chain}
    for a in d.backward.chain:
        assert a.expr.free_symbols <= allowed, a
        assert not a.expr.atoms(sp.Function), f"{a.target} recomputes an activation: {a.expr}"


def test_backward_equals_differentiating_the_composed_step():
    """Inline everything and compare with sympy.diff of the un-lowered step (symbolically)."""
    d = derive(get("lstm"))
    spec = d.spec
    forward = {}
    for a in d.forward:
        forward[a.target] = a.expr.xreplace(forward)
    saved = {s: forward[s] for s in d.saved}
    chain = {}
    for a in d.backward.chain:
        chain[a.target] = a.expr.xreplace(chain)
    loss = sum(c * forward[s.new] for c, s in zip(d.backward.carries, spec.states))
    rng = np.random.default_rng(0)
    point = {s: sp.Float(rng.normal()) for s in d.lowered.inputs + d.backward.carries}
    for symbol, adjoint in d.backward.outputs.items():
        expected = sp.diff(loss, symbol).xreplace(point)
        got = sp.sympify(adjoint).xreplace(chain).xreplace(saved).xreplace(point)
        assert abs(float(expected) - float(got)) < 1e-12 * max(1, abs(float(expected))), symbol


def test_matrix_calculus_adjoints_match_finite_differences():
    d = derive(get("lstm"))
    linear = d.linear
    names = linear.symbols
    rng = np.random.default_rng(1)
    n, m, k = 5, 3, 4
    values = {
        "X": rng.normal(size=(n, m)),
        "W": rng.normal(size=(k, m)),
        "b": rng.normal(size=(k, 1)),
        "Delta": rng.normal(size=(n, k)),
    }
    subs = {names["N"]: n, names["M"]: m, names["K"]: k}
    subs.update({names[key]: sp.Matrix(v) for key, v in values.items()})

    def loss(X, W, b):
        return float(np.sum(values["Delta"] * (X @ W.T + np.ones((n, 1)) @ b.T)))

    for key, formula in (("W", linear.weights), ("X", linear.inputs), ("b", linear.bias)):
        got = np.array(sp.Matrix(formula.subs(subs).doit()), dtype=float)
        numeric = np.zeros_like(values[key])
        for index in np.ndindex(*numeric.shape):
            args = {k2: v.copy() for k2, v in values.items() if k2 != "Delta"}
            args[key][index] += 1.0  # the loss is linear in each argument: a unit step is exact
            numeric[index] = loss(**args) - loss(values["X"], values["W"], values["b"])
        np.testing.assert_allclose(got, numeric, rtol=1e-12, atol=1e-12, err_msg=key)
