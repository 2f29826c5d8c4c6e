"""exp, logsigmoid and Max (sLSTM's functions) as every printer prints them: the values of the
printed NumPy, PyTorch and C code against mpmath at 40 digits over the whole range (no overflow,
no -inf where log sigma is finite), and Max's derivative with the same tie rule everywhere."""

from __future__ import annotations

import ctypes
import os
import subprocess

import mpmath
import numpy as np
import pytest
import sympy as sp

from lstm_sym.codegen.c_printer import c_code
from lstm_sym.codegen.latex_printer import LatexNotationPrinter
from lstm_sym.codegen.numpy_printer import numpy_code
from lstm_sym.codegen.torch_printer import torch_code
from lstm_sym.functions import TIE, logsigmoid, sigmoid
from tests.conftest import require_module, require_tool
from tests.support import ROOT, STRICT

a, b = sp.symbols("a b", real=True)

#: Each printed expression of (a, b) and its value by definition, in mpmath.
CASES = {
    "logsigmoid": (logsigmoid(a - b), lambda x, y: -mpmath.log1p(mpmath.exp(y - x))),
    "max": (sp.Max(a, b), lambda x, y: max(x, y)),
    "max_derivative": (
        sp.diff(sp.Max(a, b), a),
        lambda x, y: mpmath.mpf(1) if x > y else (mpmath.mpf(0) if x < y else mpmath.mpf(1) / 2),
    ),
    "exp": (sp.exp(a - b), lambda x, y: mpmath.exp(x - y)),
    "inverse_square": ((1 + (a - b) ** 2) ** -2, lambda x, y: (1 + (x - y) ** 2) ** -2),
}


def _points(dtype):
    """Pairs (a, b) over the whole range of log sigma's argument, and ties."""
    big = 700.0 if dtype == np.float64 else 85.0
    x = np.concatenate([np.linspace(-big, big, 401), [-1e-8, 0.0, 1e-8, 3.0, -3.0, 30.0, -30.0]])
    y = np.concatenate([np.zeros(401), [0.0, 0.0, 0.0, 3.0, -3.0, 30.0, -30.0]])
    return x.astype(dtype), y.astype(dtype)


def _exact(name, x, y):
    with mpmath.workdps(40):
        return np.array(
            [
                float(CASES[name][1](mpmath.mpf(float(u)), mpmath.mpf(float(v))))
                for u, v in zip(x, y)
            ]
        )


def _check(name, values, x, y, dtype):
    exact = _exact(name, x, y)
    assert np.all(np.isfinite(values)), (name, x[~np.isfinite(values)])
    eps = np.finfo(dtype).eps
    error = np.abs(values.astype(np.float64) - exact) / np.maximum(
        np.abs(exact), np.finfo(dtype).tiny
    )
    # exp: the runtime's 1.5 ulp; logsigmoid: log1p and exp (a few ulp); max, H: exact.
    limit = 0.0 if name.startswith("max") else 8 * eps
    assert error.max() <= limit, (name, dtype, error.max() / eps)


def test_sympy_derives_the_derivative_of_logsigmoid_from_log_of_sigmoid():
    x = sp.Symbol("x", real=True)
    assert sp.diff(logsigmoid(x), x) == sp.diff(sp.log(sigmoid(x)), x) == 1 - sigmoid(x)
    for value in ("-800", "-3.5", "0", "2.25", "800"):
        point = sp.Float(value, 40)
        assert abs(logsigmoid(point) - (-sp.log(1 + sp.exp(-point))).evalf(40)) < sp.Float("1e-38")


def test_max_differentiates_to_an_indicator_with_half_at_a_tie():
    assert TIE == sp.S.Half
    da, db = sp.diff(sp.Max(a, b), a), sp.diff(sp.Max(a, b), b)
    assert da.subs({a: 2, b: 1}) == 1 and db.subs({a: 2, b: 1}) == 0
    assert da.subs({a: 1, b: 1}) == db.subs({a: 1, b: 1}) == sp.S.Half


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_printed_numpy_equals_the_definition(name, dtype):
    x, y = _points(dtype)
    with np.errstate(under="ignore"):
        values = eval(numpy_code(CASES[name][0]), {"np": np}, {"a": x, "b": y})
    assert values.dtype == dtype
    _check(name, values, x, y, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_printed_torch_equals_the_definition(name, dtype):
    torch = require_module("torch")
    x, y = _points(np.dtype(dtype))
    scope = {"a": torch.from_numpy(x), "b": torch.from_numpy(y)}
    values = eval(torch_code(CASES[name][0]), {"torch": torch}, scope).numpy()
    assert values.dtype == np.dtype(dtype)
    _check(name, values, x, y, np.dtype(dtype))


@pytest.fixture(scope="module")
def c_library(tmp_path_factory):
    compiler = require_tool("gcc")
    directory = tmp_path_factory.mktemp("printed")
    lines = ['#include "lstm_sym_runtime.h"']
    for name, (expr, _) in CASES.items():
        for suffix, ctype in (("f64", "double"), ("f32", "float")):
            lines.append(
                f"void {name}_{suffix}(long n, const {ctype} *x, const {ctype} *y, {ctype} *out)"
                f"{{ long i; for (i = 0; i < n; ++i) {{ const {ctype} a = x[i], b = y[i]; "
                f"out[i] = {c_code(expr, 'lstm_sym', suffix)}; }} }}"
            )
    source = directory / "printed.c"
    source.write_text("\n".join(lines) + "\n")
    target = directory / "printed.so"
    command = [compiler, *STRICT, "-O2", "-fPIC", "-shared", "-I", os.path.join(ROOT, "generated")]
    result = subprocess.run(
        [*command, "-o", str(target), str(source), "-lm"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(target))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_printed_c_equals_the_definition(c_library, name, dtype):
    x, y = _points(dtype)
    out = np.empty_like(x)
    function = getattr(c_library, f"{name}_{'f64' if dtype == np.float64 else 'f32'}")
    function.argtypes = [ctypes.c_long] + [ctypes.c_void_p] * 3
    function(x.size, x.ctypes.data, y.ctypes.data, out.ctypes.data)
    _check(name, out, x, y, dtype)


def test_the_c_prints_the_runtime_exp_and_no_libm_max():
    code = c_code(logsigmoid(a) + sp.Max(a, b), "lstm_sym", "f32")
    assert "lstm_sym_exp_f32(-fabsf(a))" in code and "log1pf(" in code
    assert "fmax" not in code and "fmin" not in code


def test_the_c_prints_small_integer_powers_as_products_and_quotients_not_pow():
    # libm's pow does not vectorize (minlstm's backward reads (f + i)**-2: 1.6x its time)
    for exponent, text in ((2, "(a*a)"), (-2, "(1.0F/(a*a))"), (-3, "(1.0F/(a*a*a))")):
        code = c_code(a**exponent, "lstm_sym", "f32")
        assert code == text and "pow" not in code


def test_latex_prints_log_sigma_max_and_the_indicator():
    from types import SimpleNamespace

    plain = SimpleNamespace(base={}, scalar={}, adjoints=set(), direct=set(), values=set())
    printer = LatexNotationPrinter(plain)  # no cell notation: symbols print as SymPy's
    assert printer.doprint(logsigmoid(a)) == r"\log\sigma(a)"
    assert printer.doprint(sp.Max(a, b)) == r"\max(a, b)"
    assert printer.doprint(sp.diff(sp.Max(a, b), a)) == r"\mathrm{H}(a - b)"
