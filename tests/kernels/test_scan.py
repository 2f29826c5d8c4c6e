"""The time-parallel form of the cells whose update the derivation proves affine (minGRU,
minLSTM: ``forward_scan``/``backward_scan`` in their generated NumPy modules) computes what the
step loop computes, every gradient included, with no loop over steps, and stays accurate in
float32 over thousands of steps."""

from __future__ import annotations

import ast
import importlib
import inspect

import numpy as np
import pytest

from lstm_sym.cells import CELLS
from tests.support import relative_error

SCANS = ("mingru", "minlstm")


def _problem(module, steps, batch, dtype, seed=0, event_size=3, hidden_size=5):
    rng = np.random.default_rng(seed)
    parameters = module.Parameters(event_size, hidden_size, dtype=dtype)
    for name in parameters.NAMES:
        shape = (hidden_size,) if name.endswith("_bias") else np.shape(getattr(parameters, name))
        setattr(parameters, name, rng.normal(0.0, 0.6, size=shape).astype(dtype))
    events = rng.normal(size=(steps, batch, event_size)).astype(dtype)
    h0 = rng.normal(size=(batch, hidden_size)).astype(dtype)
    d_outputs = rng.normal(size=(steps, batch, hidden_size)).astype(dtype)
    d_last = rng.normal(size=(batch, hidden_size)).astype(dtype)
    return parameters, events, h0, d_outputs, d_last


def _both(module, problem, scan, lengths=None, batched=True):
    parameters, events, h0, d_outputs, d_last = problem
    if not batched:
        events, h0, d_outputs, d_last = events[:, 0], h0[0], d_outputs[:, 0], d_last[0]
        lengths = None if lengths is None else lengths[0]
    forward = module.forward_scan if scan else module.forward
    backward = module.backward_scan if scan else module.backward
    outputs, last, cache = forward(parameters, events, h0, lengths=lengths)
    return outputs, last, backward(cache, d_outputs, d_last)


def _error(got, want):
    errors = [relative_error(got[0], want[0]), relative_error(got[1], want[1])]
    errors += [relative_error(getattr(got[2], n), getattr(want[2], n)) for n in want[2].NAMES]
    return max(errors)


def test_only_the_scans_have_a_time_parallel_form():
    for name in CELLS:
        module = importlib.import_module(f"generated.{name}")
        assert hasattr(module, "forward_scan") == (name in SCANS), name


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("steps", [1, 7, 32, 33, 100, 1100])  # one block, several, two levels
@pytest.mark.parametrize("name", SCANS)
def test_the_scan_equals_the_step_loop_with_every_gradient(name, steps, batched):
    module = importlib.import_module(f"generated.{name}")
    problem = _problem(module, steps, 3, np.float64, seed=steps)
    assert (
        _error(
            _both(module, problem, True, batched=batched),
            _both(module, problem, False, batched=batched),
        )
        <= 1e-12
    )


@pytest.mark.parametrize("name", SCANS)
def test_the_scan_equals_the_step_loop_on_a_padded_batch(name):
    module = importlib.import_module(f"generated.{name}")
    steps = 70
    problem = _problem(module, steps, 4, np.float64, seed=1)
    lengths = np.array([70, 1, 33, 64])
    problem[1][steps - 1, 1] = np.nan  # a padded event: never read
    scan, loop = _both(module, problem, True, lengths), _both(module, problem, False, lengths)
    assert _error(scan, loop) <= 1e-12
    assert np.all(scan[0][lengths[1] :, 1] == 0) and np.all(scan[2].events[lengths[1] :, 1] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", SCANS)
def test_float32_in_float32_out_and_close_to_the_loop(name, dtype):
    module = importlib.import_module(f"generated.{name}")
    problem = _problem(module, 40, 2, dtype, seed=4)
    scan = _both(module, problem, True)
    assert scan[0].dtype == dtype and all(getattr(scan[2], n).dtype == dtype for n in scan[2].NAMES)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert _error(scan, _both(module, problem, False)) <= tolerance


@pytest.mark.parametrize("name", SCANS)
def test_float32_over_ten_thousand_steps_is_as_accurate_as_the_float32_loop(name):
    """Against the float64 step loop: the float32 scan's error is that of the float32 loop (no
    cumulative product is divided by, so nothing blows up or underflows into it)."""
    module = importlib.import_module(f"generated.{name}")
    problem64 = _problem(module, 10_000, 2, np.float64, seed=7, event_size=4, hidden_size=8)
    problem32 = _problem(module, 10_000, 2, np.float32, seed=7, event_size=4, hidden_size=8)
    reference = _both(module, problem64, False)
    scan32 = _error(_both(module, problem32, True), reference)
    loop32 = _error(_both(module, problem32, False), reference)
    assert scan32 <= 1e-4 and scan32 <= 3 * loop32, (scan32, loop32)


@pytest.mark.parametrize("name", SCANS)
def test_no_loop_runs_over_the_steps(name):
    """forward_scan and backward_scan have no ``for`` over time (their only ``for`` is over the
    gates); the scan's rounds are a ``while`` doubling its shift: log2 of the length."""
    module = importlib.import_module(f"generated.{name}")
    for function in (module.forward_scan, module.backward_scan, module._affine_scan):
        tree = ast.parse(inspect.getsource(inspect.unwrap(function)).lstrip())
        loops = [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While))]
        assert all(
            isinstance(n, ast.For) and ast.unparse(n.iter) == "enumerate(GATES)" for n in loops
        ), [ast.unparse(n)[:60] for n in loops]
    rounds = ast.parse(inspect.getsource(module._scan_rounds))
    (loop,) = [n for n in ast.walk(rounds) if isinstance(n, (ast.For, ast.While))]
    assert isinstance(loop, ast.While) and "shift *= 2" in ast.unparse(loop)


@pytest.mark.parametrize("name", SCANS)
def test_the_scan_cache_owns_what_backward_scan_reads(name):
    module = importlib.import_module(f"generated.{name}")
    parameters, events, h0, d_outputs, d_last = _problem(module, 40, 2, np.float64, seed=9)
    outputs, _, cache = module.forward_scan(parameters, events, h0)
    want = module.backward_scan(cache, d_outputs, d_last)
    events[...] = np.nan  # the caller's arrays change after forward_scan ...
    h0[...] = np.nan
    for attribute in parameters.NAMES:
        setattr(parameters, attribute, np.full_like(getattr(parameters, attribute), np.nan))
    outputs[...] = np.nan  # ... and so do the results
    got = module.backward_scan(cache, d_outputs, d_last)
    for attribute in want.NAMES:  # ... and no gradient changes
        np.testing.assert_array_equal(getattr(got, attribute), getattr(want, attribute))
