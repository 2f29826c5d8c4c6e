"""lstm_sym.native.checks: the binding's input checking, public, with the generated NumPy
modules' errors (each names the argument, what was expected and what was given)."""

from __future__ import annotations

import numpy as np
import pytest

from generated import lstm, lstmp
from lstm_sym.native import checks


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros(3, dtype=complex), "events must be a real numeric array, got dtype complex128"),
        (np.full(2, "x"), "events must be a real numeric array, got dtype <U1"),
        (object(), "events must be a real numeric array, got dtype object"),
        ([1, [2, 3]], "events must be a real numeric array, got list"),
    ],
)
def test_real_array_refuses_what_is_not_real_numbers_and_names_it(value, message):
    with pytest.raises(TypeError, match=message.replace("[", r"\[")):
        checks.real_array(value, "events")
    with pytest.raises(TypeError) as numpy_error:  # the generated module says the same
        lstm._real_array(value, "events")
    assert str(numpy_error.value) == message


def test_real_array_takes_bools_integers_and_floats_as_they_are():
    for value in (np.ones(2, bool), np.arange(3), np.ones((2, 2), np.float32)):
        assert checks.real_array(value, "x") is value
    assert checks.real_array([[1, 2]], "x").shape == (1, 2)


def test_expect_shape_names_argument_expected_and_actual_shape():
    checks.expect_shape(np.zeros((2, 3)), "h0", (2, 3), "(batch, hidden_size)")
    with pytest.raises(ValueError) as error:
        checks.expect_shape(np.zeros((3,)), "h0", (2, 3), "(batch, hidden_size)")
    assert str(error.value) == "h0 must have shape (2, 3) (batch, hidden_size), got (3,)"


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((np.float32, np.float32), np.float32),
        ((np.float32, np.float64), np.float64),
        ((np.int64, np.float32), np.float32),  # integers are weak
        ((np.int32, np.bool_), np.float64),  # no float at all: float64
        ((np.float16,), np.float32),  # float16 computes in float32
    ],
)
def test_float_dtype_promotes_like_numpy_to_float32_or_float64(dtypes, expected):
    arrays = [np.zeros(1, d) for d in dtypes]
    assert checks.float_dtype(*arrays, None) == expected == lstm._float_dtype(*arrays)


def test_float_dtype_refuses_wider_floats():
    wide = np.dtype(np.longdouble)
    if wide.itemsize <= 8:
        pytest.skip("optional: long double is float64 on this platform")
    with pytest.raises(TypeError, match=rf"float32 or float64 \(or integers\), got {wide}$"):
        checks.float_dtype(np.zeros(1, wide))


def test_initial_state_is_a_batch_of_rows_and_names_its_size():
    assert checks.initial_state(None, "h0", True, 2, 3) is None
    assert checks.initial_state(np.ones(3), "h0", False, 1, 3).shape == (1, 3)
    batch = np.ones((2, 3))
    assert checks.initial_state(batch, "h0", True, 2, 3) is batch
    with pytest.raises(ValueError) as error:
        checks.initial_state(np.ones((2, 4)), "h0", True, 2, 3, "projection_size")
    assert str(error.value) == "h0 must have shape (2, 3) (batch, projection_size), got (2, 4)"
    with pytest.raises(ValueError) as numpy_error:
        lstmp._initial_state(np.ones((2, 4)), "h0", True, 2, 3, "projection_size")
    assert str(numpy_error.value) == str(error.value)
    with pytest.raises(ValueError, match=r"c0 must have shape \(3,\) \(hidden_size,\)"):
        checks.initial_state(np.ones(4), "c0", False, 1, 3)


def test_adjoint_is_checked_and_converted_to_the_forward_dtype():
    value = checks.adjoint([[1, 2, 3]], "d_h_last", (1, 3), "(batch, hidden_size)", np.float32)
    assert value.dtype == np.float32 and value.tolist() == [[1.0, 2.0, 3.0]]
    same = np.ones((1, 3))
    assert checks.adjoint(same, "d", (1, 3), "", np.float64) is same  # no copy
    with pytest.raises(ValueError, match=r"d_outputs must have shape \(4, 3\) \(like outputs\)"):
        checks.adjoint(np.ones((3, 4)), "d_outputs", (4, 3), "(like outputs)", np.float64)
