"""The eager references (lstm_sym/torch/reference.py), hand-written from the cells' equations,
equal the generated NumPy modules in float64: outputs, final states and, through torch autograd,
every gradient. Two independent routes to the same numbers, so either checks the other."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module, require_tool
from tests.support import relative_error
from tests.torch.cells import abi_arrays, numpy_module, random_problem

torch = require_module("torch")
reference = pytest.importorskip("lstm_sym.torch.reference")

SIZES = {"steps": 5, "batch": 3, "event_size": 4, "hidden_size": 6}


def _run(cell, tmp_path_factory, lengths=None):
    module = numpy_module(cell, tmp_path_factory)
    spec = reference.get(cell)
    projection = 3 if spec.projected else None
    parameters, events, states, d_outputs, d_lasts = random_problem(
        module, *SIZES.values(), projection_size=projection
    )
    weights = tuple(
        torch.tensor(a, requires_grad=True)
        for a in abi_arrays(parameters, spec.weights, parameters)
    )
    x = torch.tensor(events, requires_grad=True)
    initial = tuple(torch.tensor(v, requires_grad=True) for v in states.values())
    lengths_t = None if lengths is None else torch.tensor(lengths)
    outputs, finals = reference.run(cell, x, initial, weights, lengths_t)
    loss = (outputs * torch.tensor(d_outputs)).sum() + sum(
        (f * torch.tensor(d)).sum() for f, d in zip(finals, d_lasts.values(), strict=True)
    )
    loss.backward()
    options = {} if lengths is None else {"lengths": np.asarray(lengths)}
    want_outputs, want_finals, cache = module.forward(
        parameters, events, **{f"{s}0": v for s, v in states.items()}, **options
    )
    grads = module.backward(cache, d_outputs, **{f"d_{s}_last": v for s, v in d_lasts.items()})
    if not isinstance(want_finals, tuple):
        want_finals = (want_finals,)
    errors = {"outputs": relative_error(outputs.detach().numpy(), want_outputs)}
    for short, got, want in zip(states, finals, want_finals, strict=True):
        errors[f"{short}_last"] = relative_error(got.detach().numpy(), want)
    for name, got, want in zip(
        spec.weights, weights, abi_arrays(grads, spec.weights, parameters), strict=True
    ):
        errors[f"d_{name}"] = relative_error(got.grad.numpy(), want)
    errors["d_events"] = relative_error(x.grad.numpy(), grads.events)
    for short, got in zip(states, initial, strict=True):
        errors[f"d_{short}0"] = relative_error(got.grad.numpy(), getattr(grads, f"{short}0"))
    return errors


@pytest.mark.parametrize("cell", list(reference.CELLS))
def test_the_eager_loop_equals_the_generated_numpy_module_with_every_gradient(
    cell, tmp_path_factory
):
    errors = _run(cell, tmp_path_factory)
    assert max(errors.values()) <= 1e-12, errors


@pytest.mark.parametrize(
    "cell",
    [
        "peephole_lstm",
        "lstm_fgr",
        "gru_cho",
        "mgu",
        "lstmp",
        "slstm",
        "indrnn",
        "mingru",
        "minlstm",
    ],
)
def test_the_eager_loop_with_lengths_equals_the_numpy_module_on_a_padded_batch(
    cell, tmp_path_factory
):
    errors = _run(cell, tmp_path_factory, lengths=[5, 1, 3])
    assert max(errors.values()) <= 1e-12, errors


def test_a_reference_module_has_the_abi_s_weights_and_pytorch_s_initialization():
    model = reference.ReferenceRNN("lstm_fgr", 4, 6)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "event_weights": (24, 4),
        "event_bias": (24,),
        "hidden_weights": (13 * 36,),
        "hidden_bias": (24,),
        "peephole_update": (6,),
        "peephole_forget": (6,),
        "peephole_output": (6,),
    }
    bound = 1 / np.sqrt(6)
    assert all(float(p.detach().abs().max()) <= bound for p in model.parameters())
    outputs, finals = model(torch.zeros(2, 3, 4))
    assert outputs.shape == (2, 3, 6) and len(finals) == 5


def test_an_unknown_cell_is_refused_naming_the_cells_there_are():
    with pytest.raises(KeyError, match="peephole_lstm"):
        reference.get("lstm_xyz")


def test_lstmp_refuses_a_projection_not_below_the_hidden_size():
    with pytest.raises(ValueError, match="proj_size"):
        reference.ReferenceRNN("lstmp", 4, 6, proj_size=6)


# inductor imports torch.utils.mkldnn, whose torch.jit.script_method warns (torch's own code)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_the_loop_under_torch_compile_gives_the_eager_numbers():
    require_tool("g++", "torch.compile's inductor needs a C++ compiler (scripts/test installs it)")
    torch.manual_seed(0)
    model = reference.ReferenceRNN("peephole_lstm", 3, 4).double()
    events = torch.randn(3, 2, 3, dtype=torch.float64)

    def step(forward):
        model.zero_grad()
        outputs, finals = forward(events)
        (outputs.sum() + finals[1].sum()).backward()
        return [outputs.detach(), *(p.grad.clone() for p in model.parameters())]

    eager = step(model)
    compiled = step(torch.compile(model, fullgraph=True))
    for got, want in zip(compiled, eager, strict=True):
        assert relative_error(got.numpy(), want.numpy()) <= 1e-12
