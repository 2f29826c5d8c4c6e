"""Variable-length batches (``lengths=``) in every cell's generated NumPy module and C kernels.

The reference is independent of the masking: each row run alone, on its own prefix of the
events, through the unmasked path (lengths=None), with the cotangents of its own outputs and
final states. A padded batch must give the same outputs (zeros past each row's length), final
states and gradients (zeros for padded events).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from lstm_sym.cells import CELLS
from tests.conftest import require_tool

NAMES = list(CELLS)
SIZES = {"steps": 6, "batch": 4, "event_size": 3, "hidden_size": 5}
#: Unsorted, the longest and the shortest both present, one row of length 1.
LENGTHS = np.array([4, 6, 1, 3])


def kernel(name):
    return importlib.import_module(f"generated.{name}")


def _tuple(lasts):
    return lasts if isinstance(lasts, tuple) else (lasts,)


def _run(module, problem, lengths=None, events=None, d_outputs=None):
    events = problem.events if events is None else events
    d_outputs = problem.d_outputs if d_outputs is None else d_outputs
    outputs, lasts, cache = module.forward(
        problem.parameters, events, **problem.initial, lengths=lengths
    )
    grads = module.backward(cache, d_outputs, **problem.lasts)
    return outputs, _tuple(lasts), grads


def _alone(module, problem, b, length):
    """Row ``b`` run alone on its first ``length`` steps, unmasked: (outputs, lasts, grads)."""
    outputs, lasts, cache = module.forward(
        problem.parameters,
        problem.events[:length, b : b + 1],
        **{k: v[b : b + 1] for k, v in problem.initial.items()},
    )
    grads = module.backward(
        cache,
        problem.d_outputs[:length, b : b + 1],
        **{k: v[b : b + 1] for k, v in problem.lasts.items()},
    )
    return outputs, _tuple(lasts), grads


def _close(actual, expected, what, rtol=1e-12, atol=1e-13):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("name", NAMES)
def test_a_padded_batch_computes_what_each_row_computes_alone_on_its_own_prefix(
    name, random_problem
):
    """Outputs (zero past each row's length), every final state (the row's state after its own
    last step) and every gradient: the parameters' are the sums of the rows' alone, the events'
    and initial states' are each row's own (zero at padded events)."""
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=3)
    outputs, lasts, grads = _run(module, problem, lengths=LENGTHS)
    expected_params = None
    for b, length in enumerate(LENGTHS):
        row_outputs, row_lasts, row_grads = _alone(module, problem, b, length)
        _close(outputs[:length, b], row_outputs[:, 0], f"outputs of row {b}")
        assert np.all(outputs[length:, b] == 0), f"outputs of row {b} past its length"
        for short, last, row_last in zip(problem.states, lasts, row_lasts, strict=True):
            _close(last[b], row_last[0], f"{short}_last of row {b}")
        _close(grads.events[:length, b], row_grads.events[:, 0], f"d events of row {b}")
        assert np.all(grads.events[length:, b] == 0), f"d events of row {b} past its length"
        for short in problem.states:
            _close(
                getattr(grads, f"{short}0")[b], getattr(row_grads, f"{short}0")[0], f"d {short}0"
            )
        row_params = {n: getattr(row_grads, n) for n in module.Parameters.NAMES}
        if expected_params is None:
            expected_params = row_params
        else:
            expected_params = {n: expected_params[n] + row_params[n] for n in row_params}
    for n in module.Parameters.NAMES:
        _close(getattr(grads, n), expected_params[n], f"d {n}")


@pytest.mark.parametrize("name", NAMES)
def test_lengths_all_equal_to_t_give_the_numbers_of_no_lengths_bit_for_bit(name, random_problem):
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=4)
    full = np.full(SIZES["batch"], SIZES["steps"])
    outputs, lasts, grads = _run(module, problem, lengths=full)
    outputs_none, lasts_none, grads_none = _run(module, problem)
    np.testing.assert_array_equal(outputs, outputs_none)
    for last, last_none in zip(lasts, lasts_none, strict=True):
        np.testing.assert_array_equal(last, last_none)
    for n in module.Gradients.NAMES:
        np.testing.assert_array_equal(getattr(grads, n), getattr(grads_none, n), err_msg=n)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_at_padded_events_and_padded_output_cotangents_change_nothing(
    name, value, random_problem
):
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=5)
    padded = np.arange(SIZES["steps"])[:, None] >= LENGTHS
    events = problem.events.copy()
    events[padded] = value
    d_outputs = problem.d_outputs.copy()
    d_outputs[padded] = value
    clean = _run(module, problem, lengths=LENGTHS)
    with np.errstate(all="raise"):
        dirty = _run(module, problem, lengths=LENGTHS, events=events, d_outputs=d_outputs)
    np.testing.assert_array_equal(dirty[0], clean[0])
    for last, last_clean in zip(dirty[1], clean[1], strict=True):
        np.testing.assert_array_equal(last, last_clean)
    for n in module.Gradients.NAMES:
        np.testing.assert_array_equal(getattr(dirty[2], n), getattr(clean[2], n), err_msg=n)


@pytest.mark.parametrize("name", ["lstm", "gru", "lstmp"])
def test_unbatched_events_take_a_scalar_length_and_run_its_prefix(name, random_problem):
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=6)
    outputs, lasts, _ = module.forward(
        problem.parameters,
        problem.events[:, 0],
        **{k: v[0] for k, v in problem.initial.items()},
        lengths=np.int32(3),
    )
    row_outputs, row_lasts, _ = _alone(module, problem, 0, 3)
    _close(outputs[:3], row_outputs[:, 0], "outputs")
    assert np.all(outputs[3:] == 0)
    for last, row_last in zip(_tuple(lasts), row_lasts, strict=True):
        _close(last, row_last[0], "final state")


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "peephole_lstm", "lstmp"])
def test_the_cache_keeps_the_lengths_it_was_given_and_backward_reads_no_other(name, random_problem):
    """Changing the caller's lengths array after forward changes no gradient."""
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=7)
    lengths = LENGTHS.copy()
    _, _, cache = module.forward(
        problem.parameters, problem.events, **problem.initial, lengths=lengths
    )
    lengths[:] = SIZES["steps"]
    grads = module.backward(cache, problem.d_outputs, **problem.lasts)
    expected = _run(module, problem, lengths=LENGTHS)[2]
    for n in module.Gradients.NAMES:
        np.testing.assert_array_equal(getattr(grads, n), getattr(expected, n), err_msg=n)


# ---------------------------------------------------------------------------------------------
# C against NumPy
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def natives():
    require_tool("gcc")
    from lstm_sym import native

    return {}, native


def native_cell(natives, name):
    cache, native = natives
    if name not in cache:
        cache[name] = native.load(name)
    return cache[name]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_c_with_lengths_equals_numpy_with_lengths(name, dtype, natives, random_problem):
    cell = native_cell(natives, name)
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=8, dtype=dtype)
    padded = np.arange(SIZES["steps"])[:, None] >= LENGTHS
    events = problem.events.copy()
    events[padded] = np.nan  # never read by either
    expected = _run(module, problem, lengths=LENGTHS)
    actual = _run(cell, problem, lengths=LENGTHS, events=events)
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (2e-4, 2e-5)
    _close(actual[0], expected[0], "outputs", rtol, atol)
    assert np.all(actual[0][padded] == 0)
    for last, last_expected in zip(actual[1], expected[1], strict=True):
        _close(last, last_expected, "final state", rtol, atol)
    for n in module.Gradients.NAMES:
        _close(getattr(actual[2], n), getattr(expected[2], n), f"d {n}", rtol, atol)
    assert np.all(actual[2].events[padded] == 0)
