"""The exact model's variable-length batches: its masked recurrence against the model of each
row alone on its own prefix (no masking at all), and the direct model (sympy.diff of the
unrolled, masked loss) against the forward-mode one."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from lstm_sym.cells import get
from lstm_sym.verify import (
    DIGITS,
    ExactModel,
    _forward_mode,
    direct_gradients,
    random_lengths,
    random_point,
)
from tests.support import relative_error

SIZES = {"steps": 3, "batch": 3, "event_size": 2, "hidden_size": 2}


def _alone(spec, model, b, length):
    """Row ``b`` alone (batch 1), for its first ``length`` steps only, without lengths, at the
    batch model's point (its parameters, events, initial states and cotangents)."""
    point = dict(model.parameters)
    point["events"] = model.events[:length, b : b + 1]
    for s in spec.states:
        point[f"{s.short}0"] = model.initial[s.short][b : b + 1]
    cot = {"outputs": model.cotangents["outputs"][:length, b : b + 1]}
    cot.update({s.short: model.cotangents[s.short][b : b + 1] for s in spec.states})
    with mpmath.workdps(DIGITS + 10):
        return _forward_mode(spec, point, cot)


@pytest.mark.parametrize(
    ("name", "projection_size"), [("lstm", None), ("gru_cho", None), ("lstmp", 1)]
)
def test_each_padded_row_is_the_row_alone_on_its_own_prefix(name, projection_size):
    spec = get(name)
    lengths = random_lengths(SIZES["steps"], SIZES["batch"])
    assert list(lengths) != sorted(lengths, reverse=True)  # not PyTorch's sorted order
    assert min(lengths) == 1 and max(lengths) == SIZES["steps"]
    model = ExactModel(spec, **SIZES, seed=5, projection_size=projection_size, lengths=lengths)
    batch_gradients = {}
    for b, length in enumerate(lengths):
        outputs, finals, gradients = _alone(spec, model, b, length)
        np.testing.assert_array_equal(model.outputs[:length, b], outputs[:, 0])
        np.testing.assert_array_equal(model.outputs[length:, b], 0.0)
        for s in spec.states:
            np.testing.assert_array_equal(model.finals[s.short][b], finals[s.short][0])
            assert (
                relative_error(model.gradients[f"{s.short}0"][b], gradients[f"{s.short}0"][0])
                <= 1e-15
            )
        assert (
            relative_error(model.gradients["events"][:length, b], gradients["events"][:, 0])
            <= 1e-15
        )
        np.testing.assert_array_equal(model.gradients["events"][length:, b], 0.0)
        for key in model.parameters:
            batch_gradients[key] = batch_gradients.get(key, 0.0) + gradients[key]
    for key, value in batch_gradients.items():  # the weights' gradients sum over the rows
        assert relative_error(model.gradients[key], value) <= 1e-14, key


def test_lengths_all_t_are_the_model_without_lengths():
    spec = get("lstm")
    full = ExactModel(spec, **SIZES, seed=2)
    same = ExactModel(spec, **SIZES, seed=2, lengths=(3, 3, 3))
    np.testing.assert_array_equal(full.outputs, same.outputs)
    for key, value in full.gradients.items():
        np.testing.assert_array_equal(value, same.gradients[key])


@pytest.mark.parametrize("lengths", [(0, 3, 1), (4, 1, 1), (1, 2), (1.5, 2, 3)])
def test_the_model_refuses_lengths_outside_one_to_t(lengths):
    with pytest.raises(ValueError, match="lengths"):
        ExactModel(get("gru"), **SIZES, lengths=lengths)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm", "gru_cho"])
def test_direct_model_agrees_with_forward_mode_on_a_padded_batch(name):
    spec = get(name)
    sizes = {"steps": 3, "batch": 2, "event_size": 1, "hidden_size": 1}
    lengths = (1, 3)
    model = ExactModel(spec, **sizes, seed=3, lengths=lengths)
    point, cot = random_point(spec, *sizes.values(), seed=3)
    direct = direct_gradients(spec, point, cot, lengths=lengths)
    for key, value in direct.items():
        assert relative_error(model.gradients[key], value) <= 1e-30 + 1e-14, key
    assert np.all(direct["events"][1:, 0] == 0.0)
