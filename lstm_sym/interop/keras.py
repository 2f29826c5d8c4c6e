"""Keras 3 ``LSTM`` and ``GRU``: ``get_weights()`` / ``set_weights()`` arrays, layer objects.

========  ====================  =========================================  ==================
cell      Keras layer           weights                                    column blocks
========  ====================  =========================================  ==================
lstm      LSTM                  kernel (X, 4H), recurrent_kernel (H, 4H),  i, f, c, o
                                bias (4H,): one bias
gru       GRU(reset_after=      kernel (X, 3H), recurrent_kernel (H, 3H),  z, r, h = update,
          True)                 bias (2, 3H) = [input bias, recurrent]     reset, new
gru_cho   GRU(reset_after=      kernel (X, 3H), recurrent_kernel (H, 3H),  z, r, h
          False)                bias (3H,): one bias
========  ====================  =========================================  ==================

Keras' weights are our weights transposed. Where Keras keeps one bias, importing puts it in
the event bias (the hidden bias zero) and exporting sums the event and hidden biases (each
gate sees only their sum; in ``gru_cho`` the new gate's hidden bias is added after the reset,
as Keras' bias is), so Keras -> here -> Keras is exact bit for bit and here -> Keras -> here is
exact up to how a bias is split. The activations must be Keras' defaults (``activation="tanh"``,
``recurrent_activation="sigmoid"``); others are refused by name. Nothing here imports Keras
but :func:`to_keras_layer`.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    blocks,
    cell_of,
    expect_ndim,
    float_array,
    float_dtype,
    gate_names,
    only_zero,
    supported_cell,
)

#: Each cell a Keras layer expresses: the layer's class and the options that select the cell.
KERAS_LAYERS = {
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {"reset_after": True}),
    "gru_cho": ("GRU", {"reset_after": False}),
}
#: Our gate names in Keras' column-block order: LSTM (i, f, c, o), GRU (z, r, h).
GATES = {"LSTM": ("update", "forget", "candidate", "output"), "GRU": ("update", "reset", "new")}


def from_keras(kernel, recurrent_kernel, bias=None, *, cell="lstm", dtype=None):
    """``Parameters`` of ``cell`` (``lstm``, ``gru`` or ``gru_cho``) from a Keras layer's
    ``get_weights()``: kernel (X, gates * H), recurrent_kernel (H, gates * H) and bias (None
    for ``use_bias=False``): (4H,) for the LSTM, (2, 3H) for ``GRU(reset_after=True)`` (the
    ``gru`` cell), (3H,) for ``reset_after=False`` (``gru_cho``). dtype: float32, float64 or
    None (the arrays' own). The arrays are copies."""
    dtype = float_dtype(dtype)
    cell = supported_cell(cell, KERAS_LAYERS, "Keras")
    kind, options = KERAS_LAYERS[cell.CELL]
    gates = GATES[kind]
    count = len(gates)
    kernel = float_array(kernel, "kernel")
    recurrent_kernel = float_array(recurrent_kernel, "recurrent_kernel")
    expect_ndim(kernel, 2, "kernel", f"(input_size, {count} * hidden_size)")
    expect_ndim(recurrent_kernel, 2, "recurrent_kernel", f"(hidden_size, {count} * hidden_size)")
    hidden_size = recurrent_kernel.shape[0]
    dtype = dtype if dtype is not None else np.result_type(kernel, recurrent_kernel)
    parameters = cell.Parameters(kernel.shape[0], hidden_size, dtype=dtype)
    weights = (
        blocks(kernel, gates, hidden_size, 1, "kernel"),
        blocks(recurrent_kernel, gates, hidden_size, 1, "recurrent_kernel"),
    )
    zeros = {gate: np.zeros(hidden_size) for gate in gates}
    biases = (zeros, zeros)
    if bias is not None:
        bias = float_array(bias, "bias")
        if options.get("reset_after"):
            if bias.shape != (2, count * hidden_size):
                raise ValueError(
                    f"bias must have shape (2, {count * hidden_size}) (input and recurrent "
                    f"bias of GRU(reset_after=True)), got {bias.shape}"
                )
            biases = tuple(blocks(b, gates, hidden_size, 0, "bias") for b in bias)
        else:
            expect_ndim(bias, 1, "bias", f"({count} * hidden_size,)")
            biases = (blocks(bias, gates, hidden_size, 0, "bias"), zeros)
    for gate in gates:
        for k, side in enumerate(("event", "hidden")):
            setattr(parameters, f"{side}_{gate}_weights", weights[k][gate].T.astype(dtype))
            setattr(parameters, f"{side}_{gate}_bias", biases[k][gate].astype(dtype))
    return parameters


def to_keras(parameters) -> tuple[np.ndarray, ...]:
    """``(kernel, recurrent_kernel, bias)`` for the Keras layer of ``parameters`` (its
    ``set_weights``): one bias, the sum of the event and hidden biases, except for ``gru``
    (``reset_after=True``), whose bias is (2, 3H) = [event biases, hidden biases]."""
    cell = supported_cell(cell_of(parameters), KERAS_LAYERS, "Keras")
    kind, options = KERAS_LAYERS[cell.CELL]
    gates = GATES[kind]
    only_zero(parameters, gate_names(gates), "Keras")
    arrays = parameters.arrays()
    kernel = np.concatenate([arrays[f"event_{g}_weights"].T for g in gates], axis=1)
    recurrent = np.concatenate([arrays[f"hidden_{g}_weights"].T for g in gates], axis=1)
    event = np.concatenate([arrays[f"event_{g}_bias"] for g in gates])
    hidden = np.concatenate([arrays[f"hidden_{g}_bias"] for g in gates])
    bias = np.stack([event, hidden]) if options.get("reset_after") else event + hidden
    dtype = np.result_type(kernel, recurrent)
    return kernel, recurrent, bias.astype(dtype, copy=False)


# -- layer objects ------------------------------------------------------------------------------


def _activation_name(function) -> str:
    return getattr(function, "__name__", type(function).__name__)


def _cell_of_layer(layer) -> str:
    kind = type(layer).__name__
    if kind not in ("LSTM", "GRU"):
        raise TypeError(
            f"layer must be a Keras LSTM, GRU or Bidirectional of one, got {kind} "
            "(the cells have no counterpart for other layers)"
        )
    inner = getattr(layer, "cell", None)
    if inner is None:
        raise TypeError(f"layer: a {kind} without a cell attribute is not a Keras 3 layer")
    for attribute, expected in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        name = _activation_name(getattr(inner, attribute))
        if name != expected:
            raise ValueError(
                f"layer {layer.name!r}: {attribute}={name!r}: the cells compute "
                f"{attribute}={expected!r} only"
            )
    if kind == "LSTM":
        return "lstm"
    return "gru" if inner.reset_after else "gru_cho"


def from_keras_layer(layer, *, dtype=None):
    """``Parameters`` from a built Keras 3 ``LSTM`` or ``GRU`` layer (``gru`` for
    ``reset_after=True``, ``gru_cho`` for False), or ``[forward, backward]`` from a
    ``Bidirectional`` one (``merge_mode="concat"``: :class:`lstm_sym.models.Recurrent`'s
    output). Activations other than the defaults are refused by name; dropout only acts in
    training, ``go_backwards`` only on the order of the events (reverse them to run such a
    layer alone). dtype: float32, float64 or None (the weights' own)."""
    dtype = float_dtype(dtype)
    if type(layer).__name__ == "Bidirectional":
        if layer.merge_mode != "concat":
            raise ValueError(
                f"layer {layer.name!r}: merge_mode={layer.merge_mode!r}: a bidirectional "
                "Recurrent concatenates the directions (merge_mode='concat')"
            )
        return [
            from_keras_layer(layer.forward_layer, dtype=dtype),
            from_keras_layer(layer.backward_layer, dtype=dtype),
        ]
    cell = _cell_of_layer(layer)
    weights = layer.get_weights()
    if not weights:
        raise ValueError(f"layer {layer.name!r} has no weights yet: build it or call it once")
    kernel, recurrent_kernel, *bias = weights
    return from_keras(kernel, recurrent_kernel, bias[0] if bias else None, cell=cell, dtype=dtype)


def to_keras_layer(parameters, **options):
    """A built Keras 3 layer computing ``parameters``' cell (``LSTM``, or ``GRU`` with the
    cell's ``reset_after``) with their weights, in their dtype. ``options`` go to the layer
    (e.g. ``return_sequences=True``, ``return_state=True``). Imports Keras: set
    ``KERAS_BACKEND`` before the first import of Keras."""
    import keras

    cell = supported_cell(cell_of(parameters), KERAS_LAYERS, "Keras")
    kind, selecting = KERAS_LAYERS[cell.CELL]
    weights = to_keras(parameters)
    dtype = str(weights[0].dtype)
    layer = getattr(keras.layers, kind)(
        parameters.hidden_size, dtype=options.pop("dtype", dtype), **selecting, **options
    )
    layer.build((None, None, parameters.event_size))
    layer.set_weights(list(weights))
    return layer
