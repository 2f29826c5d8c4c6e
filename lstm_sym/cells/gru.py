"""Gated recurrent unit in PyTorch's form (``torch.nn.GRU``): the reset gate acts after W_hn.

Per hidden unit, with ``g_event = W_event_g x_t + b_event_g`` and
``g_hidden = W_hidden_g h_{t-1} + b_hidden_g`` for each gate g:

    reset  = sigmoid(reset_event + reset_hidden)
    update = sigmoid(update_event + update_hidden)
    new    = tanh(new_event + reset * new_hidden)
    hidden = (1 - update) * new + update * hidden_prev

One state: ``outputs, h_last, cache = gru.forward(parameters, events, h0=None)`` and
``backward(cache, d_outputs, d_h_last=None)``. Gates are stacked in PyTorch's order
(r, z, n) = (reset, update, new), so ``weight_ih_l0``/``weight_hh_l0``/``bias_ih_l0``/``bias_hh_l0``
of ``nn.GRU`` are the stacked event weights, hidden weights, event biases and hidden biases.
"""

from sympy import tanh

from ..functions import sigmoid
from ..spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("reset", "update", "new")
event, hidden = gate_symbols(GATES)
hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
reset, update, new = (real_symbol(g) for g in GATES)

SPEC = CellSpec(
    name="gru",
    title="GRU cell (PyTorch form, reset after the hidden projection)",
    description=__doc__,
    source="lstm_sym/cells/gru.py",
    gates=GATES,
    states=(State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (reset, sigmoid(event.reset + hidden.reset)),
        (update, sigmoid(event.update + hidden.update)),
        (new, tanh(event.new + reset * hidden.new)),
        (hidden_new, (1 - update) * new + update * hidden_prev),
    ),
    letters={"update": "z", "new": "n"},
)
