"""Random specs, valid and not: the spec checker either accepts one -- and then its generated
NumPy module imports, runs forward and backward to finite values, and equals the exact
40-digit model (``derivation_checks.check_exact``) -- or refuses it with a SpecError naming
what is wrong, before a file is written. Never another exception."""

from __future__ import annotations

import importlib.util
import keyword
import math

import numpy as np
import pytest
import sympy as sp

from lstm_sym import derivation_checks as checks
from lstm_sym import userspec
from lstm_sym.codegen import reserved
from lstm_sym.functions import sigmoid
from lstm_sym.generate import generate
from lstm_sym.spec import CellSpec, SpecError, State, gate_event, gate_hidden, real_symbol
from tests.conftest import require_module

hypothesis = require_module("hypothesis")
st = hypothesis.strategies

pytestmark = pytest.mark.slow


def _hostile_names():
    """Generated names (fixed ones and template examples), keywords, long and odd ones."""
    table = reserved.reserved()
    generated = st.sampled_from(sorted({name for name, _ in table.fixed}))
    templated = st.sampled_from(sorted({t.example for t in table.templates}))
    odd = st.sampled_from(
        [*keyword.kwlist[:8], "x" * 80, "a b", "é", "_hidden", "lstm_sym_x", "2x", ""]
    )
    return st.one_of(generated, templated, odd)


def _tree(leaves):
    """Small expressions over ``leaves`` with sigmoid, tanh and arithmetic."""
    base = st.one_of(st.sampled_from(leaves), st.sampled_from([sp.Integer(1), sp.Rational(1, 2)]))
    return st.recursive(
        base,
        lambda inner: st.one_of(
            st.builds(sigmoid, inner),
            st.builds(sp.tanh, inner),
            st.builds(lambda a, b: a + b, inner, inner),
            st.builds(lambda a, b: a * b, inner, inner),
            st.builds(lambda a: 1 - a, inner),
        ),
        max_leaves=4,
    )


@st.composite
def specs(draw):
    """Distinct plain names, then (half the time) one of them hostile; the first equation
    (rarely) under a function the emitters do not print."""
    suffix = st.from_regex(r"[a-z]{1,4}", fullmatch=True)
    names = [prefix + draw(suffix) for prefix in ("c", "g", "s", "h", "v", "p")]
    if draw(st.booleans()):
        names[draw(st.integers(0, 5))] = draw(_hostile_names())
    cell, gate, state, short, target, parameter = names
    try:
        prev, new = real_symbol(f"{state}_prev"), real_symbol(state)
        value, unit = real_symbol(target), real_symbol(parameter)
        g_event, g_hidden = gate_event(gate), gate_hidden(gate)
    except Exception:  # a name SymPy cannot make a symbol of: not a spec anyone can write
        hypothesis.assume(False)
    first = draw(_tree([g_event, g_hidden, unit, prev]))
    if draw(st.integers(0, 7)) == 0:
        first = draw(st.sampled_from([sp.sin, sp.Abs, lambda a: sp.Min(a, 0)]))(first)
    second = draw(_tree([value, prev]))
    return CellSpec(
        name=cell,
        title="A random cell",
        source="random",
        gates=(gate,),
        states=(State(name=state, short=short, prev=prev, new=new),),
        output=new,
        recurrent=prev,
        equations=((value, sigmoid(g_event + g_hidden + unit * first)), (new, value * second)),
        unit_parameters=(unit,),
    )


def _import(path):
    loader = importlib.util.spec_from_file_location(f"_random_{path.stem}", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


@hypothesis.settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
@hypothesis.given(spec=specs())
def test_a_random_spec_is_generated_and_runs_or_is_refused_before_any_file(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    try:
        files = userspec.user_artifacts(spec, out / "spec.py", out, out)
        generate(out, [f for f in files if f.path.endswith(".py")])
    except SpecError as error:
        message = str(error)
        names = [name for name, _ in reserved.name_kinds(spec)] + list(spec.gates)
        assert "equation" in message or any(repr(name) in message for name in names), message
        assert not any(out.iterdir())
        hypothesis.event("refused")
        return
    hypothesis.event("accepted")
    module = _import(out / f"{spec.name}.py")
    rng = np.random.default_rng(0)
    parameters = module.Parameters(2, 3)
    for name in parameters.NAMES:
        setattr(parameters, name, rng.normal(size=np.shape(parameters.checked(name))))
    events = rng.normal(size=(4, 2, 2))
    outputs, _, cache = module.forward(parameters, events)
    grads = module.backward(cache, np.ones_like(outputs))
    assert np.all(np.isfinite(outputs))
    assert all(math.isfinite(float(np.sum(v))) for v in grads.as_dict().values())
    row = checks.check_exact(spec, module)  # forward and gradients vs the 40-digit model
    assert row.passed, row
