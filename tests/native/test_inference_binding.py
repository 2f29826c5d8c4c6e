"""Inference through the binding: ``NativeCell.forward(..., cache=False)`` (``<cell>_infer_*``)
against the C training forward, and its checks.

The C inference runs the training forward's operations step by step (the event projections of
step t are the rows of step t of forward's product over every step): its outputs and final
states must be the training forward's bit for bit, in both precisions, with and without
unsorted lengths, at sizes that take the runtime's packed products and its small-batch path.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from lstm_sym.cells import CELLS
from tests.conftest import require_tool
from tests.support import ROOT

NAMES = list(CELLS)
#: Unsorted lengths with the longest and a row of length 1.
LENGTHS = np.array([5, 9, 1, 4, 9, 2, 7, 3, 6, 8])


@pytest.fixture(scope="module")
def native():
    require_tool("gcc")
    from lstm_sym import native

    return native


def _tuple(lasts):
    return lasts if isinstance(lasts, tuple) else (lasts,)


def _assert_same(inferred, trained):
    outputs, lasts, none = inferred
    expected, expected_lasts, cache = trained
    assert none is None and cache is not None
    assert outputs.dtype == expected.dtype and outputs.shape == expected.shape
    assert np.array_equal(outputs, expected)
    for last, expected_last in zip(_tuple(lasts), _tuple(expected_lasts), strict=True):
        assert last.dtype == expected_last.dtype
        assert np.array_equal(last, expected_last)


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_c_inference_equals_the_c_training_forward_bit_for_bit(
    native, random_problem, name, dtype, lengths
):
    cell = native.load(name)
    batch = len(LENGTHS)  # >= LSTM_SYM_PACK_BATCH: the packed hidden products
    problem = random_problem(name, 9, batch, 7, 12, dtype=dtype, seed=11)
    events = problem.events.copy()
    given = LENGTHS if lengths else None
    if lengths:  # padded events are never read: NaN there changes nothing
        events[np.arange(9)[:, None] >= LENGTHS] = np.nan
    trained = cell.forward(problem.parameters, events, **problem.initial, lengths=given)
    inferred = cell.forward(
        problem.parameters, events, **problem.initial, lengths=given, cache=False
    )
    _assert_same(inferred, trained)
    if lengths:
        assert not inferred[0][np.arange(9)[:, None] >= LENGTHS].any()


@pytest.mark.parametrize(
    ("steps", "batch", "event_size", "hidden"),
    [(6, 1, 5, 32), (4, 3, 300, 40), (3, 70, 9, 70), (5, 2, 3, 2), (7, 50, 5, 16), (300, 1, 2, 3)],
    ids=["batch-1", "events-wider-than-a-block", "large", "tiny", "blocks", "long"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_c_inference_is_bit_identical_at_every_path_of_the_products(
    native, random_problem, dtype, steps, batch, event_size, hidden
):
    cell = native.load("lstm")
    problem = random_problem("lstm", steps, batch, event_size, hidden, dtype=dtype, seed=12)
    trained = cell.forward(problem.parameters, problem.events, **problem.initial)
    inferred = cell.forward(problem.parameters, problem.events, **problem.initial, cache=False)
    _assert_same(inferred, trained)


def test_c_inference_without_initial_states_or_batch_axis_equals_training(native, random_problem):
    cell = native.load("lstmp")
    problem = random_problem("lstmp", 6, 3, 4, 8, projection_size=5, seed=13)
    events = problem.events[:, 1]
    _assert_same(
        cell.forward(problem.parameters, events, lengths=4, cache=False),
        cell.forward(problem.parameters, events, lengths=4),
    )


def test_c_inference_equals_the_numpy_module_to_rounding(native, random_problem):
    from generated import gru_cho

    cell = native.load("gru_cho")
    problem = random_problem("gru_cho", 5, 4, 3, 6, seed=14)
    outputs, last, _ = cell.forward(problem.parameters, problem.events, cache=False)
    expected, expected_last, _ = gru_cho.forward(problem.parameters, problem.events, cache=False)
    np.testing.assert_allclose(outputs, expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(last, expected_last, rtol=1e-13, atol=1e-14)


def test_c_inference_converts_events_of_another_dtype_or_layout(native, random_problem):
    cell = native.load("lstm")
    problem = random_problem("lstm", 5, 4, 3, 6, seed=15)
    strided = np.asfortranarray(problem.events)
    _assert_same(
        cell.forward(problem.parameters, strided, cache=False),
        cell.forward(problem.parameters, problem.events),
    )


@pytest.mark.parametrize(
    ("lengths", "error", "message"),
    [
        (np.array([1, 0, 2]), ValueError, r"lengths\[1\] must be between 1 and T = 4"),
        (np.array([1, 5, 2]), ValueError, r"lengths\[1\] must be between 1 and T = 4 .*got 5"),
        (np.array([1, 2]), ValueError, r"lengths must have shape \(3,\)"),
        (np.array([1.0, 2.0, 3.0]), TypeError, "lengths must hold integers"),
    ],
)
def test_bad_lengths_are_refused_by_name_without_a_cache(
    native, random_problem, lengths, error, message
):
    cell = native.load("lstm")
    problem = random_problem("lstm", 4, 3, 2, 5)
    with pytest.raises(error, match=message):
        cell.forward(problem.parameters, problem.events, lengths=lengths, cache=False)


@pytest.mark.parametrize("bad", [0, 1, "no", None, np.array([False])])
def test_a_cache_argument_other_than_true_or_false_is_refused_by_name(native, random_problem, bad):
    cell = native.load("lstm")
    problem = random_problem("lstm", 4, 3, 2, 5)
    with pytest.raises(TypeError, match="cache must be True or False"):
        cell.forward(problem.parameters, problem.events, cache=bad)


def test_repeated_inference_takes_its_work_buffer_from_the_workspace(native, random_problem):
    cell = native.load("lstm")
    problem = random_problem("lstm", 4, 3, 2, 5, dtype=np.float32)
    cell.forward(problem.parameters, problem.events, cache=False)
    held = len(cell.workspace)
    assert held >= 1  # given back after the call
    for _ in range(3):
        cell.forward(problem.parameters, problem.events, cache=False)
    assert len(cell.workspace) == held


def test_the_c_entry_point_refuses_bad_lengths_and_writes_nothing(native, random_problem):
    cell = native.load("lstm")
    steps, batch, hidden = 4, 3, 5
    problem = random_problem("lstm", steps, batch, 2, hidden)
    event_weights, event_bias, hidden_weights, hidden_bias = problem.parameters.stacked(np.float64)
    work_size, size_args = cell.infer_work_size
    arguments = {
        "steps": steps,
        "batch": batch,
        "event_size": 2,
        "hidden_size": hidden,
        "events": np.ascontiguousarray(problem.events),
        "lengths": np.array([1, 0, 2], dtype=np.int64),
        "event_weights": event_weights,
        "event_bias": event_bias,
        "hidden_weights": hidden_weights,
        "hidden_bias": hidden_bias,
        "outputs": np.full((steps, batch, hidden), 7.0),
        "h_last": np.full((batch, hidden), 7.0),
        "c_last": np.full((batch, hidden), 7.0),
        "work": np.empty(work_size(batch, 2, hidden)),
    }
    assert size_args == ("batch", "event_size", "hidden_size")
    shapes = {name: np.shape(value) for name, value in arguments.items()}
    with pytest.raises(RuntimeError, match="lstm_infer_f64 failed: invalid lengths"):
        cell.call("infer", np.float64, arguments, shapes)
    for name in ("outputs", "h_last", "c_last"):
        assert (arguments[name] == 7.0).all(), name
    arguments["lengths"] = np.array([1, 4, 2], dtype=np.int64)
    cell.call("infer", np.float64, arguments, shapes)
    expected, (h_last, _), _ = cell.forward(problem.parameters, problem.events, lengths=[1, 4, 2])
    assert np.array_equal(arguments["outputs"], expected)
    assert np.array_equal(arguments["h_last"], h_last)


# ---------------------------------------------------------------------------------------------
# Streaming (<cell>_step_forward_*) and prepared parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_c_steps_through_a_sequence_equal_the_c_forward_over_it(
    native, random_problem, name, dtype
):
    # The step entry point projects one event with the unpacked product, forward every step's
    # at once with the packed one: the sums may round differently, so to rounding.
    cell = native.load(name)
    problem = random_problem(name, 6, 3, 4, 8, dtype=dtype, seed=16)
    outputs, lasts, _ = cell.forward(problem.parameters, problem.events, **problem.initial)
    initial = tuple(problem.initial.values())
    state = initial if len(initial) > 1 else initial[0]
    prepared = cell.prepare(problem.parameters)
    tolerance = {np.float64: 1e-13, np.float32: 3e-6}[dtype]
    for t in range(6):
        parameters = prepared if t % 2 else problem.parameters  # both forms, alternately
        output, state = cell.step(parameters, problem.events[t], state)
        assert output.dtype == dtype and output.shape == outputs[t].shape
        np.testing.assert_allclose(output, outputs[t], rtol=tolerance, atol=tolerance)
    for value, expected in zip(_tuple(state), _tuple(lasts), strict=True):
        np.testing.assert_allclose(value, expected, rtol=tolerance, atol=tolerance)


def test_a_c_step_equals_the_numpy_step(native, random_problem):
    from generated import peephole_lstm

    cell = native.load("peephole_lstm")
    problem = random_problem("peephole_lstm", 2, 3, 4, 5, seed=17)
    state = tuple(problem.initial.values())
    output, new = cell.step(problem.parameters, problem.events[0], state)
    expected, expected_new = peephole_lstm.step(problem.parameters, problem.events[0], state)
    np.testing.assert_allclose(output, expected, rtol=1e-13, atol=1e-14)
    for value, reference in zip(new, expected_new, strict=True):
        np.testing.assert_allclose(value, reference, rtol=1e-13, atol=1e-14)


def test_a_step_of_one_event_has_no_batch_axis_and_starts_from_zeros(native, random_problem):
    cell = native.load("lstm")
    problem = random_problem("lstm", 2, 3, 4, 5, seed=18)
    output, (h, c) = cell.step(problem.parameters, problem.events[0, 1])
    assert output.shape == h.shape == c.shape == (5,)
    zeros = np.zeros((3, 5))
    batched, (h_batched, _) = cell.step(problem.parameters, problem.events[0], (zeros, zeros))
    np.testing.assert_allclose(output, batched[1], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(h, h_batched[1], rtol=1e-14, atol=1e-15)
    output[:] = 9  # the output is the caller's own array, not the state
    assert not (h == 9).any()


@pytest.mark.parametrize(
    ("name", "state", "error", "message"),
    [
        ("lstm", lambda z: (z[:, :-1], z), ValueError, r"state\[0\] \(hidden\) must have shape"),
        ("lstm", lambda z: (z, z[:1]), ValueError, r"state\[1\] \(cell\) must have shape \(3, 5\)"),
        ("lstm", lambda z: z, TypeError, "state must be a tuple of 2 arrays"),
        ("lstm", lambda z: (z, z, z), TypeError, "state must be a tuple .* of length 3"),
        ("lstm", lambda z: (z, z.astype(complex)), TypeError, r"state\[1\] must be a real"),
        ("gru", lambda z: z[0], ValueError, r"state \(hidden\) must have shape \(3, 5\)"),
    ],
)
def test_a_bad_state_is_refused_by_name_as_the_numpy_step_does(
    native, random_problem, name, state, error, message
):
    cell = native.load(name)
    module = cell.module
    problem = random_problem(name, 2, 3, 4, 5)
    zeros = np.zeros((3, 5))
    for step in (cell.step, module.step):
        with pytest.raises(error, match=message):
            step(problem.parameters, problem.events[0], state(zeros))


def test_a_bad_event_or_parameters_is_refused_by_name(native, random_problem):
    cell = native.load("lstm")
    problem = random_problem("lstm", 2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"event must have shape \(4,\) or \(batch, 4\)"):
        cell.step(problem.parameters, problem.events)
    with pytest.raises(TypeError, match=r"parameters must be a lstm\.Parameters"):
        cell.step(object(), problem.events[0])
    gru = native.load("gru")
    prepared = gru.prepare(random_problem("gru", 2, 3, 4, 5).parameters)
    with pytest.raises(TypeError, match="prepared by lstm's prepare, got parameters prepared"):
        cell.forward(prepared, problem.events)


def test_prepared_parameters_are_frozen_and_give_the_same_numbers(native, random_problem):
    cell = native.load("lstmp")
    problem = random_problem("lstmp", 5, 3, 4, 6, projection_size=3, seed=19)
    prepared = cell.prepare(problem.parameters)
    expected = cell.forward(problem.parameters, problem.events)
    for cache in (True, False):
        outputs, lasts, _ = cell.forward(prepared, problem.events, cache=cache)
        assert np.array_equal(outputs, expected[0])
        for value, reference in zip(lasts, expected[1], strict=True):
            assert np.array_equal(value, reference)
    with pytest.raises(AttributeError, match="frozen"):
        prepared.hidden_size = 7
    arrays = prepared.arrays()
    assert set(arrays) == {a for a, _ in cell.abi.parameters}
    with pytest.raises(ValueError, match="read-only"):
        arrays["event_weights"][0] = 1.0
    problem.parameters.event_update_weights[...] = 0  # the prepared copy does not change
    again, _, _ = cell.forward(prepared, problem.events, cache=False)
    assert np.array_equal(again, expected[0])


def test_prepared_parameters_convert_once_per_dtype(native, random_problem):
    cell = native.load("lstm")
    problem = random_problem("lstm", 4, 2, 3, 5, seed=20)
    prepared = cell.prepare(problem.parameters, dtype=np.float32)
    assert prepared.dtype == np.float32
    rounded = random_problem("lstm", 4, 2, 3, 5, seed=20, dtype=np.float32)  # the same, rounded
    reference = cell.forward(rounded.parameters, rounded.events, cache=False)
    outputs, _, _ = cell.forward(prepared, rounded.events, cache=False)
    assert np.array_equal(outputs, reference[0])
    wide, _, _ = cell.forward(prepared, problem.events, cache=False)  # float64 events
    assert wide.dtype == np.float64
    assert prepared.buffer(np.dtype(np.float64)) is prepared.buffer(np.dtype(np.float64))
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        cell.prepare(problem.parameters, dtype=np.int32)


def test_the_work_size_macro_is_the_work_size_function(native, tmp_path):
    # <CELL>_INFER_WORK_SIZE and <CELL>_CACHE_SIZE (static allocation) against
    # <cell>_infer_work_size and <cell>_cache_size, in C (gru_cho and lstm_fgr size their packing
    # area block by block: hidden sizes on both sides of whole 64-column panels)
    names = ["lstm", "lstmp", "gru", "gru_cho", "lstm_fgr"]
    checks = []
    for name in names:
        big = name.upper()
        for batch in (1, 3, 127, 128, 129, 300):
            for hidden in (1, 7, 64, 65, 100):
                arguments = f"{batch}, {hidden}" + (", 5" if name == "lstmp" else "")
                for events in (1, 9, 300):
                    infer = f"{batch}, {events}, " + arguments.partition(", ")[2]
                    checks.append(
                        f"if ({big}_INFER_WORK_SIZE({infer}) != {name}_infer_work_size"
                        f"({infer})) return 1;"
                    )
                checks.append(
                    f"if ({big}_CACHE_SIZE(3, {arguments}) != {name}_cache_size"
                    f"(3, {arguments})) return 1;"
                )
    source = tmp_path / "sizes.c"
    includes = "".join(f'#include "{name}.h"\n' for name in names)
    source.write_text(f"{includes}int main(void) {{ {' '.join(checks)} return 0; }}\n")
    generated = ROOT / "generated"
    program = tmp_path / "sizes"
    sources = [str(generated / f"{name}.c") for name in names]
    sources.append(str(generated / "lstm_sym_runtime.c"))
    subprocess.run(
        ["gcc", "-std=c99", "-O1", f"-I{generated}", str(source), *sources, "-lm", "-o", program],
        check=True,
    )
    assert subprocess.run([program], check=False).returncode == 0


def test_the_streaming_fast_path_checks_states_as_the_checked_path_does(native, random_problem):
    cell = native.load("lstm")
    problem = random_problem("lstm", 3, 2, 4, 5, seed=21)
    prepared = cell.prepare(problem.parameters)
    _, state = cell.step(prepared, problem.events[0])  # leaves its plan with `prepared`
    expected, expected_state = cell.step(problem.parameters, problem.events[1], state)
    strided = tuple(np.asfortranarray(np.repeat(v, 2, axis=1)[:, ::2]) for v in state)
    for given in (state, strided, list(state)):  # in place, converted, a list
        again, again_state = cell.step(prepared, problem.events[1], given)
        assert np.array_equal(again, expected)
        for value, reference in zip(again_state, expected_state, strict=True):
            assert np.array_equal(value, reference)
    with pytest.raises(ValueError, match=r"state\[1\] \(cell\) must have shape \(2, 5\)"):
        cell.step(prepared, problem.events[1], (state[0], state[1][:1]))
    with pytest.raises(TypeError, match="state must be a tuple of 2 arrays"):
        cell.step(prepared, problem.events[1], state[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_openmp_build_infers_the_training_forwards_numbers(native, random_problem, dtype):
    # Batch 150 at H = 70 reaches the per-unit work shared among threads and the products'
    # teams: each tile and unit is still computed by one thread in the same order.
    try:
        cell = native.load("peephole_lstm", openmp=True)
    except native.NativeBuildError:
        pytest.skip("the compiler has no OpenMP")
    problem = random_problem("peephole_lstm", 7, 150, 40, 70, dtype=dtype, seed=22)
    lengths = np.arange(150) % 7 + 1
    _assert_same(
        cell.forward(problem.parameters, problem.events, **problem.initial, cache=False),
        cell.forward(problem.parameters, problem.events, **problem.initial),
    )
    _assert_same(
        cell.forward(problem.parameters, problem.events, lengths=lengths, cache=False),
        cell.forward(problem.parameters, problem.events, lengths=lengths),
    )


def test_the_inference_fast_path_gives_the_checked_paths_numbers(native, random_problem):
    cell = native.load("gru")
    problem = random_problem("gru", 5, 3, 4, 6, seed=23, dtype=np.float32)
    prepared = cell.prepare(problem.parameters)
    expected = cell.forward(problem.parameters, problem.events)
    for events in (problem.events, problem.events, problem.events[:, :2], problem.events):
        outputs, last, none = cell.forward(prepared, events, cache=False)  # later: the fast path
        assert none is None
        batch = events.shape[1]
        assert np.array_equal(outputs, expected[0][:, :batch])
        assert np.array_equal(last, expected[1][:batch])
    wide = problem.events.astype(np.float64)  # float64 events: the parameters in float64
    for _ in range(2):
        outputs, _, _ = cell.forward(prepared, wide, cache=False)
        assert outputs.dtype == np.float64
        assert np.array_equal(outputs, cell.forward(problem.parameters, wide)[0])
    with pytest.raises(ValueError, match="events must have shape"):
        cell.forward(prepared, problem.events[..., :3], cache=False)


@pytest.mark.parametrize("name", ["lstm", "lstmp"])
def test_the_inference_fast_path_with_initial_states_reads_them_on_every_call(
    native, random_problem, name
):
    cell = native.load(name)
    problem = random_problem(name, 5, 3, 4, 6, seed=29, dtype=np.float32)
    prepared = cell.prepare(problem.parameters)
    states = tuple(problem.initial.values())
    for scale in (1.0, 1.0, -0.5, 2.0):  # the second call on takes the fast path
        given = tuple(np.ascontiguousarray(scale * v) for v in states)
        inferred = cell.forward(prepared, problem.events, *given, cache=False)
        _assert_same(inferred, cell.forward(problem.parameters, problem.events, *given))
    # states the fast path cannot take as they are go the checked way: converted, or refused
    wide = tuple(v.astype(np.float64) for v in states)  # float64 states: float64 numbers
    expected = cell.forward(problem.parameters, problem.events, *wide)
    assert np.array_equal(
        cell.forward(prepared, problem.events, *wide, cache=False)[0], expected[0]
    )
    expected = cell.forward(problem.parameters, problem.events, *states)
    strided = tuple(np.repeat(v, 2, axis=1)[:, ::2] for v in states)
    assert not strided[0].flags.c_contiguous
    assert np.array_equal(
        cell.forward(prepared, problem.events, *strided, cache=False)[0], expected[0]
    )
    first = next(iter(problem.initial))
    with pytest.raises(ValueError, match=f"{first}"):
        cell.forward(prepared, problem.events, states[0][:2], *states[1:], cache=False)
    # one state of several, then every one again: each its own path, the same numbers
    if len(states) > 1:
        only = cell.forward(prepared, problem.events, states[0], cache=False)
        assert np.array_equal(
            only[0], cell.forward(problem.parameters, problem.events, states[0])[0]
        )
    assert np.array_equal(
        cell.forward(prepared, problem.events, *states, cache=False)[0], expected[0]
    )


@pytest.mark.parametrize("name", ["lstm", "gru", "lstmp"])
def test_passing_back_the_states_a_step_returned_gives_the_steps_of_fresh_copies(
    native, random_problem, name
):
    # The prepared step keeps the addresses of the states it returned and of the states it was
    # given last; stepping with them must equal stepping with fresh copies (new addresses).
    cell = native.load(name)
    sizes = {"projection_size": 3} if name == "lstmp" else {}
    problem = random_problem(name, 6, 3, 4, 5, dtype=np.float32, seed=23, **sizes)
    prepared = cell.prepare(problem.parameters, np.float32)
    first = tuple(problem.initial.values())
    first = first if len(first) > 1 else first[0]
    chained = copied = first
    for t in range(6):
        output, chained = cell.step(prepared, problem.events[t], chained)
        fresh = tuple(np.array(v) for v in _tuple(copied))
        expected, copied = cell.step(
            prepared, problem.events[t], fresh if len(fresh) > 1 else fresh[0]
        )
        assert np.array_equal(output, expected)
        for value, reference in zip(_tuple(chained), _tuple(copied), strict=True):
            assert np.array_equal(value, reference)
    again, _ = cell.step(prepared, problem.events[0], first)  # the same given states, twice
    twice, _ = cell.step(prepared, problem.events[0], first)
    assert np.array_equal(again, twice)


def test_a_returned_state_reshaped_in_place_is_refused_as_any_bad_state(native, random_problem):
    cell = native.load("lstm")
    problem = random_problem("lstm", 2, 3, 4, 5, dtype=np.float32, seed=24)
    prepared = cell.prepare(problem.parameters, np.float32)
    _, state = cell.step(prepared, problem.events[0])
    _, state = cell.step(prepared, problem.events[1], state)
    state[0].shape = (15,)
    with pytest.raises(ValueError, match=r"state\[0\] \(hidden\) must have shape \(3, 5\)"):
        cell.step(prepared, problem.events[1], state)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_the_bound_entry_of_prepared_steps_equals_step_forward_bit_for_bit(
    native, random_problem, name, dtype
):
    # Prepared parameters step through <cell>_step_forward_bound_* (its sizes, addresses and
    # offsets in one array) from their second step on; raw parameters call step_forward itself.
    cell = native.load(name)
    problem = random_problem(name, 4, 3, 4, 8, dtype=dtype, seed=25)
    prepared = cell.prepare(problem.parameters, dtype)
    initial = tuple(problem.initial.values())
    state = raw = initial if len(initial) > 1 else initial[0]
    for t in range(4):
        output, state = cell.step(prepared, problem.events[t], state)
        expected, raw = cell.step(problem.parameters, problem.events[t], raw)
        assert np.array_equal(output, expected)
        for value, reference in zip(_tuple(state), _tuple(raw), strict=True):
            assert np.array_equal(value, reference)
    assert prepared.steps, "the prepared steps never took the bound entry"
