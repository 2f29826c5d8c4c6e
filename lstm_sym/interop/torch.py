"""PyTorch ``nn.LSTM``, ``nn.GRU`` and ``nn.LSTM(proj_size=P)``: state dicts and modules.

======  =======================  ======================================================
cell    PyTorch module           keys (per layer k, ``_reverse`` for the reverse direction)
======  =======================  ======================================================
lstm    nn.LSTM                  weight_ih_lk, weight_hh_lk, bias_ih_lk, bias_hh_lk;
                                 rows i, f, g, o = update, forget, candidate, output
gru     nn.GRU                   the same keys; rows r, z, n = reset, update, new
lstmp   nn.LSTM(proj_size=P)     the LSTM's keys and weight_hr_lk = projection_weights
======  =======================  ======================================================

Every generated ``Parameters`` has ``from_torch`` and ``to_torch_state_dict`` (gates are stacked
in PyTorch's order, so the arrays map one to one: exact both ways); these functions pick the
cell from the module or state dict, so all three families convert alike. ``peephole_lstm``
(and any cell with the LSTM's four gates) also reads an ``nn.LSTM``, its peepholes zero.
A stacked or bidirectional module loads whole with :meth:`lstm_sym.models.Recurrent.from_torch`.
Nothing here imports PyTorch but :func:`to_torch_module`.
"""

from __future__ import annotations

from ._common import cell_of, directions_of, resolve_cell, supported_cell

#: Each cell a PyTorch module expresses: the module's class and the options that select it.
TORCH_MODULES = {
    "lstm": ("LSTM", {}),
    "peephole_lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
    "lstmp": ("LSTM", {"proj_size": "projection_size"}),
}


def _torch_cell(module_or_state_dict) -> str:
    """The cell a module or state dict computes: its class, else its keys and shapes."""
    kind = type(module_or_state_dict).__name__
    if kind == "GRU":
        return "gru"
    if kind == "LSTM":
        return "lstmp" if getattr(module_or_state_dict, "proj_size", 0) else "lstm"
    if kind in ("RNN", "RNNBase"):
        raise ValueError(f"module_or_state_dict: PyTorch's {kind} has no cell here")
    arrays = resolve_cell("lstm").Parameters._torch_arrays(module_or_state_dict)
    if any(key.startswith("weight_hr_l") for key in arrays):
        return "lstmp"
    hh = next((arrays[key] for key in sorted(arrays) if key.startswith("weight_hh_l")), None)
    if hh is not None and hh.ndim == 2 and hh.shape[0] == 3 * hh.shape[1]:
        return "gru"
    return "lstm"


def from_torch(module_or_state_dict, *, cell=None, layer=None, reverse=False, dtype=None):
    """``Parameters`` of one layer and direction of an ``nn.LSTM``, ``nn.GRU`` or
    ``nn.LSTM(proj_size=P)`` (or its ``state_dict()``): ``cell`` None picks ``lstm``, ``gru``
    or ``lstmp`` from the module (a state dict: from its keys and shapes). ``layer``,
    ``reverse`` and ``dtype`` as for ``Parameters.from_torch``."""
    cell = resolve_cell(cell if cell is not None else _torch_cell(module_or_state_dict))
    return cell.Parameters.from_torch(
        module_or_state_dict, layer=layer, reverse=reverse, dtype=dtype
    )


def to_torch(parameters, *, layer=0, reverse=False, dtype=None) -> dict:
    """``parameters.to_torch_state_dict(...)``: the arrays under PyTorch's key names (NumPy
    copies) for the module :func:`to_torch_module` builds."""
    supported_cell(cell_of(parameters), TORCH_MODULES, "PyTorch")
    return parameters.to_torch_state_dict(layer=layer, reverse=reverse, dtype=dtype)


def to_torch_module(parameters):
    """An ``nn.LSTM``, ``nn.GRU`` or ``nn.LSTM(proj_size=P)`` holding one ``Parameters`` or two
    (forward and reverse: ``bidirectional=True``), in their dtype. Imports PyTorch."""
    import numpy as np
    import torch

    directions = directions_of(parameters)
    cell = supported_cell(cell_of(directions[0]), TORCH_MODULES, "PyTorch")
    kind, selecting = TORCH_MODULES[cell.CELL]
    first = directions[0]
    state = {}
    for d, p in enumerate(directions):
        state.update(to_torch(p, reverse=bool(d)))
    dtype = next(iter(state.values())).dtype
    options = {key: getattr(first, size) for key, size in selecting.items()}
    module = getattr(torch.nn, kind)(
        first.event_size,
        first.hidden_size,
        bidirectional=len(directions) == 2,
        dtype=torch.float64 if dtype == np.float64 else torch.float32,
        **options,
    )
    module.load_state_dict({key: torch.from_numpy(value) for key, value in state.items()})
    return module
