"""Inference in every cell's generated NumPy module: ``forward(..., cache=False)`` and ``step``.

``cache=False`` must give the training forward's numbers bit for bit (it runs the same
operations, keeping only the current and next states), with and without unsorted lengths, in
float32 and float64, and use much less memory. ``step`` over a sequence must give ``forward``'s
outputs and final states: to rounding in NumPy, where ``forward`` projects the events of every
step in one product and a step those of one step (a product of another shape, which OpenBLAS
may sum in another order); the C steps are compared in tests/native.
"""

from __future__ import annotations

import importlib
import tracemalloc

import numpy as np
import pytest

from lstm_sym.cells import CELLS

NAMES = list(CELLS)
SIZES = {"steps": 7, "batch": 5, "event_size": 3, "hidden_size": 6}
#: Unsorted lengths, the longest and a row of length 1 among them.
LENGTHS = np.array([4, 7, 1, 3, 7])


def kernel(name):
    return importlib.import_module(f"generated.{name}")


def _tuple(lasts):
    return lasts if isinstance(lasts, tuple) else (lasts,)


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_inference_equals_the_training_forward_bit_for_bit(random_problem, name, dtype, lengths):
    module = kernel(name)
    problem = random_problem(name, **SIZES, dtype=dtype, seed=3)
    events = problem.events.copy()
    if lengths is not None:  # padded events are never read, NaN there changes nothing
        events[np.arange(SIZES["steps"])[:, None] >= lengths] = np.nan
    trained, trained_lasts, cache = module.forward(
        problem.parameters, events, **problem.initial, lengths=lengths
    )
    outputs, lasts, none = module.forward(
        problem.parameters, events, **problem.initial, lengths=lengths, cache=False
    )
    assert cache is not None and none is None
    assert outputs.dtype == trained.dtype == dtype
    assert np.array_equal(outputs, trained)
    for last, trained_last in zip(_tuple(lasts), _tuple(trained_lasts), strict=True):
        assert last.dtype == dtype
        assert np.array_equal(last, trained_last)
    if lengths is not None:  # padded outputs are exact zeros, not just equal
        assert not outputs[np.arange(SIZES["steps"])[:, None] >= lengths].any()


@pytest.mark.parametrize("name", ["lstm", "gru_cho", "lstmp"])
def test_inference_without_initial_states_or_batch_axis_equals_training(random_problem, name):
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=4)
    events = problem.events[:, 2]
    trained, trained_lasts, _ = module.forward(problem.parameters, events, lengths=5)
    outputs, lasts, _ = module.forward(problem.parameters, events, lengths=5, cache=False)
    assert outputs.shape == trained.shape == (SIZES["steps"], trained.shape[-1])
    assert np.array_equal(outputs, trained)
    for last, trained_last in zip(_tuple(lasts), _tuple(trained_lasts), strict=True):
        assert np.array_equal(last, trained_last)


@pytest.mark.parametrize("bad", [0, 1, "no", None, np.array([False])])
def test_a_cache_argument_other_than_true_or_false_is_refused_by_name(random_problem, bad):
    module = kernel("lstm")
    problem = random_problem("lstm", **SIZES)
    with pytest.raises(TypeError, match="cache must be True or False"):
        module.forward(problem.parameters, problem.events, cache=bad)


def _peak(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_inference_peak_memory_is_well_below_the_training_forward(random_problem):
    module = kernel("lstm")
    sizes = {"steps": 32, "batch": 16, "event_size": 32, "hidden_size": 64}
    problem = random_problem("lstm", **sizes, dtype=np.float32)

    def run(cache):
        return lambda: module.forward(problem.parameters, problem.events, cache=cache)

    training, inference = _peak(run(True)), _peak(run(False))
    outputs = sizes["steps"] * sizes["batch"] * sizes["hidden_size"] * 4
    weights = 4 * sizes["hidden_size"] * (sizes["event_size"] + sizes["hidden_size"]) * 4
    # Training keeps 2 state sequences, 5 saved values, the event projections (4 gates) and a
    # copy of the events besides the outputs; inference the event projections (as training
    # makes them: one product over every step) and the outputs, besides its copies of the
    # weights (stacked, and W_hidden transposed) and O(batch x hidden) per step.
    assert inference < 0.5 * training, (inference, training)
    assert inference < 5 * outputs + 2 * weights + 2**17, (inference, outputs, weights)


# ---------------------------------------------------------------------------------------------
# Streaming: step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_stepping_through_a_sequence_equals_forward_over_it(random_problem, name, dtype):
    module = kernel(name)
    problem = random_problem(name, **SIZES, dtype=dtype, seed=5)
    outputs, lasts, _ = module.forward(problem.parameters, problem.events, **problem.initial)
    initial = tuple(problem.initial.values())
    state = initial if len(initial) > 1 else initial[0]
    tolerance = {np.float64: 1e-13, np.float32: 2e-6}[dtype]
    for t in range(SIZES["steps"]):
        output, state = module.step(problem.parameters, problem.events[t], state)
        assert output.dtype == dtype
        np.testing.assert_allclose(output, outputs[t], rtol=tolerance, atol=tolerance)
    for last, expected in zip(_tuple(state), _tuple(lasts), strict=True):
        np.testing.assert_allclose(last, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", ["lstm", "gru", "lstmp"])
def test_a_step_of_one_event_is_the_batched_step_of_one_row(random_problem, name):
    module = kernel(name)
    problem = random_problem(name, **SIZES, seed=6)
    batched, batched_state = module.step(problem.parameters, problem.events[0])
    for b in range(SIZES["batch"]):
        output, state = module.step(problem.parameters, problem.events[0, b])
        assert output.shape == (batched.shape[-1],)
        np.testing.assert_allclose(output, batched[b], rtol=1e-14, atol=1e-14)
        for value, expected in zip(_tuple(state), _tuple(batched_state), strict=True):
            assert value.shape == expected.shape[1:]
            np.testing.assert_allclose(value, expected[b], rtol=1e-14, atol=1e-14)


def test_a_first_step_without_state_starts_from_zeros(random_problem):
    module = kernel("lstm")
    problem = random_problem("lstm", **SIZES, seed=7)
    zeros = np.zeros((SIZES["batch"], SIZES["hidden_size"]))
    output, (h, c) = module.step(problem.parameters, problem.events[0])
    expected, (h_zero, c_zero) = module.step(problem.parameters, problem.events[0], (zeros, zeros))
    assert np.array_equal(output, expected)
    assert np.array_equal(h, h_zero) and np.array_equal(c, c_zero)


@pytest.mark.parametrize(
    ("name", "state", "message"),
    [
        ("lstm", lambda z: (z[:, :-1], z), r"state\[0\] \(hidden\) must have shape \(5, 6\)"),
        ("lstm", lambda z: (z, z[:1]), r"state\[1\] \(cell\) must have shape \(5, 6\)"),
        ("lstm", lambda z: z, "state must be a tuple of 2 arrays"),
        ("lstm", lambda z: (z,), "state must be a tuple of 2 arrays .* of length 1"),
        ("gru", lambda z: z[0], r"state \(hidden\) must have shape \(5, 6\)"),
    ],
)
def test_a_bad_state_is_refused_by_name(random_problem, name, state, message):
    module = kernel(name)
    problem = random_problem(name, **SIZES)
    zeros = np.zeros((SIZES["batch"], SIZES["hidden_size"]))
    with pytest.raises((ValueError, TypeError), match=message):
        module.step(problem.parameters, problem.events[0], state(zeros))


def test_a_bad_event_is_refused_by_name(random_problem):
    module = kernel("lstm")
    problem = random_problem("lstm", **SIZES)
    with pytest.raises(ValueError, match=r"event must have shape \(3,\) or \(batch, 3\)"):
        module.step(problem.parameters, problem.events)
    with pytest.raises(ValueError, match=r"event must have shape .* got \(5, 4\)"):
        module.step(problem.parameters, np.zeros((5, 4)))
