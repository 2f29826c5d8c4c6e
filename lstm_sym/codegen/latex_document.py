r"""LaTeX emitter: prints a :class:`~lstm_sym.plan.KernelPlan` as ``derivations/<cell>.tex``.

What each gate's hidden projection reads, the weights' column blocks and the sizes are the plan's.

Every displayed equation is an :class:`Equation` built here from the derivation's data and
printed by :mod:`.latex_printer`; nothing is typed by hand. The same list is written as a JSON
sidecar, ``derivations/<cell>.equations.json``: per equation its label, the printed LaTeX, the
SymPy source (``srepr``) of both sides, and how the tests evaluate it numerically (``check``):

``step``
    a per-unit scalar identity at one time step; its symbols are forward values, their
    adjoints (``d_<name>``) and carries (``d_<state>_carry``), checked against an autograd trace
    of the spec's forward equations at every step, batch row and unit;
``partial``
    a local derivative: ``definition`` differentiated numerically must equal each right side;
``linear``
    matrix calculus: the derivative of ``loss`` with respect to ``wrt``, checked numerically;
``matrix``
    an identity between matrices at step ``t`` for ``steps`` = [first, last] (strings over T);
    ``symbols`` gives every matrix symbol's meaning as ``[role, argument, step offset]``;
``masked``
    variable-length batches: with the row's ``mask`` set to 1 the right side must be
    ``running``, with 0 ``finished`` (the masked update's meaning, PyTorch's packed sequences).
    Its derivatives are ``partial`` equations: ``sympy.diff`` of the masked update.

The verification section (7) is a separate file, ``derivations/<cell>_verification.tex``,
written by ``lstm-sym latex`` because it runs the checks (see :mod:`lstm_sym.derivation_checks`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import sympy as sp

from ..derive import Derivation, adjoint, carry
from ..functions import ACTIVATIONS, TIE, relu
from ..plan import B, H, KernelPlan, P, Totals, X, as_plan
from ..reductions import normalization_partials, variance_symbol
from ..scan import affine_recurrence
from .latex_printer import LatexNotationPrinter, Notation, escape_text
from .numpy_printer import numpy_code
from .templates import render

#: Samples (T B) and gates; the sizes B, H, X and P (a projected state's entries) are the plan's.
N, G = sp.symbols("N G", integer=True, positive=True)


@dataclass
class Equation:
    label: str
    lhs: sp.Basic
    rhs: tuple
    check: str
    code: str = ""
    symbols: dict = field(default_factory=dict)
    steps: tuple = ()
    extra: dict = field(default_factory=dict)
    tex: str = ""

    def record(self) -> dict:
        entry = {
            "label": self.label,
            "latex": self.tex,
            "check": self.check,
            "lhs": sp.srepr(self.lhs),
            "rhs": [sp.srepr(r) for r in self.rhs],
        }
        if self.symbols:
            entry["symbols"] = {k: list(v) for k, v in sorted(self.symbols.items())}
        if self.steps:
            entry["steps"] = list(self.steps)
        for key, value in self.extra.items():
            entry[key] = sp.srepr(value) if isinstance(value, sp.Basic) else value
        return entry


def _label(*parts: str) -> str:
    return "eq:" + "-".join(p.replace("_", "-") for p in parts)


def _texttt(name: str) -> str:
    return rf"\texttt{{{escape_text(name)}}}"


class Document:
    """The equations and prose blocks of one cell's derivation document."""

    def __init__(self, kernel: KernelPlan):
        self.plan = kernel
        self.d = derivation = kernel.derivation
        self.spec = derivation.spec
        self.notation = Notation(derivation)
        self.printer = LatexNotationPrinter(self.notation)
        self.equations: list[Equation] = []
        self._matrices: dict[str, tuple] = {}
        self._define_matrices()
        self._reduction_notation()

    def _reduction_notation(self) -> None:
        """Letters of a reduction's symbols: mu and rho (mean, rstd) with the reduction's name
        (``event_norm`` -> event), delta mu and delta rho the per-unit adjoints, D the totals."""
        for r in self.spec.reductions:
            tag = escape_text(r.name.removesuffix("_norm"))
            sub = rf"_{{\mathrm{{{tag}}}}}"
            self.notation.extra(r.mean.name, rf"\mu{sub}", r"\mu")
            self.notation.extra(r.rstd.name, rf"\rho{sub}", r"\rho")
            self.notation.extra(adjoint(r.mean).name, rf"\delta\mu{sub}", r"\delta\mu")
            self.notation.extra(adjoint(r.rstd).name, rf"\delta\rho{sub}", r"\delta\rho")
            self.notation.extra(f"D_{r.mean.name}", rf"D^{{\mu}}{sub}", "D")
            self.notation.extra(f"D_{r.name}_variance", rf"D^{{\sigma}}{sub}", "D")
            self.notation.extra(variance_symbol(r).name, rf"\sigma^{{2}}{sub}", r"\sigma")

    # -- helpers --------------------------------------------------------------------------
    def letter(self, state) -> str:
        """A state's letter in the document: its short name, or ``spec.letters[state.name]``."""
        return self.notation.base[state.new.name]

    def tex(self, expr) -> str:
        return self.printer.doprint(expr)

    def matrix(self, name, latex, rows, cols, role, arg=None, offset=0):
        """A matrix symbol of the document, registered with its notation and meaning."""
        if name not in self.notation.scalar:
            self.notation.extra(name, latex)
        self._matrices[name] = (role, arg, offset)
        return sp.MatrixSymbol(name, rows, cols)

    def add(self, equation: Equation) -> Equation:
        sides = [equation.lhs, *equation.rhs]
        if equation.check in ("matrix", "projection"):
            names = set().union(*(s.free_symbols for s in sides))
            equation.symbols = {
                s.name: self._matrices[s.name] for s in names if isinstance(s, sp.MatrixSymbol)
            }
        lhs = self.lhs_tex(equation.lhs)
        equation.tex = lhs + " &= " + " = ".join(self.tex(r) for r in equation.rhs)
        self.equations.append(equation)
        return equation

    def lhs_tex(self, lhs) -> str:
        if isinstance(lhs, sp.Derivative) and len(lhs.variables) == 1:
            of, (wrt,) = lhs.expr, lhs.variables
            if isinstance(of, sp.Symbol) or isinstance(of, sp.MatrixSymbol):
                return rf"\frac{{\partial {self.tex(of)}}}{{\partial {self.tex(wrt)}}}"
            return rf"\frac{{\partial}}{{\partial {self.tex(wrt)}}} {self.tex(of)}"
        return self.tex(lhs)

    def _define_matrices(self):
        n = self.notation
        self.gate_letter = n.gate_letters
        n.extra("ell", r"\ell")
        n.extra("loss", "L")

    def size(self, state) -> sp.Symbol:
        """Rows of ``state``'s vectors: H, or P for a projected state."""
        return self.plan.layout(state).size

    def projection_weights(self):
        return self.matrix(
            "projection_weights", r"W_{\mathrm{p}}", P, H, "parameter", "projection_weights"
        )

    def source_vector(self, gate: str):
        """What a sourced gate's hidden projection reads: one per-unit value (Cho's GRU: r * h)
        or several sources stacked, ``sources_<gate>`` (FGR: h, i, f, o at t-1)."""
        sources = self.plan.sources_of(gate)
        if len(sources) == 1:
            (source,) = sources
            return self.matrix(
                source.name, self.notation.scalar[source.name], H, 1, "value", source.name
            )
        return self.matrix(
            f"sources_{gate}",
            self.stacked_tex(gate),
            len(sources) * H,
            1,
            "value",
            f"sources_{gate}",
        )

    def stacked_tex(self, gate: str) -> str:
        rows = r" \\ ".join(self.notation.scalar[s.name] for s in self.plan.sources_of(gate))
        return rf"\begin{{bmatrix}} {rows} \end{{bmatrix}}"

    def hidden_columns(self, gate: str):
        """Columns of gate ``gate``'s hidden weights: the sizes of what it reads."""
        return self.plan.attribute(f"hidden_{gate}_weights").shape[1]

    def weight_block(self, gate: str, source):
        """Gate ``gate``'s hidden weights, the column block that reads ``source``."""
        sources = self.plan.sources_of(gate)
        name = f"hidden_{gate}_weights"
        if len(sources) == 1:
            return self.matrix(
                name, self.weight_tex("hidden", gate, "weights"), H, H, "parameter", name
            )
        j = sources.index(source)
        tex = (
            rf"{self.weight_tex('hidden', gate, 'weights')}^{{({self.notation.base[source.name]})}}"
        )
        return self.matrix(f"{name}@{j}", tex, H, H, "weight_block", f"{name}@{j}")

    def hidden_delta(self, gate: str):
        part = self.spec.hidden_input(gate)
        return self.matrix(
            f"{adjoint(part).name}@t",
            rf"\delta {self.notation.base[part.name]}_{{t}}",
            B,
            H,
            "direct",
            adjoint(part).name,
        )

    def source_terms(self, source) -> list:
        """What the sourced gates' projections pass back to ``source``: Delta_g W_g[:, block]."""
        lin = self.d.linear
        return [
            lin.inputs.xreplace(
                {
                    lin.symbols["Delta"]: self.hidden_delta(g),
                    lin.symbols["W"]: self.weight_block(g, source),
                }
            )
            for g in self.plan.readers(source)
        ]

    def weight_tex(self, side: str, gate: str, kind: str) -> str:
        letter = self.gate_letter[gate]
        sep = "" if len(letter) == 1 else ","
        char = "x" if side == "event" else "h"
        return rf"{'W' if kind == 'weights' else 'b'}_{{{char}{sep}{letter}}}"

    # -- sections -------------------------------------------------------------------------
    def forward(self) -> list[Equation]:
        eqs = []
        hx = self.spec.recurrent_state
        x_t = self.matrix("events", r"x_{t}", X, 1, "events")
        h_prev = self.matrix(
            hx.prev.name,
            self.notation.scalar[hx.prev.name],
            self.size(hx),
            1,
            "value",
            hx.prev.name,
        )
        for gi in self.d.gate_inputs:
            parts = []
            read = h_prev
            if self.plan.is_sourced(gi.gate):  # what its hidden_sources entry names
                read = self.source_vector(gi.gate)
            sides = [("event", x_t, X)]
            if self.plan.hidden:  # else no gate has a hidden part
                sides.append(("hidden", read, self.hidden_columns(gi.gate)))
            for side, vector, cols in sides:
                if gi.kind not in ("pre", side):
                    continue
                w_name, b_name = f"{side}_{gi.gate}_weights", f"{side}_{gi.gate}_bias"
                w = self.matrix(
                    w_name, self.weight_tex(side, gi.gate, "weights"), H, cols, "parameter", w_name
                )
                b = self.matrix(
                    b_name, self.weight_tex(side, gi.gate, "bias"), H, 1, "parameter", b_name
                )
                parts += [w * vector, b]
            lhs = self.matrix(
                gi.symbol.name, self.notation.scalar[gi.symbol.name], H, 1, "value", gi.symbol.name
            )
            eqs.append(
                self.add(
                    Equation(
                        _label("projection", gi.symbol.name),
                        lhs,
                        (sp.MatAdd(*parts, evaluate=False),),
                        "projection",
                        steps=("1", "T"),
                    )
                )
            )
        projected = self.spec.projected_state
        if projected is not None:  # the projected state: new = W_p unit, no bias
            unit = projected.unit.name
            new = self.matrix(
                projected.new.name,
                self.notation.scalar[projected.new.name],
                P,
                1,
                "value",
                projected.new.name,
            )
            m = self.matrix(unit, self.notation.scalar[unit], H, 1, "value", unit)
            eqs.append(
                self.add(
                    Equation(
                        _label("projection", projected.new.name),
                        new,
                        (self.projection_weights() * m,),
                        "projection",
                        steps=("1", "T"),
                    )
                )
            )
        return eqs

    def per_unit_forward(self) -> list[Equation]:
        nested = self.notation.nested
        return [
            self.add(
                Equation(
                    _label("forward", a.target.name),
                    a.target,
                    (a.expr,),
                    "step",
                    code=a.target.name,
                )
            )
            for a in self.d.forward
            if a.target.name not in nested
        ]

    def reductions(self) -> list[Equation]:
        """``spec.reductions``: each statistic's definition over the stacked vector v of n
        entries, the partials SymPy takes on a symbolic vector of size n
        (:func:`lstm_sym.reductions.normalization_partials`), and per reduction the totals over
        the units of a row the backward forms (the plan's ``Totals``) and the term they add to
        the adjoint of every entry v_j."""
        if not self.spec.reductions:
            return []
        eqs = []
        p = normalization_partials()
        k = sp.Symbol("k", integer=True, positive=True)
        u = sp.Symbol("u", integer=True, positive=True)
        self.notation.extra(p.value.name, "v_{j}", "v")
        self.notation.extra(p.mean.name, r"\mu", r"\mu")
        self.notation.extra(p.rstd.name, r"\rho", r"\rho")
        self.notation.extra("variance", r"\sigma^{2}", r"\sigma")
        self.notation.extra("n", "n", "n")
        variance = sp.Symbol("variance", positive=True)
        eqs.append(
            self.add(
                Equation(
                    _label("reduction", "d-mean"),
                    sp.Derivative(p.mean, p.value),
                    (p.d_mean,),
                    "statistic_partial",
                )
            )
        )
        eqs.append(
            self.add(
                Equation(
                    _label("reduction", "d-variance"),
                    sp.Derivative(variance, p.value),
                    (p.d_variance,),
                    "statistic_partial",
                )
            )
        )
        eqs.append(
            self.add(
                Equation(
                    _label("reduction", "d-rstd"),
                    sp.Derivative(p.rstd, variance),
                    (p.d_rstd,),
                    "statistic_partial",
                )
            )
        )
        totals = {
            t.reduction: t
            for item in self.plan.backward_step
            if isinstance(item, Totals)
            for t in item.totals
        }
        adjoints = {
            r.reduction: r for item in self.d.staged if isinstance(item, tuple) for r in item
        }
        for reduction in self.spec.reductions:
            name = reduction.name
            n = len(reduction.over) * H
            v = sp.IndexedBase(f"{name}_v", real=True)
            self.notation.extra(
                f"{name}_v", rf"v^{{\mathrm{{{escape_text(name).replace('_', ' ')}}}}}", "v"
            )
            mean = sp.Sum(v[k], (k, 1, n)) / n
            squares = sp.Sum((v[k] - reduction.mean) ** 2, (k, 1, n)) / n
            eqs.append(
                self.add(
                    Equation(
                        _label("reduction", name, "mean"),
                        reduction.mean,
                        (mean,),
                        "statistic",
                        extra={"over": sp.Tuple(*reduction.over), "vector": v.name},
                    )
                )
            )
            eqs.append(
                self.add(
                    Equation(
                        _label("reduction", name, "rstd"),
                        reduction.rstd,
                        ((squares + reduction.epsilon) ** sp.Rational(-1, 2),),
                        "statistic",
                        extra={"over": sp.Tuple(*reduction.over), "vector": v.name},
                    )
                )
            )
            total = totals[reduction]
            d_mean = sp.IndexedBase(total.d_mean.name, real=True)
            d_rstd = sp.IndexedBase(total.d_rstd.name, real=True)
            eqs.append(
                self.add(
                    Equation(
                        _label("total", name, "mean"),
                        total.total_mean,
                        (sp.Sum(d_mean[u], (u, 1, H)),),
                        "total",
                    )
                )
            )
            eqs.append(
                self.add(
                    Equation(
                        _label("total", name, "variance"),
                        total.total_variance,
                        (adjoints[reduction].variance_factor * sp.Sum(d_rstd[u], (u, 1, H)),),
                        "total",
                    )
                )
            )
            tag = escape_text(name.removesuffix("_norm"))
            for value, term in adjoints[reduction].contributions.items():
                part = sp.Symbol(f"d_{value.name}_from_{name}", real=True)
                self.notation.extra(
                    part.name, rf"\delta {self.tex(value)}\big|_{{\mathrm{{{tag}}}}}", r"\delta"
                )
                eqs.append(
                    self.add(
                        Equation(
                            _label("reduction", name, "into", value.name), part, (term,), "total"
                        )
                    )
                )
        return eqs

    def stabilization(self) -> list[Equation]:
        """``spec.stabilizer``: the recurrence of the rescaled states s~ = exp(m) s, which m does
        not enter. Every value of the step that reads m is inlined, s_{t-1} = exp(-m_{t-1})
        s~_{t-1} substituted, and exp(m_t) s_t simplified by SymPy (``powsimp`` of the expanded
        products); the equations reading the new states are rewritten likewise. A stabilizer
        left in any result is an error: the spec's claim would be false."""
        spec, eqs = self.spec, []
        self.rescaled = []  # (s~_t, s_t, s~_{t-1}, s_{t-1}, m_t, m_{t-1}) for the prose
        self.bounded = []  # values exp(u - m_t) with m_t = Max(u, v): exponent <= 0
        states = {s.name: s for s in spec.states}
        for key, names in spec.stabilizer.items():
            m = states[key]
            scaled = [states[name] for name in names]
            stabilizers = {m.new, m.prev}
            substitution, tildes = {}, {}
            for s in scaled:
                tilde = rf"\tilde{{{self.letter(s)}}}"
                new = sp.Symbol(f"{s.new.name}_unstabilized", real=True)
                prev = sp.Symbol(f"{s.prev.name}_unstabilized", real=True)
                self.notation.extra(new.name, rf"{tilde}_{{t}}", tilde)
                self.notation.extra(prev.name, rf"{tilde}_{{t-1}}", tilde)
                substitution[s.prev] = sp.exp(-m.prev) * prev
                substitution[s.new] = sp.exp(-m.new) * new
                tildes[s.new] = new
                self.rescaled.append((new, s.new, prev, s.prev, m.new, m.prev))
            maximum = next(a.expr for a in self.d.forward if a.target == m.new)
            for a in self.d.forward:
                if isinstance(a.expr, sp.exp) and isinstance(maximum, sp.Max):
                    for u in maximum.args:
                        if sp.expand(a.expr.args[0] - (u - m.new)) == 0:
                            self.bounded.append(a.target)
            inlined = {}  # the values of the step that read the stabilizer, as expressions
            for a in self.d.forward:
                if a.target == m.new:
                    continue
                expr = a.expr.xreplace(inlined)
                if a.target in substitution:  # a rescaled state: exp(m_t) s_t, simplified
                    lhs = tildes[a.target]
                    rhs = sp.powsimp(sp.expand(sp.exp(m.new) * expr.xreplace(substitution)))
                elif expr.free_symbols & (stabilizers | set(substitution)):
                    if not (expr.free_symbols & set(substitution)):
                        inlined[a.target] = expr
                        continue
                    lhs, rhs = a.target, sp.powsimp(expr.xreplace(substitution))
                else:
                    continue
                if rhs.free_symbols & stabilizers:
                    raise ValueError(
                        f"cell {spec.name!r}: stabilizer {key!r}: {lhs} = {rhs} still reads "
                        f"{m.new} or {m.prev}: these states are not exp(-m) times a recurrence "
                        "without m"
                    )
                eqs.append(
                    self.add(
                        Equation(
                            _label("unstabilized", a.target.name),
                            lhs,
                            (rhs,),
                            "rescaled",
                            extra={"rescaled": sp.Tuple(*(sp.Tuple(*r) for r in self.rescaled))},
                        )
                    )
                )
        return eqs

    def scan(self) -> list[Equation]:
        """The state update as the affine recurrence lstm_sym.scan proves it is (none for a cell
        whose update is not affine with coefficients free of the previous state)."""
        recurrence = affine_recurrence(self.d)
        if recurrence is None:
            return []
        state = recurrence.state
        rhs = sp.Add(
            sp.Mul(recurrence.coefficient, state.prev, evaluate=False),
            recurrence.offset,
            evaluate=False,
        )
        return [self.add(Equation(_label("scan", state.name), state.new, (rhs,), "step"))]

    def activation_derivatives(self) -> list[Equation]:
        z = sp.Symbol("z", real=True)
        self.notation.extra("z", "z")
        eqs = []
        # The activations this cell's equations apply (every cell before relu used both sigmoid
        # and tanh, so their documents are unchanged).
        used = {type(f) for _, e in self.spec.equations for f in e.atoms(sp.Function)}
        used |= {type(f) for a in self.d.forward for f in a.expr.atoms(sp.Function)}
        for function in (f for f in ACTIVATIONS if f in used):
            value = function(z)
            raw = sp.diff(value, z)
            eqs.append(
                self.add(
                    Equation(
                        _label("activation", function.__name__),
                        sp.Derivative(value, z),
                        (raw,),
                        "partial",
                        extra={"definition": value, "wrt": z},
                    )
                )
            )
        return eqs

    def partials(self) -> list[Equation]:
        definitions = {a.target: a.expr for a in self.d.forward}
        eqs = []
        for p in self.d.raw_backward.partials:
            rhs = (p.raw,) if p.raw == p.saved_form else (p.raw, p.saved_form)
            eqs.append(
                self.add(
                    Equation(
                        _label("partial", p.target.name, p.wrt.name),
                        sp.Derivative(p.target, p.wrt),
                        rhs,
                        "partial",
                        extra={
                            "definition": definitions[p.target],
                            "wrt": p.wrt,
                            "target": p.target,
                        },
                    )
                )
            )
        return eqs

    def linear(self) -> list[Equation]:
        lin = self.d.linear
        ell = sp.Symbol("ell", real=True)
        eqs = [
            self.add(
                Equation(
                    _label("linear", "loss"),
                    ell,
                    (lin.loss,),
                    "definition",
                )
            )
        ]
        for kind, wrt in (
            ("weights", lin.symbols["W"]),
            ("inputs", lin.symbols["X"]),
            ("bias", lin.symbols["b"]),
        ):
            eqs.append(
                self.add(
                    Equation(
                        _label("linear", kind),
                        sp.Derivative(ell, wrt),
                        (getattr(lin, kind),),
                        "linear",
                        extra={"loss": lin.loss, "wrt": wrt},
                    )
                )
            )
        return eqs

    def chain(self) -> list[Equation]:
        return [
            self.add(
                Equation(
                    _label("chain", a.target.name), a.target, (a.expr,), "step", code=a.target.name
                )
            )
            for a in self.d.raw_backward.chain
        ]

    def cse(self) -> list[Equation]:
        return [
            self.add(
                Equation(
                    _label("cse", a.target.name), a.target, (a.expr,), "step", code=a.target.name
                )
            )
            for a in self.d.backward.chain
        ]

    def _stacked(self, side: str, offset: int):
        """Stacked adjoints of one side's gate inputs at step t+offset, and the stacked weights."""
        char = "x" if side == "event" else "h"
        delta = self.matrix(
            f"Delta_{side}", rf"\Delta^{{{char}}}_{{t}}", B, G * H, "stacked_delta", side, offset
        )
        weights = self.matrix(
            f"{side}_weights",
            rf"W_{{{char}}}",
            G * H,
            self.size(self.spec.recurrent_state) if side == "hidden" else X,
            "stacked_weights",
            side,
        )
        return delta, weights

    def _state_matrix(self, symbol, role, arg, offset, shift):
        base = self.notation.base[symbol.name]
        return self.matrix(f"{symbol.name}@{shift}", f"{base}_{{{shift}}}", B, H, role, arg, offset)

    def bptt(self) -> list[Equation]:
        spec, lin, eqs = self.spec, self.d.linear, []
        outputs = self.d.backward.outputs
        recurrent = spec.recurrent_state
        if self.plan.recurrent_gates:
            delta, weights = self._stacked("hidden", 0)
            through = lin.inputs.xreplace({lin.symbols["Delta"]: delta, lin.symbols["W"]: weights})
        d_prev = self.matrix(
            f"{adjoint(recurrent.prev).name}@t-1",
            rf"\delta {self.letter(recurrent)}_{{t-1}}",
            B,
            self.size(recurrent),
            "through",
            recurrent.prev.name,
        )
        terms = [through] if self.plan.recurrent_gates else []
        terms += self.source_terms(recurrent.prev)
        if outputs[recurrent.prev] != 0:
            direct = adjoint(recurrent.prev)
            terms.insert(
                0,
                self.matrix(
                    direct.name, self.notation.scalar[direct.name], B, H, "direct", direct.name
                ),
            )
        if not terms:  # the step never reads the recurrent state
            terms = [sp.ZeroMatrix(B, self.size(recurrent))]
        eqs.append(
            self.add(
                Equation(
                    _label("bptt", "through", recurrent.name),
                    d_prev,
                    (sp.MatAdd(*terms, evaluate=False),),
                    "matrix",
                    steps=("1", "T"),
                )
            )
        )
        # A previous state read by a sourced gate: its column blocks pass the adjoint back.
        for s in spec.states:
            if s.prev == recurrent.prev or not self.source_terms(s.prev):
                continue
            terms = self.source_terms(s.prev)
            if outputs[s.prev] != 0:
                terms.insert(
                    0,
                    self.matrix(
                        adjoint(s.prev).name,
                        rf"\delta^{{\mathrm{{u}}}} {self.letter(s)}_{{t-1}}",
                        B,
                        H,
                        "direct",
                        adjoint(s.prev).name,
                    ),
                )
            eqs.append(
                self.add(
                    Equation(
                        _label("bptt", "through", s.name),
                        self.matrix(
                            f"{adjoint(s.prev).name}@t-1",
                            rf"\delta {self.letter(s)}_{{t-1}}",
                            B,
                            H,
                            "through",
                            s.prev.name,
                        ),
                        (sp.MatAdd(*terms, evaluate=False) if len(terms) > 1 else terms[0],),
                        "matrix",
                        steps=("1", "T"),
                    )
                )
            )
        eqs += self.source_carries()
        out = self.size(spec.output_state)
        y_prev = self.matrix("d_outputs@-1", r"\bar{y}_{t-1}", B, out, "d_outputs", None, -1)
        y_last = self.matrix("d_outputs@T", r"\bar{y}_{T}", B, out, "d_outputs", None, 0)

        def projected(state, rhs):
            """A projected state's carry reaches its unit vector through d unit = d new W_p."""
            if state.projection is None:
                return rhs
            total = sp.MatAdd(*rhs, evaluate=False) if len(rhs) > 1 else rhs[0]
            lin = self.d.projection
            through_projection = lin.inputs.xreplace(
                {lin.symbols["Delta"]: total, lin.symbols["W"]: self.projection_weights()}
            )
            return [through_projection]

        for s in spec.states:
            carried = self._state_matrix(carry(s.unit), "carry", s.unit.name, -1, "t-1")
            if s.prev == recurrent.prev:
                passed = d_prev
            else:
                passed = self.matrix(
                    f"{adjoint(s.prev).name}@t-1",
                    rf"\delta {self.letter(s)}_{{t-1}}",
                    B,
                    H,
                    "through",
                    s.prev.name,
                )
            rhs = projected(s, [passed] + ([y_prev] if s.new == spec.output else []))
            eqs.append(
                self.add(
                    Equation(
                        _label("bptt", "carry", s.name),
                        carried,
                        (sp.MatAdd(*rhs, evaluate=False) if len(rhs) > 1 else rhs[0],),
                        "matrix",
                        steps=("2", "T"),
                    )
                )
            )
        for s in spec.states:
            final = self.matrix(
                f"{carry(s.unit).name}@T",
                rf"{self.notation.base[carry(s.unit).name]}_{{T}}",
                B,
                H,
                "carry",
                s.unit.name,
                0,
            )
            last = self.matrix(
                f"d_{s.short}_last",
                rf"\bar{{{self.letter(s)}}}_{{T}}",
                B,
                self.size(s),
                "d_last",
                s.short,
            )
            rhs = projected(s, ([y_last] if s.new == spec.output else []) + [last])
            eqs.append(
                self.add(
                    Equation(
                        _label("bptt", "last", s.name),
                        final,
                        (sp.MatAdd(*rhs, evaluate=False) if len(rhs) > 1 else rhs[0],),
                        "matrix",
                        steps=("T", "T"),
                    )
                )
            )
        for s in spec.states:
            grad = self.matrix(
                f"grad_{s.short}0",
                rf"\frac{{\partial L}}{{\partial {self.letter(s)}_{{0}}}}",
                B,
                self.size(s),
                "gradient",
                f"{s.short}0",
            )
            passed = self.matrix(
                f"{adjoint(s.prev).name}@1",
                rf"\delta {self.letter(s)}_{{0}}",
                B,
                self.size(s),
                "through",
                s.prev.name,
            )
            eqs.append(
                self.add(
                    Equation(
                        _label("bptt", "initial", s.name),
                        grad,
                        (passed,),
                        "matrix",
                        steps=("1", "1"),
                    )
                )
            )
        return eqs

    def source_carries(self) -> list[Equation]:
        """A same-step hidden source's carry: what the projections reading it pass back,
        d s = sum over those gates of Delta_g W_g (its column block)."""
        eqs = []
        for source in self.plan.unit_sources:
            carried = self._state_matrix(carry(source), "carry", source.name, 0, "t")
            terms = self.source_terms(source)
            value = sp.MatAdd(*terms, evaluate=False) if len(terms) > 1 else terms[0]
            eqs.append(
                self.add(
                    Equation(
                        _label("bptt", "source", source.name),
                        carried,
                        (value,),
                        "matrix",
                        steps=("1", "T"),
                    )
                )
            )
        return eqs

    def masking(self) -> list[Equation]:
        """Variable-length batches: the masked update of any state and of the outputs (the
        plan's :class:`~lstm_sym.plan.Masking`), and its backward, every derivative by
        ``sympy.diff`` of the masked update (nothing typed)."""
        out = self.letter(self.spec.output_state)

        def symbol(name, latex):
            self.notation.extra(name, latex)
            return sp.Symbol(name, real=True)

        m = symbol("mask", "m_{t}")
        s_t = symbol("masked_state", "s_{t}")
        s_prev = symbol("masked_state_prev", "s_{t-1}")
        s_new = symbol("masked_state_new", r"\tilde{s}_{t}")
        y_t = symbol("masked_output", "y_{t}")
        h_new = symbol("masked_output_new", rf"\tilde{{{out}}}_{{t}}")
        h_prev = symbol("masked_output_prev", rf"{out}_{{t-1}}")
        d_s = symbol("d_masked_state", r"\delta s_{t}")
        d_s_new = symbol("d_masked_state_new", r"\delta \tilde{s}_{t}")
        d_s_prev = symbol("d_masked_state_prev", r"\delta s_{t-1}")
        d_step = symbol("d_step_state_prev", r"\delta^{\mathrm{step}} s_{t-1}")
        d_h = symbol("d_masked_output_state", rf"\delta {out}_{{t}}")
        d_h_new = symbol("d_masked_output_new", rf"\delta \tilde{{{out}}}_{{t}}")
        d_y = symbol("d_masked_output", r"\bar{y}_{t}")

        state = m * s_new + (1 - m) * s_prev  # row b past its length (m = 0) keeps its state
        output = m * h_new  # ... and outputs zero
        output_state = state.xreplace({s_new: h_new, s_prev: h_prev})
        # What the loss reads of this step, linearized: the adjoints times the masked values.
        through_state = d_s * state + d_step * s_prev
        through_output = d_h * output_state + d_y * output
        eqs = [
            Equation(
                "eq:masked-state",
                s_t,
                (state,),
                "masked",
                extra={"mask": m, "running": s_new, "finished": s_prev},
            ),
            Equation(
                "eq:masked-output",
                y_t,
                (output,),
                "masked",
                extra={"mask": m, "running": h_new, "finished": sp.S.Zero},
            ),
        ]
        for label, wrt in (("new", s_new), ("prev", s_prev)):
            eqs.append(
                Equation(
                    f"eq:masked-partial-{label}",
                    sp.Derivative(s_t, wrt),
                    (sp.diff(state, wrt),),
                    "partial",
                    extra={"definition": state, "wrt": wrt, "target": s_t},
                )
            )
        for label, lhs, loss, wrt in (
            ("eq:masked-backward", d_s_new, through_state, s_new),
            ("eq:masked-backward-output", d_h_new, through_output, h_new),
            ("eq:masked-pass", d_s_prev, through_state, s_prev),
        ):
            eqs.append(
                Equation(
                    label,
                    lhs,
                    (sp.diff(loss, wrt),),
                    "partial",
                    extra={"definition": loss, "wrt": wrt},
                )
            )
        return [self.add(e) for e in eqs]

    def gradients(self) -> list[Equation]:
        lin, eqs = self.d.linear, []
        names = lin.symbols
        x_all = self.matrix("X", "X", N, X, "samples", "events")
        recurrent_size = self.size(self.spec.recurrent_state)
        h_all = self.matrix(
            "H_prev", r"H_{\mathrm{prev}}", N, recurrent_size, "samples", self.spec.recurrent.name
        )
        event_terms = []
        for gi in self.d.gate_inputs:
            d = adjoint(gi.symbol)
            deltas = self.matrix(
                f"samples_{d.name}",
                rf"\Delta_{{{self.notation.base[gi.symbol.name]}}}",
                N,
                H,
                "samples_adjoint",
                gi.symbol.name,
            )
            hidden_inputs = h_all
            sources = self.plan.sources_of(gi.gate)
            if self.plan.is_sourced(gi.gate) and len(sources) == 1:
                (source,) = sources
                hidden_inputs = self.matrix(
                    f"samples_{source.name}",
                    rf"S_{{{self.notation.base[source.name]}}}",
                    N,
                    H,
                    "samples",
                    source.name,
                )
            elif self.plan.is_sourced(gi.gate):  # the sources side by side
                hidden_inputs = self.matrix(
                    f"samples_sources_{gi.gate}",
                    rf"S_{{{self.gate_letter[gi.gate]}}}",
                    N,
                    len(sources) * H,
                    "samples",
                    f"sources_{gi.gate}",
                )
            sides = [("event", x_all, X)]
            if self.plan.hidden:  # else no gate has a hidden part
                sides.append(("hidden", hidden_inputs, self.hidden_columns(gi.gate)))
            for side, inputs, cols in sides:
                if gi.kind not in ("pre", side):
                    continue
                for kind in ("weights", "bias"):
                    attr = f"{side}_{gi.gate}_{kind}"
                    shape = (H, cols) if kind == "weights" else (H, 1)
                    target = self.weight_tex(side, gi.gate, kind)
                    grad = self.matrix(
                        f"grad_{attr}",
                        rf"\frac{{\partial L}}{{\partial {target}}}",
                        *shape,
                        "gradient",
                        attr,
                    )
                    w = self.matrix(
                        f"{side}_{gi.gate}_weights",
                        self.weight_tex(side, gi.gate, "weights"),
                        H,
                        cols,
                        "parameter",
                        f"{side}_{gi.gate}_weights",
                    )
                    substitution = {
                        names["Delta"]: deltas,
                        names["X"]: inputs,
                        names["W"]: w,
                        names["N"]: N,
                    }
                    value = getattr(lin, kind).xreplace(substitution)
                    eqs.append(
                        self.add(
                            Equation(
                                _label("gradient", attr), grad, (value,), "matrix", steps=("1", "1")
                            )
                        )
                    )
                if side == "event":
                    w = sp.MatrixSymbol(f"event_{gi.gate}_weights", H, X)
                    event_terms.append(lin.inputs.xreplace({names["Delta"]: deltas, names["W"]: w}))
        projected = self.spec.projected_state
        if projected is not None:  # dW_p = Delta^T M: matrix calculus of Z = M W_p^T
            lin = self.d.projection
            deltas = self.matrix(
                f"samples_d_{projected.new.name}",
                rf"\Delta_{{{self.letter(projected)}}}",
                N,
                P,
                "samples_adjoint",
                projected.new.name,
            )
            units = self.matrix(
                f"samples_{projected.unit.name}",
                self.notation.base[projected.unit.name].upper()
                if len(self.notation.base[projected.unit.name]) == 1
                else rf"M_{{{self.notation.base[projected.unit.name]}}}",
                N,
                H,
                "samples",
                projected.unit.name,
            )
            grad = self.matrix(
                "grad_projection_weights",
                r"\frac{\partial L}{\partial W_{\mathrm{p}}}",
                P,
                H,
                "gradient",
                "projection_weights",
            )
            value = lin.weights.xreplace(
                {lin.symbols["Delta"]: deltas, lin.symbols["X"]: units, lin.symbols["N"]: N}
            )
            eqs.append(
                self.add(
                    Equation(
                        _label("gradient", "projection_weights"),
                        grad,
                        (value,),
                        "matrix",
                        steps=("1", "1"),
                    )
                )
            )
        grad = self.matrix(
            "grad_events", r"\frac{\partial L}{\partial X}", N, X, "gradient", "events"
        )
        eqs.append(
            self.add(
                Equation(
                    _label("gradient", "events"),
                    grad,
                    (sp.MatAdd(*event_terms, evaluate=False),),
                    "matrix",
                    steps=("1", "1"),
                )
            )
        )
        return eqs


def _notation_rows(doc: Document) -> list[dict]:
    rows = []
    n = doc.notation
    seen = set()
    for symbol in doc.d.lowered.inputs + tuple(a.target for a in doc.d.forward):
        if symbol.name in seen:
            continue
        seen.add(symbol.name)
        rows.append({"math": n.scalar[symbol.name], "code": _texttt(symbol.name)})
    return rows


def build(kernel: KernelPlan | Derivation) -> Document:
    """All sections of the document, in order (the template prints them)."""
    doc = Document(as_plan(kernel))
    doc.sections = {
        "projection": doc.forward(),
        "forward": doc.per_unit_forward(),
        "reductions": doc.reductions(),
        "stabilizer": doc.stabilization(),
        "activations": doc.activation_derivatives(),
        "partials": doc.partials(),
        "linear": doc.linear(),
        "chain": doc.chain(),
        "bptt": doc.bptt(),
        "gradients": doc.gradients(),
        "lengths": doc.masking(),
        "scan": doc.scan(),
        "cse": doc.cse(),
    }
    return doc


def _size_tex(size) -> str:
    """A size as the tables print it: ``X``, ``P``, ``4H``."""
    return sp.latex(size).replace(" ", "")


def context(kernel: KernelPlan | Derivation, command: str) -> dict:
    doc = build(kernel)
    kernel, derivation = doc.plan, doc.d
    spec, n = derivation.spec, doc.notation
    reductions = [
        {
            "name": escape_text(r.name),
            "mean": doc.tex(r.mean),
            "rstd": doc.tex(r.rstd),
            "over": ", ".join(f"${doc.tex(v)}$" for v in r.over),
            "size": doc.tex(len(r.over) * H),
            "epsilon": doc.tex(r.epsilon),
            "label": _label("reduction", r.name, "mean"),
            "rstd_label": _label("reduction", r.name, "rstd"),
            "totals": (_label("total", r.name, "mean"), _label("total", r.name, "variance")),
        }
        for r in spec.reductions
    ]
    lin = derivation.linear
    attributes = []
    for k, gate in enumerate(kernel.gates):
        for side in ("event", "hidden") if kernel.hidden else ("event",):
            for kind in ("weights", "bias"):
                shape = kernel.attribute(f"{side}_{gate}_{kind}").shape
                attributes.append(
                    {
                        "code": _texttt(f"{side}_{gate}_{kind}"),
                        "math": doc.weight_tex(side, gate, kind),
                        "shape": f"$H \\times {_size_tex(shape[1])}$"
                        if kind == "weights"
                        else "$H$ (or a scalar)",
                        "rows": f"${k}H$ to ${k + 1}H-1$",
                    }
                )
    if kernel.projected is not None:
        attributes.append(
            {
                "code": _texttt("projection_weights"),
                "math": r"W_{\mathrm{p}}",
                "shape": "$P \\times H$",
                "rows": "(not stacked)",
            }
        )
    code_of = {
        "weights": numpy_code(lin.weights),
        "inputs": numpy_code(lin.inputs),
        "bias": numpy_code(lin.bias),
    }
    return {
        "spec": spec,
        "command": command,
        "title": escape_text(spec.title),
        "name": spec.name,
        "name_tex": escape_text(spec.name),
        "source": escape_text(spec.source),
        "sections": {
            k: [
                {"label": e.label, "tex": e.tex, "code": _texttt(e.code) if e.code else ""}
                for e in v
            ]
            for k, v in doc.sections.items()
        },
        "gates": [
            {"name": g, "letter": n.gate_letters[g], "index": k} for k, g in enumerate(kernel.gates)
        ],
        "gate_letters": ", ".join(f"${n.gate_letters[g]}$" for g in kernel.gates),
        "gate_names": ", ".join(_texttt(g) for g in kernel.gates),
        "states": [
            {"short": n.base[s.state.new.name], "name": s.name, "code": _texttt(s.name)}
            for s in kernel.states
        ],
        "notation": _notation_rows(doc),
        "attributes": attributes,
        "saved": ", ".join(
            f"${n.scalar[s.symbol.name]}$ ({_texttt(s.symbol.name)})" for s in kernel.saved
        ),
        "linear_code": {k: _texttt(v.replace(" ", "")) for k, v in code_of.items()},
        "output": n.scalar[kernel.output.state.new.name],
        "recurrent_short": n.base[kernel.recurrent.state.new.name],
        "reductions": reductions,
        "rescaled": [
            {
                "definition": f"{doc.tex(new)} = {doc.tex(sp.exp(m) * old)}",
                "state": n.scalar[old.name],
                "prev": f"{doc.tex(prev)} = {doc.tex(sp.exp(m_prev) * old_prev)}",
                "stabilizer": n.scalar[m.name],
            }
            for new, old, prev, old_prev, m, m_prev in getattr(doc, "rescaled", [])
        ],
        "bounded": ", ".join(f"${n.scalar[s.name]}$" for s in getattr(doc, "bounded", [])),
        "tie": doc.tex(TIE),
        "uses_max": any(a.expr.has(sp.Max) for a in derivation.forward),
        "summed": kernel.summed,
        "hidden": kernel.hidden,
        # The affine update's coefficient and offset (sec:scan), when lstm_sym.scan finds one.
        "scan": {
            "coefficient": doc.tex(recurrence.coefficient),
            "offset": doc.tex(recurrence.offset),
        }
        if (recurrence := affine_recurrence(derivation)) is not None
        else None,
        # relu's derivative at 0 is a choice (the subgradient 0): the document says so.
        "relu": any(e.has(relu) for _, e in spec.equations),
        "sources": [
            {
                "gate": n.gate_letters[kernel.readers(source)[0]],
                "source": n.scalar[source.name],
                "samples": rf"S_{{{n.base[source.name]}}}",
                "label": _label("forward", source.name),
            }
            for source in kernel.unit_sources
            if kernel.run_of(kernel.readers(source)[0]).width == 1
        ],
        "wide_sources": [
            {
                "gate": n.gate_letters[gate],
                "source": doc.stacked_tex(gate),
                "samples": rf"S_{{{n.gate_letters[gate]}}}",
                "weights": doc.weight_tex("hidden", gate, "weights"),
                "blocks": ", ".join(
                    rf"${doc.weight_tex('hidden', gate, 'weights')}^{{({n.base[s.name]})}}$"
                    for s in run.sources
                ),
                "names": ", ".join(f"${n.scalar[s.name]}$" for s in run.sources),
            }
            for run in kernel.runs
            if run.width > 1
            for gate in run.gates
        ],
    }


def emit(kernel: KernelPlan | Derivation, command: str = "lstm-sym generate") -> str:
    """The source of ``derivations/<cell>.tex`` (a derivation is planned first)."""
    values = context(kernel, command)
    groups: dict = {}  # gates reading the same sources: one sentence
    for src in values["wide_sources"]:
        groups.setdefault(src["names"], []).append(src)
    values["wide_groups"] = [{"names": k, "sources": v} for k, v in groups.items()]
    return render("derivation.tex.jinja", values)


def equations_json(kernel: KernelPlan | Derivation) -> str:
    """The sidecar ``derivations/<cell>.equations.json``: every printed equation, checkable."""
    doc = build(kernel)
    payload = {
        "cell": doc.plan.name,
        "generated_by": "lstm_sym.codegen.latex_document -- DO NOT EDIT",
        "equations": [e.record() for eqs in doc.sections.values() for e in eqs],
    }
    return json.dumps(payload, indent=1, sort_keys=False) + "\n"


def source_hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()
