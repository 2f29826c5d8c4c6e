"""Each cell as the eager PyTorch loop PyTorch users are told to write: a reference.

Hand-written from the equations in the cells' docstrings (``lstm_sym/cells/<cell>.py``,
``examples/cells/mgu.py``), never through the derivation or the generated code, so that torch
autograd through these loops is an independent check of the derived backward (the operators are
gradchecked against it) and the baseline ``lstm-sym bench --torch`` times ours against.

Every cell function has the operators' tensor interface (TORCH_CONTRACT.md)::

    outputs, final_states = cell(events, initial_states, weights, lengths=None)

``events`` (T, B, X); ``initial_states`` a tuple in the cell's state order (each (B, size));
``weights`` a tuple in the order and shapes of the C ABI's parameter arrays
(``generated/<cell>.abi.json``): stacked event weights (G H, X), event bias (G H,), hidden
weights, hidden bias (G H,) (none for a cell whose gates read the event alone: IndRNN, minGRU,
minLSTM), then per-unit parameters and projection weights. ``lengths`` None
or an integer (B,) tensor: a row past its length keeps its states and outputs zeros there (PyTorch's
packed sequences). The event projection of every step is one matrix product before the loop
(the loop's only hoisting, which makes it a stronger baseline than a per-step ``F.linear``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - PyTorch's own spelling


@dataclass(frozen=True)
class ReferenceCell:
    """A cell's step and the shapes of its weights (``X`` event, ``H`` hidden, ``P`` projection)."""

    name: str
    gates: int
    states: tuple[str, ...]
    step: Callable  # step(event_part (B, G H), states tuple, weights tuple) -> (output, states)
    weights: tuple[str, ...]
    #: the hidden weights' columns: "H", "P", "fgr" (13 H^2, flat), or None: no hidden weights
    hidden_columns: str | None = "H"
    projected: bool = False

    def shapes(self, x: int, h: int, p: int) -> dict[str, tuple[int, ...]]:
        """Every weight's shape, in ``weights`` order."""
        g = self.gates
        shapes = {"event_weights": (g * h, x), "event_bias": (g * h,)}
        if self.hidden_columns is not None:
            columns = {"H": (g * h, h), "P": (g * h, p), "fgr": (13 * h * h,)}
            shapes["hidden_weights"] = columns[self.hidden_columns]
            shapes["hidden_bias"] = (g * h,)
        for name in self.weights[len(shapes) :]:
            shapes[name] = (p, h) if name == "projection_weights" else (h,)
        return shapes

    def state_sizes(self, h: int, p: int) -> tuple[int, ...]:
        return tuple(p if self.projected and s == "hidden" else h for s in self.states)


def _lstm_step(event_part, states, weights):
    # i, f, g, o = sigmoid/tanh(W_i x + b_i + W_h h + b_h); c = f c + i g; h = o tanh(c)
    h, c = states
    _, _, w_h, b_h = weights[:4]
    i, f, g, o = (event_part + F.linear(h, w_h, b_h)).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, (h, c)


def _lstmp_step(event_part, states, weights):
    # the LSTM's update, then h = W_hr (o tanh(c)) (no bias)
    h, c = states
    _, _, w_h, b_h, w_hr = weights
    i, f, g, o = (event_part + F.linear(h, w_h, b_h)).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = F.linear(torch.sigmoid(o) * torch.tanh(c), w_hr)
    return h, (h, c)


def _peephole_step(event_part, states, weights):
    # Greff's vanilla LSTM: peepholes p_i, p_f see c_{t-1}, p_o the new c_t
    h, c = states
    _, _, w_h, b_h, p_i, p_f, p_o = weights
    i, f, g, o = (event_part + F.linear(h, w_h, b_h)).chunk(4, 1)
    i = torch.sigmoid(i + p_i * c)
    f = torch.sigmoid(f + p_f * c)
    c = f * c + i * torch.tanh(g)
    h = torch.sigmoid(o + p_o * c) * torch.tanh(c)
    return h, (h, c)


def _cifg_step(event_part, states, weights):
    # coupled input and forget gate: f = 1 - i; gates (update, candidate, output)
    h, c = states
    _, _, w_h, b_h, p_i, p_o = weights
    i, g, o = (event_part + F.linear(h, w_h, b_h)).chunk(3, 1)
    i = torch.sigmoid(i + p_i * c)
    c = (1 - i) * c + i * torch.tanh(g)
    h = torch.sigmoid(o + p_o * c) * torch.tanh(c)
    return h, (h, c)


def _fgr_step(event_part, states, weights):
    # full gate recurrence: the three gates also read [h, i, f, o] of the previous step through
    # (H, 4H) weights; the hidden weights are the four gates' matrices flattened one after another
    h, c, i_prev, f_prev, o_prev = states
    _, _, w_h, b_h, p_i, p_f, p_o = weights
    size = h.shape[1]
    block = 4 * size * size
    w_i = w_h[:block].view(size, 4 * size)
    w_f = w_h[block : 2 * block].view(size, 4 * size)
    w_g = w_h[2 * block : 2 * block + size * size].view(size, size)
    w_o = w_h[2 * block + size * size :].view(size, 4 * size)
    b_i, b_f, b_g, b_o = b_h.chunk(4)
    e_i, e_f, e_g, e_o = event_part.chunk(4, 1)
    sources = torch.cat((h, i_prev, f_prev, o_prev), 1)
    i = torch.sigmoid(e_i + F.linear(sources, w_i, b_i) + p_i * c)
    f = torch.sigmoid(e_f + F.linear(sources, w_f, b_f) + p_f * c)
    c = f * c + i * torch.tanh(e_g + F.linear(h, w_g, b_g))
    o = torch.sigmoid(e_o + F.linear(sources, w_o, b_o) + p_o * c)
    h = o * torch.tanh(c)
    return h, (h, c, i, f, o)


def _gru_step(event_part, states, weights):
    # PyTorch's GRU: n = tanh(W_in x + b_in + r (W_hn h + b_hn)); h = (1 - z) n + z h
    (h,) = states
    _, _, w_h, b_h = weights
    e_r, e_z, e_n = event_part.chunk(3, 1)
    h_r, h_z, h_n = F.linear(h, w_h, b_h).chunk(3, 1)
    r = torch.sigmoid(e_r + h_r)
    z = torch.sigmoid(e_z + h_z)
    n = torch.tanh(e_n + r * h_n)
    h = (1 - z) * n + z * h
    return h, (h,)


def _gru_cho_step(event_part, states, weights):
    # Cho et al.: the reset gate acts before W_hn: n = tanh(W_in x + b_in + W_hn (r h) + b_hn)
    (h,) = states
    _, _, w_h, b_h = weights
    e_r, e_z, e_n = event_part.chunk(3, 1)
    w_rz, w_n = w_h.split((2 * h.shape[1], h.shape[1]))
    b_rz, b_n = b_h.split((2 * h.shape[1], h.shape[1]))
    h_r, h_z = F.linear(h, w_rz, b_rz).chunk(2, 1)
    r = torch.sigmoid(e_r + h_r)
    z = torch.sigmoid(e_z + h_z)
    n = torch.tanh(e_n + F.linear(r * h, w_n, b_n))
    h = (1 - z) * n + z * h
    return h, (h,)


def _mgu_step(event_part, states, weights):
    # the example user cell (examples/cells/mgu.py), minimal gated unit:
    # f = sigmoid(W_f x + b_f + W_hf h + b_hf + forget_bias); n = tanh(W_n x + b_n + f (W_hn h +
    # b_hn)); h = (1 - f) h + f n
    (h,) = states
    _, _, w_h, b_h, forget_bias = weights
    e_f, e_n = event_part.chunk(2, 1)
    h_f, h_n = F.linear(h, w_h, b_h).chunk(2, 1)
    f = torch.sigmoid(e_f + h_f + forget_bias)
    n = torch.tanh(e_n + f * h_n)
    h = (1 - f) * h + f * n
    return h, (h,)


def _slstm_step(event_part, states, weights):
    # xLSTM's sLSTM, stabilized (Beck et al. 2024), gates (i, f, z, o), full recurrent matrix:
    # log i = i~, log f = log sigmoid(f~); m = max(log f + m_prev, i~); i' = exp(i~ - m),
    # f' = exp(log f + m_prev - m); c = f' c + i' tanh(z~); n = f' n + i'; h = sigmoid(o~) c / n
    h, c, n, m = states
    _, _, w_h, b_h = weights
    i, f, z, o = (event_part + F.linear(h, w_h, b_h)).chunk(4, 1)
    log_f_plus_m = F.logsigmoid(f) + m
    m = torch.maximum(log_f_plus_m, i)
    i_stabilized, f_stabilized = torch.exp(i - m), torch.exp(log_f_plus_m - m)
    c = f_stabilized * c + i_stabilized * torch.tanh(z)
    n = f_stabilized * n + i_stabilized
    h = torch.sigmoid(o) * c / n
    return h, (h, c, n, m)


def _indrnn_step(event_part, states, weights):
    # Li et al. (2018), eq. (2): h_t = relu(W x_t + u * h_{t-1} + b), u a vector (Hadamard)
    (h,) = states
    _, _, u = weights
    h = torch.relu(event_part + u * h)
    return h, (h,)


def _mingru_step(event_part, states, weights):
    # Feng et al. (2024), minGRU, sequential mode: z = sigmoid(Linear(x)), h~ = Linear(x),
    # h_t = (1 - z) * h_{t-1} + z * h~
    (h,) = states
    z, h_tilde = event_part.chunk(2, 1)
    z = torch.sigmoid(z)
    h = (1 - z) * h + z * h_tilde
    return h, (h,)


def _minlstm_step(event_part, states, weights):
    # Feng et al. (2024), minLSTM, sequential mode: f, i = sigmoid(Linear(x)), h~ = Linear(x),
    # f' = f / (f + i), i' = i / (f + i), h_t = f' * h_{t-1} + i' * h~
    (h,) = states
    f, i, h_tilde = event_part.chunk(3, 1)
    f, i = torch.sigmoid(f), torch.sigmoid(i)
    h = f / (f + i) * h + i / (f + i) * h_tilde
    return h, (h,)


def _lstm_ln_step(event_part, states, weights):
    # PyTorch's fastrnns LayerNormLSTMCell (Ba et al. 2016, layer normalization), with the
    # cell's projection biases (zero in the recipe): gates = LN_i(W_ih x + b_ih) +
    # LN_h(W_hh h + b_hh), each over the stacked 4H vector; c = LN_c(f c + i g) over H;
    # h = o tanh(c). Epsilon 1e-5, PyTorch's default (the cell's).
    h, c = states
    _, _, w_h, b_h = weights[:4]
    scale_i, shift_i = torch.cat(weights[4:8]), torch.cat(weights[8:12])
    scale_h, shift_h = torch.cat(weights[12:16]), torch.cat(weights[16:20])
    scale_c, shift_c = weights[20], weights[21]
    rows = (event_part.shape[1],)
    gates = F.layer_norm(event_part, rows, scale_i, shift_i, 1e-5)
    gates = gates + F.layer_norm(F.linear(h, w_h, b_h), rows, scale_h, shift_h, 1e-5)
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    c = F.layer_norm(c, (c.shape[1],), scale_c, shift_c, 1e-5)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, (h, c)


_BASE = ("event_weights", "event_bias", "hidden_weights", "hidden_bias")
_LN_GATES = ("update", "forget", "candidate", "output")
_LAYER_NORMS = (
    *(
        f"{kind}_{side}_{gate}"
        for side in ("event", "hidden")
        for kind in ("scale", "shift")
        for gate in _LN_GATES
    ),
    "cell_scale",
    "cell_shift",
)
_EVENT_ONLY = ("event_weights", "event_bias")
_PEEPHOLES = ("peephole_update", "peephole_forget", "peephole_output")
_LSTM_STATES = ("hidden", "cell")

#: The reference cells by name: the cells PyTorch lacks, the example user cell, and PyTorch's.
CELLS: dict[str, ReferenceCell] = {
    cell.name: cell
    for cell in (
        ReferenceCell("peephole_lstm", 4, _LSTM_STATES, _peephole_step, _BASE + _PEEPHOLES),
        ReferenceCell(
            "lstm_cifg", 3, _LSTM_STATES, _cifg_step, (*_BASE, "peephole_update", "peephole_output")
        ),
        ReferenceCell("gru_cho", 3, ("hidden",), _gru_cho_step, _BASE),
        ReferenceCell(
            "lstm_fgr",
            4,
            (*_LSTM_STATES, "update_gate", "forget_gate", "output_gate"),
            _fgr_step,
            _BASE + _PEEPHOLES,
            hidden_columns="fgr",
        ),
        ReferenceCell("mgu", 2, ("hidden",), _mgu_step, (*_BASE, "forget_bias")),
        ReferenceCell("lstm", 4, _LSTM_STATES, _lstm_step, _BASE),
        ReferenceCell("gru", 3, ("hidden",), _gru_step, _BASE),
        ReferenceCell(
            "lstmp",
            4,
            _LSTM_STATES,
            _lstmp_step,
            (*_BASE, "projection_weights"),
            hidden_columns="P",
            projected=True,
        ),
        ReferenceCell(
            "slstm", 4, ("hidden", "cell", "normalizer", "stabilizer"), _slstm_step, _BASE
        ),
        ReferenceCell(
            "indrnn",
            1,
            ("hidden",),
            _indrnn_step,
            (*_EVENT_ONLY, "recurrent_unit_weights"),
            hidden_columns=None,
        ),
        ReferenceCell("mingru", 2, ("hidden",), _mingru_step, _EVENT_ONLY, hidden_columns=None),
        ReferenceCell("minlstm", 3, ("hidden",), _minlstm_step, _EVENT_ONLY, hidden_columns=None),
        ReferenceCell("lstm_ln", 4, _LSTM_STATES, _lstm_ln_step, _BASE + _LAYER_NORMS),
    )
}
#: The cells the issue benchmarks against a compiled loop (PyTorch has no module for them).
MISSING_FROM_TORCH = ("peephole_lstm", "lstm_cifg", "gru_cho", "lstm_fgr", "mgu")


def get(name: str) -> ReferenceCell:
    try:
        return CELLS[name]
    except KeyError:
        raise KeyError(
            f"cell: no eager reference for {name!r}; there are: {', '.join(CELLS)}"
        ) from None


def run(cell: str | ReferenceCell, events, initial_states, weights, lengths=None):
    """``outputs, final_states`` of ``cell`` over ``events`` (T, B, X), by the eager loop."""
    cell = get(cell) if isinstance(cell, str) else cell
    steps = events.shape[0]
    event_parts = F.linear(events, weights[0], weights[1])  # (T, B, G H): one product
    states = tuple(initial_states)
    outputs = []
    for t in range(steps):
        output, new_states = cell.step(event_parts[t], states, weights)
        if lengths is not None:
            running = (t < lengths).unsqueeze(1)  # (B, 1): rows still inside their sequence
            new_states = tuple(
                torch.where(running, new, old) for new, old in zip(new_states, states, strict=True)
            )
            output = torch.where(running, output, torch.zeros_like(output))
        states = new_states
        outputs.append(output)
    return torch.stack(outputs), states


class ReferenceRNN(nn.Module):
    """One layer of ``cell`` as the eager loop, its weights ``nn.Parameter``s named as the C ABI
    names its arrays, initialized as PyTorch initializes ``nn.LSTM`` (uniform in +-1/sqrt(H)).

    ``forward(events, initial_states=None, lengths=None) -> (outputs, final_states)``.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, proj_size: int = 0):
        super().__init__()
        self.cell = get(cell)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.proj_size = proj_size if self.cell.projected else 0
        if self.cell.projected and not 0 < proj_size < hidden_size:
            raise ValueError(
                f"proj_size: {cell} needs 0 < proj_size < hidden_size={hidden_size}, "
                f"got {proj_size}"
            )
        shapes = self.cell.shapes(input_size, hidden_size, proj_size)
        bound = 1.0 / math.sqrt(hidden_size)
        for name in self.cell.weights:
            self.register_parameter(
                name, nn.Parameter(torch.empty(shapes[name]).uniform_(-bound, bound))
            )

    def weights(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in self.cell.weights)

    def forward(self, events, initial_states=None, lengths=None):
        if initial_states is None:
            sizes = self.cell.state_sizes(self.hidden_size, self.proj_size)
            initial_states = tuple(events.new_zeros(events.shape[1], size) for size in sizes)
        return run(self.cell, events, initial_states, self.weights(), lengths)
