"""The generated module's contract: shapes, dtypes, numerics and clear errors on bad input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from generated import lstm

# --- shapes and dtypes ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_in_is_dtype_out(dtype, random_problem):
    parameters = random_problem(lstm, 1, 1, 3, 4, dtype=dtype).parameters
    events = np.ones((5, 2, 3), dtype=dtype)
    outputs, (h, c), cache = lstm.forward(parameters, events)
    grads = lstm.backward(cache, np.ones_like(outputs))
    assert outputs.dtype == h.dtype == c.dtype == dtype
    for name in lstm.Gradients.NAMES:
        assert getattr(grads, name).dtype == dtype, name


def test_unbatched_equals_batch_of_one_and_shapes_follow_the_contract(random_problem):
    parameters = random_problem(lstm, 1, 1, 3, 4).parameters
    rng = np.random.default_rng(1)
    events, h0, c0 = rng.normal(size=(6, 3)), rng.normal(size=4), rng.normal(size=4)
    outputs, (h, c), cache = lstm.forward(parameters, events, h0, c0)
    assert outputs.shape == (6, 4) and h.shape == c.shape == (4,)
    d_out = rng.normal(size=(6, 4))
    grads = lstm.backward(cache, d_out, d_h_last=h, d_c_last=c)
    b_out, (b_h, b_c), b_cache = lstm.forward(parameters, events[:, None], h0[None], c0[None])
    b_grads = lstm.backward(b_cache, d_out[:, None], b_h, b_c)
    np.testing.assert_array_equal(outputs, b_out[:, 0])
    assert grads.events.shape == (6, 3) and grads.h0.shape == (4,) and grads.c0.shape == (4,)
    for name in lstm.Gradients.NAMES:
        ours, batched = getattr(grads, name), getattr(b_grads, name)
        if name in ("events", "h0", "c0"):
            batched = batched[:, 0] if name == "events" else batched[0]
        np.testing.assert_allclose(ours, batched, rtol=1e-15, atol=0, err_msg=name)
    assert grads.event_forget_bias.shape == (4,)
    assert grads.hidden_output_weights.shape == (4, 4)
    assert grads.event_update_weights.shape == (4, 3)


def test_batch_rows_are_independent(random_problem):
    parameters = random_problem(lstm, 1, 1, 2, 3).parameters
    rng = np.random.default_rng(2)
    events = rng.normal(size=(4, 3, 2))
    outputs, _, _ = lstm.forward(parameters, events)
    for b in range(3):
        alone, _, _ = lstm.forward(parameters, events[:, b])
        np.testing.assert_allclose(outputs[:, b], alone, rtol=1e-14)


def test_scalar_and_vector_biases_agree(random_problem):
    parameters = random_problem(lstm, 1, 1, 2, 3).parameters
    parameters.event_forget_bias = 0.25
    events = np.random.default_rng(3).normal(size=(4, 2))
    scalar, _, _ = lstm.forward(parameters, events)
    parameters.event_forget_bias = np.full(3, 0.25)
    vector, _, _ = lstm.forward(parameters, events)
    np.testing.assert_array_equal(scalar, vector)


def test_integer_events_compute_in_float64(random_problem):
    parameters = random_problem(lstm, 1, 1, 2, 2).parameters
    outputs, _, _ = lstm.forward(parameters, np.array([[1, 0], [0, 1]]))
    assert outputs.dtype == np.float64


def test_backward_does_not_modify_its_inputs_and_is_repeatable(random_problem):
    parameters = random_problem(lstm, 1, 1, 3, 3).parameters
    rng = np.random.default_rng(4)
    events = rng.normal(size=(5, 2, 3))
    outputs, _, cache = lstm.forward(parameters, events)
    d_out = rng.normal(size=outputs.shape)
    snapshot = d_out.copy()
    first = lstm.backward(cache, d_out)
    second = lstm.backward(cache, d_out)
    np.testing.assert_array_equal(d_out, snapshot)
    for name in lstm.Gradients.NAMES:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


# --- numerics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_huge_pre_activations_give_no_warning_and_no_nan(dtype, sign):
    parameters = lstm.Parameters(1, 2, dtype=dtype)
    for name in lstm.Parameters.NAMES:
        if name.endswith("_bias"):
            setattr(parameters, name, np.array([sign * 1e4, -sign * 1e4], dtype=dtype))
    events = np.full((3, 2, 1), sign * 1e4, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs, (h, c), cache = lstm.forward(parameters, events)
        grads = lstm.backward(cache, np.ones_like(outputs), np.ones_like(h), np.ones_like(c))
    assert np.all(np.isfinite(outputs)) and np.all(np.isfinite(c))
    for name in lstm.Gradients.NAMES:
        assert np.all(np.isfinite(getattr(grads, name))), name


def test_sigmoid_is_accurate_in_the_tails():
    x = np.array([-700.0, -40.0, -1.0, 0.0, 1.0, 40.0, 700.0])
    expected = np.array([float(1 / (1 + np.exp(np.longdouble(-v)))) for v in x])
    np.testing.assert_allclose(lstm._sigmoid(x), expected, rtol=1e-15, atol=0)


# --- bad input --------------------------------------------------------------------------------


def _forward_call(random_problem, **overrides):
    parameters = random_problem(lstm, 1, 1, 3, 4).parameters
    args = dict(parameters=parameters, events=np.zeros((5, 2, 3)), h0=None, c0=None)
    args.update(overrides)
    return lambda: lstm.forward(**args)


BAD_FORWARD = [
    ("events rank", dict(events=np.zeros(3)), ValueError, r"events must have shape .*got \(3,\)"),
    (
        "events width",
        dict(events=np.zeros((5, 2, 4))),
        ValueError,
        r"events .*\(T, batch, 3\).*got \(5, 2, 4\)",
    ),
    (
        "events strings",
        dict(events=np.array([["a", "b", "c"]])),
        TypeError,
        r"events must be a real numeric array, got dtype <U1",
    ),
    ("events complex", dict(events=np.zeros((2, 3), complex)), TypeError, r"events .*complex128"),
    (
        "events ragged",
        dict(events=[[1, 2, 3], [1, 2]]),
        TypeError,
        r"events must be a real numeric array",
    ),
    ("events empty", dict(events=np.zeros((0, 2, 3))), ValueError, r"at least one step"),
    (
        "h0 shape",
        dict(h0=np.zeros(4)),
        ValueError,
        r"h0 must have shape \(2, 4\) \(batch, hidden_size\), got \(4,\)",
    ),
    (
        "c0 batch",
        dict(c0=np.zeros((3, 4))),
        ValueError,
        r"c0 must have shape \(2, 4\).*got \(3, 4\)",
    ),
    (
        "parameters type",
        dict(parameters="weights"),
        TypeError,
        r"parameters must be a lstm.Parameters, got str",
    ),
]


@pytest.mark.parametrize(
    ("case", "overrides", "error", "message"), BAD_FORWARD, ids=[b[0] for b in BAD_FORWARD]
)
def test_bad_forward_input_is_named_with_expected_and_actual(
    case, overrides, error, message, random_problem
):
    with pytest.raises(error, match=message):
        _forward_call(random_problem, **overrides)()


BAD_PARAMETERS = [
    (
        "hidden_forget_weights",
        np.zeros((4, 3)),
        r"parameters.hidden_forget_weights must have shape \(4, 4\) "
        r"\(hidden_size, hidden_size\), got \(4, 3\)",
    ),
    (
        "event_output_weights",
        np.zeros((3, 4)),
        r"parameters.event_output_weights must have shape \(4, 3\) "
        r"\(hidden_size, event_size\), got \(3, 4\)",
    ),
    (
        "event_update_bias",
        np.zeros(3),
        r"parameters.event_update_bias must have shape \(4,\) \(hidden_size,\) or \(\), got \(3,\)",
    ),
    (
        "hidden_candidate_bias",
        np.zeros((4, 1)),
        r"hidden_candidate_bias must have shape \(4,\).*got \(4, 1\)",
    ),
]


@pytest.mark.parametrize(
    ("name", "value", "message"), BAD_PARAMETERS, ids=[b[0] for b in BAD_PARAMETERS]
)
def test_bad_parameter_shapes_never_broadcast(name, value, message, random_problem):
    parameters = random_problem(lstm, 1, 1, 3, 4).parameters
    setattr(parameters, name, value)
    with pytest.raises(ValueError, match=message):
        lstm.forward(parameters, np.zeros((5, 2, 3)))


@pytest.mark.parametrize("size", [0, -1, 2.5, "3", True])
def test_bad_sizes(size):
    with pytest.raises(
        ValueError, match=re.escape(f"event_size must be a positive integer, got {size!r}")
    ):
        lstm.Parameters(size, 3)


def test_bad_backward_input(random_problem):
    parameters = random_problem(lstm, 1, 1, 3, 4).parameters
    outputs, (h, _), cache = lstm.forward(parameters, np.zeros((5, 2, 3)))
    with pytest.raises(
        TypeError, match=r"cache must be the Cache returned by lstm.forward, got dict"
    ):
        lstm.backward({}, outputs)
    with pytest.raises(
        ValueError, match=r"d_outputs must have shape \(5, 2, 4\) \(like outputs\), got \(5, 4\)"
    ):
        lstm.backward(cache, outputs[:, 0])
    with pytest.raises(
        ValueError, match=r"d_h_last must have shape \(2, 4\) \(batch, hidden_size\), got \(4,\)"
    ):
        lstm.backward(cache, outputs, d_h_last=h[0])
    with pytest.raises(ValueError, match=r"d_c_last must have shape \(2, 4\).*got \(2, 5\)"):
        lstm.backward(cache, outputs, d_c_last=np.zeros((2, 5)))
    with pytest.raises(
        TypeError, match=r"d_outputs must be a real numeric array, got dtype object"
    ):
        lstm.backward(cache, np.array([None] * 40).reshape(5, 2, 4))


def test_bad_step_function_input(random_problem):
    parameters = random_problem(lstm, 1, 1, 3, 4).parameters
    with pytest.raises(ValueError, match=r"event must have shape \(\.\.\., 3\)"):
        lstm.input_gate(np.zeros(2), np.zeros(4), parameters)
    with pytest.raises(
        ValueError, match=r"hidden_state must have shape \(4,\) \(\.\.\., hidden_size\), got \(3,\)"
    ):
        lstm.input_gate(np.zeros(3), np.zeros(3), parameters)
    with pytest.raises(ValueError, match=r"prev_cell_state must have shape \(2, 4\)"):
        lstm.forget_gate(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(4), parameters)
    with pytest.raises(ValueError, match=r"input_gate_output must have shape \(3,\)"):
        lstm.cell_state(np.zeros(3), np.zeros(4))
