"""The constants typed into the runtime's exp and tanh (lstm_sym/runtime/lstm_sym_runtime.h),
derived here independently and compared with the C literals: the Taylor coefficients 1/k! and
the degree that suffices, the rounding shift, log2(e), the Cody-Waite split of ln 2 (n * high
exact for every n the clamped argument gives), the clamping limits and exponent bias, and the
Cephes tanh approximations on their interval."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest

HEADER = Path(__file__).resolve().parents[2] / "lstm_sym" / "runtime" / "lstm_sym_runtime.h"

#: Per precision: the C type's significand bits, exponent range and NumPy type.
FORMATS = {
    "f64": {"bits": 53, "min_exponent": -1022, "max_exponent": 1023, "type": np.float64},
    "f32": {"bits": 24, "min_exponent": -126, "max_exponent": 127, "type": np.float32},
}


def _body(function: str) -> str:
    text = HEADER.read_text()
    start = text.index(f" {function}(")
    return text[start : text.index("\n}\n", start)]


def _literal(text: str, suffix: str) -> Fraction:
    """The exact value the compiler gives a C floating literal (``1.5e-3``, ``0.5F``) in
    precision ``suffix``: the decimal rounded to the nearest double or float."""
    decimal = text.rstrip("Ff")
    if suffix == "f32":
        return Fraction(float(np.float32(decimal)))
    return Fraction(float(decimal))


def _number(body: str, pattern: str) -> str:
    match = re.search(pattern, body)
    assert match, pattern
    return match.group(1)


NUMBER = r"(-?[0-9][0-9.eE+-]*F?)"


def _rounded(value, suffix: str) -> Fraction:
    """``value`` (a Fraction, or an mpmath number computed at 200 bits) rounded to the nearest
    number of the precision (through a 200-bit value: no double rounding to float64; float32
    from float64 rounds twice only within 2^-29 ulp of a tie, checked below)."""
    with mpmath.workprec(200):
        exact = (
            mpmath.mpf(value.numerator) / value.denominator
            if isinstance(value, Fraction)
            else value
        )
        as_double = float(exact)
        if suffix == "f32":
            single = Fraction(float(np.float32(as_double)))
            spacing = Fraction(2) ** (math.frexp(float(single))[1] - 24) if single else 1
            distance = abs(Fraction(as_double) - single) / spacing
            assert abs(distance - Fraction(1, 2)) > Fraction(1, 2**20)  # not near a tie
            return single
    return Fraction(as_double)


def _exactly(value: Fraction, suffix: str) -> bool:
    """``value`` is representable in the precision."""
    return Fraction(float(FORMATS[suffix]["type"](float(value)))) == value


@pytest.mark.parametrize("suffix", ["f64", "f32"])
def test_exp_polynomial_is_taylor_of_the_degree_that_suffices(suffix):
    body = _body(f"lstm_sym_exp_taylor_{suffix}")
    for function in ("exp", "exp_nonpositive"):  # both evaluate it on their reduced argument
        assert f"p = lstm_sym_exp_taylor_{suffix}(r);" in _body(f"lstm_sym_{function}_{suffix}")
    bits = FORMATS[suffix]["bits"]
    found = re.findall(r"p = (?:p \* r \+ )?" + NUMBER + ";", body)
    coefficients = [_literal(c, suffix) for c in found]
    degree = len(coefficients) - 1
    # Horner from the highest power: coefficient of r^k is 1/k!, rounded to the precision
    for k, coefficient in zip(range(degree, -1, -1), coefficients, strict=True):
        assert coefficient == _rounded(Fraction(1, math.factorial(k)), suffix), k
    # |r| <= ln2 / 2: the first omitted term is below half an ulp of 1, one fewer would not be
    half_ln2 = mpmath.log(2) / 2
    half_ulp = mpmath.mpf(2) ** -bits
    assert half_ln2 ** (degree + 1) / mpmath.factorial(degree + 1) < half_ulp
    assert half_ln2**degree / mpmath.factorial(degree) > half_ulp


@pytest.mark.parametrize("function", ["exp", "exp_nonpositive"])
@pytest.mark.parametrize("suffix", ["f64", "f32"])
def test_exp_range_reduction_constants(suffix, function):
    body = _body(f"lstm_sym_{function}_{suffix}")
    general = function == "exp"
    fmt = FORMATS[suffix]
    bits = fmt["bits"]

    # adding 1.5 * 2^(bits - 1) rounds to an integer in the low bits (round to nearest)
    def constant(pattern: str) -> Fraction:
        return _literal(_number(body, pattern), suffix)

    assert constant(r"shift = " + NUMBER + ";") == Fraction(3, 2) * 2 ** (bits - 1)
    with mpmath.workprec(200):
        log2e = 1 / mpmath.log(2)
        assert constant(r"z \* " + NUMBER + r" \+ shift") == _rounded(log2e, suffix)
    if general:
        assert constant(r"n \* " + NUMBER + r" \+ shift") == Fraction(1, 2)
    high = constant(r"\(z - n \* " + NUMBER + r"\)")
    low = constant(r"\) - n \* " + NUMBER + ";")
    low_limit = constant(r"z = x < " + NUMBER + " \\?")
    # the clamped range: exp(low_limit) rounds to 0 (below half the smallest subnormal),
    # exp(high_limit) overflows
    smallest = mpmath.mpf(2) ** (fmt["min_exponent"] - bits + 1)
    largest = (2 - mpmath.mpf(2) ** (1 - bits)) * mpmath.mpf(2) ** fmt["max_exponent"]
    assert mpmath.exp(low_limit.numerator / mpmath.mpf(low_limit.denominator)) < smallest / 2
    bias = fmt["max_exponent"]
    if general:
        high_limit = constant(r": \(x > " + NUMBER + " \\?")
        assert mpmath.exp(high_limit.numerator / mpmath.mpf(high_limit.denominator)) > largest
        # every n = round(z / ln2) of the clamped range, and its halves n1 = round(n / 2),
        # n - n1 give 2^n1, 2^(n - n1) as normal numbers built from exponent bits
        n_most = max(abs(round(float(limit) / math.log(2))) for limit in (low_limit, high_limit))
        for n in (-n_most, n_most):
            n1 = round(n / 2)
            for part in (n1, n - n1):
                assert fmt["min_exponent"] <= part <= fmt["max_exponent"], (n, part)
        assert f"+ {bias}u) << {bits - 1};" in body
    else:
        # x <= 0: 2^n = 2^(n + k) 2^-k, with 2^(n + k) built from exponent bits for every n
        # from round(low_limit / ln2) to 0, and p 2^(n + k) (p >= 1/sqrt(2)) normal, so the
        # one rounding is the last product's, as in the general exp
        offset = int(_number(body, r"\* 0x1p-([0-9]+)F?;"))
        assert f"+ {bias + offset}u) << {bits - 1};" in body
        n_most = abs(round(float(low_limit) / math.log(2)))
        assert fmt["min_exponent"] <= -n_most + offset - 1 and offset <= fmt["max_exponent"]
    # Cody-Waite: high + low is ln 2 to far better than the precision, and n * high is exact
    # for every such n (high has enough trailing zero bits)
    with mpmath.workprec(300):
        split = mpmath.mpf(high.numerator) / high.denominator
        split += mpmath.mpf(low.numerator) / low.denominator
        error = abs(split - mpmath.log(2))
    assert error < mpmath.mpf(2) ** (-bits - 16)
    assert _exactly(high, suffix) and _exactly(low, suffix)
    significant = high.numerator.bit_length() - (high.numerator & -high.numerator).bit_length() + 1
    assert significant + n_most.bit_length() <= bits


def _c_expression(text: str, suffix: str, z):
    """A C arithmetic expression of ``z`` and literals, evaluated exactly in mpmath with each
    literal rounded as the compiler rounds it."""
    python = re.sub(
        r"([0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?)F?",
        lambda m: f"L({m.group(1)!r})",
        text,
    )

    def literal(decimal):
        value = _literal(decimal, suffix)
        return mpmath.mpf(value.numerator) / value.denominator

    return eval(python, {"L": literal, "z": z})


def _tanh_small(suffix: str):
    """The C's small-argument tanh as a function of an mpmath number, from its expressions."""
    body = _body(f"lstm_sym_tanh_{suffix}")
    threshold = _literal(_number(body, r"a < " + NUMBER + " \\?"), suffix)
    if suffix == "f64":
        p_text = _number(body, r"const double p = ([^;]+);")
        q_text = _number(body, r"const double q = ([^;]+);")
        return (
            lambda x: (
                x
                + x
                * (x * x)
                * _c_expression(p_text, suffix, x * x)
                / _c_expression(q_text, suffix, x * x)
            ),
            threshold,
        )
    poly_text = _number(body, r"const float poly = ([^;]+);")
    return lambda x: _c_expression(poly_text, suffix, x * x) * (x * x) * x + x, threshold


@pytest.mark.parametrize("suffix", ["f64", "f32"])
def test_tanh_small_argument_form_approximates_tanh_below_its_threshold(suffix):
    """Cephes' approximation, evaluated exactly from the C's literals: relative error below 2^-bits
    on [0, threshold] (the rounding of its evaluation comes on top); the threshold 0.625."""
    small, threshold = _tanh_small(suffix)
    assert threshold == Fraction(5, 8)
    bits = FORMATS[suffix]["bits"]
    with mpmath.workprec(120):
        worst = max(
            abs(small(x) / mpmath.tanh(x) - 1)
            for x in (mpmath.mpf(k) / 4000 * mpmath.mpf(0.625) for k in range(1, 4001))
        )
    assert worst < mpmath.mpf(2) ** -bits, float(worst)
