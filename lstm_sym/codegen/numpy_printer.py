"""SymPy's NumPy printer, extended for generated modules that ``import numpy as np``.

* ``sigmoid`` prints as a call to the module's numerically stable ``_sigmoid``;
* ``relu`` prints as ``np.maximum(x, 0)``, its derivative ``Heaviside(x, 0)`` as
  ``np.heaviside(x, 0)``;
* matrix products print with ``@``, transposes as ``.T``, and a product with a column of ones
  (``Delta^T 1``, a bias gradient) as a sum over rows.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter


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

    def _print_relu(self, expr):
        return f"np.maximum({self._print(expr.args[0])}, 0)"

    def _print_Heaviside(self, expr):
        # relu's derivative (lstm_sym.functions.step): the value at 0 is the spec's (0).
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(expr.args[1])})"

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
