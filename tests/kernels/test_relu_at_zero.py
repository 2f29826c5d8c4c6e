"""relu's derivative at 0 is a choice: the derivation takes the subgradient 0, as PyTorch's relu
backward does. An IndRNN whose pre-activations are exactly 0 at some units gets, from the
generated NumPy, C and torch kernels alike, the gradients torch autograd gives through
``torch.relu`` (the papers' equation written by hand, lstm_sym/torch/reference.py)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from tests.conftest import require_module, require_tool
from tests.problems import run_both

T, B, X, H = 3, 2, 2, 4


def _problem():
    module = importlib.import_module("generated.indrnn")
    rng = np.random.default_rng(5)
    parameters = module.Parameters(X, H)
    # Units 0 and 1 see exactly 0 at every step (no weights, no bias, no recurrence); units 2
    # and 3 are active (+) and inactive (-).
    weights = rng.normal(size=(H, X))
    weights[:2] = 0.0
    parameters.event_input_weights = weights
    parameters.event_input_bias = np.array([0.0, 0.0, 5.0, -5.0])
    parameters.recurrent_unit_weights = np.array([0.7, -0.3, 0.5, 0.2])
    events = rng.uniform(-0.5, 0.5, size=(T, B, X))
    h0 = np.zeros((B, H))
    d_outputs = rng.normal(size=(T, B, H))
    d_last = rng.normal(size=(B, H))
    return module, (parameters, events, {"h": h0}, d_outputs, {"h": d_last})


def _torch_reference(problem):
    torch = require_module("torch")
    from lstm_sym.torch import reference

    parameters, events, states, d_outputs, d_lasts = problem
    weights = [
        torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)
        for a in (
            parameters.event_input_weights,
            parameters.event_input_bias,
            parameters.recurrent_unit_weights,
        )
    ]
    x = torch.tensor(events, requires_grad=True)
    h0 = torch.tensor(states["h"], requires_grad=True)
    outputs, (h_last,) = reference.run("indrnn", x, (h0,), tuple(weights))
    loss = (outputs * torch.tensor(d_outputs)).sum() + (h_last * torch.tensor(d_lasts["h"])).sum()
    loss.backward()
    grads = {
        "event_input_weights": weights[0].grad.numpy(),
        "event_input_bias": weights[1].grad.numpy(),
        "recurrent_unit_weights": weights[2].grad.numpy(),
        "events": x.grad.numpy(),
        "h0": h0.grad.numpy(),
    }
    return outputs.detach().numpy(), grads


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_pre_activation_of_exactly_zero_gets_pytorch_s_zero_subgradient(backend):
    module, problem = _problem()
    if backend == "c":
        require_tool("gcc")
        from lstm_sym import native

        module = native.load("indrnn")
    outputs, _, grads = run_both(module, problem)
    want_outputs, want = _torch_reference(problem)
    assert np.all(outputs[:, :, :2] == 0.0)  # the zero units are exactly at relu's kink
    np.testing.assert_allclose(outputs, want_outputs, rtol=1e-13, atol=1e-15)
    for name, value in want.items():
        np.testing.assert_allclose(getattr(grads, name), value, rtol=1e-12, atol=1e-15)
    # with the subgradient 1 at 0 the zero units' bias gradient would be d_outputs' sum
    assert np.all(grads.event_input_bias[:2] == 0.0)
