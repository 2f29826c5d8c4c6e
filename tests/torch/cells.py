"""The generated NumPy module of any cell the eager references cover (the example user cell
generated once into a temporary directory) and a random problem on it, as torch tensors."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import sys
from functools import cache
from pathlib import Path

import numpy as np

from lstm_sym.cells import CELLS
from lstm_sym.spec import initial_values
from tests.support import ROOT


@cache
def _user_cell(directory: str):
    from lstm_sym.cli import main

    out = Path(directory)
    assert main(
        ["generate", "--spec", str(ROOT / "examples" / "cells" / "mgu.py"), "--out", str(out)]
    ) in (0, None)
    loader = importlib.util.spec_from_file_location("_torch_reference_mgu", out / "mgu.py")
    module = importlib.util.module_from_spec(loader)
    sys.modules[loader.name] = module
    loader.loader.exec_module(module)
    return module


def numpy_module(cell: str, tmp_path_factory):
    if cell == "mgu":
        return _user_cell(str(tmp_path_factory.getbasetemp() / "mgu_generated"))
    return importlib.import_module(f"lstm_sym.kernels.{cell}")


def random_problem(module, steps, batch, event_size, hidden_size, projection_size=None, seed=0):
    """Parameters (N(0, 0.5), biases as vectors), events, initial states by short name, output
    and final-state cotangents, all float64 NumPy."""
    rng = np.random.default_rng(seed)
    options = {} if projection_size is None else {"projection_size": projection_size}
    parameters = module.Parameters(event_size, hidden_size, **options)
    for name in parameters.NAMES:
        shape = (hidden_size,) if name.endswith("_bias") else np.shape(getattr(parameters, name))
        setattr(parameters, name, rng.normal(0.0, 0.5, size=shape))
    shorts = [name[:-1] for name in inspect.signature(module.forward).parameters if name[-1] == "0"]
    sizes = [
        projection_size if (s == "hidden" and projection_size) else hidden_size
        for s in module.STATES
    ]
    events = rng.normal(size=(steps, batch, event_size))
    # A built-in cell's positive states (sLSTM's normalizer) start positive, as tests/problems.py
    declared = {s.short: s for s in CELLS[module.CELL].states} if module.CELL in CELLS else {}
    states = {short: rng.normal(size=(batch, size)) for short, size in zip(shorts, sizes)}
    states = {k: initial_values(declared[k], v) if k in declared else v for k, v in states.items()}
    d_outputs = rng.normal(size=(steps, batch, sizes[0]))
    d_lasts = {short: rng.normal(size=(batch, size)) for short, size in zip(shorts, sizes)}
    return parameters, events, states, d_outputs, d_lasts


def abi_arrays(values, names, parameters):
    """The C ABI's parameter arrays (``names``, the reference's weight order) of ``values`` (a
    NumPy ``Parameters`` or ``Gradients``, shaped as ``parameters``): the stacked arrays (four,
    or two for a cell without hidden parts), then the rest by name."""
    holder = copy.copy(parameters)
    for name in parameters.NAMES:
        setattr(holder, name, getattr(values, name))
    stacked = holder.stacked(np.float64)
    return (*stacked, *(getattr(holder, n) for n in names[len(stacked) :]))
