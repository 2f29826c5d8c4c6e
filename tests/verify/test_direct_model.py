"""The references: the slow direct model (sympy.diff of the unrolled loss) cross-checks the fast
forward-mode exact model on the cells whose structure differs from the LSTM's."""

from __future__ import annotations

import pytest

from lstm_sym.cells import get
from lstm_sym.verify import ExactModel, direct_gradients, random_point
from tests.support import relative_error


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "hidden_size"),
    [
        ("peephole_lstm", 1),  # per-unit parameters
        ("gru", 2),  # separate event/hidden parts
        ("gru_cho", 2),  # a hidden source of the same step (two per-unit stages)
        ("lstm_fgr", 1),  # hidden sources that are previous states, side by side
    ],
)
def test_direct_model_agrees_with_forward_mode(name, hidden_size):
    """The slow direct model (sympy.diff of the unrolled loss) cross-checks the fast one
    (tests/kernels/test_lstm_exact.py does the LSTM)."""
    spec = get(name)
    sizes = {"steps": 2, "batch": 1, "event_size": 1, "hidden_size": hidden_size}
    model = ExactModel(spec, **sizes, seed=3)
    point, cot = random_point(spec, *sizes.values(), seed=3)
    direct = direct_gradients(spec, point, cot)
    for key, value in direct.items():
        assert relative_error(model.gradients[key], value) <= 1e-30 + 1e-14, key


@pytest.mark.slow
def test_projected_direct_model_agrees_with_forward_mode():
    spec = get("lstmp")
    sizes = {"steps": 2, "batch": 1, "event_size": 1, "hidden_size": 2}
    model = ExactModel(spec, **sizes, seed=3, projection_size=1)
    point, cot = random_point(spec, *sizes.values(), seed=3, projection_size=1)
    direct = direct_gradients(spec, point, cot)
    for key, value in direct.items():
        assert relative_error(model.gradients[key], value) <= 1e-30 + 1e-14, key
