"""minLSTM, the sequential form with normalized gates.

Feng, Tung, Ahmed, Bengio and Hajimirsadeghi (2024), "Were RNNs All We Needed?"
(arXiv:2410.01201), Section 3.2.3 (minLSTM, sequential mode, Algorithm 3):

    f_t       = sigma(Linear_{d_h}(x_t))
    i_t       = sigma(Linear_{d_h}(x_t))
    f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)
    h~_t      = Linear_{d_h}(x_t)
    h_t       = f'_t * h_{t-1} + i'_t * h~_t

Every gate reads only the input: no hidden weights, no hidden bias, and the state update is
affine in h_{t-1} with coefficients that depend on the input alone (the normalization makes it
time-independent in scale). Per hidden unit, with ``g_event = W_g x_t + b_g``:

    forget         = sigmoid(forget_event)
    update         = sigmoid(update_event)
    candidate      = candidate_event
    forget_norm    = forget / (forget + update)
    update_norm    = update / (forget + update)
    hidden         = forget_norm * hidden_prev + update_norm * candidate

Gates are stacked as (forget, update, candidate). One state:
``outputs, h_last, cache = minlstm.forward(parameters, events, h0=None)``.
"""

from ..functions import sigmoid
from ..spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("forget", "update", "candidate")
event, _ = gate_symbols(GATES)
hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
forget, update, candidate = (real_symbol(g) for g in GATES)
forget_norm, update_norm = real_symbol("forget_norm"), real_symbol("update_norm")

SPEC = CellSpec(
    name="minlstm",
    title="minLSTM cell (Feng et al. 2024, sequential form)",
    description=__doc__,
    source="lstm_sym/cells/minlstm.py",
    gates=GATES,
    states=(State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (forget, sigmoid(event.forget)),
        (update, sigmoid(event.update)),
        (candidate, event.candidate),
        (forget_norm, forget / (forget + update)),
        (update_norm, update / (forget + update)),
        (hidden_new, forget_norm * hidden_prev + update_norm * candidate),
    ),
    letters={
        "forget": "f",
        "update": "i",
        "candidate": r"\tilde{h}",
        "forget_norm": "f'",
        "update_norm": "i'",
    },
)
