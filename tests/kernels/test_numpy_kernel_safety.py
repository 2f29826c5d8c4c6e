"""The generated NumPy kernels against hostile callers: a cache owns what backward reads
(issue 15, item 5), and the caller's ``np.seterr`` does not decide whether a kernel runs
(item 7). Every built-in cell, both dtypes."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from lstm_sym.cells import CELLS
from tests.problems import run_both

NAMES = list(CELLS)
DTYPES = (np.float64, np.float32)


def kernel(name):
    return importlib.import_module(f"generated.{name}")


def gradients(grads):
    return {name: np.array(value, copy=True) for name, value in grads.as_dict().items()}


def assert_identical(got, expected):
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name, strict=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_changing_the_callers_arrays_after_forward_changes_no_gradient(name, dtype, random_problem):
    module = kernel(name)
    problem = random_problem(module, 4, 3, 5, 6, seed=7, dtype=dtype, projection_size=None)
    parameters, events, states, d_outputs, d_lasts = problem
    initial = {f"{s}0": v.copy() for s, v in states.items()}
    lasts = {f"d_{s}_last": v for s, v in d_lasts.items()}
    _, _, cache = module.forward(parameters, events.copy(), **initial)
    expected = gradients(module.backward(cache, d_outputs, **lasts))

    mutable_events = events.copy()
    mutable_initial = {k: v.copy() for k, v in initial.items()}
    _, _, cache = module.forward(parameters, mutable_events, **mutable_initial)
    # Everything the caller handed to forward, overwritten after it: events, initial states
    # and every parameter array (weights, biases, per-unit parameters, a projection).
    mutable_events[...] = 1e3
    for value in mutable_initial.values():
        value[...] = -7.0
    for attribute in parameters.NAMES:
        getattr(parameters, attribute)[...] = 0.5
    assert_identical(gradients(module.backward(cache, d_outputs, **lasts)), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_writing_into_the_returned_outputs_and_final_states_changes_no_gradient(
    name, dtype, random_problem
):
    """The results are the caller's own arrays, as the C binding's are: not views of the state
    sequences the cache keeps for backward."""
    module = kernel(name)
    problem = random_problem(module, 4, 3, 5, 6, seed=11, dtype=dtype, projection_size=None)
    parameters, events, _, d_outputs, d_lasts = problem
    lasts = {f"d_{s}_last": v for s, v in d_lasts.items()}
    _, _, cache = module.forward(parameters, events)
    expected = gradients(module.backward(cache, d_outputs, **lasts))

    outputs, finals, cache = module.forward(parameters, events)
    outputs[...] = 1e3
    for value in finals if isinstance(finals, tuple) else (finals,):
        value[...] = -7.0
    assert_identical(gradients(module.backward(cache, d_outputs, **lasts)), expected)


def saturating_problem(module, dtype, random_problem, sign_pattern):
    """A random problem whose every pre-activation is about +-1e4: the biases set to +-1e4."""
    problem = random_problem(module, 3, 2, 4, 5, seed=3, dtype=dtype, scale=0.1)
    parameters = problem.parameters
    for attribute in parameters.NAMES:
        if attribute.endswith("_bias"):
            value = getattr(parameters, attribute)
            signs = np.resize(sign_pattern, value.shape)
            setattr(parameters, attribute, (1e4 * signs).astype(dtype))
    return problem


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "inputs", ["normal", "saturated +1e4", "saturated -1e4", "mixed", "vanishing gradients"]
)
def test_kernels_run_under_errstate_all_raise_with_the_same_bits(
    name, dtype, inputs, random_problem
):
    module = kernel(name)
    pattern = {"saturated +1e4": [1.0], "saturated -1e4": [-1.0], "mixed": [1.0, -1.0, -1.0]}
    if inputs in ("normal", "vanishing gradients"):
        problem = random_problem(module, 3, 2, 4, 5, seed=3, dtype=dtype)
        if inputs == "vanishing gradients":  # products of the cotangents underflow
            tiny = np.finfo(dtype).tiny
            problem = problem._replace(
                d_outputs=problem.d_outputs * tiny,
                d_lasts={s: v * tiny for s, v in problem.d_lasts.items()},
            )
    else:
        problem = saturating_problem(module, dtype, random_problem, pattern[inputs])
    if name == "minlstm" and inputs in ("saturated -1e4", "mixed"):
        # The paper's sequential minLSTM normalizes f' = f / (f + i): with both gates' sigmoids
        # underflowing to 0 that is 0 / 0, which the caller's errstate reports (the paper's
        # log-space form is the one that stays finite there).
        with np.errstate(all="raise"), pytest.raises(FloatingPointError):
            run_both(module, problem)
        return
    with np.errstate(all="ignore"):
        expected = run_both(module, problem)
    with np.errstate(all="raise"):
        got = run_both(module, problem)
        batched_one = run_both(module, problem, batched=False)
    for want, have in zip(expected[:2], got[:2], strict=True):
        np.testing.assert_array_equal(have, want, strict=True)
    assert_identical(gradients(got[2]), gradients(expected[2]))
    assert np.all(np.isfinite(got[0])) and np.all(np.isfinite(batched_one[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_seed_step_functions_run_under_errstate_all_raise(dtype):
    lstm = kernel("lstm")
    parameters = lstm.Parameters(2, 3, dtype=dtype)
    parameters.event_forget_bias = np.array([1e4, -1e4, 1e4], dtype=dtype)
    parameters.event_update_bias = np.array([-1e4, 1e4, -1e4], dtype=dtype)
    parameters.event_output_bias = np.array([-1e4, -1e4, 1e4], dtype=dtype)
    event, hidden, cell = (np.ones(2, dtype), np.ones(3, dtype), np.full(3, 1e-30, dtype))
    with np.errstate(all="ignore"):
        expected = (
            lstm.forget_gate(event, hidden, cell, parameters),
            lstm.input_gate(event, hidden, parameters),
            lstm.output_gate(event, hidden, cell, parameters),
        )
    with np.errstate(all="raise"):
        got = (
            lstm.forget_gate(event, hidden, cell, parameters),
            lstm.input_gate(event, hidden, parameters),
            lstm.output_gate(event, hidden, cell, parameters),
        )
    for have, want in zip(got, expected, strict=True):
        np.testing.assert_array_equal(have, want, strict=True)


def test_the_kernels_leave_the_callers_error_state_as_it_was():
    lstm = kernel("lstm")
    problem_parameters = lstm.Parameters(2, 3)
    with np.errstate(all="raise"):
        lstm.forward(problem_parameters, np.zeros((2, 2)))
        assert np.geterr() == {
            "divide": "raise",
            "over": "raise",
            "under": "raise",
            "invalid": "raise",
        }
