"""SymPy functions the cell specs use beyond SymPy's own (``tanh``, ``exp``, ``Max`` come from
SymPy).

``sigmoid`` is a real SymPy function: ``sympy.diff`` knows its derivative, it rewrites
exactly to ``exp`` for high-precision evaluation, and the printers map it to a numerically
stable implementation (one ``exp`` of ``-|x|``, never an overflow). ``logsigmoid`` is
``log(sigmoid(x))`` as one function (sLSTM's log forget gate), printed stably as
``min(x, 0) - log1p(exp(-|x|))``; its derivative is SymPy's derivative of ``log(sigmoid(x))``.

``Max(a, b)`` (SymPy's, two arguments) differentiates to ``Heaviside(a - b)``, and SymPy's
``Heaviside(0)`` is 1/2 (:data:`TIE`): at a tie each argument gets half the adjoint, as
``torch.maximum``'s backward does. Every printer prints that same rule.
"""

from __future__ import annotations

import mpmath
import sympy as sp


class sigmoid(sp.Function):  # noqa: N801 - named like sympy.tanh
    r"""The logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Its derivative is expressed through itself, sigma' = sigma (1 - sigma), which is what lets
    the derivation write backward passes in terms of saved activations.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return self * (1 - self)

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Half
        if arg is sp.S.Infinity:
            return sp.S.One
        if arg is sp.S.NegativeInfinity:
            return sp.S.Zero
        if arg.is_Float:  # like exp(Float): evaluate at the argument's precision
            return _logistic(arg, arg._prec)
        return None

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return 1 / (1 + sp.exp(-arg))

    def _eval_rewrite_as_tanh(self, arg, **kwargs):
        return (1 + sp.tanh(arg / 2)) / 2

    def _eval_evalf(self, prec):
        # Evaluate the argument at the requested binary precision first, so that a
        # 30-digit check is not limited by a 15-digit intermediate exp().
        arg = self.args[0]._eval_evalf(prec)
        if arg is None or not arg.is_Number:
            return None
        return _logistic(arg, prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        if self.args[0].is_extended_real:
            return True
        return None

    def _latex(self, printer, exp=None):
        arg = printer._print(self.args[0])
        base = rf"\sigma\left({arg}\right)"
        return base if exp is None else rf"{base}^{{{exp}}}"


def _logistic(arg: sp.Number, prec: int) -> sp.Float:
    """1 / (1 + exp(-arg)) for a number ``arg``, with ``prec`` bits."""
    with mpmath.workprec(prec):
        value = 1 / (1 + mpmath.exp(-arg._to_mpmath(prec)))
    return sp.Float._new(value._mpf_, prec)


class relu(sp.Function):  # noqa: N801 - named like sympy.tanh
    r"""The rectifier :math:`\operatorname{relu}(x) = \max(x, 0)` (IndRNN's activation).

    Its derivative is not typed: ``fdiff`` differentiates the piecewise definition
    ``Piecewise((x, x > 0), (0, True))`` with ``sympy.diff``, which gives
    ``Piecewise((1, x > 0), (0, True))``: the subgradient 0 at 0, as PyTorch's relu backward
    (``threshold_backward``) chooses. That is the Heaviside step with value 0 at 0,
    ``Heaviside(x, 0)``, and, since ``relu(x) > 0`` exactly when ``x > 0``, it is written through
    the saved value: ``Heaviside(relu(x), 0)`` (the backward reads the activation, not its
    argument, as for sigma' = sigma (1 - sigma)).
    """

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return step(self.args[0]).xreplace({self.args[0]: self})

    @classmethod
    def eval(cls, arg):
        if arg.is_Number:
            return sp.Max(arg, 0)
        if arg.is_extended_nonnegative:
            return arg
        if arg.is_extended_nonpositive:
            return sp.S.Zero
        return None

    def _eval_rewrite_as_Piecewise(self, arg, **kwargs):
        return sp.Piecewise((arg, arg > 0), (0, True))

    def _eval_evalf(self, prec):
        arg = self.args[0]._eval_evalf(prec)
        if arg is None or not arg.is_Number:
            return None
        return sp.Max(arg, 0)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_nonnegative(self):
        if self.args[0].is_extended_real:
            return True
        return None


def step(x: sp.Expr) -> sp.Expr:
    """relu's derivative at ``x``, derived by SymPy from relu's piecewise definition and written
    as ``Heaviside(x, 0)`` (0 at 0: PyTorch's choice)."""
    z = sp.Dummy("z", real=True)
    derivative = sp.diff(relu(z).rewrite(sp.Piecewise), z)
    # Piecewise((1, z > 0), (0, True)) is Heaviside(z, 0); check instead of assuming.
    heaviside = sp.Heaviside(z, 0)
    for point in (-1, 0, 1):
        assert derivative.subs(z, point) == heaviside.subs(z, point), derivative
    return heaviside.xreplace({z: x})


class logsigmoid(sp.Function):  # noqa: N801 - named like torch.nn.functional.logsigmoid
    r"""The log of the logistic function, :math:`\log \sigma(x) = -\log(1 + e^{-x})`.

    Its derivative is not typed: SymPy differentiates ``log(sigmoid(x))`` (which gives
    ``1 - sigmoid(x)``). Printed as ``min(x, 0) - log1p(exp(-|x|))``: exp only sees ``-|x|``.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        x = sp.Dummy("x", real=True)
        return sp.diff(sp.log(sigmoid(x)), x).xreplace({x: self.args[0]})

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return -sp.log(2)
        if arg is sp.S.Infinity:
            return sp.S.Zero
        if arg is sp.S.NegativeInfinity:
            return sp.S.NegativeInfinity
        if arg.is_Float:
            return _log_logistic(arg, arg._prec)
        return None

    def _eval_rewrite_as_log(self, arg, **kwargs):
        return -sp.log(1 + sp.exp(-arg))

    def _eval_rewrite_as_sigmoid(self, arg, **kwargs):
        return sp.log(sigmoid(arg))

    def _eval_evalf(self, prec):
        arg = self.args[0]._eval_evalf(prec)
        if arg is None or not arg.is_Number:
            return None
        return _log_logistic(arg, prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_negative(self):
        if self.args[0].is_extended_real and self.args[0].is_finite:
            return True
        return None

    def _latex(self, printer, exp=None):
        arg = printer._print(self.args[0])
        base = rf"\log\sigma\left({arg}\right)"
        return base if exp is None else rf"\left({base}\right)^{{{exp}}}"


def _log_logistic(arg: sp.Number, prec: int) -> sp.Float:
    """-log(1 + exp(-arg)) for a number ``arg``, with ``prec`` bits."""
    with mpmath.workprec(prec):
        value = mp_logsigmoid(arg._to_mpmath(prec))
    return sp.Float._new(value._mpf_, prec)


def mp_logsigmoid(x):
    """log(sigmoid(x)) in mpmath at the working precision: min(x, 0) - log1p(exp(-|x|))."""
    return min(x, 0) - mpmath.log1p(mpmath.exp(-abs(x)))


#: What ``Heaviside(0)`` is, the derivative of ``Max(a, b)`` with respect to either argument at a
#: tie ``a = b``: SymPy's default, which every printer prints (NumPy, C, PyTorch, LaTeX).
TIE = sp.Heaviside(0)

#: Activation functions whose derivative the derivation rewrites through the saved value.
ACTIVATIONS = (sigmoid, sp.tanh, sp.exp, logsigmoid, relu)

#: Every function a spec's equations may use: the activations and ``Max`` of two arguments.
FUNCTIONS = (*ACTIVATIONS, sp.Max)
