"""Layer-normalized LSTM in the form of PyTorch's ``fastrnns`` ``LayerNormLSTMCell``
(``benchmarks/fastrnns/custom_lstms.py``; Ba, Kiros and Hinton, 2016, "Layer Normalization",
section 3.1, with the cell state normalized as in that recipe).

With the stacked projections ``z_x = W_ih x_t`` and ``z_h = W_hh h_{t-1}`` (4H entries each,
gates stacked in PyTorch's order (i, f, g, o) = (update, forget, candidate, output)) and
LN(v) = gamma (v - mean(v)) / sqrt(var(v) + eps) + beta over all entries of v (biased variance):

    gates     = LN_i(z_x) + LN_h(z_h)                 each LN with its own 4H weight and bias
    forget    = sigmoid(gates_f),  update = sigmoid(gates_i)
    candidate = tanh(gates_g),     output = sigmoid(gates_o)
    cell_raw  = forget * cell_prev + update * candidate
    cell      = LN_c(cell_raw)                        over H, carried as the new cell state
    hidden    = output * tanh(cell)

Per unit the layer norms read two reductions over units each (``mean`` and ``rstd``, see
:class:`lstm_sym.spec.Normalization`): ``event_mean``, ``event_rstd`` over the four gates' event
parts (the 4H vector ``W_ih x``), ``hidden_mean``, ``hidden_rstd`` over the hidden parts and
``cell_mean``, ``cell_rstd`` over ``cell_raw``. The LN weights and biases are per-unit
parameters, one per gate for LN_i and LN_h (``scale_event_<gate>``, ``shift_event_<gate>``, the
gate's H-row block of ``layernorm_i.weight``/``.bias``) and ``cell_scale``, ``cell_shift``.

The recipe has no projection biases: the spec's event and hidden biases exist (every gate
projection has one) and ``from_torch`` sets them to zero; they are learnable like any bias.
The epsilon is PyTorch's default 1e-5 (``make(epsilon)`` builds the cell with another).
"""

import sympy as sp
from sympy import tanh

from ..functions import sigmoid
from ..spec import (
    LAYER_NORM_EPSILON,
    CellSpec,
    Normalization,
    State,
    gate_symbols,
    real_symbol,
)

GATES = ("update", "forget", "candidate", "output")
EPSILON = LAYER_NORM_EPSILON
event, hidden = gate_symbols(GATES)

hidden_prev, cell_prev = real_symbol("hidden_prev"), real_symbol("cell_prev")
hidden_new, cell, cell_raw = real_symbol("hidden"), real_symbol("cell"), real_symbol("cell_raw")
activations = {g: real_symbol(g) for g in GATES}
event_mean, event_rstd = real_symbol("event_mean"), real_symbol("event_rstd")
hidden_mean, hidden_rstd = real_symbol("hidden_mean"), real_symbol("hidden_rstd")
cell_mean, cell_rstd = real_symbol("cell_mean"), real_symbol("cell_rstd")
scale = {(side, g): real_symbol(f"scale_{side}_{g}") for side in ("event", "hidden") for g in GATES}
shift = {(side, g): real_symbol(f"shift_{side}_{g}") for side in ("event", "hidden") for g in GATES}
cell_scale, cell_shift = real_symbol("cell_scale"), real_symbol("cell_shift")


def _gate(g: str) -> sp.Expr:
    """LN_i(z_x)_g + LN_h(z_h)_g for one unit of gate g."""
    normalized_event = (getattr(event, g) - event_mean) * event_rstd
    normalized_hidden = (getattr(hidden, g) - hidden_mean) * hidden_rstd
    return (
        scale["event", g] * normalized_event
        + shift["event", g]
        + scale["hidden", g] * normalized_hidden
        + shift["hidden", g]
    )


def make(epsilon=EPSILON) -> CellSpec:
    """The cell with layer-norm epsilon ``epsilon`` (a SymPy number; PyTorch's default 1e-5)."""
    epsilon = sp.nsimplify(epsilon) if isinstance(epsilon, float) else sp.sympify(epsilon)
    return CellSpec(
        name="lstm_ln",
        title="Layer-normalized LSTM (PyTorch fastrnns LayerNormLSTMCell)",
        description=__doc__,
        source="lstm_sym/cells/lstm_ln.py",
        gates=GATES,
        states=(
            State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),
            State(name="cell", short="c", prev=cell_prev, new=cell),
        ),
        output=hidden_new,
        recurrent=hidden_prev,
        reductions=(
            Normalization(
                "event_norm", tuple(event.__dict__.values()), event_mean, event_rstd, epsilon
            ),
            Normalization(
                "hidden_norm", tuple(hidden.__dict__.values()), hidden_mean, hidden_rstd, epsilon
            ),
            Normalization("cell_norm", (cell_raw,), cell_mean, cell_rstd, epsilon),
        ),
        unit_parameters=(
            *(scale["event", g] for g in GATES),
            *(shift["event", g] for g in GATES),
            *(scale["hidden", g] for g in GATES),
            *(shift["hidden", g] for g in GATES),
            cell_scale,
            cell_shift,
        ),
        # torch.nn.LayerNorm's initialization: scale 1, shift 0
        module_init={
            **{s.name: 1 for s in (*scale.values(), cell_scale)},
            **{s.name: 0 for s in (*shift.values(), cell_shift)},
        },
        torch_layout=(
            ("weight_ih", tuple(f"event_{g}_weights" for g in GATES)),
            ("weight_hh", tuple(f"hidden_{g}_weights" for g in GATES)),
            (
                "layernorm_i.weight",
                tuple(s.name for (side, _), s in scale.items() if side == "event"),
            ),
            (
                "layernorm_i.bias",
                tuple(s.name for (side, _), s in shift.items() if side == "event"),
            ),
            (
                "layernorm_h.weight",
                tuple(s.name for (side, _), s in scale.items() if side == "hidden"),
            ),
            (
                "layernorm_h.bias",
                tuple(s.name for (side, _), s in shift.items() if side == "hidden"),
            ),
            ("layernorm_c.weight", (cell_scale.name,)),
            ("layernorm_c.bias", (cell_shift.name,)),
        ),
        equations=(
            (activations["update"], sigmoid(_gate("update"))),
            (activations["forget"], sigmoid(_gate("forget"))),
            (activations["candidate"], tanh(_gate("candidate"))),
            (activations["output"], sigmoid(_gate("output"))),
            (
                cell_raw,
                activations["forget"] * cell_prev
                + activations["update"] * activations["candidate"],
            ),
            (cell, cell_scale * (cell_raw - cell_mean) * cell_rstd + cell_shift),
            (hidden_new, activations["output"] * tanh(cell)),
        ),
    )


SPEC = make()
