"""Greff et al.'s NFG variant: the peephole LSTM with No Forget Gate (f = 1).

    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = cell_prev + update * candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * tanh(cell)

Gates are stacked as (update, candidate, output); peepholes ``peephole_update`` and
``peephole_output`` are (hidden,) vectors.
"""

from ._greff import greff_lstm

SPEC = greff_lstm("lstm_nfg", "LSTM-NFG, no forget gate (Greff et al.)", __doc__, forget_gate=False)
