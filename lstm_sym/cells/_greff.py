"""Greff et al. (2017), "LSTM: A Search Space Odyssey": vanilla LSTM and one-change variants.

Each variant is its own spec module (``peephole_lstm``, ``lstm_nig``, ``lstm_nfg``, ``lstm_nog``,
``lstm_niaf``, ``lstm_noaf``, ``lstm_cifg``); they share this builder so that the seven cells
differ exactly where the paper says they do. Gates keep the seed's names and PyTorch's stacking
order (update = input gate i, forget f, candidate = block input z, output o); a variant without
a gate simply has no such gate, so no weights for it.

Vanilla (Greff's eq. 1-6, per unit; peepholes p_i, p_f see c_{t-1}, p_o sees the new c_t):

    update    = sigmoid(update_event + update_hidden + peephole_update * cell_prev)
    forget    = sigmoid(forget_event + forget_hidden + peephole_forget * cell_prev)
    candidate = tanh(candidate_event + candidate_hidden)
    cell      = forget * cell_prev + update * candidate
    output    = sigmoid(output_event + output_hidden + peephole_output * cell)
    hidden    = output * tanh(cell)
"""

from __future__ import annotations

from sympy import tanh

from ..functions import sigmoid
from ..spec import CellSpec, State, gate_symbols, real_symbol


def greff_lstm(
    name: str,
    title: str,
    description: str,
    *,
    input_gate: bool = True,
    forget_gate: bool = True,
    output_gate: bool = True,
    input_activation: bool = True,
    output_activation: bool = True,
    coupled: bool = False,
) -> CellSpec:
    """The vanilla (peephole) LSTM with one of Greff's changes switched on."""
    gates = tuple(
        g
        for g, present in (
            ("update", input_gate),
            ("forget", forget_gate and not coupled),
            ("candidate", True),
            ("output", output_gate),
        )
        if present
    )
    event, hidden = gate_symbols(gates)
    hidden_prev, cell_prev = real_symbol("hidden_prev"), real_symbol("cell_prev")
    cell, hidden_new = real_symbol("cell"), real_symbol("hidden")
    peepholes = []

    def gate(g):
        p = real_symbol(f"peephole_{g}")
        peepholes.append(p)
        seen = cell if g == "output" else cell_prev
        return sigmoid(getattr(event, g) + getattr(hidden, g) + p * seen)

    equations = []
    update = forget = output = 1
    if input_gate:
        update = real_symbol("update")
        equations.append((update, gate("update")))
    if coupled:
        forget = real_symbol("forget")
        equations.append((forget, 1 - update))
    elif forget_gate:
        forget = real_symbol("forget")
        equations.append((forget, gate("forget")))
    candidate = real_symbol("candidate")
    block_input = event.candidate + hidden.candidate
    equations.append((candidate, tanh(block_input) if input_activation else block_input))
    equations.append((cell, forget * cell_prev + update * candidate))
    if output_gate:
        output = real_symbol("output")
        equations.append((output, gate("output")))
    equations.append((hidden_new, output * (tanh(cell) if output_activation else cell)))
    return CellSpec(
        name=name,
        title=title,
        description=description,
        source=f"lstm_sym/cells/{name}.py",
        gates=gates,
        states=(
            State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),
            State(name="cell", short="c", prev=cell_prev, new=cell),
        ),
        output=hidden_new,
        recurrent=hidden_prev,
        equations=tuple(equations),
        unit_parameters=tuple(peepholes),
    )
