"""SymPy's C99 printer, extended for the generated C kernels.

* one printer per precision: ``double`` prints libm's functions and plain literals, ``float``
  prints ``fabsf``-style functions and ``1.0F`` literals (clean under ``-Wdouble-promotion``);
* ``sigmoid``, ``exp`` and ``tanh`` print as calls to the C runtime's branch-free inline helpers
  (``lstm_sym/runtime/lstm_sym_runtime.h``; ``prefix`` is the runtime's, ``lstm_sym``)
  ``<prefix>_sigmoid_<suffix>`` (numerically stable), ``<prefix>_exp_<suffix>`` and
  ``<prefix>_tanh_<suffix>``, which vectorize where libm's scalar calls do not;
* ``relu`` and its derivative ``Heaviside(x, 0)`` print as conditional expressions;
* small positive integer powers print as products (``x*x``), never as a call to ``pow``.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter

#: Per precision: the C type, the suffix of entry points, SymPy's type for literals and libm.
PRECISIONS = {
    "f64": {"ctype": "double", "sympy_type": float64},
    "f32": {"ctype": "float", "sympy_type": float32},
}


class GeneratedCPrinter(C99CodePrinter):
    """Prints per-unit scalar expressions of the derivation as C99 in one precision."""

    def __init__(self, prefix: str, suffix: str, settings=None):
        precision = PRECISIONS[suffix]
        super().__init__(
            {"order": "none", "type_aliases": {real: precision["sympy_type"]}, **(settings or {})}
        )
        self.prefix = prefix
        self.suffix = suffix

    def _print_sigmoid(self, expr):
        return f"{self.prefix}_sigmoid_{self.suffix}({self._print(expr.args[0])})"

    def _print_exp(self, expr):
        return f"{self.prefix}_exp_{self.suffix}({self._print(expr.args[0])})"

    def _print_tanh(self, expr):
        return f"{self.prefix}_tanh_{self.suffix}({self._print(expr.args[0])})"

    def _print_relu(self, expr):
        # A comparison, not fmax: NaN stays NaN (as np.maximum and torch.relu), and it vectorizes.
        x = self._print(expr.args[0])
        return f"({x} > 0 ? {x} : {self._print(sp.Float(0))})"

    def _print_Heaviside(self, expr):
        # relu's derivative (lstm_sym.functions.step): 1 where x > 0, else the value at 0.
        x, at_zero = self._print(expr.args[0]), self._print(sp.Float(expr.args[1]))
        return f"({x} > 0 ? {self._print(sp.Float(1))} : {at_zero})"

    def _print_Pow(self, expr):
        base, exponent = expr.args
        if exponent.is_Integer and 2 <= int(exponent) <= 4:
            factor = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Mul"])
            return "(" + "*".join([factor] * int(exponent)) + ")"
        return super()._print_Pow(expr)


def c_code(expr, prefix: str, suffix: str) -> str:
    """One scalar expression as C source in precision ``suffix`` (``"f32"`` or ``"f64"``)."""
    return GeneratedCPrinter(prefix, suffix).doprint(expr)
