"""LSTM with a recurrent projection (LSTMP), PyTorch's ``nn.LSTM(proj_size=P)``.

Per hidden unit, with ``g_event = W_event_g x_t + b_event_g`` and
``g_hidden = W_hidden_g h_{t-1} + b_hidden_g`` for each gate g:

    update    = sigmoid(update_event + update_hidden)
    forget    = sigmoid(forget_event + forget_hidden)
    candidate = tanh(candidate_event + candidate_hidden)
    output    = sigmoid(output_event + output_hidden)
    cell      = forget * cell_prev + update * candidate
    unprojected = output * tanh(cell)

and the projected hidden state, a vector of projection_size P (no bias):

    hidden = W_projection unprojected

The hidden state h (the outputs) has P entries, the cell state c has H (hidden_size); the hidden
weights are (H, P) per gate and ``projection_weights`` is (P, H). ``Parameters(event_size,
hidden_size, projection_size=None)``: None means P = H (PyTorch needs 0 < P < H).
``outputs, (h_last, c_last), cache = lstmp.forward(parameters, events, h0=None, c0=None)`` with
h0 (P,) and c0 (H,). Gates are stacked in PyTorch's order (i, f, g, o) = (update, forget,
candidate, output): ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0`` of
``nn.LSTM(proj_size=P)`` are the stacked event weights, hidden weights, event biases and hidden
biases, and ``weight_hr_l0`` is ``projection_weights``.
"""

from sympy import tanh

from ..functions import sigmoid
from ..spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("update", "forget", "candidate", "output")
event, hidden = gate_symbols(GATES)

hidden_prev, cell_prev = real_symbol("hidden_prev"), real_symbol("cell_prev")
update, forget, candidate, output = (real_symbol(g) for g in GATES)
cell, hidden_new = real_symbol("cell"), real_symbol("hidden")
unprojected = real_symbol("unprojected")

SPEC = CellSpec(
    name="lstmp",
    title="LSTMP, LSTM with a recurrent projection of the hidden state",
    description=__doc__,
    source="lstm_sym/cells/lstmp.py",
    gates=GATES,
    states=(
        State(name="hidden", short="h", prev=hidden_prev, new=hidden_new, projection=unprojected),
        State(name="cell", short="c", prev=cell_prev, new=cell),
    ),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (forget, sigmoid(event.forget + hidden.forget)),
        (update, sigmoid(event.update + hidden.update)),
        (candidate, tanh(event.candidate + hidden.candidate)),
        (output, sigmoid(event.output + hidden.output)),
        (cell, forget * cell_prev + update * candidate),
        (unprojected, output * tanh(cell)),
    ),
    letters={"unprojected": "r"},
)
