"""SymPy's NumPy printer, extended for generated modules that ``import numpy as np``.

* ``sigmoid`` prints as a call to the module's numerically stable ``_sigmoid``;
* ``logsigmoid`` as ``-np.logaddexp(0, -x)`` (``min(x, 0) - log1p(exp(-|x|))``, no overflow),
  ``Max(a, b)`` as ``np.maximum``, ``Heaviside(x, h0)`` (``Max``'s derivative) as
  ``np.heaviside(x, h0)`` with SymPy's tie value ``h0`` (``functions.TIE``);
* ``relu`` prints as ``np.maximum(x, 0)`` (its derivative ``Heaviside(x, 0)`` as above);
* matrix products print with ``@``, transposes as ``.T``, and a product with a column of ones
  (``Delta^T 1``, a bias gradient) as a sum over rows.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE


class GeneratedNumPyPrinter(NumPyPrinter):
    """Prints per-unit expressions over (batch, hidden) arrays and the linear adjoints."""

    def __init__(self, settings=None):
        super().__init__({"order": "none", **(settings or {})})

    def _module_format(self, fqn, register=True):
        if fqn.startswith("numpy."):
            fqn = "np." + fqn[len("numpy.") :]
        return super()._module_format(fqn, register)

    def _print_sigmoid(self, expr):
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_logsigmoid(self, expr):
        return f"-np.logaddexp(0, -{self.parenthesize(expr.args[0], PRECEDENCE['Mul'])})"

    def _print_Max(self, expr):
        first, second = expr.args  # spec.validate: Max of two arguments
        return f"np.maximum({self._print(first)}, {self._print(second)})"

    def _print_Heaviside(self, expr):
        arg, tie = expr.args
        return f"np.heaviside({self._print(arg)}, {self._print(sp.Float(tie))})"

    def _print_relu(self, expr):
        return f"np.maximum({self._print(expr.args[0])}, 0)"

    def _print_Transpose(self, expr):
        arg = self._print(expr.arg)
        return f"{arg}.T" if isinstance(expr.arg, sp.MatrixSymbol) else f"({arg}).T"

    def _print_MatMul(self, expr):
        factors = list(expr.args)
        if isinstance(factors[-1], sp.OneMatrix):
            # (A^T 1) sums the rows of A: a bias gradient over all samples.
            rest = sp.MatMul(*factors[:-1]) if len(factors) > 2 else factors[0]
            if isinstance(rest, sp.Transpose):
                return f"{self._print(rest.arg)}.sum(axis=0)"
            return f"({self._print(rest)}).sum(axis=1)"
        return " @ ".join(self._print(f) for f in factors)


def numpy_code(expr) -> str:
    """One expression as NumPy source."""
    return GeneratedNumPyPrinter().doprint(expr)
