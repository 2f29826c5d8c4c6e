"""Generated NumPy LSTM against the independent exact models (40-digit SymPy/mpmath)."""

from __future__ import annotations

import numpy as np
import pytest

from generated import lstm
from lstm_sym.cells import CELLS, get
from lstm_sym.derivation_checks import check_exact
from lstm_sym.verify import ExactModel, direct_gradients, random_point

SPEC = get("lstm")


def max_relative(actual, expected) -> float:
    """max |actual - expected| / max |expected|: one figure per array."""
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def run_generated(model: ExactModel):
    parameters = lstm.Parameters(model.event_size, model.hidden_size)
    for name, value in model.parameters.items():
        setattr(parameters, name, value)
    outputs, (h_last, c_last), cache = lstm.forward(
        parameters, model.events, model.initial["h"], model.initial["c"]
    )
    grads = lstm.backward(
        cache, model.cotangents["outputs"], model.cotangents["h"], model.cotangents["c"]
    )
    return outputs, {"h": h_last, "c": c_last}, grads


@pytest.mark.parametrize(
    "sizes",
    [
        dict(steps=3, batch=2, event_size=2, hidden_size=2, seed=0),
        dict(steps=4, batch=1, event_size=3, hidden_size=1, seed=1),
        dict(steps=2, batch=3, event_size=1, hidden_size=3, seed=2),
    ],
    ids=["T3B2X2H2", "T4B1X3H1", "T2B3X1H3"],
)
def test_forward_and_every_gradient_match_the_exact_model(sizes):
    model = ExactModel(SPEC, **sizes)
    outputs, finals, grads = run_generated(model)
    assert max_relative(outputs, model.outputs) < 1e-12
    for short in ("h", "c"):
        assert max_relative(finals[short], model.finals[short]) < 1e-12
    assert set(model.gradients) == set(lstm.Gradients.NAMES)
    for name, exact in model.gradients.items():
        got = getattr(grads, name)
        assert got.shape == exact.shape, name
        assert max_relative(got, exact) < 1e-12, name


def test_the_exact_model_detects_a_wrong_gradient():
    """The comparison can fail: perturb one gradient entry by one part in 1e9."""
    model = ExactModel(SPEC)
    _, _, grads = run_generated(model)
    wrong = grads.hidden_forget_weights.copy()
    wrong[0, 1] *= 1 + 1e-9
    assert max_relative(wrong, model.gradients["hidden_forget_weights"]) > 1e-12


def test_forward_mode_model_equals_direct_sympy_diff_of_the_unrolled_loss():
    """The fast exact model against sympy.diff of the whole loss expression (tiny size)."""
    point, cotangents = random_point(SPEC, steps=2, batch=1, event_size=1, hidden_size=2, seed=3)
    direct = direct_gradients(SPEC, point, cotangents)
    model = ExactModel(SPEC, steps=2, batch=1, event_size=1, hidden_size=2, seed=3)
    for name, value in direct.items():
        assert np.allclose(model.gradients[name], value, rtol=1e-15, atol=0), name


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_cell_on_a_padded_batch_matches_the_exact_model(name):
    """Unsorted lengths with a row of one step and one of T: the generated NumPy against the
    exact model's own masked recurrence (lstm_sym.verify, not the derivation)."""
    row = check_exact(get(name), lengths=True)
    assert row.passed, (row.sizes, row.error)
