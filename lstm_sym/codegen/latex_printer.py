r"""SymPy's LaTeX printer, extended to print a derivation as readable mathematics.

The derivation's symbols carry code names (``forget_pre``, ``d_cell_carry``, ``tanh_cell``,
``cell_prev``); :class:`Notation` decides, for one cell spec, how each prints: ``\hat{f}_{t}``,
``\delta^{+} c_{t}``, ``\tanh(c_{t})``, ``c_{t-1}``. The rules are generic over the spec:

* a gate ``g`` gets a letter (the conventional one for common gate names, e.g. ``forget`` -> f,
  else ``\mathrm{g}``); its pre-activation is ``\hat{g}``, its event and hidden parts
  ``\hat{g}^{x}`` and ``\hat{g}^{h}``;
* a state prints with its short name (``h``, ``c``): the new value at ``t``, the previous at
  ``t-1``; every other per-unit value gets a letter in the same way as a gate;
* an activation the lowering named (``tanh_cell``) prints as its definition, ``\tanh(c_{t})``;
* ``adjoint(s)`` prints ``\delta s``, ``carry(s)`` ``\delta^{+} s``; the per-unit (direct) part
  of the recurrent state's adjoint ``\delta^{\mathrm{u}} h_{t-1}``; CSE temporaries ``\tau_{k}``.

Every symbol has a *base* (no time index, used by ``Indexed`` entries such as ``h_{t-1,b,k}``)
and a *scalar* form (base with the time subscript). Parentheses are plain where they suffice.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..derive import Derivation, adjoint, carry, gate_pre
from ..functions import logsigmoid, sigmoid
from ..spec import gate_event, gate_hidden
from .escaping import one_line

#: Conventional letters of common gate and value names; anything else prints as \mathrm{name}.
CONVENTIONAL = {
    "forget": "f",
    "update": "i",
    "input": "i",
    "candidate": "g",
    "output": "o",
    "reset": "r",
    "new": "n",
    "cell": "c",
    "hidden": "h",
}

#: Letters the document uses for other things.
TAKEN = {"x", "b", "k", "j", "m", "t", "T", "B", "H", "W", "L", "y", "X"}


def _wrap(tex: str) -> str:
    return f"[{tex}]" if "(" in tex else tex


#: LaTeX's special characters in text mode and what prints each.
_TEX_SPECIAL = {
    **{char: "\\" + char for char in "&%$#_{}"},
    "\\": r"\textbackslash{}",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
}


def escape_text(text: str) -> str:
    """Plain text for LaTeX on one line, its special characters escaped (a title may say W_hn
    or 50%; a spec's path may hold a backslash, ``^`` or ``~``)."""
    return "".join(_TEX_SPECIAL.get(char, char) for char in one_line(text))


def _text(name: str) -> str:
    return rf"\mathrm{{{escape_text(name)}}}"


class Notation:
    """``base`` and ``scalar`` LaTeX of every symbol a derivation's equations use."""

    def __init__(self, derivation: Derivation):
        spec = derivation.spec
        self.base: dict[str, str] = {}
        self.scalar: dict[str, str] = {}
        self.nested: set[str] = set()
        self.adjoints: set[str] = set()
        self.direct: set[str] = set()
        self.values: set[str] = set()
        used_letters = set(TAKEN)

        def letter(name: str) -> str:
            candidate = spec.letters.get(name, CONVENTIONAL.get(name))
            if candidate and candidate not in used_letters:
                used_letters.add(candidate)
                return candidate
            return _text(name)

        def define(symbol: sp.Symbol, base: str, time: str | None = "t") -> None:
            self.base[symbol.name] = base
            self.scalar[symbol.name] = base if time is None else f"{base}_{{{time}}}"

        for state in spec.states:
            # The state's short name, or its letter where that is taken (sLSTM's m: the mask).
            short = spec.letters.get(state.name, state.short)
            used_letters.add(short)
            define(state.new, short, "t")
            define(state.prev, short, "t-1")
        self.gate_letters = {}
        # A gate whose activation is a state (FGR's carried gates) prints with the state's letter.
        state_letters = {s.new.name: s.short for s in spec.states}
        for gate in spec.gates:
            self.gate_letters[gate] = state_letters.get(gate) or letter(gate)
        for gate, g in self.gate_letters.items():
            define(gate_pre(gate), rf"\hat{{{g}}}")
            define(gate_event(gate), rf"\hat{{{g}}}^{{x}}")
            define(gate_hidden(gate), rf"\hat{{{g}}}^{{h}}")
        for target, _ in spec.equations:
            if target.name in self.base:
                continue
            if target.name in self.gate_letters:
                define(target, self.gate_letters[target.name])
            else:
                define(target, letter(target.name))
        for p in spec.unit_parameters:
            define(p, letter(p.name), None)
        # Activations the lowering named print as their definition.
        equation_targets = {t for t, _ in spec.equations}
        for a in derivation.forward:
            if a.target not in equation_targets:
                self.nested.add(a.target.name)
                self.scalar[a.target.name] = LatexNotationPrinter(self).doprint(a.expr)
                self.base[a.target.name] = LatexNotationPrinter(self, bare=True).doprint(a.expr)
        # Adjoints and carries of everything above.
        for name in list(self.base):
            symbol = sp.Symbol(name, real=True)
            for kind, make in ((r"\delta ", adjoint), (r"\delta^{+} ", carry)):
                target = make(symbol).name
                self.adjoints.add(target)
                self.base[target] = kind + _wrap(self.base[name])
                self.scalar[target] = kind + _wrap(self.scalar[name])
        self.values = {t.name for t, _ in spec.equations if t.name in self.gate_letters}
        recurrent = spec.recurrent_state
        direct = adjoint(recurrent.prev).name
        self.direct = {direct}
        self.base[direct] = rf"\delta^{{\mathrm{{u}}}} {recurrent.short}"
        self.scalar[direct] = rf"\delta^{{\mathrm{{u}}}} {recurrent.short}_{{t-1}}"

    def extra(self, name: str, latex: str, base: str | None = None) -> None:
        """Register a helper symbol of the document (a MatrixSymbol, an IndexedBase...)."""
        self.scalar[name] = latex
        self.base[name] = latex if base is None else base


class LatexNotationPrinter(LatexPrinter):
    """LatexPrinter with the cell's notation, plain parentheses and ``\\sigma``/``\\tanh``."""

    _TMP = re.compile(r"tmp(\d+)$")

    def __init__(self, notation: Notation, settings=None, bare: bool = False):
        super().__init__({"order": "none", "mul_symbol": r"\,", **(settings or {})})
        self.notation = notation
        self.names = notation.base if bare else notation.scalar

    def doprint(self, expr):
        # Mul and Add put their own \left( \right) around terms; plain ones do here.
        tex = super().doprint(expr)
        return tex.replace(r"\left(", "(").replace(r"\right)", ")")

    def _rank(self, factor) -> int:
        """Reading order of a product's factors: numbers, adjoints, gate values, other values."""
        if factor.is_Number:
            return 0
        name = getattr(factor, "name", None)
        if name in self.notation.adjoints or name in self.notation.direct:
            return 1
        if name in self.notation.values:
            return 2
        if factor.is_Symbol:
            return 4 if name in self.notation.nested else 3
        return 5

    def _print_Mul(self, expr):
        # (SymPy's _print_Pow hands a power with a negative exponent, 1/x, to _print_Mul:
        # its arguments are base and exponent, not factors to reorder.)
        if isinstance(expr, sp.Mul) and expr.is_commutative and not expr.could_extract_minus_sign():
            factors = sorted(enumerate(expr.args), key=lambda p: (self._rank(p[1]), p[0]))
            ordered = tuple(f for _, f in factors)
            if ordered != expr.args:
                expr = sp.Mul(*ordered, evaluate=False)
        return super()._print_Mul(expr)

    # Parentheses: plain ones read better in an appendix and never need to stretch here.
    def _add_parens(self, s) -> str:
        return f"({s})"

    def _add_parens_lspace(self, s) -> str:
        return f"({s})"

    def parenthesize_super(self, s):
        return f"({s})" if "^" in s else s

    def _print(self, expr, **kwargs):
        # sigmoid has a ``_latex`` method (with \left( \right)); the printer's own rule wins here.
        if isinstance(expr, sigmoid):
            return self._print_sigmoid(expr, **kwargs)
        if isinstance(expr, logsigmoid):
            return self._print_logsigmoid(expr, **kwargs)
        return super()._print(expr, **kwargs)

    def _print_logsigmoid(self, expr, exp=None):
        tex = rf"\log\sigma({self._print(expr.args[0])})"
        return tex if exp is None else rf"({tex})^{{{exp}}}"

    def _print_sigmoid(self, expr, exp=None):
        tex = rf"\sigma({self._print(expr.args[0])})"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _print_tanh(self, expr, exp=None):
        arg = self._print(expr.args[0])
        return rf"\tanh({arg})" if exp is None else rf"\tanh^{{{exp}}}({arg})"

    def _print_relu(self, expr, exp=None):
        tex = rf"\operatorname{{relu}}({self._print(expr.args[0])})"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _print_Heaviside(self, expr, exp=None):
        if expr.args[1] == 0:
            # Iverson's bracket: relu's derivative, 0 at 0 (the document says so where it is
            # derived).
            tex = rf"[{self._print(expr.args[0])} > 0]"
        else:
            # H(0) = functions.TIE (1/2), which the document states where Max appears.
            tex = rf"\mathrm{{H}}({self._print(expr.args[0])})"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _print_Symbol(self, expr, style="plain"):
        latex = self.names.get(expr.name)
        if latex is not None:
            return latex
        match = self._TMP.match(expr.name)
        if match:
            return rf"\tau_{{{match.group(1)}}}"
        return super()._print_Symbol(expr, style)

    def _print_MatrixSymbol(self, expr):
        latex = self.notation.scalar.get(expr.name)
        return latex if latex is not None else super()._print_MatrixSymbol(expr)

    def _print_IndexedBase(self, expr):
        latex = self.notation.base.get(expr.label.name)
        return latex if latex is not None else self._print(expr.label)

    def _print_Indexed(self, expr):
        indices = ",".join(self._print(i) for i in expr.indices)
        return f"{self._print(expr.base)}_{{{indices}}}"

    def _print_Transpose(self, expr):
        arg = self._print(expr.arg)
        if isinstance(expr.arg, sp.MatrixSymbol) and "^" not in arg:
            return rf"{arg}^{{\top}}"
        return rf"({arg})^{{\top}}"

    def _print_Trace(self, expr):
        return rf"\operatorname{{tr}}({self._print(expr.arg)})"

    def _print_OneMatrix(self, expr):
        return r"\mathbf{1}"


def latex(expr, notation: Notation) -> str:
    """One expression in the cell's notation."""
    return LatexNotationPrinter(notation).doprint(expr)
