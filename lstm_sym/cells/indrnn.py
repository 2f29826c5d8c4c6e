"""IndRNN: the independently recurrent neural network with ReLU.

Li, Li, Cook, Zhu and Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building
A Longer and Deeper RNN" (CVPR 2018; arXiv:1803.04831), eq. (2):

    h_t = relu(W x_t + u * h_{t-1} + b)

where ``u`` is a vector and ``*`` the Hadamard product: each neuron sees only its own past
state, so the recurrence is per unit and there is no recurrent matrix. Per hidden unit, with
the one gate's event part ``input_event = W x_t + b``:

    hidden = relu(input_event + recurrent_unit_weights * hidden_prev)

The gate reads only the event: the cell has no hidden weights and no hidden bias (the spec
never reads ``input_hidden``), so no hidden projection is computed at all.
``recurrent_unit_weights`` is u, a per-unit vector of shape (hidden,), like the peephole
weights of ``peephole_lstm``. relu's derivative is the step [x > 0], 0 at 0 as PyTorch's.
One state: ``outputs, h_last, cache = indrnn.forward(parameters, events, h0=None)``.
"""

from ..functions import relu
from ..spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("input",)
event, _ = gate_symbols(GATES)
hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
recurrent_unit_weights = real_symbol("recurrent_unit_weights")

SPEC = CellSpec(
    name="indrnn",
    title="IndRNN cell (Li et al. 2018, ReLU)",
    description=__doc__,
    source="lstm_sym/cells/indrnn.py",
    gates=GATES,
    states=(State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=((hidden_new, relu(event.input + recurrent_unit_weights * hidden_prev)),),
    unit_parameters=(recurrent_unit_weights,),
    letters={"input": "a", "recurrent_unit_weights": "u"},
)
