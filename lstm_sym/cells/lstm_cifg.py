"""Greff et al.'s CIFG variant: the peephole LSTM with Coupled Input and Forget Gate.

    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    forget    = 1 - update
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = forget * cell_prev + update * candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * tanh(cell)

The forget gate has no weights of its own. Gates are stacked as (update, candidate, output);
peepholes ``peephole_update`` and ``peephole_output`` are (hidden,) vectors.
"""

from ._greff import greff_lstm

SPEC = greff_lstm(
    "lstm_cifg",
    "LSTM-CIFG, coupled input and forget gate (Greff et al.)",
    __doc__,
    coupled=True,
)
