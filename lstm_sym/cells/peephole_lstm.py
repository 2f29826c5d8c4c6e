"""Greff et al.'s vanilla LSTM: the seed's LSTM plus peephole connections.

Per hidden unit, with ``g_event = W_event_g x_t + b_event_g`` and
``g_hidden = W_hidden_g h_{t-1} + b_hidden_g`` for each gate g:

    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    forget    = sigmoid(forget_event + forget_hidden + peephole_forget * cell_prev)
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = forget * cell_prev + update * candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * tanh(cell)

The peephole weights ``peephole_update``, ``peephole_forget`` and ``peephole_output`` are
per-unit vectors of shape (hidden,); the output gate's peephole sees the new cell state.
Gates are stacked as (update, forget, candidate, output), PyTorch's (i, f, g, o).
"""

from ._greff import greff_lstm

SPEC = greff_lstm("peephole_lstm", "Peephole LSTM cell (Greff et al.'s vanilla LSTM)", __doc__)
