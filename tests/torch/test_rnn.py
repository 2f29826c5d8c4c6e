"""lstm_sym.torch.RNN has nn.LSTM's interface: against nn.LSTM, nn.GRU and
nn.LSTM(proj_size) themselves (two layers, bidirectional, packed unsorted batches, batch_first,
unbatched, given initial states), outputs and every gradient in float64 to 1e-10, state dicts
loading both ways, PyTorch's initialization, and its errors."""

from __future__ import annotations

import pytest

from tests.conftest import require_module
from tests.support import ROOT

torch = require_module("torch")
lstm_sym_torch = pytest.importorskip("lstm_sym.torch")
RNN = lstm_sym_torch.RNN
nn = torch.nn
rnn_utils = torch.nn.utils.rnn

TOLERANCE = 1e-10
KINDS = {
    "lstm": lambda **k: nn.LSTM(**k),
    "gru": lambda **k: nn.GRU(**k),
    "lstmp": lambda **k: nn.LSTM(proj_size=3, **k),
}


def _pair(kind, **options):
    """nn.<kind> and our RNN holding its weights (loaded from its state dict), float64."""
    torch.manual_seed(0)
    theirs = KINDS[kind](input_size=4, hidden_size=5, **options).double()
    extra = {"proj_size": 3} if kind == "lstmp" else {}
    ours = RNN("lstm" if kind == "lstmp" else kind, 4, 5, **extra, **options).double()
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def _close(got, want):
    got, want = got.detach(), want.detach()
    scale = max(float(want.abs().max()), 1.0)
    return float((got - want).abs().max()) <= TOLERANCE * scale


def _flatten(result):
    output, finals = result
    if isinstance(output, rnn_utils.PackedSequence):
        output = output.data
    finals = finals if isinstance(finals, tuple) else (finals,)
    return [output, *finals]


def _compare(theirs, ours, make_input, hx=None):
    """Run both on the same input (and initial states), the same random loss on every output;
    compare outputs, final states and the gradients of every parameter, the input and hx."""
    results = []
    for module in (theirs, ours):
        module.zero_grad()
        inputs, leaf = make_input()
        states = None if hx is None else tuple(h.clone().requires_grad_() for h in hx)
        given = None if states is None else (states[0] if len(states) == 1 else states)
        values = _flatten(module(inputs, given))
        generator = torch.Generator().manual_seed(3)
        loss = sum(
            (v * torch.randn(v.shape, generator=generator, dtype=v.dtype)).sum() for v in values
        )
        loss.backward()
        grads = {name: p.grad for name, p in module.named_parameters()}
        grads["input"] = leaf.grad
        if states is not None:
            grads.update((f"hx{k}", s.grad) for k, s in enumerate(states))
        results.append((values, grads))
    (want_values, want_grads), (got_values, got_grads) = results
    assert len(got_values) == len(want_values)
    for got, want in zip(got_values, want_values, strict=True):
        assert got.shape == want.shape and _close(got, want)
    assert sorted(got_grads) == sorted(want_grads)
    for name, want in want_grads.items():
        if want is None:
            assert got_grads[name] is None, name
        else:
            assert _close(got_grads[name], want), name


def _events(shape, seed=1):
    """(input, leaf): fresh events that require grad, twice the same."""
    generator = torch.Generator().manual_seed(seed)
    events = torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
    return events, events


@pytest.mark.parametrize("kind", list(KINDS))
def test_two_bidirectional_layers_on_a_packed_unsorted_batch_match_pytorch(kind):
    theirs, ours = _pair(kind, num_layers=2, bidirectional=True)
    lengths = torch.tensor([3, 6, 1, 4])

    def packed():
        events, _ = _events((6, 4, 4))
        return rnn_utils.pack_padded_sequence(events, lengths, enforce_sorted=False), events

    _compare(theirs, ours, packed)


@pytest.mark.parametrize("kind", list(KINDS))
def test_evaluation_without_gradients_gives_the_training_outputs_bit_for_bit(kind):
    # Under torch.no_grad or torch.inference_mode (a model that only runs) every layer takes
    # the cell's infer operator, without the training cache: the same numbers as the forward
    # autograd records, and nn.<kind>'s to rounding.
    theirs, ours = _pair(kind, num_layers=2, bidirectional=True)
    ours.eval()
    lengths = torch.tensor([3, 6, 1, 4])
    events, _ = _events((6, 4, 4))
    packed = rnn_utils.pack_padded_sequence(events, lengths, enforce_sorted=False)
    trained = _flatten(ours(packed))
    assert trained[0].grad_fn is not None
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            evaluated = _flatten(ours(packed))
            reference = _flatten(theirs(packed))
        assert evaluated[0].grad_fn is None
        for got, want, pytorch in zip(evaluated, trained, reference, strict=True):
            assert torch.equal(got, want.detach()) and _close(got, pytorch)


@pytest.mark.parametrize("kind", list(KINDS))
def test_batch_first_and_given_initial_states_match_pytorch(kind):
    theirs, ours = _pair(kind, num_layers=2, batch_first=True, bidirectional=True)
    generator = torch.Generator().manual_seed(2)
    sizes = {"gru": [5], "lstm": [5, 5], "lstmp": [3, 5]}[kind]
    hx = tuple(torch.randn(4, 2, size, generator=generator, dtype=torch.float64) for size in sizes)
    _compare(theirs, ours, lambda: _events((2, 7, 4)), hx)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_unbatched_input_and_no_bias_match_pytorch(kind):
    theirs, ours = _pair(kind, bias=False)
    assert not any("bias" in name for name, _ in ours.named_parameters())
    _compare(theirs, ours, lambda: _events((5, 4)))


def test_state_dicts_load_both_ways_and_parameters_are_named_as_pytorch_names_them():
    theirs, ours = _pair("lstmp", num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        assert ours.state_dict()[name].shape == value.shape
    torch.manual_seed(5)
    back = nn.LSTM(4, 5, proj_size=3, num_layers=2, bidirectional=True).double()
    back.load_state_dict(ours.state_dict())
    assert all(torch.equal(back.state_dict()[k], v) for k, v in ours.state_dict().items())


def test_a_cell_pytorch_lacks_names_parameters_by_its_c_arrays_and_initializes_as_pytorch():
    torch.manual_seed(0)
    model = RNN("peephole_lstm", 4, 16, num_layers=2)
    names = [name for name, _ in model.named_parameters()]
    assert "event_weights_l0" in names and "peephole_forget_l1" in names
    bound = 1 / 16**0.5
    for name, p in model.named_parameters():
        p = p.detach()
        assert float(p.abs().max()) <= bound, name
        assert float(p.std()) > bound / 4, name  # drawn, not left at zero


def test_a_user_cell_runs_as_a_module(tmp_path):
    from lstm_sym.cli import main
    from lstm_sym.torch import ops

    assert main(
        ["generate", "--spec", str(ROOT / "examples" / "cells" / "mgu.py"), "--out", str(tmp_path)]
    ) in (0, None)
    model = RNN(ops.load("mgu", tmp_path), 3, 4, num_layers=2, bidirectional=True).double()
    output, h_n = model(_events((5, 2, 3))[0])
    assert output.shape == (5, 2, 8) and h_n.shape == (4, 2, 4)
    output.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    model = RNN("gru_cho", 4, 5, num_layers=2, dropout=0.5).double()
    events, _ = _events((3, 2, 4))
    model.eval()
    first, _ = model(events)
    second, _ = model(events)
    assert torch.equal(first, second)
    model.train()
    torch.manual_seed(1)
    third, _ = model(events)
    assert not torch.equal(first, third)


@pytest.mark.parametrize(
    "build, call, error, message",
    [
        (lambda: RNN("no_such_cell", 3, 4), None, ValueError, "the cells are"),
        (lambda: RNN("lstm", 0, 4), None, ValueError, "input_size must be a positive integer"),
        (lambda: RNN("gru", 3, 4, proj_size=2), None, ValueError, "proj_size must be 0"),
        (lambda: RNN("lstm", 3, 4, dropout=2), None, ValueError, "dropout should be a number"),
        (
            lambda: RNN("lstm", 3, 4),
            lambda m: m(torch.zeros(2, 1, 5)),
            RuntimeError,
            "input.size\\(-1\\) must be equal to input_size. Expected 3, got 5",
        ),
        (
            lambda: RNN("lstm", 3, 4),
            lambda m: m(torch.zeros(2, 1, 3), torch.zeros(1, 1, 4)),
            TypeError,
            "hx must be a tuple of 2 Tensors",
        ),
        (
            lambda: RNN("gru", 3, 4),
            lambda m: m(torch.zeros(2, 5, 3), torch.zeros(1, 4, 4)),
            RuntimeError,
            r"Expected hx size \(1, 5, 4\), got \(1, 4, 4\)",
        ),
        (
            lambda: RNN("gru", 3, 4),
            lambda m: m(torch.zeros(2, 5, 3), torch.zeros(1, 5, 4, dtype=torch.float64)),
            RuntimeError,
            "hx must be torch.float32",
        ),
        (lambda: RNN("gru", 3, 4), lambda m: m(torch.zeros(3)), ValueError, "Expected input"),
    ],
)
def test_bad_arguments_get_pytorch_s_errors(build, call, error, message):
    with pytest.raises(error, match=message):
        model = build()
        call(model)


def test_a_layer_normalized_rnn_starts_as_torch_nn_layernorm_does():
    # lstm_ln's spec gives its per-unit layer-norm parameters LayerNorm's initialization
    # (scale 1, shift 0); every other parameter PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)).
    from lstm_sym.torch import RNN

    model = RNN("lstm_ln", 3, 4, num_layers=2, bidirectional=True)
    bound = 0.5
    for name, parameter in model.named_parameters():
        parameter = parameter.detach()
        if name.startswith(("scale_", "cell_scale")):
            assert torch.equal(parameter, torch.ones_like(parameter)), name
        elif name.startswith(("shift_", "cell_shift")):
            assert torch.equal(parameter, torch.zeros_like(parameter)), name
        else:
            assert float(parameter.abs().max()) <= bound and float(parameter.std()) > 0, name
    outputs, (h, c) = model(torch.randn(5, 2, 3))
    assert outputs.shape == (5, 2, 8) and h.shape == c.shape == (4, 2, 4)
