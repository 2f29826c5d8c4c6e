"""ONNX ``LSTM`` and ``GRU`` weights as arrays (nodes of ``.onnx`` model files: ``onnx_model``).

=============  =====  ==========================  ====================================
cell           op     attributes                  gate blocks of W, R and of B's halves
=============  =====  ==========================  ====================================
lstm           LSTM   (defaults), P zero          i, o, f, c = update, output, forget,
peephole_lstm  LSTM   P = [p_i, p_o, p_f]         candidate
lstm_cifg      LSTM   input_forget=1, P [p_i,     (the f blocks and p_f are unused:
                      p_o, unused]                ONNX computes f = 1 - i)
gru            GRU    linear_before_reset=1       z, r, h = update, reset, new
gru_cho        GRU    linear_before_reset=0
=============  =====  ==========================  ====================================

W is (num_directions, gates * H, X), R (num_directions, gates * H, H), B (num_directions,
2 * gates * H) = [event biases, hidden biases]: every array maps one to one, so conversions
are exact both ways (bit for bit).
"""

from __future__ import annotations

import numpy as np

from ._common import (
    blocks,
    cell_of,
    directions_of,
    expect_ndim,
    float_array,
    float_dtype,
    gate_names,
    only_zero,
    supported_cell,
)

#: Our gate names in the ONNX LSTM's block order (i, o, f, c).
LSTM_GATES = ("update", "output", "forget", "candidate")
#: Our gate names in the ONNX GRU's block order (z, r, h).
GRU_GATES = ("update", "reset", "new")
#: Our per-unit peephole attributes in the order of ONNX's ``P`` (p_i, p_o, p_f).
PEEPHOLES = ("peephole_update", "peephole_output", "peephole_forget")
#: Each cell an ONNX node expresses: the operator and the attributes that select the cell.
OPERATORS = {
    "lstm": ("LSTM", {"input_forget": 0}),
    "peephole_lstm": ("LSTM", {"input_forget": 0}),
    "lstm_cifg": ("LSTM", {"input_forget": 1}),
    "gru": ("GRU", {"linear_before_reset": 1}),
    "gru_cho": ("GRU", {"linear_before_reset": 0}),
}


def onnx_operator(cell) -> tuple[str, dict[str, int]]:
    """``(op_type, attributes)`` of the ONNX node computing ``cell`` (a module or a name)."""
    op_type, attributes = OPERATORS[supported_cell(cell, OPERATORS, "ONNX").CELL]
    return op_type, dict(attributes)


def _gates(op_type):
    return LSTM_GATES if op_type == "LSTM" else GRU_GATES


def _unused(cell) -> set[str]:
    """Format blocks the cell's node ignores: with ``input_forget=1`` the f blocks and p_f."""
    return {"forget", "peephole_forget"} if OPERATORS[cell.CELL][1].get("input_forget") else set()


def _float_dtype(arrays) -> np.dtype:
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


# -- arrays -------------------------------------------------------------------------------------


def from_onnx(W, R, B=None, P=None, *, cell="lstm", dtype=None) -> list:
    """One ``Parameters`` per direction (forward, then reverse) from an ONNX node's W
    (D, gates * H, X), R (D, gates * H, H), B (D, 2 * gates * H) and, for an LSTM, P (D, 3 * H)
    (B and P optional: zero). ``cell`` picks the mapping (see the module's table): ``lstm``,
    ``peephole_lstm`` and ``lstm_cifg`` read an LSTM node's arrays, ``gru`` and ``gru_cho`` a
    GRU's. A cell without peepholes accepts only a zero ``P``; ``lstm_cifg`` ignores the f
    blocks and p_f, as ONNX does with ``input_forget=1``. dtype: float32, float64 or None (the
    arrays' own). The arrays are copies."""
    dtype = float_dtype(dtype)
    cell = supported_cell(cell, OPERATORS, "ONNX")
    op_type = OPERATORS[cell.CELL][0]
    gates, count = _gates(op_type), len(_gates(op_type))
    W, R = float_array(W, "W"), float_array(R, "R")
    expect_ndim(W, 3, "W", f"(num_directions, {count} * hidden_size, input_size)")
    expect_ndim(R, 3, "R", f"(num_directions, {count} * hidden_size, hidden_size)")
    directions, hidden_size = R.shape[0], R.shape[2]
    if directions not in (1, 2) or W.shape[0] != directions:
        raise ValueError(
            f"W and R must have the same num_directions, 1 or 2, got {W.shape[0]} and {directions}"
        )
    dtype = dtype if dtype is not None else np.result_type(W, R)
    if B is not None:
        B = float_array(B, "B")
        if B.shape != (directions, 2 * count * hidden_size):
            raise ValueError(
                f"B must have shape ({directions}, {2 * count * hidden_size}) (num_directions, "
                f"2 * {count} * hidden_size), got {B.shape}"
            )
    unused = _unused(cell)
    if P is not None:
        if op_type == "GRU":
            raise ValueError("P: an ONNX GRU has no peepholes (P is an LSTM input)")
        P = float_array(P, "P")
        if P.shape != (directions, 3 * hidden_size):
            raise ValueError(
                f"P must have shape ({directions}, {3 * hidden_size}) (num_directions, "
                f"3 * hidden_size), got {P.shape}"
            )
        peepholes = blocks(P, PEEPHOLES, hidden_size, 1, "P")
        for name in PEEPHOLES:
            if name not in cell.Parameters.NAMES and name not in unused:
                if np.any(peepholes[name] != 0):
                    raise ValueError(
                        f"P holds non-zero peepholes ({name}), which the {cell.CELL!r} cell has "
                        "not: use cell='peephole_lstm'"
                    )
    result = []
    for d in range(directions):
        parameters = cell.Parameters(W.shape[2], hidden_size, dtype=dtype)
        parts = {
            "weights": (
                blocks(W[d], gates, hidden_size, 0, "W"),
                blocks(R[d], gates, hidden_size, 0, "R"),
            )
        }
        if B is not None:
            parts["bias"] = (
                blocks(B[d, : count * hidden_size], gates, hidden_size, 0, "B"),
                blocks(B[d, count * hidden_size :], gates, hidden_size, 0, "B"),
            )
        for gate in cell.GATES:
            for k, side in enumerate(("event", "hidden")):
                setattr(
                    parameters, f"{side}_{gate}_weights", parts["weights"][k][gate].astype(dtype)
                )
                bias = (
                    parts["bias"][k][gate].astype(dtype)
                    if B is not None
                    else np.zeros(hidden_size, dtype=dtype)
                )
                setattr(parameters, f"{side}_{gate}_bias", bias)
        if P is not None:
            for name in PEEPHOLES:
                if name in cell.Parameters.NAMES:
                    setattr(parameters, name, peepholes[name][d].astype(dtype))
        result.append(parameters)
    return result


def to_onnx(parameters) -> dict[str, np.ndarray]:
    """``{"W", "R", "B"[, "P"]}`` for the ONNX node of one ``Parameters`` or a sequence of two
    (forward, reverse: ``direction="bidirectional"``); :func:`onnx_operator` gives the operator
    and attributes. ``P`` comes with a peephole cell only; blocks the node ignores (the f
    blocks of ``lstm_cifg``) are zero. Per-unit parameters ONNX has no place for must be zero."""
    directions = directions_of(parameters)
    cell = supported_cell(cell_of(directions[0]), OPERATORS, "ONNX")
    op_type = OPERATORS[cell.CELL][0]
    held_peepholes = [name for name in PEEPHOLES if name in cell.Parameters.NAMES]
    for p in directions:
        only_zero(p, gate_names(cell.GATES) | set(held_peepholes), "ONNX")
    out = {"W": [], "R": [], "B": [], "P": []}
    for p in directions:
        arrays = p.arrays()
        hidden, event = p.hidden_size, p.event_size

        def part(gate, side, kind, arrays=arrays, hidden=hidden, event=event):
            name = f"{side}_{gate}_{kind}"
            if name in arrays:
                return arrays[name]
            shape = (hidden,) if kind == "bias" else (hidden, event if side == "event" else hidden)
            return np.zeros(shape)  # a block the node ignores

        gates = _gates(op_type)
        out["W"].append(np.concatenate([part(g, "event", "weights") for g in gates]))
        out["R"].append(np.concatenate([part(g, "hidden", "weights") for g in gates]))
        out["B"].append(
            np.concatenate(
                [part(g, "event", "bias") for g in gates]
                + [part(g, "hidden", "bias") for g in gates]
            )
        )
        if held_peepholes:
            out["P"].append(
                np.concatenate([arrays[n] if n in arrays else np.zeros(hidden) for n in PEEPHOLES])
            )
    if not held_peepholes:
        del out["P"]
    dtype = _float_dtype(a for p in directions for a in p.arrays().values())
    return {key: np.stack(arrays).astype(dtype) for key, arrays in out.items()}
