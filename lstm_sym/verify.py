"""The independent exact models: the references every kernel is checked against.

Neither shares code with :mod:`lstm_sym.derive` or the emitters. Both start from the spec's
forward equations as the user wrote them (no lowering, no saved-activation rewriting, no CSE)
and expand a whole short sequence unit by unit, batch row by batch row, step by step, with the
linear mixing written out as scalar sums. A random linear functional of the outputs and the
final states,

    L = sum(cot_out * outputs) + sum over states s of sum(cot_s * s_last),

is differentiated with respect to every weight, bias, event and initial-state entry:

* :class:`ExactModel` (fast, used by the tests at the issue's sizes): forward-mode
  differentiation of the unrolled sequence, with each equation's partial derivatives found by
  ``sympy.diff`` of the spec's own expression and every value carried in 40-digit mpmath
  arithmetic: a different mode (forward, not reverse), different expressions and different code
  from the derivation's backward pass.
* :func:`direct_gradients` (slow, tiny sizes): the loss as one SymPy expression of all leaves,
  ``sympy.diff`` with respect to each leaf, evaluated at 40 digits. The tests check that the two
  models agree, then use the fast one.

The random point is float64; its exact binary values are what the models use, so the generated
kernels see the very same inputs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp

from .functions import sigmoid
from .spec import CellSpec, gate_event, gate_hidden, initial_values

DIGITS = 40


def _mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def _mp_logsigmoid(x):
    """log(sigmoid(x)) by its definition, -log(1 + exp(-x)), at the working precision (log1p:
    exp(-x) below the working precision still counts)."""
    return -mpmath.log1p(mpmath.exp(-x))


def _mp_relu(x):
    return x if x > 0 else mpmath.mpf(0)


def _mp_heaviside(x, tie=sp.S.Half):
    """The step with ``tie`` (SymPy's Heaviside(0), its second argument) at 0: Max's derivative
    (1/2) and relu's (``Heaviside(x, 0)``)."""
    return mpmath.mpf(1) if x > 0 else (mpmath.mpf(0) if x < 0 else mpmath.mpf(tie))


_MODULES = [
    {
        "sigmoid": _mp_sigmoid,
        "logsigmoid": _mp_logsigmoid,
        "relu": _mp_relu,
        "Heaviside": _mp_heaviside,
    },
    "mpmath",
]


def state_sizes(spec: CellSpec, hidden_size: int, projection_size=None) -> dict:
    """Entries of each state by short name: hidden_size, or projection_size (None: hidden_size)
    for a projected state."""
    P = hidden_size if projection_size is None else projection_size
    return {s.short: hidden_size if s.projection is None else P for s in spec.states}


def _hidden_sources(spec: CellSpec, gate: str) -> tuple:
    """The symbols gate ``gate``'s hidden projection reads, read from the spec as written:
    ``hidden_sources[gate]`` (a symbol or a tuple), else the recurrent state."""
    value = spec.hidden_sources.get(gate, spec.recurrent)
    return (value,) if isinstance(value, sp.Symbol) else tuple(value)


def leaf_shapes(
    spec: CellSpec, steps: int, batch: int, event_size: int, hidden_size: int, projection_size=None
) -> dict:
    """Shape of every differentiable input: Parameters attributes, ``events``, ``<short>0``."""
    H, X = hidden_size, event_size
    sizes = state_sizes(spec, hidden_size, projection_size)
    by_prev = {s.prev: sizes[s.short] for s in spec.states}
    shapes = {}
    for gate in spec.gates:
        # What the hidden projection reads: a previous state (its size) or a per-unit value (H)
        R = sum(by_prev.get(source, H) for source in _hidden_sources(spec, gate))
        sides = (("event", X), ("hidden", R)) if spec.hidden_parts else (("event", X),)
        for side, columns in sides:  # no hidden part in any gate: no hidden weights or biases
            shapes[f"{side}_{gate}_weights"] = (H, columns)
            shapes[f"{side}_{gate}_bias"] = (H,)
    for p in spec.unit_parameters:
        shapes[p.name] = (H,)
    if spec.projected_state is not None:
        shapes["projection_weights"] = (sizes[spec.projected_state.short], H)
    shapes["events"] = (steps, batch, X)
    for s in spec.states:
        shapes[f"{s.short}0"] = (batch, sizes[s.short])
    return shapes


@dataclass
class ExactModel:
    """Forward values and gradients of one random problem, exact to ``DIGITS`` digits.

    After construction (float64 arrays rounded from the exact values): ``parameters``
    (Parameters attribute -> array; biases as (hidden,)), ``events`` (T, B, X), ``initial``
    (state short name -> (B, H)), ``outputs`` (T, B, H), ``finals`` (short -> (B, H)),
    ``cotangents`` ('outputs' -> (T, B, H), short -> (B, H)): pass them as ``d_outputs`` and
    ``d_<short>_last``; ``gradients`` (Parameters attribute, 'events', '<short>0' -> array).
    """

    spec: CellSpec
    steps: int = 3
    batch: int = 2
    event_size: int = 2
    hidden_size: int = 2
    seed: int = 0
    scale: float = 0.6
    #: Entries of a projected state (None: hidden_size); ignored by cells without one.
    projection_size: int | None = None
    #: Each batch row's number of steps (None: all ``steps``), any order; see :func:`_unroll`.
    lengths: tuple | None = None
    parameters: dict = field(init=False)
    events: np.ndarray = field(init=False)
    initial: dict = field(init=False)
    outputs: np.ndarray = field(init=False)
    finals: dict = field(init=False)
    cotangents: dict = field(init=False)
    gradients: dict = field(init=False)

    def __post_init__(self):
        spec = self.spec
        point, self.cotangents = random_point(
            spec,
            self.steps,
            self.batch,
            self.event_size,
            self.hidden_size,
            self.seed,
            self.scale,
            self.projection_size,
        )
        if self.lengths is not None:
            self.lengths = tuple(_checked_lengths(self.lengths, self.steps, self.batch))
        shorts = {f"{s.short}0" for s in spec.states}
        self.parameters = {k: v for k, v in point.items() if k != "events" and k not in shorts}
        self.events = point["events"]
        self.initial = {s.short: point[f"{s.short}0"] for s in spec.states}
        with mpmath.workdps(DIGITS + 10):
            outputs, finals, gradients = _forward_mode(spec, point, self.cotangents, self.lengths)
        self.outputs = outputs
        self.finals = finals
        self.gradients = gradients


def _checked_lengths(lengths, steps: int, batch: int) -> list[int]:
    """``lengths`` as a list of ``batch`` Python ints in 1..steps, else a ValueError."""
    array = np.asarray(lengths)
    values = [int(v) for v in array.reshape(-1)] if array.dtype.kind in "iu" else []
    if array.shape != (batch,) or len(values) != batch or not all(1 <= v <= steps for v in values):
        raise ValueError(
            f"lengths must hold {batch} integers in 1..{steps} (batch,), got {lengths!r}"
        )
    return values


def random_lengths(steps: int, batch: int, seed: int = 0) -> tuple:
    """Unsorted lengths in 1..steps for every row: when ``batch > 1`` one row of length 1 and
    one of ``steps`` (a row that stops after its first step and a full one), in an order that is
    not PyTorch's sorted (decreasing) one."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, steps + 1, size=batch)
    if batch > 1:
        lengths[0], lengths[-1] = 1, steps
        lengths = rng.permutation(lengths)
        if list(lengths) == sorted(lengths, reverse=True):  # not in PyTorch's sorted order
            lengths = lengths[::-1]
    return tuple(int(v) for v in lengths)


def random_point(
    spec, steps, batch, event_size, hidden_size, seed=0, scale=0.6, projection_size=None
):
    """A random float64 problem: ``(leaves, cotangents)``; weights and biases ~ N(0, scale)."""
    rng = np.random.default_rng(seed)
    sizes = state_sizes(spec, hidden_size, projection_size)
    point = {}
    shapes = leaf_shapes(spec, steps, batch, event_size, hidden_size, projection_size)
    initial = {f"{s.short}0": s for s in spec.states}
    for name, shape in shapes.items():
        sd = scale if name != "events" and not name.endswith("0") else 1.0
        point[name] = rng.normal(0.0, sd, size=shape)
        if name in initial:
            point[name] = initial_values(initial[name], point[name])
    cotangents = {"outputs": rng.normal(size=(steps, batch, sizes[spec.output_state.short]))}
    for s in spec.states:
        cotangents[s.short] = rng.normal(size=(batch, sizes[s.short]))
    return point, cotangents


# ---------------------------------------------------------------------------------------------
# The unrolled sequence, shared by both models (they differ only in their number type)
# ---------------------------------------------------------------------------------------------


@functools.cache
def statistics(n: int, epsilon) -> tuple[tuple[sp.Symbol, ...], sp.Expr, sp.Expr]:
    """``(v, mean, rstd)``: a layer norm's statistics of n symbols v_1..v_n written out,
    ``mean = sum(v) / n`` and ``rstd = (sum((v - mean)^2) / n + epsilon)^(-1/2)`` (the biased
    variance, as ``torch.nn.LayerNorm``), from the definition, never through the derivation."""
    v = tuple(sp.Symbol(f"v{k}", real=True) for k in range(n))
    mean = sp.Add(*v) / n
    variance = sp.Add(*((x - mean) ** 2 for x in v)) / n
    return v, mean, (variance + epsilon) ** sp.Rational(-1, 2)


def _unroll(spec: CellSpec, leaves: dict, affine, step, zero, lengths=None, reduce=None):
    """The spec's equations over the whole sequence, unit by unit, the linear mixing written out.

    ``leaves`` maps every leaf name to an object array of numbers (duals or SymPy symbols);
    ``affine(row, vector, bias)`` is a dot product plus bias, ``step(values, i)`` applies the
    spec's i-th equation to one unit's ``{symbol: value}`` in place, ``zero`` is the number
    type's zero. Equations run across all units in turn, so that a gate's hidden part can read a
    hidden source (a per-unit value of this step) of every unit. A gate with ``hidden_sources``
    reads its sources side by side, in tuple order (previous states and values of this step),
    through one row of its hidden weights per unit.

    ``lengths`` (None: every row runs all T steps): row ``b`` runs only steps
    ``t < lengths[b]``, as PyTorch's packed sequences. Past its length a row is not computed at
    all: its events are never read, every state keeps its value and its output is ``zero``, so
    the final states are each row's states after its own last step.
    ``reduce(values, epsilon) -> (mean, rstd)``: a reduction over units
    (``spec.reductions``), applied to the stacked values (each ``over`` symbol across all
    units, in tuple order) before the first equation that reads its statistics.
    Returns ``(outputs (T, B, output size), {short: final state (B, size)})``.
    """
    T, B, _ = leaves["events"].shape
    H = leaves[f"event_{spec.gates[0]}_bias"].shape[0]
    state = {s.short: leaves[f"{s.short}0"] for s in spec.states}
    recurrent = spec.recurrent_state.short
    prev_short = {s.prev: s.short for s in spec.states}
    outputs = np.empty((T, B, state[spec.output_state.short].shape[1]), dtype=object)
    for t in range(T):
        # Per-unit values of each state (a projected state's vector), then its projection.
        new_state = {s.short: np.empty((B, H), dtype=object) for s in spec.states}
        running = [b for b in range(B) if lengths is None or t < lengths[b]]
        for b in running:
            units: list[dict] = [{} for _ in range(H)]
            for k, values in enumerate(units):
                for gate in spec.gates:
                    values[gate_event(gate)] = affine(
                        leaves[f"event_{gate}_weights"][k],
                        leaves["events"][t, b],
                        leaves[f"event_{gate}_bias"][k],
                    )
                    if gate not in spec.hidden_sources and spec.hidden_parts:
                        values[gate_hidden(gate)] = affine(
                            leaves[f"hidden_{gate}_weights"][k],
                            state[recurrent][b],
                            leaves[f"hidden_{gate}_bias"][k],
                        )
                for p in spec.unit_parameters:
                    values[p] = leaves[p.name][k]
                for s in spec.states:
                    if s.projection is None:  # a projected state's is read by projections only
                        values[s.prev] = state[s.short][b, k]
            for i, (_, expr) in enumerate(spec.equations):
                for gate in spec.hidden_sources:
                    part = gate_hidden(gate)
                    if part in expr.free_symbols and part not in units[0]:
                        read = []  # [s_1, s_2, ...]: W_hidden_g [s_1, s_2, ...] + b_hidden_g
                        for source in _hidden_sources(spec, gate):
                            if source in prev_short:  # a state at t-1, all of its entries
                                read.extend(state[prev_short[source]][b])
                            else:  # a value of this step, of every unit
                                read.extend(values[source] for values in units)
                        for k, values in enumerate(units):
                            values[part] = affine(
                                leaves[f"hidden_{gate}_weights"][k],
                                read,
                                leaves[f"hidden_{gate}_bias"][k],
                            )
                for reduction in spec.reductions:
                    if (
                        set(reduction.symbols) & expr.free_symbols
                        and reduction.mean not in units[0]
                    ):
                        stacked = [values[v] for v in reduction.over for values in units]
                        mean, rstd = reduce(stacked, reduction.epsilon)
                        for values in units:
                            values[reduction.mean], values[reduction.rstd] = mean, rstd
                for values in units:
                    step(values, i)
            for k, values in enumerate(units):
                for s in spec.states:
                    new_state[s.short][b, k] = values[s.unit]
        for s in spec.states:
            if s.projection is not None:  # new = W_projection unit, written out as scalar sums
                weights = leaves["projection_weights"]
                new_state[s.short] = np.array(
                    [
                        [affine(row, new_state[s.short][b], zero) for row in weights]
                        if b in running
                        else [zero] * len(weights)
                        for b in range(B)
                    ],
                    dtype=object,
                )
        for b in range(B):
            if b not in running:  # past its length: the row's states stay, its output is zero
                for s in spec.states:
                    new_state[s.short][b] = state[s.short][b]
        state = new_state
        outputs[t] = state[spec.output_state.short]
        for b in range(B):
            if b not in running:
                outputs[t, b] = [zero] * outputs.shape[2]
    return outputs, state


# ---------------------------------------------------------------------------------------------
# The fast model: forward mode over the unrolled sequence, 40-digit mpmath values
# ---------------------------------------------------------------------------------------------


class _Dual:
    """A value and its derivatives with respect to every leaf (a dense mpmath vector)."""

    __slots__ = ("tangent", "value")

    def __init__(self, value, tangent):
        self.value = value
        self.tangent = tangent


def _compiled_equations(spec: CellSpec):
    """Per equation: its inputs, a value function, and d expr / d input for each input."""
    compiled = []
    for target, expr in spec.equations:
        inputs = sorted(expr.free_symbols, key=lambda s: s.name)
        value = sp.lambdify(inputs, expr, modules=_MODULES)
        partials = [sp.lambdify(inputs, sp.diff(expr, u), modules=_MODULES) for u in inputs]
        compiled.append((target, inputs, value, partials))
    return compiled


@functools.cache
def _compiled(expr: sp.Expr, symbols: tuple):
    value = sp.lambdify(symbols, expr, modules=_MODULES)
    return value, [sp.lambdify(symbols, sp.diff(expr, u), modules=_MODULES) for u in symbols]


def _apply(expr: sp.Expr, symbols: tuple, duals: list, zero: list) -> _Dual:
    """``expr`` of ``symbols`` at ``duals``, its tangent by the chain rule (``sympy.diff``)."""
    value, partials = _compiled(expr, symbols)
    args = [d.value for d in duals]
    tangent = list(zero)
    for dual, partial in zip(duals, partials):
        d = partial(*args)
        if d:
            tangent = [x + d * y for x, y in zip(tangent, dual.tangent)]
    return _Dual(value(*args), tangent)


def _forward_mode(spec: CellSpec, point: dict, cotangents: dict, lengths=None):
    names = list(point)
    offsets, total = {}, 0
    for name in names:
        offsets[name] = total
        total += point[name].size
    zero = [mpmath.mpf(0)] * total

    def leaf(name, index):
        tangent = list(zero)
        tangent[offsets[name] + int(np.ravel_multi_index(index, point[name].shape))] = mpmath.mpf(1)
        return _Dual(mpmath.mpf(float(point[name][index])), tangent)

    leaves = {
        name: np.array([leaf(name, i) for i in np.ndindex(*values.shape)], dtype=object).reshape(
            values.shape
        )
        for name, values in point.items()
    }

    def add(a: _Dual, b: _Dual) -> _Dual:
        return _Dual(a.value + b.value, [x + y for x, y in zip(a.tangent, b.tangent)])

    def mul(a: _Dual, b: _Dual) -> _Dual:
        return _Dual(
            a.value * b.value, [a.value * y + b.value * x for x, y in zip(a.tangent, b.tangent)]
        )

    def affine(row, vector, bias):
        out = bias
        for w, v in zip(row, vector):
            out = add(out, mul(w, v))
        return out

    equations = _compiled_equations(spec)

    def step(values: dict, i: int) -> None:
        target, inputs, value, partials = equations[i]
        args = [values[u].value for u in inputs]
        tangent = list(zero)
        for u, partial in zip(inputs, partials):
            d = partial(*args)
            if d:
                tangent = [x + d * y for x, y in zip(tangent, values[u].tangent)]
        values[target] = _Dual(value(*args), tangent)

    def reduce(stacked, epsilon):
        v, *exprs = statistics(len(stacked), epsilon)
        return tuple(_apply(expr, v, stacked, zero) for expr in exprs)

    outputs, state = _unroll(
        spec, leaves, affine, step, _Dual(mpmath.mpf(0), list(zero)), lengths, reduce
    )

    loss = list(zero)
    pairs = list(zip(cotangents["outputs"].ravel(), outputs.ravel()))
    for s in spec.states:
        pairs += list(zip(cotangents[s.short].ravel(), state[s.short].ravel()))
    for c, dual in pairs:
        c = mpmath.mpf(float(c))
        loss = [x + c * y for x, y in zip(loss, dual.tangent)]

    def as_float(duals):
        return np.vectorize(lambda d: float(d.value), otypes=[float])(duals)

    gradients = {
        name: np.array(
            [float(g) for g in loss[offsets[name] : offsets[name] + values.size]]
        ).reshape(values.shape)
        for name, values in point.items()
    }
    return as_float(outputs), {s.short: as_float(state[s.short]) for s in spec.states}, gradients


# ---------------------------------------------------------------------------------------------
# The direct model: one SymPy expression of all leaves, sympy.diff per leaf (tiny sizes only)
# ---------------------------------------------------------------------------------------------


def direct_gradients(spec: CellSpec, point: dict, cotangents: dict, lengths=None) -> dict:
    """dL/d(every leaf) by ``sympy.diff`` of the fully unrolled loss, evaluated at 40 digits
    (``lengths``: each row's number of steps, None for all, as in :func:`_unroll`)."""
    if lengths is not None:
        steps, batch = point["events"].shape[:2]
        lengths = _checked_lengths(lengths, steps, batch)
    symbols = {
        name: np.array(
            [sp.Symbol(f"{name}{list(i)}") for i in np.ndindex(*values.shape)], dtype=object
        ).reshape(values.shape)
        for name, values in point.items()
    }

    def affine(row, vector, bias):
        return sp.Add(*(w * v for w, v in zip(row, vector)), bias)

    def step(values: dict, i: int) -> None:
        target, expr = spec.equations[i]
        values[target] = expr.xreplace(values)

    def reduce(stacked, epsilon):
        v, mean, rstd = statistics(len(stacked), epsilon)
        values = dict(zip(v, stacked))
        return mean.xreplace(values), rstd.xreplace(values)

    outputs, state = _unroll(spec, symbols, affine, step, sp.S.Zero, lengths, reduce)
    terms = [
        sp.Float(float(c), DIGITS) * o
        for c, o in zip(cotangents["outputs"].ravel(), outputs.ravel())
    ]
    for s in spec.states:
        terms += [
            sp.Float(float(c), DIGITS) * v
            for c, v in zip(cotangents[s.short].ravel(), state[s.short].ravel())
        ]
    loss = sp.Add(*terms)
    flat_symbols = [s for name in point for s in symbols[name].ravel()]
    flat_values = [mpmath.mpf(float(v)) for name in point for v in point[name].ravel()]
    gradients = {}
    with mpmath.workdps(DIGITS + 10):
        for name, values in point.items():
            grad = np.empty(values.shape)
            for index in np.ndindex(*values.shape):
                derivative = sp.diff(loss, symbols[name][index])
                f = sp.lambdify(flat_symbols, derivative, modules=_MODULES, cse=True)
                grad[index] = float(f(*flat_values))
            gradients[name] = grad
    return gradients


__all__ = [
    "DIGITS",
    "ExactModel",
    "direct_gradients",
    "leaf_shapes",
    "random_lengths",
    "random_point",
    "sigmoid",
    "state_sizes",
]
