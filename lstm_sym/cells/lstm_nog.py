"""Greff et al.'s NOG variant: the peephole LSTM with No Output Gate (o = 1).

    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    forget    = sigmoid(forget_event + forget_hidden + peephole_forget * cell_prev)
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = forget * cell_prev + update * candidate
    hidden    = tanh(cell)

Gates are stacked as (update, forget, candidate); peepholes ``peephole_update`` and
``peephole_forget`` are (hidden,) vectors.
"""

from ._greff import greff_lstm

SPEC = greff_lstm("lstm_nog", "LSTM-NOG, no output gate (Greff et al.)", __doc__, output_gate=False)
