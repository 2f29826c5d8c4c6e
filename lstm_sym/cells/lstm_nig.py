"""Greff et al.'s NIG variant: the peephole LSTM with No Input Gate (i = 1).

    forget    = sigmoid(forget_event + forget_hidden + peephole_forget * cell_prev)
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = forget * cell_prev + candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * tanh(cell)

Gates are stacked as (forget, candidate, output); peepholes ``peephole_forget`` and
``peephole_output`` are (hidden,) vectors.
"""

from ._greff import greff_lstm

SPEC = greff_lstm("lstm_nig", "LSTM-NIG, no input gate (Greff et al.)", __doc__, input_gate=False)
