"""Weights of every cell family to and from ONNX, Keras and PyTorch, exactly, both ways.

=============  ===============================  ======================  ======================
cell           ONNX node                        Keras 3 layer           PyTorch module
=============  ===============================  ======================  ======================
lstm           LSTM (P zero)                    LSTM                    nn.LSTM
peephole_lstm  LSTM with P                      --                      nn.LSTM (peepholes 0)
lstm_cifg      LSTM, input_forget=1             --                      --
gru            GRU, linear_before_reset=1       GRU(reset_after=True)   nn.GRU
gru_cho        GRU, linear_before_reset=0       GRU(reset_after=False)  --
lstmp          --                               --                      nn.LSTM(proj_size=P)
=============  ===============================  ======================  ======================

- ONNX (:mod:`lstm_sym.interop.onnx`): :func:`from_onnx` / :func:`to_onnx` for the arrays;
  (:mod:`lstm_sym.interop.onnx_model`) :func:`read_onnx` / :func:`write_onnx` for a node of an
  ``.onnx`` file (the ``onnx`` package is needed for those two only).
- Keras (:mod:`lstm_sym.interop.keras`): :func:`from_keras` / :func:`to_keras` for
  ``get_weights()`` / ``set_weights()``, :func:`from_keras_layer` for a layer object,
  :func:`to_keras_layer` to build one (imports Keras).
- PyTorch (:mod:`lstm_sym.interop.torch`): :func:`from_torch` / :func:`to_torch` (state dicts),
  :func:`to_torch_module` (imports PyTorch). Stacked and bidirectional modules load whole with
  :meth:`lstm_sym.models.Recurrent.from_torch`.

Attributes a cell cannot compute (ONNX ``clip``, other activations; Keras activations other
than tanh and sigmoid) are refused by name, never converted approximately.
"""

from __future__ import annotations

from .keras import KERAS_LAYERS, from_keras, from_keras_layer, to_keras, to_keras_layer
from .onnx import OPERATORS, from_onnx, onnx_operator, to_onnx
from .onnx_model import OnnxRecurrent, read_onnx, write_onnx
from .torch import TORCH_MODULES, from_torch, to_torch, to_torch_module

#: Our gate names in Keras' LSTM column-block order (i, f, c, o).
KERAS_GATES = ("update", "forget", "candidate", "output")
#: Our gate names in ONNX's LSTM row-block order (i, o, f, c).
ONNX_GATES = ("update", "output", "forget", "candidate")
#: Our per-unit peephole attributes in ONNX's ``P`` order (p_i, p_o, p_f).
ONNX_PEEPHOLES = ("peephole_update", "peephole_output", "peephole_forget")

__all__ = [
    "KERAS_GATES",
    "KERAS_LAYERS",
    "ONNX_GATES",
    "ONNX_PEEPHOLES",
    "OPERATORS",
    "TORCH_MODULES",
    "OnnxRecurrent",
    "from_keras",
    "from_keras_layer",
    "from_onnx",
    "from_torch",
    "onnx_operator",
    "read_onnx",
    "to_keras",
    "to_keras_layer",
    "to_onnx",
    "to_torch",
    "to_torch_module",
    "write_onnx",
]
