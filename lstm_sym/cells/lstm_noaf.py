"""Greff et al.'s NOAF variant: the peephole LSTM with No Output Activation Function.

    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    forget    = sigmoid(forget_event + forget_hidden + peephole_forget * cell_prev)
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = forget * cell_prev + update * candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * cell

Gates are stacked as (update, forget, candidate, output); peepholes are (hidden,) vectors.
"""

from ._greff import greff_lstm

SPEC = greff_lstm(
    "lstm_noaf",
    "LSTM-NOAF, no output activation function (Greff et al.)",
    __doc__,
    output_activation=False,
)
