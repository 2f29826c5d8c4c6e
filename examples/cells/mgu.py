"""Minimal gated unit (Zhou et al. 2016), with the forget gate applied after W_hidden, as in
PyTorch's GRU: a one-gate cousin of the GRU, written as an lstm_sym cell spec.

Per hidden unit, with ``g_event = W_event_g x_t + b_event_g`` and
``g_hidden = W_hidden_g h_{t-1} + b_hidden_g`` for each gate g:

    forget    = sigmoid(forget_event + forget_hidden + forget_bias)
    candidate = tanh(candidate_event + forget * candidate_hidden)
    hidden    = (1 - forget) * hidden_prev + forget * candidate

``forget_bias`` is a per-unit parameter (shape (hidden,)), a learnable offset of the forget
gate on top of the two linear biases (set it to 1 for the usual "forget bias" initialisation).

Generate the NumPy and C kernels and the derivation, then check them:

    lstm-sym generate --spec examples/cells/mgu.py --out build/mgu
    lstm-sym verify --spec examples/cells/mgu.py
"""

from sympy import tanh

from lstm_sym.functions import sigmoid
from lstm_sym.spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("forget", "candidate")
event, hidden = gate_symbols(GATES)  # event.forget is forget_event, hidden.forget forget_hidden

hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
forget, candidate = real_symbol("forget"), real_symbol("candidate")
forget_bias = real_symbol("forget_bias")

SPEC = CellSpec(
    name="mgu",
    title="Minimal gated unit",
    description=__doc__,
    source="examples/cells/mgu.py",
    gates=GATES,
    states=(State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (forget, sigmoid(event.forget + hidden.forget + forget_bias)),
        (candidate, tanh(event.candidate + forget * hidden.candidate)),
        (hidden_new, (1 - forget) * hidden_prev + forget * candidate),
    ),
    unit_parameters=(forget_bias,),
)
