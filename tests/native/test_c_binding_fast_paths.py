"""The binding's fast paths (arrays of the expected type, dtype, shape and layout) and its
checked paths (anything else, converted by the generated module's helpers) agree bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from generated import lstm
from tests.conftest import require_tool
from tests.support import relative_error


@pytest.fixture(scope="module")
def native():
    require_tool("gcc")
    from lstm_sym import native

    return native.load("lstm")


def _equal_dtype_other_object(array):
    """``array`` viewed with a float64 dtype equal to, but not the same object as, its own."""
    other = array.dtype.newbyteorder("=")
    assert other == array.dtype and other is not array.dtype
    return array.view(other)


def _run(native, parameters, events, states, d_outputs, d_lasts):
    outputs, lasts, cache = native.forward(parameters, events, *states)
    grads = native.backward(cache, d_outputs, *d_lasts)
    return [outputs, *lasts, *(getattr(grads, name) for name in grads.NAMES)]


def test_fast_and_checked_paths_agree(native, random_problem):
    parameters, events, states, d_outputs, d_lasts = random_problem(lstm, 4, 2, 3, 5)
    states, d_lasts = [states["h"], states["c"]], [d_lasts["h"], d_lasts["c"]]
    expected = _run(native, parameters, events, states, d_outputs, d_lasts)
    read_only = [np.array(v) for v in (d_outputs, *d_lasts)]
    for value in read_only:
        value.flags.writeable = False
    variants = {
        "lists": (events.tolist(), [s.tolist() for s in states], d_outputs.tolist(), []),
        "fortran": (
            np.asfortranarray(events),
            [np.asfortranarray(s) for s in states],
            np.asfortranarray(d_outputs),
            [np.asfortranarray(d) for d in d_lasts],
        ),
        "read-only adjoints": (events, states, read_only[0], read_only[1:]),
        "equal dtype objects": (
            _equal_dtype_other_object(events),
            [_equal_dtype_other_object(s) for s in states],
            _equal_dtype_other_object(d_outputs),
            [_equal_dtype_other_object(d) for d in d_lasts],
        ),
        "strided": (
            np.repeat(events, 2, axis=0)[::2],
            [np.repeat(s, 2, axis=1)[:, ::2] for s in states],
            np.repeat(d_outputs, 2, axis=0)[::2],
            [np.repeat(d, 2, axis=1)[:, ::2] for d in d_lasts],
        ),
    }
    for name, (ev, st, d_out, d_la) in variants.items():
        d_la = d_la if name != "lists" else [d.tolist() for d in d_lasts]
        got = _run(native, parameters, ev, st, d_out, d_la)
        for a, b in zip(got, expected, strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype, name
            assert np.array_equal(a, b), name


def test_unbatched_and_float32_match_numpy(native, random_problem):
    parameters, events, states, d_outputs, d_lasts = random_problem(
        lstm, 3, 1, 2, 4, dtype=np.float32
    )
    args = (parameters, events[:, 0]), {"h0": states["h"][0], "c0": states["c"][0]}
    outputs, lasts, cache = native.forward(*args[0], **args[1])
    ref_outputs, ref_lasts, ref_cache = lstm.forward(*args[0], **args[1])
    assert outputs.shape == ref_outputs.shape and outputs.dtype == np.float32
    assert relative_error(outputs, ref_outputs) < 1e-5
    for got, want in zip(lasts, ref_lasts, strict=True):
        assert got.shape == want.shape and relative_error(got, want) < 1e-5
    grads = native.backward(cache, d_outputs[:, 0], d_c_last=d_lasts["c"][0])
    ref = lstm.backward(ref_cache, d_outputs[:, 0], d_c_last=d_lasts["c"][0])
    for name in ref.NAMES:
        got, want = getattr(grads, name), getattr(ref, name)
        assert got.shape == np.shape(want) and got.flags.writeable, name
        assert relative_error(got, want) < 1e-4, name


def test_parameter_reshaped_in_place_is_checked_again(native, random_problem):
    """The checked parameters are reused while the same arrays keep their shapes and dtypes: an
    array reshaped in place gets the generated module's error."""
    parameters, events, *_ = random_problem(lstm, 2, 1, 3, 3)
    native.forward(parameters, events)
    parameters.hidden_forget_weights.shape = (9,)
    with pytest.raises(ValueError, match=r"parameters\.hidden_forget_weights must have shape"):
        native.forward(parameters, events)
    with pytest.raises(ValueError, match=r"parameters\.hidden_forget_weights must have shape"):
        lstm.forward(parameters, events)
