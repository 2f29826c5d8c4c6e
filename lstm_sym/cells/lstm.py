"""The seed tutorial's LSTM cell (no peepholes), with the seed's gate names.

Per hidden unit, with ``g_event = W_event_g x_t + b_event_g`` and
``g_hidden = W_hidden_g h_{t-1} + b_hidden_g`` for each gate g:

    forget    = sigmoid(forget_event + forget_hidden)
    update    = sigmoid(update_event + update_hidden)
    candidate = tanh(candidate_event + candidate_hidden)
    output    = sigmoid(output_event + output_hidden)
    cell      = forget * cell_prev + update * candidate
    hidden    = output * tanh(cell)

Gates are stacked in PyTorch's order (i, f, g, o) = (update, forget, candidate, output), so a
``weight_ih_l0`` of ``nn.LSTM`` is the stacked event weights and ``bias_ih_l0`` the event biases.
"""

from sympy import tanh

from ..functions import sigmoid
from ..spec import CellSpec, State, StepFunction, gate_symbols, real_symbol

GATES = ("update", "forget", "candidate", "output")
event, hidden = gate_symbols(GATES)

hidden_prev, cell_prev = real_symbol("hidden_prev"), real_symbol("cell_prev")
forget, update, candidate, output = (real_symbol(g) for g in GATES[1::-1] + GATES[2:])
cell, hidden_new = real_symbol("cell"), real_symbol("hidden")

# Arguments of the seed's one-step functions (see the seed notebook).
forget_gate_output = real_symbol("forget_gate_output")
input_gate_output = real_symbol("input_gate_output")

SPEC = CellSpec(
    name="lstm",
    title="LSTM cell (seed tutorial form, no peepholes)",
    description=__doc__,
    source="lstm_sym/cells/lstm.py",
    gates=GATES,
    states=(
        State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),
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
        (hidden_new, output * tanh(cell)),
    ),
    step_functions=(
        StepFunction(
            name="forget_gate",
            doc="Forget gate deciding how much of the previous cell state to keep.",
            args=("event", "hidden_state", "prev_cell_state", "parameters"),
            expr=sigmoid(event.forget + hidden.forget) * cell_prev,
            bindings={cell_prev: "prev_cell_state"},
        ),
        StepFunction(
            name="input_gate",
            doc="Input gate deciding how to update the cell state.",
            args=("event", "hidden_state", "parameters"),
            expr=sigmoid(event.update + hidden.update) * tanh(event.candidate + hidden.candidate),
        ),
        StepFunction(
            name="cell_state",
            doc=(
                "New cell state, a combination of the partially forgotten cell state\n"
                "and the newly proposed state."
            ),
            args=("forget_gate_output", "input_gate_output"),
            expr=forget_gate_output + input_gate_output,
            bindings={
                forget_gate_output: "forget_gate_output",
                input_gate_output: "input_gate_output",
            },
        ),
        StepFunction(
            name="output_gate",
            doc="Decide what to output from the LSTM cell: the new hidden state.",
            args=("event", "hidden_state", "cell_state", "parameters"),
            expr=sigmoid(event.output + hidden.output) * tanh(cell),
            bindings={cell: "cell_state"},
        ),
    ),
)
