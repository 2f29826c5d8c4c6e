"""Gated recurrent unit in Cho et al.'s original form: the reset gate acts before W_hn.

Per hidden unit, with ``g_event = W_event_g x_t + b_event_g`` for each gate g,
``g_hidden = W_hidden_g h_{t-1} + b_hidden_g`` for the reset and update gates and, for the new
gate, the hidden projection of the reset previous state (``hidden_sources``):

    reset       = sigmoid(reset_event + reset_hidden)
    update      = sigmoid(update_event + update_hidden)
    reset_state = reset * hidden_prev
    new_hidden  = W_hidden_new reset_state + b_hidden_new
    new         = tanh(new_event + new_hidden)
    hidden      = (1 - update) * new + update * hidden_prev

(Cho et al. 2014, "Learning Phrase Representations using RNN Encoder-Decoder"; the form of
``tf.keras.layers.GRU(reset_after=False)``.) A step has two per-unit stages with a GEMM between
them. One state: ``outputs, h_last, cache = gru_cho.forward(parameters, events, h0=None)`` and
``backward(cache, d_outputs, d_h_last=None)``. Gates are stacked in PyTorch's GRU order
(r, z, n) = (reset, update, new), as in ``gru``.
"""

from sympy import tanh

from ..functions import sigmoid
from ..spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("reset", "update", "new")
event, hidden = gate_symbols(GATES)
hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
reset, update, new = (real_symbol(g) for g in GATES)
reset_state = real_symbol("reset_state")

SPEC = CellSpec(
    name="gru_cho",
    title="GRU cell, Cho et al.'s form (reset before W_hn)",
    description=__doc__,
    source="lstm_sym/cells/gru_cho.py",
    gates=GATES,
    states=(State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (reset, sigmoid(event.reset + hidden.reset)),
        (update, sigmoid(event.update + hidden.update)),
        (reset_state, reset * hidden_prev),
        (new, tanh(event.new + hidden.new)),
        (hidden_new, (1 - update) * new + update * hidden_prev),
    ),
    hidden_sources={"new": reset_state},
    letters={"update": "z", "new": "n", "reset_state": "s"},
)
