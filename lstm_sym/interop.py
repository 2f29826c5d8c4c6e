"""LSTM weights to and from Keras and ONNX, as NumPy arrays (neither library is imported).

PyTorch needs nothing here: the generated ``Parameters`` has ``from_torch`` and
``to_torch_state_dict``, and :class:`lstm_sym.models.Recurrent` maps stacked and
bidirectional modules.

Gate orders (our names: update = i, forget = f, candidate = c/g, output = o):

=========  ===========================================  ======================================
format     arrays                                       gate blocks, in order
=========  ===========================================  ======================================
PyTorch    weight_ih (4H, X), weight_hh (4H, H),        i, f, g, o  (= ``GATES`` of the cell)
           bias_ih (4H,), bias_hh (4H,)
Keras      kernel (X, 4H), recurrent_kernel (H, 4H),    i, f, c, o  (columns; transposed)
           bias (4H,): one bias
ONNX       W (D, 4H, X), R (D, 4H, H), B (D, 8H),        i, o, f, c; B = [Wb, Rb];
           P (D, 3H) peepholes                          P = [p_i, p_o, p_f]
=========  ===========================================  ======================================

Keras keeps one bias: importing puts it in the event bias (hidden bias zero); exporting sums
the event and hidden biases, so Keras -> here -> Keras is exact and here -> Keras -> here is
exact up to how the bias is split. Keras' ``recurrent_activation`` must be the sigmoid (its
default since Keras 2.4; older ``hard_sigmoid`` models compute another function). ONNX's
peepholes ``P`` map to a cell with ``peephole_update``, ``peephole_forget`` and
``peephole_output`` (``peephole_lstm``), whose equations are ONNX's: the input and forget gates
see c_{t-1}, the output gate c_t; a cell without peepholes accepts only a zero ``P``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from .models._io import float_array, float_dtype
from .models.layers import resolve_cell

#: Our gate names in Keras' column-block order (i, f, c, o).
KERAS_GATES = ("update", "forget", "candidate", "output")
#: Our gate names in ONNX's row-block order (i, o, f, c).
ONNX_GATES = ("update", "output", "forget", "candidate")
#: Our per-unit peephole attributes in ONNX's ``P`` order (p_i, p_o, p_f).
ONNX_PEEPHOLES = ("peephole_update", "peephole_output", "peephole_forget")


def _lstm_cell(cell, fmt: str):
    cell = resolve_cell(cell)
    if set(cell.GATES) != set(KERAS_GATES):
        raise ValueError(
            f"{fmt} LSTM weights need a cell with gates {KERAS_GATES}; "
            f"the {cell.CELL!r} cell has {cell.GATES}"
        )
    return cell


def _blocks(array, gates, hidden_size, axis, name):
    expected = len(gates) * hidden_size
    if array.shape[axis] != expected:
        raise ValueError(
            f"{name} must have {expected} = {len(gates)} gates * hidden_size {hidden_size} "
            f"along axis {axis}, got shape {array.shape}"
        )
    return {
        gate: np.take(array, np.arange(k * hidden_size, (k + 1) * hidden_size), axis=axis)
        for k, gate in enumerate(gates)
    }


def _ndim(array, ndim, name, meaning):
    if array.ndim != ndim:
        raise ValueError(f"{name} must have shape {meaning}, got {array.shape}")


# -- Keras --------------------------------------------------------------------------------------


def from_keras(kernel, recurrent_kernel, bias=None, *, cell="lstm", dtype=None):
    """``Parameters`` from a Keras LSTM's ``get_weights()``: kernel (X, 4H), recurrent_kernel
    (H, 4H), bias (4H,) (None for ``use_bias=False``)."""
    cell = _lstm_cell(cell, "Keras")
    dtype = float_dtype(dtype)
    kernel = float_array(kernel, "kernel")
    recurrent_kernel = float_array(recurrent_kernel, "recurrent_kernel")
    _ndim(kernel, 2, "kernel", "(input_size, 4 * hidden_size)")
    _ndim(recurrent_kernel, 2, "recurrent_kernel", "(hidden_size, 4 * hidden_size)")
    hidden_size = recurrent_kernel.shape[0]
    dtype = dtype if dtype is not None else np.result_type(kernel, recurrent_kernel)
    parameters = cell.Parameters(kernel.shape[0], hidden_size, dtype=dtype)
    event = _blocks(kernel, KERAS_GATES, hidden_size, 1, "kernel")
    hidden = _blocks(recurrent_kernel, KERAS_GATES, hidden_size, 1, "recurrent_kernel")
    if bias is not None:
        bias = float_array(bias, "bias")
        _ndim(bias, 1, "bias", "(4 * hidden_size,)")
        biases = _blocks(bias, KERAS_GATES, hidden_size, 0, "bias")
    for gate in KERAS_GATES:
        setattr(parameters, f"event_{gate}_weights", event[gate].T.astype(dtype))
        setattr(parameters, f"hidden_{gate}_weights", hidden[gate].T.astype(dtype))
        event_bias = biases[gate] if bias is not None else np.zeros(hidden_size)
        setattr(parameters, f"event_{gate}_bias", event_bias.astype(dtype))
        setattr(parameters, f"hidden_{gate}_bias", np.zeros(hidden_size, dtype=dtype))
    return parameters


def to_keras(parameters):
    """``(kernel, recurrent_kernel, bias)`` for a Keras LSTM's ``set_weights``; the bias is
    the sum of the event and hidden biases."""
    _lstm_cell(_module_of(parameters), "Keras")
    _no_unit_parameters(parameters, "Keras")
    arrays = parameters.arrays()
    kernel = np.concatenate([arrays[f"event_{g}_weights"].T for g in KERAS_GATES], axis=1)
    recurrent = np.concatenate([arrays[f"hidden_{g}_weights"].T for g in KERAS_GATES], axis=1)
    bias = np.concatenate(
        [arrays[f"event_{g}_bias"] + arrays[f"hidden_{g}_bias"] for g in KERAS_GATES]
    )
    return kernel, recurrent, bias


# -- ONNX ---------------------------------------------------------------------------------------


def from_onnx(W, R, B=None, P=None, *, cell="lstm", dtype=None) -> list:
    """One ``Parameters`` per direction (forward, then reverse) from an ONNX LSTM's
    W (D, 4H, X), R (D, 4H, H), B (D, 8H) and P (D, 3H) (B and P optional)."""
    cell = _lstm_cell(cell, "ONNX")
    dtype = float_dtype(dtype)
    W, R = float_array(W, "W"), float_array(R, "R")
    _ndim(W, 3, "W", "(num_directions, 4 * hidden_size, input_size)")
    _ndim(R, 3, "R", "(num_directions, 4 * hidden_size, hidden_size)")
    directions, hidden_size = R.shape[0], R.shape[2]
    if directions not in (1, 2) or W.shape[0] != directions:
        raise ValueError(
            f"W and R must have the same num_directions, 1 or 2, got {W.shape[0]} and {directions}"
        )
    dtype = dtype if dtype is not None else np.result_type(W, R)
    if B is not None:
        B = float_array(B, "B")
        if B.shape != (directions, 8 * hidden_size):
            raise ValueError(
                f"B must have shape ({directions}, {8 * hidden_size}) (num_directions, "
                f"8 * hidden_size), got {B.shape}"
            )
    if P is not None:
        P = float_array(P, "P")
        if P.shape != (directions, 3 * hidden_size):
            raise ValueError(
                f"P must have shape ({directions}, {3 * hidden_size}) (num_directions, "
                f"3 * hidden_size), got {P.shape}"
            )
        has_peepholes = all(name in cell.Parameters.NAMES for name in ONNX_PEEPHOLES)
        if not has_peepholes and np.any(P != 0):
            raise ValueError(
                f"P holds non-zero peepholes, which the {cell.CELL!r} cell has not: "
                "use cell='peephole_lstm'"
            )
    result = []
    for d in range(directions):
        parameters = cell.Parameters(W.shape[2], hidden_size, dtype=dtype)
        event = _blocks(W[d], ONNX_GATES, hidden_size, 0, "W")
        hidden = _blocks(R[d], ONNX_GATES, hidden_size, 0, "R")
        if B is not None:
            event_bias = _blocks(B[d, : 4 * hidden_size], ONNX_GATES, hidden_size, 0, "B")
            hidden_bias = _blocks(B[d, 4 * hidden_size :], ONNX_GATES, hidden_size, 0, "B")
        for gate in ONNX_GATES:
            setattr(parameters, f"event_{gate}_weights", event[gate].astype(dtype))
            setattr(parameters, f"hidden_{gate}_weights", hidden[gate].astype(dtype))
            zeros = np.zeros(hidden_size, dtype=dtype)
            setattr(
                parameters,
                f"event_{gate}_bias",
                event_bias[gate].astype(dtype) if B is not None else zeros,
            )
            setattr(
                parameters,
                f"hidden_{gate}_bias",
                hidden_bias[gate].astype(dtype) if B is not None else zeros.copy(),
            )
        if P is not None and has_peepholes:
            peepholes = _blocks(P[d], ONNX_PEEPHOLES, hidden_size, 0, "P")
            for name in ONNX_PEEPHOLES:
                setattr(parameters, name, peepholes[name].astype(dtype))
        result.append(parameters)
    return result


def to_onnx(parameters) -> dict[str, np.ndarray]:
    """``{"W", "R", "B"[, "P"]}`` for an ONNX LSTM node from one ``Parameters`` or a sequence
    of them (forward, reverse: ``direction="bidirectional"``). ``P`` comes with a peephole
    cell only."""
    directions = list(parameters) if isinstance(parameters, Sequence) else [parameters]
    if len(directions) not in (1, 2):
        raise ValueError(
            f"parameters must be one or two (bidirectional) cells, got {len(directions)}"
        )
    cell = _lstm_cell(_module_of(directions[0]), "ONNX")
    sizes = {(p.event_size, p.hidden_size) for p in directions}
    if len(sizes) != 1 or any(not isinstance(p, cell.Parameters) for p in directions):
        raise ValueError("both directions must be Parameters of the same cell and sizes")
    has_peepholes = all(name in cell.Parameters.NAMES for name in ONNX_PEEPHOLES)
    if not has_peepholes:
        for p in directions:
            _no_unit_parameters(p, "ONNX")
    out = {"W": [], "R": [], "B": [], "P": []}
    for p in directions:
        arrays = p.arrays()
        out["W"].append(np.concatenate([arrays[f"event_{g}_weights"] for g in ONNX_GATES]))
        out["R"].append(np.concatenate([arrays[f"hidden_{g}_weights"] for g in ONNX_GATES]))
        out["B"].append(
            np.concatenate(
                [arrays[f"event_{g}_bias"] for g in ONNX_GATES]
                + [arrays[f"hidden_{g}_bias"] for g in ONNX_GATES]
            )
        )
        if has_peepholes:
            out["P"].append(np.concatenate([arrays[name] for name in ONNX_PEEPHOLES]))
    if not has_peepholes:
        del out["P"]
    dtype = np.result_type(*(a for arrays in out.values() for a in arrays))
    return {key: np.stack(arrays).astype(dtype) for key, arrays in out.items()}


# -- helpers ------------------------------------------------------------------------------------


def _module_of(parameters):
    module = sys.modules.get(type(parameters).__module__)
    if module is None or not hasattr(module, "GATES"):
        raise TypeError(
            f"parameters must be a generated cell's Parameters, got {type(parameters).__name__}"
        )
    return module


def _no_unit_parameters(parameters, fmt: str) -> None:
    arrays = parameters.arrays()
    gate_names = {
        f"{side}_{g}_{kind}"
        for g in KERAS_GATES
        for side in ("event", "hidden")
        for kind in ("weights", "bias")
    }
    for name in parameters.NAMES:
        if name not in gate_names and np.any(arrays[name] != 0):
            raise ValueError(f"{fmt} has no counterpart for parameters.{name}: it must be zero")
