"""Greff et al.'s NIAF variant: the peephole LSTM with No Input Activation Function.

    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    forget    = sigmoid(forget_event + forget_hidden + peephole_forget * cell_prev)
    candidate = candidate_event + candidate_hidden
    cell      = forget * cell_prev + update * candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * tanh(cell)

Gates are stacked as (update, forget, candidate, output); peepholes are (hidden,) vectors.
"""

from ._greff import greff_lstm

SPEC = greff_lstm(
    "lstm_niaf",
    "LSTM-NIAF, no input activation function (Greff et al.)",
    __doc__,
    input_activation=False,
)
