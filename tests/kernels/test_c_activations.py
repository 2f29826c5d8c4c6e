"""The generated C's own exp, tanh and sigmoid (branch-free, vectorizable): within a few ulp of
the correctly rounded value (mpmath) over their whole range, tails included, in float and
double, with and without FMA contraction; exact 0 / +-1 / inf at the ends; NaN in, NaN out."""

from __future__ import annotations

import ctypes
import os
import subprocess

import mpmath
import numpy as np
import pytest

from lstm_sym.native.building import FLAGS
from tests.conftest import require_tool
from tests.support import ROOT

#: Wrappers of the runtime's inline helpers (generated/lstm_sym_runtime.h), applied elementwise.
WRAPPER = """
#include "lstm_sym_runtime.h"
#define APPLY(name, T) \\
    void apply_##name(long n, const T *x, T *y) \\
    { long i; for (i = 0; i < n; ++i) y[i] = lstm_sym_##name(x[i]); }
APPLY(exp_f64, double) APPLY(exp_f32, float) APPLY(tanh_f64, double) APPLY(tanh_f32, float)
APPLY(sigmoid_f64, double) APPLY(sigmoid_f32, float)
"""

FLAG_SETS = {
    "portable -O2": ("-std=c99", "-O2"),
    # the binding's own flags (the activations' loops vectorized)
    "binding flags": tuple(flag for flag in FLAGS if flag not in ("-fPIC", "-shared")),
}

#: Largest error in ulps of the correctly rounded result (libm's own: about 0.5 for exp, 1-2
#: for tanh, 2-2.5 for the sigmoid composed from libm's exp).
LIMITS = {"exp": 1.5, "tanh": 2.0, "sigmoid": 3.0}

EXACT = {
    "exp": lambda v: mpmath.exp(v),
    "tanh": lambda v: mpmath.tanh(v),
    "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
}


@pytest.fixture(scope="module", params=sorted(FLAG_SETS))
def library(request, tmp_path_factory):
    compiler = require_tool("gcc")
    directory = tmp_path_factory.mktemp("activations")
    source = directory / "wrapper.c"
    source.write_text(WRAPPER)
    target = directory / "activations.so"
    command = [compiler, *FLAG_SETS[request.param], "-fPIC", "-shared", "-I"]
    command += [os.path.join(ROOT, "generated"), "-o", str(target), str(source), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(target))


def _apply(library, name, x):
    y = np.empty_like(x)
    function = getattr(library, f"apply_{name}")
    function.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    function(x.size, x.ctypes.data, y.ctypes.data)
    return y


def _points(function, dtype):
    """A dense grid over the function's range (tails included) plus small arguments."""
    rng = np.random.default_rng(0)
    if function == "exp":
        low, high = (-104.0, 88.7) if dtype == np.float32 else (-746.0, 709.7)
    else:
        low, high = (-40.0, 40.0) if function == "tanh" else (-120.0, 120.0)
    tiny = np.geomspace(1e-30, 1.0, 300)
    points = np.concatenate(
        [np.linspace(low, high, 2500), rng.uniform(-2.0, 2.0, 800), tiny, -tiny, [0.625, -0.625]]
    )
    return points.astype(dtype)


def _ulps(values, exact, dtype):
    """|value - exact| in units of the spacing at the correctly rounded exact value."""
    rounded = np.array([float(e) for e in exact]).astype(dtype)
    spacing = np.spacing(np.abs(rounded)).astype(np.float64)
    spacing[spacing == 0] = float(np.finfo(dtype).smallest_subnormal)
    errors = [abs(mpmath.mpf(float(v)) - e) for v, e in zip(values, exact, strict=True)]
    return np.array([float(e) for e in errors]) / spacing


@pytest.mark.parametrize("function", sorted(LIMITS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_within_a_few_ulp_of_the_exact_value(library, function, dtype):
    suffix = "f32" if dtype == np.float32 else "f64"
    x = _points(function, dtype)
    with mpmath.workprec(120):
        exact = [EXACT[function](mpmath.mpf(float(v))) for v in x]
    ulps = _ulps(_apply(library, f"{function}_{suffix}", x), exact, dtype)
    worst = int(np.argmax(ulps))
    assert ulps[worst] <= LIMITS[function], (function, suffix, x[worst], ulps[worst])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_ends_and_nan(library, dtype):
    suffix = "f32" if dtype == np.float32 else "f64"
    x = np.array([1e4, -1e4, np.inf, -np.inf, 1e30, -1e30, np.nan, 0.0, -0.0], dtype=dtype)
    with np.errstate(over="ignore"):
        expected = {
            "exp": [np.inf, 0, np.inf, 0, np.inf, 0, np.nan, 1, 1],
            "tanh": [1, -1, 1, -1, 1, -1, np.nan, 0, -0.0],
            "sigmoid": [1, 0, 1, 0, 1, 0, np.nan, 0.5, 0.5],
        }
    for function, values in expected.items():
        got = _apply(library, f"{function}_{suffix}", x)
        np.testing.assert_array_equal(got, np.array(values, dtype=dtype), err_msg=function)
    assert np.signbit(_apply(library, f"tanh_{suffix}", x)[-1])  # tanh(-0) = -0
