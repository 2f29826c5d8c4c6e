"""Recurrent with ``lengths`` against PyTorch's packed sequences in float64:
``pack_padded_sequence(..., enforce_sorted=False)`` with unsorted lengths through ``nn.LSTM``,
``nn.GRU`` and ``nn.LSTM(proj_size=...)``, stacked and bidirectional; outputs
(``pad_packed_sequence``), final states and every gradient."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_sym.models import Recurrent
from tests.conftest import require_module, require_tool
from tests.models.test_models import TOL, max_errors, stacked_grad

STEPS, BATCH, INPUT, HIDDEN = 7, 5, 3, 4
LENGTHS = (4, 7, 1, 6, 4)  # unsorted, repeated, a row of one step and one of T

CASES = [
    # (torch module, options, cell, layers, bidirectional, batch_first)
    ("LSTM", {}, "lstm", 1, False, False),
    ("LSTM", {}, "lstm", 2, True, False),
    ("LSTM", {}, "lstm", 3, True, True),
    ("GRU", {}, "gru", 1, True, False),
    ("GRU", {}, "gru", 2, True, True),
    ("LSTM", {"proj_size": 2}, "lstmp", 2, True, False),
]


def _torch_reference(torch, module, x, initial, lengths, d_out, d_finals, batch_first):
    """PyTorch's outputs, finals and gradients on the packed batch (loss: sum of each output and
    final state times its cotangent; the padded outputs are pad_packed_sequence's zeros)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    x_t = torch.tensor(x, requires_grad=True)
    initial_t = [torch.tensor(a, requires_grad=True) for a in initial]
    packed = pack_padded_sequence(
        x_t, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
    )
    state = tuple(initial_t) if len(initial_t) > 1 else initial_t[0]
    out_packed, finals_t = module(packed, state)
    out_t, _ = pad_packed_sequence(out_packed, batch_first=batch_first, total_length=STEPS)
    finals_t = finals_t if isinstance(finals_t, tuple) else (finals_t,)
    loss = (out_t * torch.tensor(d_out)).sum()
    loss = loss + sum((f * torch.tensor(d)).sum() for f, d in zip(finals_t, d_finals, strict=True))
    loss.backward()
    return out_t, finals_t, x_t.grad, [a.grad for a in initial_t]


def _compare(model, module, backend=None, seed=0):
    """Every error of ``model`` (a Recurrent on ``module``'s weights) against PyTorch: a list of
    (what, absolute, relative)."""
    torch = require_module("torch")
    rng = np.random.default_rng(seed)
    batch_first = model.batch_first
    lengths = np.array(LENGTHS)
    shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    x = rng.normal(size=shape)
    rows = model.num_layers * model.directions
    initial = [rng.normal(size=(rows, BATCH, size)) for size in model.state_sizes]
    width = model.output_size * model.directions
    d_out = rng.normal(size=(*shape[:-1], width))
    d_finals = [rng.normal(size=(rows, BATCH, size)) for size in model.state_sizes]
    pack = (lambda v: tuple(v)) if len(initial) > 1 else (lambda v: v[0])

    ours_x = x.copy()  # the padded steps are never read: NaN there changes nothing
    padded = np.arange(STEPS)[:, None] >= lengths
    (ours_x.transpose(1, 0, 2) if batch_first else ours_x)[padded] = np.nan
    outputs, finals, cache = model.forward(ours_x, pack(initial), lengths=lengths)
    grads = model.backward(cache, d_out, pack(d_finals))
    finals = finals if isinstance(finals, tuple) else (finals,)
    d_initial = grads.initial if isinstance(grads.initial, tuple) else (grads.initial,)

    out_t, finals_t, d_x_t, d_initial_t = _torch_reference(
        torch, module, x, initial, LENGTHS, d_out, d_finals, batch_first
    )
    errors = [
        ("outputs", *max_errors(outputs, out_t)),
        ("inputs", *max_errors(grads.inputs, d_x_t)),
    ]
    for k, (a, b) in enumerate(zip(finals, finals_t, strict=True)):
        errors.append((f"final {model.cell.STATES[k]}", *max_errors(a, b)))
    for k, (a, b) in enumerate(zip(d_initial, d_initial_t, strict=True)):
        errors.append((f"initial {model.cell.STATES[k]}", *max_errors(a, b)))
    for name, parameter in module.named_parameters():
        errors.append(
            (name, *max_errors(stacked_grad(model, grads.parameters, name), parameter.grad))
        )
    # what packing means, beyond agreeing with PyTorch: zeros exactly where rows are padded
    outputs_tb = outputs.transpose(1, 0, 2) if batch_first else outputs
    inputs_tb = grads.inputs.transpose(1, 0, 2) if batch_first else grads.inputs
    assert np.all(outputs_tb[padded] == 0.0) and np.all(inputs_tb[padded] == 0.0)
    return errors


def _module(torch, kind, options, layers, bidirectional, batch_first):
    torch.manual_seed(layers + 10 * bidirectional)
    module = getattr(torch.nn, kind)(
        INPUT,
        HIDDEN,
        num_layers=layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        **options,
    ).double()
    with torch.no_grad():  # beyond the small default init, to exercise saturation
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    return module


@pytest.mark.parametrize(
    ("kind", "options", "cell", "layers", "bidirectional", "batch_first"), CASES
)
def test_packed_unsorted_batches_match_pytorch_outputs_finals_and_every_gradient(
    kind, options, cell, layers, bidirectional, batch_first
):
    torch = require_module("torch")
    module = _module(torch, kind, options, layers, bidirectional, batch_first)
    model = Recurrent.from_torch(module, cell=cell)
    errors = _compare(model, module)
    assert len(errors) == 2 + 2 * len(model.cell.STATES) + len(list(module.parameters()))
    assert max(e[1] for e in errors) < TOL, errors


@pytest.mark.parametrize(
    ("kind", "options", "cell", "layers", "bidirectional", "batch_first"), CASES
)
def test_the_c_backend_matches_pytorch_on_packed_unsorted_batches(
    kind, options, cell, layers, bidirectional, batch_first
):
    torch = require_module("torch")
    require_tool("gcc", "the C backend compiles the generated cells")
    from lstm_sym import native

    module = _module(torch, kind, options, layers, bidirectional, batch_first)
    model = Recurrent.from_torch(module, cell=native.load(cell))
    errors = _compare(model, module)
    assert max(e[1] for e in errors) < TOL, errors


def test_lengths_all_t_give_the_numbers_of_no_lengths_and_unbatched_takes_an_integer():
    model = Recurrent(INPUT, HIDDEN, 2, bidirectional=True, rng=3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(STEPS, BATCH, INPUT))
    d_out = rng.normal(size=(STEPS, BATCH, 2 * HIDDEN))
    y, finals, cache = model.forward(x)
    y_all, finals_all, cache_all = model.forward(x, lengths=np.full(BATCH, STEPS))
    np.testing.assert_array_equal(y, y_all)
    for a, b in zip(finals, finals_all, strict=True):
        np.testing.assert_array_equal(a, b)
    g, g_all = model.backward(cache, d_out), model.backward(cache_all, d_out)
    np.testing.assert_array_equal(g.inputs, g_all.inputs)
    for name, value in g.parameters.items():
        np.testing.assert_array_equal(value, g_all.parameters[name], err_msg=name)
    # unbatched: an integer length, the same numbers as row 0 of a batch of one
    y1, finals1, _ = model.forward(x[:, 0], lengths=3)
    y_b, finals_b, _ = model.forward(x[:, :1], lengths=np.array([3]))
    np.testing.assert_array_equal(y1, y_b[:, 0])
    np.testing.assert_array_equal(y1[3:], 0.0)
    for a, b in zip(finals1, finals_b, strict=True):
        np.testing.assert_array_equal(a, b[:, 0])


def test_each_row_of_a_packed_batch_is_that_row_alone_on_its_own_prefix():
    model = Recurrent(INPUT, HIDDEN, 2, bidirectional=True, cell="gru", rng=5)
    x = np.random.default_rng(6).normal(size=(STEPS, BATCH, INPUT))
    y, h, _ = model.forward(x, lengths=np.array(LENGTHS))
    for b, length in enumerate(LENGTHS):
        y_alone, h_alone, _ = model.forward(x[:length, b : b + 1])
        np.testing.assert_allclose(y[:length, b], y_alone[:, 0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(h[:, b], h_alone[:, 0], rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("lengths", "error", "message"),
    [
        (
            np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
            TypeError,
            "lengths must hold integers, got dtype float64",
        ),
        (np.ones(BATCH, dtype=bool), TypeError, "lengths must hold integers, got dtype bool"),
        (np.array([1, 2, 3]), ValueError, r"lengths must have shape \(5,\) \(batch,\), got \(3,\)"),
        (
            np.array([1, 2, 0, 4, 5]),
            ValueError,
            r"lengths\[2\] must be between 1 and T = 7 .*got 0",
        ),
        (
            np.array([1, 2, 3, -1, 5]),
            ValueError,
            r"lengths\[3\] must be between 1 and T = 7 .*got -1",
        ),
        (
            np.array([1, 2, 3, 4, 8]),
            ValueError,
            r"lengths\[4\] must be between 1 and T = 7 .*got 8",
        ),
        ("abc", TypeError, "lengths must hold integers"),
    ],
)
def test_bad_lengths_are_refused_naming_the_argument(lengths, error, message):
    model = Recurrent(INPUT, HIDDEN, bidirectional=True, rng=0)
    with pytest.raises(error, match=message):
        model.forward(np.zeros((STEPS, BATCH, INPUT)), lengths=lengths)


def test_unbatched_inputs_refuse_an_array_of_lengths():
    model = Recurrent(INPUT, HIDDEN, rng=0)
    with pytest.raises(ValueError, match=r"lengths must have shape \(\) .*got \(1,\)"):
        model.forward(np.zeros((STEPS, INPUT)), lengths=np.array([3]))
