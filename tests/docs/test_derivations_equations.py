"""Every equation the derivation document prints, evaluated numerically.

The equations are read back from the checked-in sidecar ``derivations/<cell>.equations.json``
(the SymPy source of what ``derivations/<cell>.tex`` prints; ``generate --check`` keeps both
fresh) and evaluated on values that do not come from the derivation: an autograd trace of the
spec's forward equations (``tests/docs/derivation_trace.py``), numerical derivatives, random
matrices, and the generated kernel's own gradients.
"""

from __future__ import annotations

import json
import re

import mpmath
import numpy as np
import pytest
import sympy as sp

from lstm_sym.cells import CELLS, get
from lstm_sym.functions import logsigmoid, relu, sigmoid

pytest.importorskip("torch")
from tests.docs.derivation_trace import Trace, evaluate_matrix
from tests.support import ROOT

NAMESPACE = {name: getattr(sp, name) for name in dir(sp)}
NAMESPACE.update(
    {"Str": sp.core.symbol.Str, "sigmoid": sigmoid, "logsigmoid": logsigmoid, "relu": relu}
)


def load(name):
    payload = json.loads((ROOT / "derivations" / f"{name}.equations.json").read_text())
    for entry in payload["equations"]:
        entry["lhs_expr"] = eval(entry["lhs"], dict(NAMESPACE))
        entry["rhs_exprs"] = [eval(r, dict(NAMESPACE)) for r in entry["rhs"]]
        for key in (
            "definition",
            "wrt",
            "loss",
            "target",
            "mask",
            "running",
            "finished",
            "rescaled",
            "over",
        ):
            if key in entry:
                entry[key + "_expr"] = eval(entry[key], dict(NAMESPACE))
    return payload["equations"]


@pytest.fixture(scope="module", params=list(CELLS))
def cell(request, random_problem):
    spec = get(request.param)
    # A projected state's size other than H (LSTMP's h = W_p m), so shapes cannot hide.
    projection = None if spec.projected_state is None else 3
    problem = random_problem(spec.name, 3, 2, 3, 4, seed=0, scale=0.6, projection_size=projection)
    trace = Trace(spec, problem)
    return spec, trace, load(spec.name), trace.kernel()


def _numpy(expr, env):
    args = sorted(expr.free_symbols, key=lambda s: s.name)
    functions = {
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "logsigmoid": lambda x: -np.log1p(np.exp(-x)),
        "relu": lambda x: np.maximum(x, 0),
    }
    f = sp.lambdify(args, expr, modules=[functions, "numpy"])
    return np.broadcast_to(f(*(env[s.name] for s in args)), next(iter(env.values())).shape)


def _close(got, want, what):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(got - want))) / scale
    assert err < 1e-12, f"{what}: relative error {err:.3g}"


def test_labels_match_the_document(cell):
    spec, _, equations, _ = cell
    tex = (ROOT / "derivations" / f"{spec.name}.tex").read_text()
    labels = re.findall(r"\\label\{(eq:[^}]*)\}", tex)
    assert labels == [e["label"] for e in equations]
    for e in equations:
        assert e["latex"] + " " in tex, e["label"]
    assert r"\left(" not in tex


def test_the_trace_is_the_kernel(cell):
    """The autograd trace and the generated kernel agree: the trace is a fair reference."""
    spec, trace, _, (outputs, _, grads) = cell
    hidden = np.stack([env[spec.output.name] for env in trace.env])
    _close(outputs, hidden, "outputs")
    for name, value in trace.leaf_grads.items():
        _close(grads[name], value, name)


def test_step_equations(cell):
    _, trace, equations, _ = cell
    checked = 0
    for t, env in enumerate(trace.env):
        env = dict(env)
        for e in equations:
            if e["check"] != "step":
                continue
            for rhs in e["rhs_exprs"]:
                value = _numpy(rhs, env)
                if e["lhs_expr"].name.startswith("tmp"):
                    env[e["lhs_expr"].name] = value  # a CSE temporary: defined, then used
                _close(value, env[e["lhs_expr"].name], f"{e['label']} at t={t + 1}")
                checked += 1
    assert checked > 0


def _mp(expr, symbols):
    functions = {
        "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
        "logsigmoid": lambda x: -mpmath.log1p(mpmath.exp(-x)),
        "relu": lambda x: x if x > 0 else mpmath.mpf(0),
        "Heaviside": lambda x, tie: mpmath.mpf(1 if x > 0 else 0 if x < 0 else tie),
    }
    modules = [functions, "mpmath"]
    return sp.lambdify(symbols, expr, modules=modules)


def test_partial_derivatives():
    """d target / d wrt by numerical differentiation (40 digits) against each printed form."""
    for name in CELLS:
        for e in load(name):
            if e["check"] != "partial":
                continue
            definition, wrt = e["definition_expr"], e["wrt_expr"]
            target = e.get("target_expr")
            symbols = sorted(definition.free_symbols, key=lambda s: s.name)
            rng = np.random.default_rng(len(e["label"]))
            with mpmath.workdps(40):
                point = {s: mpmath.mpf(float(rng.uniform(-1.5, 1.5))) for s in symbols}
                f = _mp(definition, symbols)

                def along(x, f=f, symbols=symbols, point=point, wrt=wrt):
                    return f(*(x if s == wrt else point[s] for s in symbols))

                numeric = mpmath.diff(along, point[wrt])
                values = dict(point)
                if target is not None:
                    values[target] = along(point[wrt])
                for rhs in e["rhs_exprs"]:
                    args = sorted(rhs.free_symbols, key=lambda s: s.name)
                    value = _mp(rhs, args)(*(values[a] for a in args))
                    assert abs(value - numeric) < mpmath.mpf("1e-25"), e["label"]


def test_linear_adjoints():
    dims_values = {"N": 5, "M": 3, "K": 4}
    for name in CELLS:
        for e in load(name):
            if e["check"] == "definition":
                linear = [x for x in load(name) if x["check"] == "linear"]
                assert all(x["loss_expr"] == e["rhs_exprs"][0] for x in linear)
                continue
            if e["check"] != "linear":
                continue
            loss, wrt = e["loss_expr"], e["wrt_expr"]
            shapes = [d for m in loss.atoms(sp.MatrixSymbol) for d in m.shape]
            dims = {s: dims_values[s.name] for d in shapes for s in sp.sympify(d).free_symbols}
            rng = np.random.default_rng(0)
            env = {
                m.name: rng.normal(size=(int(m.rows.subs(dims)), int(m.cols.subs(dims))))
                for m in loss.atoms(sp.MatrixSymbol)
            }
            gradient = evaluate_matrix(e["rhs_exprs"][0], env, dims)
            direction = rng.normal(size=env[wrt.name].shape)
            shifted = {**env, wrt.name: env[wrt.name] + direction}
            # The loss is linear in each matrix: the difference is the directional derivative.
            change = evaluate_matrix(loss, shifted, dims) - evaluate_matrix(loss, env, dims)
            assert abs(change - np.sum(gradient * direction)) < 1e-10, e["label"]


def _role_value(role, arg, offset, t, trace, grads, column=None):
    """The array a matrix symbol of the document stands for, at step t (1-based)."""
    spec = trace.spec
    T, B = trace.steps, trace.batch
    step = t + offset - 1
    if role == "value":
        v = trace.env[step][arg]
    elif role == "events":
        v = trace.events[step]
    elif role == "parameter":
        v = trace.parameters[arg]
        return v if v.ndim == 2 else v[:, None]
    elif role == "weight_block":  # the column block j of a gate's wide hidden weights
        name, j = arg.rsplit("@", 1)
        H = trace.hidden_size
        return trace.parameters[name][:, int(j) * H : (int(j) + 1) * H]
    elif role == "through":
        v = trace.through[step][arg]
    elif role == "direct":
        v = trace.env[step][arg]
    elif role == "carry":
        v = trace.env[step][f"d_{arg}_carry"]
    elif role == "d_outputs":
        v = trace.cot["outputs"][step]
    elif role == "d_last":
        v = trace.cot[arg]
    elif role == "gradient":
        v = grads[arg]
        if arg == "events":
            return v.reshape(T * B, -1)
        return v if v.ndim == 2 else v[:, None]
    elif role == "stacked_delta":
        d = trace.derivation
        blocks = [
            trace.env[step][f"d_{gi.symbol.name}"]
            for gi in d.gate_inputs
            if gi.kind in ("pre", arg) and not (arg == "hidden" and gi.gate in spec.hidden_sources)
        ]
        return np.concatenate(blocks, axis=1)
    elif role == "stacked_weights":  # a sourced gate's hidden weights read its source, not h
        gates = [g for g in spec.gates if arg == "event" or g not in spec.hidden_sources]
        return np.concatenate([trace.parameters[f"{arg}_{g}_weights"] for g in gates])
    elif role == "samples":
        if arg == "events":
            return trace.events.reshape(T * B, -1)
        return np.stack([env[arg] for env in trace.env]).reshape(T * B, -1)
    elif role == "samples_adjoint":
        return np.stack([env[f"d_{arg}"] for env in trace.env]).reshape(T * B, -1)
    else:
        raise KeyError(role)
    return v if column is None else v[column][:, None]


def test_matrix_equations(cell):
    _, trace, equations, (_, _, grads) = cell
    T, B = trace.steps, trace.batch
    dims = {sp.Symbol("N", integer=True, positive=True): T * B}
    checked = 0
    for e in equations:
        if e["check"] not in ("matrix", "projection"):
            continue
        first, last = (T if s == "T" else int(s) for s in e["steps"])
        for t in range(first, last + 1):
            columns = range(B) if e["check"] == "projection" else [None]
            for b in columns:
                env = {
                    name: _role_value(role, arg, offset, t, trace, grads, b)
                    for name, (role, arg, offset) in e["symbols"].items()
                }
                want = evaluate_matrix(e["lhs_expr"], env, dims)
                for rhs in e["rhs_exprs"]:
                    _close(evaluate_matrix(rhs, env, dims), want, f"{e['label']} at t={t}")
                    checked += 1
    assert checked > 0


def test_the_unstabilized_recurrence_holds_for_the_rescaled_states(cell):
    """A stabilizer's section (sLSTM): with s~ = exp(m) s from the trace's values of s and m,
    the printed recurrence without m holds at every step (the PDF's equivalence claim)."""
    spec, trace, equations, _ = cell
    rescaled = [e for e in equations if e["check"] == "rescaled"]
    assert bool(rescaled) == bool(spec.stabilizer)
    for t, env in enumerate(trace.env):
        for e in rescaled:
            values = dict(env)
            for new, state, prev, state_prev, m, m_prev in e["rescaled_expr"]:
                values[new.name] = np.exp(env[m.name]) * env[state.name]
                values[prev.name] = np.exp(env[m_prev.name]) * env[state_prev.name]
            for rhs in e["rhs_exprs"]:
                _close(_numpy(rhs, values), values[e["lhs_expr"].name], f"{e['label']} t={t + 1}")


def test_every_equation_is_checked(cell):
    _, _, equations, _ = cell
    kinds = {"step", "partial", "linear", "definition", "matrix", "projection", "masked"}
    kinds |= {"rescaled", "statistic", "statistic_partial", "total"}
    assert {e["check"] for e in equations} <= kinds
    assert len(equations) > 25  # IndRNN, one gate and one equation, has 31; an LSTM over 40


def test_masked_updates_keep_a_finished_rows_state_and_zero_its_outputs():
    """The variable-length section's masked updates mean what PyTorch's packed sequences do: a
    running row (mask 1) takes the step's value, a finished one (mask 0) keeps its state and
    outputs zero."""
    for name in CELLS:
        masked = [e for e in load(name) if e["check"] == "masked"]
        assert [e["label"] for e in masked] == ["eq:masked-state", "eq:masked-output"]
        for e in masked:
            (rhs,) = e["rhs_exprs"]
            for value, expected in ((1, e["running_expr"]), (0, e["finished_expr"])):
                assert sp.expand(rhs.subs(e["mask_expr"], value) - expected) == 0, e["label"]


def test_the_masked_backward_is_sympy_diff_of_the_masked_update():
    """Every derivative in the variable-length section is sympy.diff of the printed masked
    update (eq:masked-state, eq:masked-output) read back from the sidecar: derived, not typed."""
    for name in CELLS:
        equations = {e["label"]: e for e in load(name)}
        (state,) = equations["eq:masked-state"]["rhs_exprs"]
        (output,) = equations["eq:masked-output"]["rhs_exprs"]
        mask = equations["eq:masked-state"]["mask_expr"]
        new, prev = sorted(state.free_symbols - {mask}, key=lambda s: s.name)
        h_new = equations["eq:masked-output"]["running_expr"]
        for label, wrt in (("eq:masked-partial-new", new), ("eq:masked-partial-prev", prev)):
            (rhs,) = equations[label]["rhs_exprs"]
            assert equations[label]["definition_expr"] == state
            assert rhs == sp.diff(state, wrt), label
        for label in ("eq:masked-backward", "eq:masked-backward-output", "eq:masked-pass"):
            e = equations[label]
            (rhs,) = e["rhs_exprs"]
            assert rhs == sp.diff(e["definition_expr"], e["wrt_expr"]), label
        # the loss they differentiate reads the printed masked update itself
        assert equations["eq:masked-backward"]["definition_expr"].has(state)
        assert equations["eq:masked-backward-output"]["definition_expr"].has(output)
        assert equations["eq:masked-backward-output"]["wrt_expr"] == h_new
        # a finished row (mask 0): no adjoint into the step, the state's adjoint passes through
        d_state = sp.Symbol("d_masked_state", real=True)
        d_step = sp.Symbol("d_step_state_prev", real=True)
        assert equations["eq:masked-backward"]["rhs_exprs"][0].subs(mask, 0) == 0
        assert equations["eq:masked-backward-output"]["rhs_exprs"][0].subs(mask, 0) == 0
        passed = equations["eq:masked-pass"]["rhs_exprs"][0]
        assert passed.subs({mask: 0, d_step: 0}) == d_state


def _row_value(expr, env, row, hidden):
    """A row value's expression (sums over indexed entries) at batch row ``row``: H set, the sums
    written out, entry i of an indexed symbol x read from env[x][row, i - 1], every other
    symbol from env (a row value is the same for every unit: its first)."""
    expr = expr.xreplace({sp.Symbol("H", integer=True, positive=True): hidden}).doit()
    entries = {
        i: float(env[i.base.label.name][row, int(i.indices[0]) - 1]) for i in expr.atoms(sp.Indexed)
    }
    expr = expr.xreplace(entries)
    rest = {
        s: float(np.reshape(env[s.name], (len(env[s.name]), -1))[row, 0]) for s in expr.free_symbols
    }
    return float(expr.xreplace(rest))


def test_the_reductions_statistics_and_totals_hold_on_the_trace(cell):
    """A cell with reductions over units: at every step and row, each statistic's printed
    definition equals the trace's mean and rstd (torch, from the stacked values), each total
    D_mean, D_var the row's dL/dmean, dL/dvariance by autograd, and each entry's part from a
    reduction the vector-Jacobian product of mean and variance by autograd."""
    spec, trace, equations, _ = cell
    reductions = [e for e in equations if e["check"] in ("statistic", "total")]
    assert bool(reductions) == bool(spec.reductions)
    hidden = trace.hidden_size
    for t, env in enumerate(trace.env):
        for e in reductions:
            name = e["lhs_expr"].name
            for rhs in e["rhs_exprs"]:
                if rhs.atoms(sp.Sum):  # a row value
                    want = np.reshape(env[name], (len(env[name]), -1))[:, 0]
                    got = [_row_value(rhs, env, row, hidden) for row in range(len(want))]
                    _close(got, want, f"{e['label']} at t={t + 1}")
                else:  # per unit
                    value = _numpy(
                        rhs.xreplace({sp.Symbol("H", integer=True, positive=True): hidden}), env
                    )
                    _close(value, env[name], f"{e['label']} at t={t + 1}")


def _mean(v):
    return sum(v) / len(v)


def _variance(v):
    return sum((x - _mean(v)) ** 2 for x in v) / len(v)


def test_the_statistics_partials_are_those_of_a_vector():
    """d mean / d v_j, d variance / d v_j and d rstd / d variance as printed, against mpmath's
    numerical derivatives on a vector of 5 entries (40 digits)."""
    checked = 0
    with mpmath.workdps(40):
        rng = np.random.default_rng(3)
        vector = [mpmath.mpf(float(x)) for x in rng.normal(size=5)]
        epsilon, j = mpmath.mpf(1) / 100000, 2
        var = _variance(vector)

        def along(f, x):
            return f([x if k == j else v for k, v in enumerate(vector)])

        numeric = {
            "mean": mpmath.diff(lambda x: along(_mean, x), vector[j]),
            "variance": mpmath.diff(lambda x: along(_variance, x), vector[j]),
            "rstd": mpmath.diff(lambda s: (s + epsilon) ** -0.5, var),
        }
        values = {
            "n": mpmath.mpf(len(vector)),
            "value": vector[j],
            "mean": _mean(vector),
            "rstd": (var + epsilon) ** -0.5,
        }
        for name in CELLS:
            for e in load(name):
                if e["check"] != "statistic_partial":
                    continue
                for rhs in e["rhs_exprs"]:
                    args = sorted(rhs.free_symbols, key=lambda s: s.name)
                    value = _mp(rhs, args)(*(values[a.name] for a in args))
                    assert abs(value - numeric[e["lhs_expr"].expr.name]) < mpmath.mpf("1e-25"), e[
                        "label"
                    ]
                    checked += 1
    assert checked >= 3
