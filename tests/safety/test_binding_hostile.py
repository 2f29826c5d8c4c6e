"""The binding under hostile use (issue 15, items 1, 5, 6, 8, 9): a foreign cache is refused, a
cache owns what backward reads, a damaged cached library is rebuilt, misaligned arrays are
copied, errors name the other cell. Risky probes run in a process of their own."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from generated import gru, lstm
from tests.conftest import require_tool
from tests.support import run_script


@pytest.fixture(scope="module")
def cell():
    require_tool("gcc")
    from lstm_sym import native

    return native.load("lstm")


def _gradients(grads) -> dict:
    return {name: np.array(getattr(grads, name)) for name in grads.NAMES}


def _described(result) -> str:
    if result.returncode < 0:
        return f"killed by {signal.Signals(-result.returncode).name}: {result.stderr[-2000:]}"
    return f"exit {result.returncode}: {result.stdout[-1000:]} {result.stderr[-3000:]}"


# --- item 1: a cache is bound to the kernel that made it ---------------------------------------


@pytest.mark.slow
def test_backward_refuses_the_cache_of_a_users_cell_named_like_a_built_in_one(tmp_path):
    """A user's spec named ``lstm``, loaded from its directory: the built-in ``lstm``'s backward
    refuses its cache (before: ``free(): invalid pointer``, abort)."""
    require_tool("gcc")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = run_script("foreign_cache.py", tmp_path, env=env, text=True, timeout=600)
    assert result.returncode == 0, _described(result)
    message = result.stdout
    assert "refused: cache must be made by this kernel's forward (lstm" in message
    assert "got a cache of another kernel: library" in message and "sha256" in message


def test_backward_refuses_the_cache_of_another_build_of_the_same_cell(cell, random_problem):
    """The portable build (another micro-kernel, other bytes) is another kernel; a build whose
    flags change no byte of the library is the same one."""
    from lstm_sym import native

    same = native.load("lstm", extra_flags=("-DLSTM_SYM_TEST_FLAG=1",))
    assert same.library_path != cell.library_path and same.kernel.matches(cell.kernel)
    other = native.load("lstm", extra_flags=("-DLSTM_SYM_PORTABLE",))
    problem = random_problem(lstm, 3, 2, 4, 5)
    outputs, _, cache = other.forward(problem.parameters, problem.events)
    assert cache.kernel.cell == "lstm" and not cache.kernel.matches(cell.kernel)
    with pytest.raises(TypeError, match=r"cache must be made by this kernel's forward .*library"):
        cell.backward(cache, np.ones_like(outputs))


def test_a_cache_passes_between_two_loads_of_the_same_library(cell, random_problem):
    from lstm_sym.native import NativeCell

    again = NativeCell(cell.abi, cell.library_path, cell.module)
    problem = random_problem(lstm, 3, 2, 4, 5)
    _, _, cache = again.forward(problem.parameters, problem.events)
    _, _, own = cell.forward(problem.parameters, problem.events)
    expected = _gradients(cell.backward(own, problem.d_outputs))
    for name, value in _gradients(cell.backward(cache, problem.d_outputs)).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


# --- item 5: a cache owns what backward reads -------------------------------------------------


@pytest.mark.parametrize(
    "sizes", [(4, 2, 3, 5), (64, 32, 80, 4)], ids=["small events", "events above 1 MiB"]
)
def test_changing_the_inputs_after_forward_changes_no_gradient(cell, random_problem, sizes):
    """Events, initial states and parameters changed in place between forward and backward:
    backward gives the gradients of the inputs forward saw (before: events above 1 MiB were
    read again by address)."""
    problem = random_problem(lstm, *sizes)
    parameters, events = problem.parameters, problem.events
    assert (events.nbytes > 1 << 20) == (sizes[1] == 32)
    _, _, cache = cell.forward(parameters, events, **problem.initial)
    expected = _gradients(cell.backward(cache, problem.d_outputs, **problem.lasts))
    _, _, cache = cell.forward(parameters, events, **problem.initial)
    events[...] = 7.0
    problem.states["h"][...] = -3.0
    parameters.hidden_forget_weights[...] = 2.0
    grads = _gradients(cell.backward(cache, problem.d_outputs, **problem.lasts))
    for name, value in grads.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


# --- item 6: a damaged cached library is rebuilt ----------------------------------------------


@pytest.mark.slow
def test_a_truncated_or_overwritten_cached_library_is_rebuilt(tmp_path):
    """Each load in a process of its own: the cached .so truncated, overwritten with garbage of
    its size, or without its recorded SHA-256, is rebuilt (before: SIGBUS/SIGTRAP or an OSError
    on every later load). Old orphans of interrupted compiles are removed, fresh ones kept."""
    require_tool("gcc")
    cache = tmp_path / "lstm_sym"
    cache.mkdir(mode=0o700)
    old = time.time() - 3600
    orphans = [cache / ".lstm-interrupted", cache / ".lstm-1234.so.sha256-x.tmp"]
    orphans[0].mkdir()
    (orphans[0] / "lstm-0.so").write_bytes(b"\x7fELF half")
    orphans[1].write_text("0")
    fresh = cache / ".lstm-compiling-now"
    fresh.mkdir()
    foreign = cache / "notes.tmp.txt"
    foreign.write_text("not ours")
    for path in (*orphans, foreign):
        os.utime(path, (old, old))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))

    def run() -> str:
        result = run_script("native_run.py", env=env, text=True, timeout=600)
        assert result.returncode == 0 and "native run ok" in result.stdout, _described(result)
        return result.stdout.splitlines()[0]

    from lstm_sym.native import building

    library = Path(run())
    assert [p.exists() for p in orphans] == [False, False] and fresh.exists() and foreign.exists()
    assert building.verified(library)
    good = library.read_bytes()
    for damage in ("truncate", "overwrite", "no digest"):
        if damage == "truncate":
            library.write_bytes(good[: len(good) // 3])
        elif damage == "overwrite":
            library.write_bytes(
                bytes(np.random.default_rng(0).integers(0, 256, len(good), np.uint8))
            )
        else:
            building.digest_path(library).unlink()
        assert run() == str(library), damage
        assert building.verified(library) and library.read_bytes() == good, damage


# --- item 8: misaligned, C-contiguous arrays ---------------------------------------------------


def _misaligned(array: np.ndarray) -> np.ndarray:
    """A copy of ``array`` in a bytes buffer at an odd address: C-contiguous, not aligned."""
    buffer = bytearray(array.nbytes + 1)
    view = np.frombuffer(buffer, array.dtype, array.size, offset=1).reshape(array.shape)
    view[...] = array
    assert view.flags.c_contiguous and not view.flags.aligned
    return view


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_misaligned_c_contiguous_arrays_are_copied_not_refused(
    cell, random_problem, dtype, batched
):
    problem = random_problem(lstm, 4, 2, 3, 5, dtype=dtype)
    parameters, events = problem.parameters, problem.events
    initial, lasts, d_outputs = problem.initial, problem.lasts, problem.d_outputs
    if not batched:
        events, d_outputs = events[:, 0], np.ascontiguousarray(d_outputs[:, 0])
        initial = {k: np.ascontiguousarray(v[0]) for k, v in initial.items()}
        lasts = {k: np.ascontiguousarray(v[0]) for k, v in lasts.items()}
    outputs, _, cache = cell.forward(parameters, events, **initial)
    expected = _gradients(cell.backward(cache, d_outputs, **lasts))
    odd = lstm.Parameters(3, 5, dtype=dtype)
    for name in parameters.NAMES:
        setattr(odd, name, _misaligned(getattr(parameters, name)))
    odd_initial = {k: _misaligned(v) for k, v in initial.items()}
    odd_outputs, _, cache = cell.forward(odd, _misaligned(events), **odd_initial)
    np.testing.assert_array_equal(odd_outputs, outputs)
    odd_lasts = {k: _misaligned(v) for k, v in lasts.items()}
    grads = _gradients(cell.backward(cache, _misaligned(d_outputs), **odd_lasts))
    for name, value in grads.items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


# --- item 9: errors name the other cell --------------------------------------------------------


def test_parameters_of_another_cell_are_named_with_their_cell(cell):
    with pytest.raises(
        TypeError, match=r"parameters must be a lstm\.Parameters, got gru\.Parameters"
    ):
        cell.forward(gru.Parameters(3, 5), np.zeros((4, 3)))


@pytest.mark.parametrize("module", [lstm, gru], ids=["lstm", "gru"])
def test_writing_into_the_returned_outputs_and_final_states_changes_no_gradient(
    module, random_problem
):
    """As in the NumPy modules: the results are the caller's own arrays, not the cache's."""
    require_tool("gcc")
    from lstm_sym import native

    binding = native.load(module.CELL)
    parameters, events, _, d_outputs, _ = random_problem(module, 4, 3, 5, 6, seed=11)
    _, _, cache = binding.forward(parameters, events)
    expected = _gradients(binding.backward(cache, d_outputs))
    outputs, finals, cache = binding.forward(parameters, events)
    outputs[...] = 1e3
    for value in finals if isinstance(finals, tuple) else (finals,):
        value[...] = -7.0
    got = _gradients(binding.backward(cache, d_outputs))
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name, strict=True)
