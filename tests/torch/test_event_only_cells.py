"""The cells whose gates read the event alone (IndRNN, minGRU, minLSTM: no hidden weights) run in
``lstm_sym.torch.RNN`` like any other cell: its forward and its derived backward equal the
papers' equations written by hand (``lstm_sym/torch/reference.py``) through torch autograd, in
float64 to 1e-12, with and without a packed (variable-length) batch."""

from __future__ import annotations

import pytest

from tests.conftest import require_module
from tests.support import relative_error

torch = require_module("torch")

CELLS = ("indrnn", "mingru", "minlstm")


@pytest.mark.parametrize("packed", [False, True], ids=["full", "packed"])
@pytest.mark.parametrize("cell", CELLS)
def test_rnn_of_a_cell_without_hidden_weights_equals_the_hand_written_equations(cell, packed):
    from lstm_sym.torch import RNN
    from lstm_sym.torch.reference import ReferenceRNN

    torch.manual_seed(0)
    model = RNN(cell, 4, 6).double()
    names = [name.removesuffix("_l0") for name, _ in model.named_parameters()]
    assert "hidden_weights" not in names and "hidden_bias" not in names
    reference = ReferenceRNN(cell, 4, 6).double()
    assert [name for name, _ in reference.named_parameters()] == names
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
            theirs.copy_(mine)
    events = torch.randn(5, 3, 4, dtype=torch.float64)
    h0 = torch.randn(1, 3, 6, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    d_outputs = torch.randn(5, 3, 6, dtype=torch.float64)
    d_last = torch.randn(3, 6, dtype=torch.float64)

    def loss(outputs, h_last):
        return (outputs * d_outputs).sum() + (h_last * d_last).sum()

    x = events.clone().requires_grad_()
    if packed:
        sequence = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        output, h_n = model(sequence, h0)
        outputs, _ = torch.nn.utils.rnn.pad_packed_sequence(output, total_length=5)
    else:
        outputs, h_n = model(x, h0)
    loss(outputs, h_n[0]).backward()

    y = events.clone().requires_grad_()
    want, (want_h,) = reference(y, (h0[0],), lengths if packed else None)
    loss(want, want_h).backward()

    assert relative_error(outputs.detach().numpy(), want.detach().numpy()) <= 1e-12
    assert relative_error(h_n[0].detach().numpy(), want_h.detach().numpy()) <= 1e-12
    assert relative_error(x.grad.numpy(), y.grad.numpy()) <= 1e-12
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert relative_error(mine.grad.numpy(), theirs.grad.numpy()) <= 1e-12
