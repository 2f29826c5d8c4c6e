"""Greff FGR: the peephole (vanilla) LSTM with full gate recurrence.

Greff et al. (2017), "LSTM: A Search Space Odyssey" (IEEE TNNLS 28(10); arXiv:1503.04069),
Section 3, variant FGR: recurrent connections between all the gates, nine additional
recurrent matrices. The input, forget and output gates also see the previous step's gate
activations i_{t-1}, f_{t-1}, o_{t-1}; the paper's input gate, say, reads

    i_t = sigmoid(W_i x_t + R_i y_{t-1} + p_i * c_{t-1} + b_i
                  + R_ii i_{t-1} + R_fi f_{t-1} + R_oi o_{t-1})

and the forget and output gates likewise (R_if, R_ff, R_of; R_io, R_fo, R_oo); the block input
(candidate) is unchanged. Per hidden unit, with ``g_event = W_event_g x_t + b_event_g``, for the
candidate ``candidate_hidden = W_hidden_candidate h_{t-1} + b_hidden_candidate`` and for the
three gates g in (update, forget, output) the hidden projection of the previous hidden state and
gates side by side (``hidden_sources``):

    g_hidden  = W_hidden_g [h_{t-1}, i_{t-1}, f_{t-1}, o_{t-1}] + b_hidden_g
    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    forget    = sigmoid(forget_event + forget_hidden + peephole_forget * cell_prev)
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = forget * cell_prev + update * candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * tanh(cell)

``hidden_update_weights``, ``hidden_forget_weights`` and ``hidden_output_weights`` are
(hidden, 4 hidden): column blocks [R_g, R_ig, R_fg, R_og] read h_{t-1}, i_{t-1}, f_{t-1},
o_{t-1}; ``hidden_candidate_weights`` is (hidden, hidden). The gate activations are carried as
states, so five states: ``outputs, (h_last, c_last, i_last, f_last, o_last), cache =
lstm_fgr.forward(parameters, events, h0=None, c0=None, i0=None, f0=None, o0=None)`` (None:
zeros) and ``backward(cache, d_outputs, d_h_last=None, d_c_last=None, d_i_last=None,
d_f_last=None, d_o_last=None)``. Gates are stacked as (update, forget, candidate, output), as in
``peephole_lstm``; with the nine gate-to-gate blocks and i0, f0, o0 zero it is that cell.
"""

from dataclasses import replace

from ..spec import State, real_symbol
from ._greff import greff_lstm

hidden_prev = real_symbol("hidden_prev")
update, forget, output = (real_symbol(g) for g in ("update", "forget", "output"))
update_prev, forget_prev, output_prev = (
    real_symbol(f"{g}_prev") for g in ("update", "forget", "output")
)
#: What the three gates' hidden projections read, in column-block order.
GATE_SOURCES = (hidden_prev, update_prev, forget_prev, output_prev)

_vanilla = greff_lstm(
    "lstm_fgr", "Greff FGR: peephole LSTM with full gate recurrence", __doc__.strip() + "\n"
)
SPEC = replace(
    _vanilla,
    states=(
        *_vanilla.states,
        State(name="update_gate", short="i", prev=update_prev, new=update),
        State(name="forget_gate", short="f", prev=forget_prev, new=forget),
        State(name="output_gate", short="o", prev=output_prev, new=output),
    ),
    hidden_sources={"update": GATE_SOURCES, "forget": GATE_SOURCES, "output": GATE_SOURCES},
)
