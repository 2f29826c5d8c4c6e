"""The layer-normalized LSTM (lstm_sym/cells/lstm_ln.py): reductions over units.

The reference is PyTorch's ``fastrnns`` ``LayerNormLSTMCell`` (benchmarks/fastrnns/
custom_lstms.py), written again here from that recipe in float64 with ``torch.nn.LayerNorm``
and autograd, never through the derivation. The recipe has no projection biases; the cell
has them (every gate projection does), so the reference adds them to ``W_ih x`` and
``W_hh h`` before the layer norms (zero in the recipe's own modules).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy as sp

from lstm_sym.cells import lstm_ln
from lstm_sym.spec import Normalization, SpecError, validate
from lstm_sym.verify import ExactModel
from tests.conftest import require_module

GATES = ("update", "forget", "candidate", "output")  # PyTorch's (i, f, g, o)


def _torch():
    return require_module("torch")


def _layer_norm_lstm_cell(torch, input_size: int, hidden_size: int, epsilon: float, biases=True):
    """fastrnns' LayerNormLSTMCell in float64, plus zero projection biases bias_ih, bias_hh
    (``biases=False``: the recipe's module itself, without them)."""
    nn = torch.nn

    class LayerNormLSTMCell(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight_ih = nn.Parameter(torch.randn(4 * hidden_size, input_size))
            self.weight_hh = nn.Parameter(torch.randn(4 * hidden_size, hidden_size))
            if biases:
                self.bias_ih = nn.Parameter(torch.zeros(4 * hidden_size))
                self.bias_hh = nn.Parameter(torch.zeros(4 * hidden_size))
            else:
                self.bias_ih = self.bias_hh = None
            self.layernorm_i = nn.LayerNorm(4 * hidden_size, eps=epsilon)
            self.layernorm_h = nn.LayerNorm(4 * hidden_size, eps=epsilon)
            self.layernorm_c = nn.LayerNorm(hidden_size, eps=epsilon)

        def forward(self, input, state):
            hx, cx = state
            igates = torch.mm(input, self.weight_ih.t())
            hgates = torch.mm(hx, self.weight_hh.t())
            if self.bias_ih is not None:
                igates, hgates = igates + self.bias_ih, hgates + self.bias_hh
            igates, hgates = self.layernorm_i(igates), self.layernorm_h(hgates)
            gates = igates + hgates
            ingate, forgetgate, cellgate, outgate = gates.chunk(4, 1)
            ingate = torch.sigmoid(ingate)
            forgetgate = torch.sigmoid(forgetgate)
            cellgate = torch.tanh(cellgate)
            outgate = torch.sigmoid(outgate)
            cy = self.layernorm_c((forgetgate * cx) + (ingate * cellgate))
            hy = outgate * torch.tanh(cy)
            return hy, (hy, cy)

    return LayerNormLSTMCell().double()


def _load(torch, cell, leaves: dict) -> None:
    """The cell's parameters from the spec's leaves (gate blocks stacked in (i, f, g, o))."""
    stack = lambda name: torch.tensor(  # noqa: E731
        np.concatenate([leaves[name.format(g=g)] for g in GATES]), dtype=torch.float64
    )
    with torch.no_grad():
        cell.weight_ih.copy_(stack("event_{g}_weights"))
        cell.weight_hh.copy_(stack("hidden_{g}_weights"))
        cell.bias_ih.copy_(stack("event_{g}_bias"))
        cell.bias_hh.copy_(stack("hidden_{g}_bias"))
        cell.layernorm_i.weight.copy_(stack("scale_event_{g}"))
        cell.layernorm_i.bias.copy_(stack("shift_event_{g}"))
        cell.layernorm_h.weight.copy_(stack("scale_hidden_{g}"))
        cell.layernorm_h.bias.copy_(stack("shift_hidden_{g}"))
        cell.layernorm_c.weight.copy_(torch.tensor(leaves["cell_scale"]))
        cell.layernorm_c.bias.copy_(torch.tensor(leaves["cell_shift"]))


def _torch_gradients(torch, cell, leaves: dict, cotangents: dict, lengths=None):
    """Outputs, finals and every leaf's gradient of the cotangent-weighted loss, by autograd
    (``lengths``: row b runs its first lengths[b] steps, its outputs zero after them)."""
    events = torch.tensor(leaves["events"], requires_grad=True)
    h0 = torch.tensor(leaves["h0"], requires_grad=True)
    c0 = torch.tensor(leaves["c0"], requires_grad=True)
    steps, batch, _ = events.shape
    lengths = [steps] * batch if lengths is None else list(lengths)
    h, c, outputs = h0, c0, []
    for t in range(steps):
        out, (h_new, c_new) = cell(events[t], (h, c))
        running = torch.tensor([t < n for n in lengths])[:, None]
        h, c = torch.where(running, h_new, h), torch.where(running, c_new, c)
        outputs.append(torch.where(running, out, torch.zeros_like(out)))
    outputs = torch.stack(outputs)
    loss = (
        (outputs * torch.tensor(cotangents["outputs"])).sum()
        + (h * torch.tensor(cotangents["h"])).sum()
        + (c * torch.tensor(cotangents["c"])).sum()
    )
    loss.backward()
    H = h0.shape[1]

    def blocks(tensor):
        return dict(zip(GATES, tensor.grad.numpy().reshape(4, H, *tensor.shape[1:])))

    gradients = {"events": events.grad.numpy(), "h0": h0.grad.numpy(), "c0": c0.grad.numpy()}
    for name, tensor in (
        ("event_{g}_weights", cell.weight_ih),
        ("hidden_{g}_weights", cell.weight_hh),
        *(
            (("event_{g}_bias", cell.bias_ih), ("hidden_{g}_bias", cell.bias_hh))
            if cell.bias_ih is not None
            else ()
        ),
        ("scale_event_{g}", cell.layernorm_i.weight),
        ("shift_event_{g}", cell.layernorm_i.bias),
        ("scale_hidden_{g}", cell.layernorm_h.weight),
        ("shift_hidden_{g}", cell.layernorm_h.bias),
    ):
        gradients.update({name.format(g=g): v for g, v in blocks(tensor).items()})
    gradients["cell_scale"] = cell.layernorm_c.weight.grad.numpy()
    gradients["cell_shift"] = cell.layernorm_c.bias.grad.numpy()
    return outputs.detach().numpy(), {"h": h.detach().numpy(), "c": c.detach().numpy()}, gradients


def _leaves(model: ExactModel) -> dict:
    return {
        **model.parameters,
        "events": model.events,
        **{f"{k}0": v for k, v in model.initial.items()},
    }


@pytest.mark.parametrize("lengths", [None, (1, 3, 2)], ids=["full", "lengths"])
def test_exact_model_equals_fastrnns_layer_norm_lstm_cell_with_autograd(lengths):
    torch = _torch()
    model = ExactModel(
        lstm_ln.SPEC, steps=3, batch=3, event_size=3, hidden_size=3, seed=4, lengths=lengths
    )
    cell = _layer_norm_lstm_cell(torch, 3, 3, 1e-5)
    leaves = _leaves(model)
    _load(torch, cell, leaves)
    outputs, finals, gradients = _torch_gradients(torch, cell, leaves, model.cotangents, lengths)
    np.testing.assert_allclose(model.outputs, outputs, rtol=0, atol=1e-12)
    for short in ("h", "c"):
        np.testing.assert_allclose(model.finals[short], finals[short], rtol=0, atol=1e-12)
    assert set(gradients) == set(model.gradients)
    for name, expected in gradients.items():
        np.testing.assert_allclose(model.gradients[name], expected, rtol=1e-12, atol=1e-12)


def test_the_layer_norm_epsilon_is_a_cell_parameter():
    torch = _torch()
    spec = lstm_ln.make(sp.Rational(1, 10))
    model = ExactModel(spec, steps=2, batch=2, event_size=2, hidden_size=2, seed=1)
    cell = _layer_norm_lstm_cell(torch, 2, 2, 0.1)
    leaves = _leaves(model)
    _load(torch, cell, leaves)
    outputs, _, gradients = _torch_gradients(torch, cell, leaves, model.cotangents)
    np.testing.assert_allclose(model.outputs, outputs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.gradients["events"], gradients["events"], atol=1e-12)
    default = ExactModel(lstm_ln.SPEC, steps=2, batch=2, event_size=2, hidden_size=2, seed=1)
    assert np.abs(default.outputs - model.outputs).max() > 1e-3


def test_a_reduction_read_before_what_it_reduces_is_refused_by_name():
    spec = lstm_ln.SPEC
    equations = list(spec.equations)
    equations[4], equations[5] = equations[5], equations[4]  # cell before cell_raw
    bad = type(spec)(**{**spec.__dict__, "equations": tuple(equations)})
    with pytest.raises(SpecError, match="reduction 'cell_norm' before cell_raw"):
        validate(bad)
    norm = spec.reductions[0]
    for field, value, message in (
        ("epsilon", sp.Integer(0), "epsilon must be a positive number"),
        ("over", (spec.states[0].prev,), "no gate input or per-unit value"),
        ("mean", spec.states[0].prev, "assigned twice or shadows an input"),
    ):
        changed = Normalization(**{**norm.__dict__, field: value})
        bad = type(spec)(**{**spec.__dict__, "reductions": (changed, *spec.reductions[1:])})
        with pytest.raises(SpecError, match=message):
            validate(bad)


@functools.cache
def _compiled(expr):
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    modules = [{"sigmoid": lambda x: 1 / (1 + np.exp(-x))}, "numpy"]
    return symbols, sp.lambdify(symbols, expr, modules=modules)


def _run_derivation(spec, leaves: dict, cotangents: dict, eliminated: bool = False):
    """The derivation executed in NumPy over (batch, units) arrays: the forward assignments
    with the reductions at their boundaries, then per step the staged backward
    (:func:`lstm_sym.reductions.staged_backward`; ``eliminated``: ``derive(spec).staged``,
    each stage after its joint CSE), the linear adjoints as matrix products."""
    from lstm_sym.derive import carry, derive, lower
    from lstm_sym.reductions import HIDDEN_SIZE, ReductionAdjoint, Stage, staged_backward
    from lstm_sym.spec import gate_event, gate_hidden

    def evaluate(expr, env):
        symbols, function = _compiled(expr)
        return function(*(env[s] for s in symbols))

    steps, batch, _ = leaves["events"].shape
    H = leaves["h0"].shape[1]
    lowered = lower(spec)
    items = derive(spec).staged if eliminated else staged_backward(spec, H)
    reading = {}
    for reduction in spec.reductions:
        first = next(
            i for i, a in enumerate(lowered.forward) if set(reduction.symbols) & a.expr.free_symbols
        )
        reading.setdefault(first, []).append(reduction)
    h, c = leaves["h0"], leaves["c0"]
    envs, outputs = [], []
    for t in range(steps):
        env = {p: leaves[p.name] for p in spec.unit_parameters}
        env[HIDDEN_SIZE] = H
        env.update({spec.states[0].prev: h, spec.states[1].prev: c})
        for g in spec.gates:
            env[gate_event(g)] = leaves["events"][t] @ leaves[f"event_{g}_weights"].T
            env[gate_event(g)] = env[gate_event(g)] + leaves[f"event_{g}_bias"]
            env[gate_hidden(g)] = h @ leaves[f"hidden_{g}_weights"].T + leaves[f"hidden_{g}_bias"]
        for index, assignment in enumerate(lowered.forward):
            for reduction in reading.get(index, []):
                stacked = np.concatenate([env[v] for v in reduction.over], axis=1)
                env[reduction.mean] = stacked.mean(axis=1, keepdims=True)
                variance = stacked.var(axis=1, keepdims=True)
                env[reduction.rstd] = 1 / np.sqrt(variance + float(reduction.epsilon))
            env[assignment.target] = evaluate(assignment.expr, env)
        envs.append(env)
        h, c = env[spec.states[0].new], env[spec.states[1].new]
        outputs.append(h)
    grads = {name: np.zeros_like(value) for name, value in leaves.items()}
    d_h, d_c = cotangents["h"], cotangents["c"]
    for t in reversed(range(steps)):
        env = dict(envs[t])
        env[carry(spec.states[0].new)] = d_h + cotangents["outputs"][t]
        env[carry(spec.states[1].new)] = d_c
        for item in items:
            if isinstance(item, Stage):
                for assignment in item.chain:
                    env[assignment.target] = evaluate(assignment.expr, env)
                last = item
                continue
            for adjoint in item:
                assert isinstance(adjoint, ReductionAdjoint)
                factor = evaluate(adjoint.variance_factor, env)
                env[adjoint.total_mean] = last.outputs[adjoint.reduction.mean]
                env[adjoint.total_mean] = env[env[adjoint.total_mean]].sum(1, keepdims=True)
                d_rstd = env[last.outputs[adjoint.reduction.rstd]].sum(1, keepdims=True)
                env[adjoint.total_variance] = factor * d_rstd
        adjoints = last.outputs
        d_h = np.zeros_like(d_h)
        previous = envs[t][spec.states[0].prev]
        for g in spec.gates:
            d_event, d_hidden = env[adjoints[gate_event(g)]], env[adjoints[gate_hidden(g)]]
            grads[f"event_{g}_weights"] += d_event.T @ leaves["events"][t]
            grads[f"event_{g}_bias"] += d_event.sum(0)
            grads["events"][t] += d_event @ leaves[f"event_{g}_weights"]
            grads[f"hidden_{g}_weights"] += d_hidden.T @ previous
            grads[f"hidden_{g}_bias"] += d_hidden.sum(0)
            d_h = d_h + d_hidden @ leaves[f"hidden_{g}_weights"]
        for p in spec.unit_parameters:
            grads[p.name] += np.broadcast_to(env[adjoints[p]], (batch, H)).sum(0)
        d_c = env[adjoints[spec.states[1].prev]]
    grads["h0"], grads["c0"] = d_h, d_c
    return np.array(outputs), grads, (h, c)


@pytest.mark.parametrize("eliminated", [False, True], ids=["raw", "eliminated"])
def test_the_staged_backward_through_the_reductions_equals_the_exact_model(eliminated):
    model = ExactModel(lstm_ln.SPEC, steps=3, batch=2, event_size=3, hidden_size=3, seed=7)
    leaves = _leaves(model)
    outputs, gradients, _ = _run_derivation(lstm_ln.SPEC, leaves, model.cotangents, eliminated)
    np.testing.assert_allclose(outputs, model.outputs, rtol=0, atol=1e-13)
    assert set(gradients) == set(model.gradients)
    for name, expected in model.gradients.items():
        np.testing.assert_allclose(gradients[name], expected, rtol=1e-11, atol=1e-12, err_msg=name)


def test_the_normalization_partials_are_sympys_on_a_symbolic_vector():
    from lstm_sym.reductions import normalization_partials

    p = normalization_partials()
    n, v, mean, rstd = p.size, p.value, p.mean, p.rstd
    assert sp.simplify(p.d_mean - 1 / n) == 0
    assert sp.simplify(p.d_variance - 2 * (v - mean) / n) == 0
    assert sp.simplify(p.d_rstd + rstd**3 / 2) == 0


def test_derive_keeps_the_statistics_the_staged_backward_reads():
    from lstm_sym.derive import derive

    derivation = derive(lstm_ln.SPEC)
    names = [s.name for s in derivation.statistics]
    assert names == [
        f"{side}_{k}" for side in ("event", "hidden", "cell") for k in ("mean", "rstd")
    ]
    # The raw projections the normalizations read are saved; the normalized ones are not values.
    assert {s.name for s in derivation.saved} >= {
        f"{g}_{side}" for g in GATES for side in ("event", "hidden")
    }


def test_central_finite_differences_of_the_forward_equal_the_exact_gradients():
    model = ExactModel(lstm_ln.SPEC, steps=3, batch=2, event_size=2, hidden_size=3, seed=2)
    leaves, cot = _leaves(model), model.cotangents

    def loss(changed):
        outputs, _, (h, c) = _run_derivation(lstm_ln.SPEC, changed, cot)
        return (outputs * cot["outputs"]).sum() + (h * cot["h"]).sum() + (c * cot["c"]).sum()

    step = 1e-6
    for name in (
        "events",
        "h0",
        "c0",
        "event_candidate_weights",
        "scale_hidden_forget",
        "cell_shift",
    ):
        for index in np.ndindex(*leaves[name].shape):
            plus, minus = dict(leaves), dict(leaves)
            plus[name], minus[name] = leaves[name].copy(), leaves[name].copy()
            plus[name][index] += step
            minus[name][index] -= step
            estimate = (loss(plus) - loss(minus)) / (2 * step)
            assert abs(estimate - model.gradients[name][index]) < 1e-7, (name, index)


def test_the_plan_puts_each_reduction_between_the_per_unit_stages_that_deliver_and_read_it():
    from lstm_sym.plan import Reduce, Stage, Totals, plan_cell

    kernel = plan_cell(lstm_ln.SPEC)
    kinds = [type(item).__name__ for item in kernel.forward_step]
    assert kinds == ["Reduce", "Stage", "Reduce", "Stage"]
    first, _, cell, _ = kernel.forward_step
    assert [(s.reduction.name, s.buffer) for s in first.statistics] == [
        ("event_norm", "event_projection"),
        ("hidden_norm", "hidden_projection"),
    ]
    assert [(s.reduction.name, s.buffer) for s in cell.statistics] == [("cell_norm", None)]
    # The stage before the cell's norm delivers what it reduces and what the last stage reads.
    stage = kernel.forward_step[1]
    assert {"cell_raw", "output"} <= {s.name for s in stage.read_after}
    assert [type(item).__name__ for item in kernel.backward_step] == [
        "Stage",
        "Totals",
        "Stage",
        "Totals",
        "Stage",
    ]
    assert (
        isinstance(kernel.backward_step[-1], Stage) and kernel.backward_step[-1].name == "backward"
    )
    totals = [
        t.reduction.name
        for item in kernel.backward_step
        if isinstance(item, Totals)
        for t in item.totals
    ]
    assert totals == ["cell_norm", "event_norm", "hidden_norm"]
    # Every total a stage reads was delivered by a Totals item before it.
    delivered = set()
    for item in kernel.backward_step:
        if isinstance(item, Totals):
            delivered |= {s for t in item.totals for s in (t.total_mean, t.total_variance)}
        elif isinstance(item, Stage):
            reads = {s for s in item.live().reads() if s.name.startswith("D_")}
            assert reads <= delivered, item.name
    assert kernel.buffer("statistics").evaluate(T=5, B=2) == (6, 5, 2)
    assert isinstance(first, Reduce)
