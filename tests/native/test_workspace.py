"""The workspace: work buffers of finished forwards reused by later ones (at most 1 GiB),
owned by the cell or shared by the caller; freed by release_buffers()."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from generated import gru, lstm
from lstm_sym.native import Workspace
from tests.conftest import require_tool


def test_a_given_buffer_is_taken_again_for_the_same_dtype_and_size():
    workspace = Workspace()
    buffer = workspace.take(np.dtype(np.float64), 10)
    assert buffer.shape == (10,) and len(workspace) == 0
    assert workspace.give(buffer) and workspace.nbytes == 80
    assert workspace.take(np.dtype(np.float32), 10) is not buffer  # another dtype: a new one
    assert workspace.take(np.dtype(np.float64), 11) is not buffer  # another size: a new one
    assert workspace.take(np.dtype(np.float64), 10) is buffer
    assert len(workspace) == 0 and workspace.nbytes == 0


def test_the_workspace_keeps_at_most_per_size_buffers_and_limit_bytes():
    workspace = Workspace(limit=1000, per_size=2)
    f64 = np.dtype(np.float64)
    assert workspace.give(np.empty(10, f64)) and workspace.give(np.empty(10, f64))
    assert not workspace.give(np.empty(10, f64))  # a third of the same size
    assert not workspace.give(np.empty(63, f64))  # 504 bytes: more than half the limit
    assert workspace.give(np.empty(60, f64))  # 480 bytes: 640 in all
    assert not workspace.give(np.empty(50, f64))  # 400 more would pass the limit
    assert len(workspace) == 3 and workspace.nbytes == 640
    workspace.clear()
    assert len(workspace) == 0 and workspace.nbytes == 0


def _problem(module, rng, steps=5, batch=2, event_size=3, hidden=4):
    parameters = module.Parameters(event_size, hidden)
    for name in parameters.NAMES:
        setattr(parameters, name, rng.normal(size=parameters.checked(name).shape))
    events = rng.normal(size=(steps, batch, event_size))
    return parameters, events, rng.normal(size=(steps, batch, hidden))


def _assert_like_numpy(module, cell, parameters, events, d_outputs):
    outputs, _, cache = cell.forward(parameters, events)
    grads = cell.backward(cache, d_outputs)
    ref_outputs, _, ref_cache = module.forward(parameters, events)
    ref = module.backward(ref_cache, d_outputs)
    assert np.max(np.abs(outputs - ref_outputs)) <= 1e-12 * np.max(np.abs(ref_outputs))
    for name in ref.NAMES:
        want = getattr(ref, name)
        assert np.max(np.abs(getattr(grads, name) - want)) <= 1e-12 * np.max(np.abs(want)), name


@pytest.fixture(scope="module")
def native():
    require_tool("gcc")
    from lstm_sym import native

    return native


def test_a_finished_forwards_buffer_is_reused_with_the_same_results(native):
    cell = native.load("lstm", workspace=Workspace())
    parameters, events, d_outputs = _problem(lstm, np.random.default_rng(0))
    _, _, cache = cell.forward(parameters, events + 1.0)
    assert len(cell.workspace) == 0  # in use by the cache
    del cache
    gc.collect()
    assert len(cell.workspace) == 1  # given back when the cache is gone
    _, _, cache = cell.forward(parameters, events - 1.0)
    assert len(cell.workspace) == 0  # taken again
    cache.release()  # explicitly, without waiting for the collector
    assert len(cell.workspace) == 1 and cache.released
    _assert_like_numpy(lstm, cell, parameters, events, d_outputs)  # on a reused buffer
    cell.release_buffers()
    assert len(cell.workspace) == 0 and cell.workspace.nbytes == 0


def test_backward_of_a_released_cache_is_refused(native):
    cell = native.load("lstm")
    parameters, events, d_outputs = _problem(lstm, np.random.default_rng(1))
    _, _, cache = cell.forward(parameters, events)
    cache.release()
    cache.release()  # twice: nothing more to give back
    assert len(cell.workspace) == 1
    with pytest.raises(ValueError, match="cache was released"):
        cell.backward(cache, d_outputs)


def test_cells_can_share_the_callers_workspace(native):
    shared = Workspace(limit=1 << 20)
    cells = {m: native.load(m.CELL, workspace=shared) for m in (lstm, gru)}
    rng = np.random.default_rng(2)
    for module, cell in cells.items():
        assert cell.workspace is shared
        parameters, events, d_outputs = _problem(module, rng)
        cell.forward(parameters, events)[2].release()
        _assert_like_numpy(module, cell, parameters, events, d_outputs)
    assert len(shared) == 2  # one buffer per cell's size
    cells[lstm].release_buffers()
    assert len(shared) == 0
