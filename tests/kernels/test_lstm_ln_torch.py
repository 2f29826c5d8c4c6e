"""The PyTorch emitter of lstm_ln (reductions over units), emitted from the plan into a temporary
folder (the per-cell tests run the checked-in file), against the exact model (float64, with
unsorted lengths and NaN in the padding) and autograd through its own ``forward_graph``."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from lstm_sym.cells import lstm_ln
from lstm_sym.codegen import torch_module
from lstm_sym.codegen.pyformat import format_python
from lstm_sym.plan import plan_cell
from lstm_sym.verify import ExactModel
from tests.conftest import require_module

SIZES = {"steps": 4, "batch": 3, "event_size": 2, "hidden_size": 3}
GATES = lstm_ln.GATES


@pytest.fixture(scope="module")
def torch():
    return require_module("torch")


@pytest.fixture(scope="module")
def emitter(torch, tmp_path_factory):
    path = tmp_path_factory.mktemp("lstm_ln_torch") / "lstm_ln_torch.py"
    source = torch_module.emit(plan_cell(lstm_ln.SPEC))
    path.write_text(format_python(source, "lstm_ln_torch.py"))
    spec = importlib.util.spec_from_file_location("lstm_ln_torch_emitted", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def _weights(torch, parameters: dict) -> dict:
    """The ABI's parameter arrays by name: the gates stacked, then the per-unit parameters."""
    arrays = {}
    for side in ("event", "hidden"):
        for kind in ("weights", "bias"):
            stacked = [parameters[f"{side}_{g}_{kind}"] for g in GATES]
            arrays[f"{side}_{kind}"] = np.concatenate(stacked)
    arrays.update({p.name: parameters[p.name] for p in lstm_ln.SPEC.unit_parameters})
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in arrays.items()}


@pytest.mark.parametrize("lengths", [None, (3, 1, 4)], ids=["full", "unsorted_lengths"])
def test_the_torch_emitter_equals_the_exact_model(torch, emitter, lengths):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=31, lengths=lengths)
    weights = _weights(torch, model.parameters)
    assert tuple(weights) == emitter.WEIGHTS
    events = model.events.copy()
    if lengths is not None:  # never read: NaN there must reach nothing
        events[np.arange(SIZES["steps"])[:, None] >= np.array(lengths)] = np.nan
    events = torch.tensor(events)
    initial = (torch.tensor(model.initial["h"]), torch.tensor(model.initial["c"]))
    length_tensor = None if lengths is None else torch.tensor(lengths)
    outputs, finals, saved = emitter.forward(
        events, initial, tuple(weights.values()), length_tensor
    )
    np.testing.assert_allclose(outputs.numpy(), model.outputs, rtol=0, atol=1e-13)
    for final, short in zip(finals, ("h", "c"), strict=True):
        np.testing.assert_allclose(final.numpy(), model.finals[short], rtol=0, atol=1e-13)
    cot = model.cotangents
    d_events, d_initial, d_weights = emitter.backward(
        events,
        initial,
        tuple(weights.values()),
        length_tensor,
        saved,
        torch.tensor(cot["outputs"]),
        (torch.tensor(cot["h"]), torch.tensor(cot["c"])),
    )
    grads = model.gradients
    np.testing.assert_allclose(d_events.numpy(), grads["events"], rtol=0, atol=1e-12)
    for d, short in zip(d_initial, ("h", "c"), strict=True):
        np.testing.assert_allclose(d.numpy(), grads[f"{short}0"], rtol=0, atol=1e-12)
    expected = _weights(torch, grads)
    for (name, reference), d in zip(expected.items(), d_weights, strict=True):
        np.testing.assert_allclose(d.numpy(), reference.numpy(), rtol=0, atol=1e-12, err_msg=name)


def test_the_derived_backward_equals_autograd_through_the_emitters_forward(torch, emitter):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=32)
    weights = tuple(
        w.clone().requires_grad_(True) for w in _weights(torch, model.parameters).values()
    )
    events = torch.tensor(model.events, requires_grad=True)
    initial = tuple(torch.tensor(model.initial[s], requires_grad=True) for s in ("h", "c"))
    outputs, finals, _ = emitter.forward_graph(events, initial, weights)
    cot = model.cotangents
    loss = (outputs * torch.tensor(cot["outputs"])).sum()
    loss = loss + sum((f * torch.tensor(cot[s])).sum() for f, s in zip(finals, "hc", strict=True))
    loss.backward()
    with torch.no_grad():
        _, _, saved = emitter.forward(events, initial, weights)
        d_events, d_initial, d_weights = emitter.backward(
            events,
            initial,
            weights,
            None,
            saved,
            torch.tensor(cot["outputs"]),
            (torch.tensor(cot["h"]), torch.tensor(cot["c"])),
        )
    torch.testing.assert_close(d_events, events.grad, rtol=1e-12, atol=1e-12)
    for d, tensor in zip((*d_initial, *d_weights), (*initial, *weights), strict=True):
        torch.testing.assert_close(d, tensor.grad, rtol=1e-12, atol=1e-12)
