"""Generated NumPy LSTM against PyTorch nn.LSTM + autograd in float64."""

from __future__ import annotations

import numpy as np
import pytest

from generated import lstm
from tests.conftest import require_module

GATES = lstm.GATES  # PyTorch's row order (i, f, g, o) = (update, forget, candidate, output)


def torch_pair(event_size, hidden_size, seed):
    torch = require_module("torch")
    torch.manual_seed(seed)
    module = torch.nn.LSTM(event_size, hidden_size).double()
    with torch.no_grad():  # away from PyTorch's small default init, to exercise saturation
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    parameters = lstm.Parameters(event_size, hidden_size)
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    for k, gate in enumerate(GATES):
        rows = slice(k * hidden_size, (k + 1) * hidden_size)
        setattr(parameters, f"event_{gate}_weights", sd["weight_ih_l0"][rows])
        setattr(parameters, f"event_{gate}_bias", sd["bias_ih_l0"][rows])
        setattr(parameters, f"hidden_{gate}_weights", sd["weight_hh_l0"][rows])
        setattr(parameters, f"hidden_{gate}_bias", sd["bias_hh_l0"][rows])
    return torch, module, parameters


@pytest.mark.parametrize(
    ("steps", "batch", "event_size", "hidden_size"),
    [(7, 4, 5, 6), (1, 1, 1, 1), (12, 3, 2, 9)],
)
def test_outputs_and_every_gradient_match_pytorch(steps, batch, event_size, hidden_size):
    torch, module, parameters = torch_pair(event_size, hidden_size, seed=steps)
    rng = np.random.default_rng(steps)
    events = rng.normal(size=(steps, batch, event_size))
    h0, c0 = rng.normal(size=(2, batch, hidden_size))
    d_outputs = rng.normal(size=(steps, batch, hidden_size))
    d_h, d_c = rng.normal(size=(2, batch, hidden_size))

    outputs, (h_last, c_last), cache = lstm.forward(parameters, events, h0, c0)
    grads = lstm.backward(cache, d_outputs, d_h, d_c)

    x = torch.tensor(events, requires_grad=True)
    h0_t = torch.tensor(h0[None], requires_grad=True)
    c0_t = torch.tensor(c0[None], requires_grad=True)
    out_t, (h_t, c_t) = module(x, (h0_t, c0_t))
    loss = (
        (out_t * torch.tensor(d_outputs)).sum()
        + (h_t[0] * torch.tensor(d_h)).sum()
        + (c_t[0] * torch.tensor(d_c)).sum()
    )
    loss.backward()

    def close(ours, theirs):
        theirs = theirs.detach().numpy()
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)

    close(outputs, out_t)
    close(h_last, h_t[0])
    close(c_last, c_t[0])
    close(grads.events, x.grad)
    close(grads.h0, h0_t.grad[0])
    close(grads.c0, c0_t.grad[0])
    for torch_name, side, kind in (
        ("weight_ih_l0", "event", "weights"),
        ("weight_hh_l0", "hidden", "weights"),
        ("bias_ih_l0", "event", "bias"),
        ("bias_hh_l0", "hidden", "bias"),
    ):
        stacked = np.concatenate([getattr(grads, f"{side}_{g}_{kind}") for g in GATES])
        close(stacked, getattr(module, torch_name).grad)


def test_float32_matches_pytorch_float32():
    torch, module, parameters = torch_pair(4, 5, seed=11)
    module = module.float()
    rng = np.random.default_rng(11)
    events = rng.normal(size=(6, 3, 4)).astype(np.float32)
    for name in lstm.Parameters.NAMES:
        setattr(parameters, name, parameters.checked(name).astype(np.float32))
    outputs, _, _ = lstm.forward(parameters, events)
    assert outputs.dtype == np.float32
    expected, _ = module(torch.tensor(events))
    np.testing.assert_allclose(outputs, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
