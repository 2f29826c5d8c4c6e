"""SymPy's C99 printer, extended for the generated C kernels.

* one printer per precision: ``double`` prints libm's functions and plain literals, ``float``
  prints ``fabsf``-style functions and ``1.0F`` literals (clean under ``-Wdouble-promotion``);
* ``sigmoid``, ``exp`` and ``tanh`` print as calls to the C runtime's branch-free inline helpers
  (``lstm_sym/runtime/lstm_sym_runtime.h``; ``prefix`` is the runtime's, ``lstm_sym``)
  ``<prefix>_sigmoid_<suffix>`` (numerically stable), ``<prefix>_exp_<suffix>`` and
  ``<prefix>_tanh_<suffix>``, which vectorize where libm's scalar calls do not;
* ``logsigmoid(x)`` as ``min(x, 0) - log1p(exp(-|x|))`` (the runtime's exp, which only sees
  ``-|x|``; libm's ``log1p``), ``Max(a, b)`` as ``a > b ? a : b`` and ``Heaviside(x, h0)``
  (``Max``'s derivative) as ``x > 0 ? 1 : (x < 0 ? 0 : h0)`` with SymPy's tie value ``h0``
  (``functions.TIE``): conditionals, not calls, so the per-unit loops still vectorize;
* ``relu`` prints as a conditional expression (``Heaviside`` as above is its derivative);
* integer symbols (sizes) print cast to the real type, ``((double)hidden_size)``;
* small integer powers print as products (``x*x``, ``1.0/(x*x)`` for ``x**-2``), never as a call
  to ``pow`` (which does not vectorize).
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.codegen.cfunctions import log1p
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
        self.ctype = precision["ctype"]

    def _print_Symbol(self, expr):
        # A size (the hidden size a reduction's mean divides by) is a size_t in the kernels:
        # converted to the real type explicitly (clean under -Wconversion)
        name = super()._print_Symbol(expr)
        return f"(({self.ctype}){name})" if expr.is_integer else name

    def _print_sigmoid(self, expr):
        return f"{self.prefix}_sigmoid_{self.suffix}({self._print(expr.args[0])})"

    def _print_exp(self, expr):
        return f"{self.prefix}_exp_{self.suffix}({self._print(expr.args[0])})"

    def _print_tanh(self, expr):
        return f"{self.prefix}_tanh_{self.suffix}({self._print(expr.args[0])})"

    def _print_logsigmoid(self, expr):
        x = expr.args[0]
        stable = sp.Min(x, 0, evaluate=False) - log1p(sp.exp(-sp.Abs(x), evaluate=False))
        return self._print(stable)

    def _conditional(self, condition: str, yes: str, no: str) -> str:
        return f"({condition} ? {yes} : {no})"

    def _print_Max(self, expr):
        first, second = (self._print(arg) for arg in expr.args)  # validate: two arguments
        return self._conditional(f"{first} > {second}", first, second)

    def _print_Min(self, expr):
        first, second = (self._print(arg) for arg in expr.args)
        return self._conditional(f"{first} < {second}", first, second)

    def _print_Heaviside(self, expr):
        arg, tie = self._print(expr.args[0]), self._print(sp.Float(expr.args[1]))
        one, zero = self._print(sp.Float(1)), self._print(sp.Float(0))
        return self._conditional(
            f"{arg} > {zero}", one, self._conditional(f"{arg} < {zero}", zero, tie)
        )

    def _print_relu(self, expr):
        # A comparison, not fmax: NaN stays NaN (as np.maximum and torch.relu), and it vectorizes.
        x = self._print(expr.args[0])
        return f"({x} < 0 ? {self._print(sp.Float(0))} : {x})"

    def _print_Pow(self, expr):
        base, exponent = expr.args
        if exponent.is_Integer and 2 <= abs(int(exponent)) <= 4:
            factor = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Mul"])
            product = "(" + "*".join([factor] * abs(int(exponent))) + ")"
            if exponent > 0:
                return product
            return f"({self._print(sp.Float(1))}/{product})"
        return super()._print_Pow(expr)


def c_code(expr, prefix: str, suffix: str) -> str:
    """One scalar expression as C source in precision ``suffix`` (``"f32"`` or ``"f64"``)."""
    return GeneratedCPrinter(prefix, suffix).doprint(expr)
