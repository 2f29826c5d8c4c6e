"""The Python binding of the generated C: bad input, build cache, sanitizers."""

from __future__ import annotations

import os
import stat
import subprocess

import numpy as np
import pytest

from generated import lstm
from tests.conftest import require_tool
from tests.support import relative_error, run_script


@pytest.fixture(scope="module")
def native():
    require_tool("gcc")
    from lstm_sym import native

    return native.load("lstm")


@pytest.fixture(scope="module")
def problem(random_problem):
    return random_problem(lstm, 3, 2, 4, 5)


def _forward_cases(problem):
    parameters, events, states, *_ = problem
    wrong_weights = lstm.Parameters(4, 5)
    wrong_weights.hidden_forget_weights = np.zeros((5, 4))
    wrong_bias = lstm.Parameters(4, 5)
    wrong_bias.event_output_bias = np.zeros(3)
    complex_weights = lstm.Parameters(4, 5)
    complex_weights.event_update_weights = np.zeros((5, 4), dtype=complex)
    return [
        ("events shape", (parameters, events[..., :3]), {}, ValueError, "events must have shape"),
        ("events 1-d", (parameters, events[0, 0]), {}, ValueError, "events must have shape"),
        ("events 4-d", (parameters, events[None]), {}, ValueError, "events must have shape"),
        ("no steps", (parameters, events[:0]), {}, ValueError, "events must have shape"),
        (
            "events dtype",
            (parameters, events.astype(complex)),
            {},
            TypeError,
            "events must be a real",
        ),
        (
            "events strings",
            (parameters, np.full((3, 2, 4), "x")),
            {},
            TypeError,
            "events must be a real",
        ),
        ("events object", (parameters, object()), {}, TypeError, "events must be a real"),
        (
            "h0 shape",
            (parameters, events),
            {"h0": states["h"][:1]},
            ValueError,
            "h0 must have shape",
        ),
        (
            "c0 batch",
            (parameters, events),
            {"c0": np.zeros((3, 5))},
            ValueError,
            "c0 must have shape",
        ),
        (
            "c0 dtype",
            (parameters, events),
            {"c0": states["c"].astype(complex)},
            TypeError,
            "c0 must be a real",
        ),
        (
            "parameters",
            ("not parameters", events),
            {},
            TypeError,
            "parameters must be a lstm.Parameters",
        ),
        (
            "weights shape",
            (wrong_weights, events),
            {},
            ValueError,
            "parameters.hidden_forget_weights",
        ),
        ("bias shape", (wrong_bias, events), {}, ValueError, "parameters.event_output_bias"),
        (
            "weights dtype",
            (complex_weights, events),
            {},
            TypeError,
            "parameters.event_update_weights",
        ),
        ("unknown state", (parameters, events), {"x0": states["h"]}, TypeError, "unexpected"),
        (
            "too many states",
            (parameters, events, states["h"], states["c"], states["c"]),
            {},
            TypeError,
            "at most",
        ),
    ]


#: Cases where the NumPy module does not raise the same error (it accepts T = 0 but then fails
#: in a reshape; it takes no state it does not know either, with its own TypeError).
NUMPY_DIFFERS = {"no steps", "unknown state", "too many states"}


@pytest.mark.parametrize("case", range(16))
def test_forward_bad_input(native, problem, case):
    name, args, kwargs, error, message = _forward_cases(problem)[case]
    with pytest.raises(error, match=message):
        native.forward(*args, **kwargs)
    if name not in NUMPY_DIFFERS:  # the NumPy module raises the same error
        with pytest.raises(error, match=message):
            lstm.forward(*args, **kwargs)


def test_backward_bad_input(native, problem):
    parameters, events, states, d_outputs, d_lasts = problem
    _, _, cache = native.forward(parameters, events, **{f"{s}0": v for s, v in states.items()})
    _, _, numpy_cache = lstm.forward(parameters, events)
    _, _, unbatched = native.forward(parameters, events[:, 0])
    cases = [
        ((numpy_cache, d_outputs), {}, TypeError, "cache must be the Cache"),
        (("cache", d_outputs), {}, TypeError, "cache must be the Cache"),
        ((cache, d_outputs[:2]), {}, ValueError, "d_outputs must have shape"),
        ((cache, d_outputs[:, :, :4]), {}, ValueError, "d_outputs must have shape"),
        ((cache, d_outputs.astype(complex)), {}, TypeError, "d_outputs must be a real"),
        ((cache, d_outputs), {"d_h_last": d_lasts["h"][0]}, ValueError, "d_h_last must have shape"),
        (
            (cache, d_outputs),
            {"d_c_last": np.zeros((2, 4))},
            ValueError,
            "d_c_last must have shape",
        ),
        ((unbatched, d_outputs), {}, ValueError, "d_outputs must have shape"),
        ((cache, d_outputs), {"d_x_last": d_lasts["h"]}, TypeError, "unexpected"),
    ]
    for args, kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            native.backward(*args, **kwargs)
    # The process survived, and the cache still works after the failed calls.
    grads = native.backward(cache, d_outputs, **{f"d_{s}_last": v for s, v in d_lasts.items()})
    _, _, ref_cache = lstm.forward(parameters, events, **{f"{s}0": v for s, v in states.items()})
    ref = lstm.backward(ref_cache, d_outputs, **{f"d_{s}_last": v for s, v in d_lasts.items()})
    assert relative_error(grads.events, ref.events) < 1e-12
    # backward can be called again on the same cache
    again = native.backward(cache, d_outputs, **{f"d_{s}_last": v for s, v in d_lasts.items()})
    assert np.array_equal(again.hidden_update_weights, grads.hidden_update_weights)


def test_non_contiguous_and_integer_inputs_like_numpy(native, random_problem):
    """Strided views, Fortran order and integers are accepted (copied), like the NumPy module."""
    parameters, events, states, d_outputs, d_lasts = random_problem(lstm, 4, 3, 5, 6)
    parameters.event_candidate_weights = np.asfortranarray(parameters.event_candidate_weights)
    parameters.hidden_output_weights = np.ascontiguousarray(parameters.hidden_output_weights.T).T
    parameters.event_forget_bias = 2  # an int scalar bias
    wide = np.zeros((4, 3, 10))
    wide[:, :, ::2] = events
    strided = wide[:, :, ::2]
    assert not strided.flags.c_contiguous
    h0 = np.asfortranarray(states["h"])
    c0 = np.arange(18).reshape(3, 6) % 3  # integers
    got = native.forward(parameters, strided, h0=h0, c0=c0)
    ref = lstm.forward(parameters, events, h0=states["h"], c0=c0)
    assert relative_error(got[0], ref[0]) < 1e-12
    grads = native.backward(got[2], d_outputs[:, :, ::-1], d_c_last=d_lasts["c"].T.copy().T)
    ref_grads = lstm.backward(ref[2], d_outputs[:, :, ::-1], d_c_last=d_lasts["c"])
    for name in ref_grads.NAMES:
        assert relative_error(getattr(grads, name), getattr(ref_grads, name)) < 1e-12, name


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((np.float32, np.float32), np.float32),
        ((np.float16, np.float32), np.float32),
        ((np.int8, np.float32), np.float32),
        ((np.float32, np.float64), np.float64),
        ((np.int64, np.int64), np.float64),
    ],
)
def test_dtypes_like_numpy(native, dtypes, expected):
    events_dtype, weights_dtype = dtypes
    parameters = lstm.Parameters(2, 3, dtype=weights_dtype)
    parameters.event_update_weights = np.ones((3, 2), dtype=weights_dtype)
    events = np.ones((2, 2), dtype=events_dtype)
    outputs, _, cache = native.forward(parameters, events)
    assert outputs.dtype == expected == lstm.forward(parameters, events)[0].dtype
    assert native.backward(cache, np.ones((2, 3))).hidden_update_weights.dtype == expected


def test_cache_directory_is_private(tmp_path, monkeypatch):
    from lstm_sym import native

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    directory = native.cache_directory()
    assert directory == tmp_path / "lstm_sym"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    directory.chmod(0o777)
    with pytest.raises(native.NativeBuildError, match="refusing the build cache"):
        native.cache_directory()


def test_build_is_cached_by_source_hash(tmp_path, monkeypatch):
    require_tool("gcc")
    from lstm_sym import native

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = native.load("lstm").library_path
    assert first.parent == tmp_path / "lstm_sym" and first.exists()
    assert native.load("lstm").library_path == first  # no rebuild
    assert native.load("lstm", extra_flags=("-DLSTM_SYM_TEST_FLAG=1",)).library_path != first
    leftovers = [p for p in first.parent.iterdir() if not p.name.endswith((".so", ".so.sha256"))]
    assert leftovers == []  # the temporary build directories are gone


def test_missing_compiler_names_what_to_install(tmp_path, monkeypatch):
    from lstm_sym import native

    monkeypatch.setenv("CC", "no-such-compiler-lstm-sym")
    with pytest.raises(native.NativeBuildError, match="apt-get install gcc"):
        native.find_compiler()


def test_binding_under_address_and_undefined_sanitizers(tmp_path):
    gcc = require_tool("gcc")
    libasan = subprocess.run(
        [gcc, "-print-file-name=libasan.so"], capture_output=True, text=True
    ).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("gcc has no libasan")
    env = dict(
        os.environ,
        XDG_CACHE_HOME=str(tmp_path),
        LD_PRELOAD=libasan,
        ASAN_OPTIONS="detect_leaks=0",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
    )
    result = run_script("sanitized_run.py", env=env, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "sanitized run ok" in result.stdout
    assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr
    libraries = [p for p in (tmp_path / "lstm_sym").iterdir() if p.name.endswith(".so")]
    assert sorted(p.name.split("-")[0] for p in libraries) == ["gru_cho", "lstm", "lstm_fgr"]
    for library in libraries:  # instrumented
        assert b"libasan" in library.read_bytes() and b"__ubsan" in library.read_bytes()


def test_parameters_updated_in_place_are_seen_by_the_next_forward(native, random_problem):
    """In-place updates of the parameter arrays are seen by the next call (the binding caches
    the checked arrays, not their values)."""
    parameters, events, _, _, _ = random_problem(lstm, 4, 2, 3, 5)
    native.forward(parameters, events)
    parameters.hidden_forget_weights *= 0.5
    parameters.event_update_weights[0, 0] += 1.0
    outputs, _, cache = native.forward(parameters, events)
    assert set(cache.addresses) >= {"events", "event_weights", "cache"}  # all in its buffer
    ref_outputs, _, _ = lstm.forward(parameters, events)
    assert relative_error(outputs, ref_outputs) < 1e-12
