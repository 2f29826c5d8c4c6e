"""minGRU, the sequential form.

Feng, Tung, Ahmed, Bengio and Hajimirsadeghi (2024), "Were RNNs All We Needed?"
(arXiv:2410.01201), Section 3.1.3 (minGRU, sequential mode, Algorithm 1):

    z_t       = sigma(Linear_{d_h}(x_t))
    h~_t      = Linear_{d_h}(x_t)
    h_t       = (1 - z_t) * h_{t-1} + z_t * h~_t

Both gates read only the input: there is no hidden-to-hidden weight, so the cell has no
hidden weights and no hidden bias, and the state update is affine in h_{t-1} with
coefficients that depend on the input alone. Per hidden unit, with ``g_event = W_g x_t + b_g``:

    update    = sigmoid(update_event)
    candidate = candidate_event
    hidden    = (1 - update) * hidden_prev + update * candidate

Gates are stacked as (update, candidate). One state:
``outputs, h_last, cache = mingru.forward(parameters, events, h0=None)``.
"""

from ..functions import sigmoid
from ..spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("update", "candidate")
event, _ = gate_symbols(GATES)
hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
update, candidate = (real_symbol(g) for g in GATES)

SPEC = CellSpec(
    name="mingru",
    title="minGRU cell (Feng et al. 2024, sequential form)",
    description=__doc__,
    source="lstm_sym/cells/mingru.py",
    gates=GATES,
    states=(State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (update, sigmoid(event.update)),
        (candidate, event.candidate),
        (hidden_new, (1 - update) * hidden_prev + update * candidate),
    ),
    letters={"update": "z", "candidate": r"\tilde{h}"},
)
