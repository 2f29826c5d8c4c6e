"""SymPy's NumPy printer with PyTorch's names, for generated modules that ``import torch``.

SymPy's own ``TorchPrinter`` (``sympy.printing.pytorch``) imports torch and reads its version
when it is constructed; generating must not depend on whether (or which) torch is installed, so
this subclasses :class:`~sympy.printing.numpy.NumPyPrinter` with its module set to ``torch``:

* the functions a spec may use print as torch's (``torch.tanh``, ``torch.exp``, ``torch.sqrt``);
  ``sigmoid`` as ``torch.sigmoid``, ``relu`` as ``torch.relu``, ``logsigmoid`` as
  ``torch.nn.functional.logsigmoid``, ``Max(a, b)`` as ``torch.maximum``, ``Heaviside(x, 1/2)``
  (``Max``'s derivative, SymPy's tie value ``functions.TIE``) as ``(torch.sign(x) + 1) * 0.5``,
  ``Heaviside(x, 0)`` (relu's) as ``torch.heaviside``;
* matrix products print with ``@``, transposes as ``.T``, and a product with a column of ones
  (``Delta^T 1``, a bias gradient) as a sum over rows (``.sum(dim=0)``).
"""

from __future__ import annotations

from typing import ClassVar

import sympy as sp
from sympy.printing.numpy import NumPyPrinter, _known_constants_numpy, _known_functions_numpy

#: NumPy's names that torch spells the same (all a spec's expressions can hold: ``exp``,
#: ``log``, ``sqrt``, ``tanh``; spec.validate refuses the others before anything is printed).
_TORCH_FUNCTIONS = ("exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "abs")


class GeneratedTorchPrinter(NumPyPrinter):
    """Prints per-unit expressions over (batch, hidden) tensors and the linear adjoints."""

    _module = "torch"
    _kf: ClassVar[dict[str, str]] = {
        name: f"torch.{function}"
        for name, function in _known_functions_numpy.items()
        if function in _TORCH_FUNCTIONS
    }
    _kc: ClassVar[dict[str, str]] = {
        name: f"torch.{value}" for name, value in _known_constants_numpy.items()
    }

    def __init__(self, settings=None):
        super().__init__({"order": "none", **(settings or {})})
        # NumPyPrinter merges in the math module's names; keep only torch's.
        self.known_functions = {
            name: function
            for name, function in self.known_functions.items()
            if function.startswith("torch.")
        }

    def _print_sigmoid(self, expr):
        return f"torch.sigmoid({self._print(expr.args[0])})"

    def _print_logsigmoid(self, expr):
        return f"torch.nn.functional.logsigmoid({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        first, second = expr.args  # spec.validate: Max of two arguments
        return f"torch.maximum({self._print(first)}, {self._print(second)})"

    def _print_Heaviside(self, expr):
        arg, tie = expr.args
        x = self._print(arg)
        if tie == sp.S.Half:  # Max's derivative (SymPy's default tie value)
            return f"(torch.sign({x}) + 1) * 0.5"
        # relu's derivative (lstm_sym.functions.step): 1 where x > 0, 0 below, tie at 0
        return f"torch.heaviside({x}, torch.full_like({x}, {self._print(sp.Float(tie))}))"

    def _print_relu(self, expr):
        return f"torch.relu({self._print(expr.args[0])})"

    def _print_Transpose(self, expr):
        arg = self._print(expr.arg)
        return f"{arg}.T" if isinstance(expr.arg, sp.MatrixSymbol) else f"({arg}).T"

    def _print_MatMul(self, expr):
        factors = list(expr.args)
        if isinstance(factors[-1], sp.OneMatrix):
            # (A^T 1) sums the rows of A: a bias gradient over all samples.
            rest = sp.MatMul(*factors[:-1]) if len(factors) > 2 else factors[0]
            if isinstance(rest, sp.Transpose):
                return f"{self._print(rest.arg)}.sum(dim=0)"
            return f"({self._print(rest)}).sum(dim=1)"
        return " @ ".join(self._print(f) for f in factors)


def torch_code(expr) -> str:
    """One expression as PyTorch source."""
    return GeneratedTorchPrinter().doprint(expr)
