"""PyTorch's nn.LSTM, nn.GRU and nn.LSTM(proj_size=P) through ``lstm_sym.interop`` (issue 16):
the cell is picked from the module, the conversion is exact both ways and the cells give the
modules' outputs and final states."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from generated import gru, lstm, lstmp
from lstm_sym import interop
from tests.conftest import require_module
from tests.support import relative_error

STEPS, BATCH, EVENT, HIDDEN, PROJECTION = 6, 3, 4, 5, 2
TOLERANCE = {np.float64: 1e-13, np.float32: 1e-5}


def module_for(torch, cell, dtype):
    torch.manual_seed(16)
    kind, options = interop.TORCH_MODULES[cell]
    sizes = {key: PROJECTION for key in options}
    module = getattr(torch.nn, kind)(EVENT, HIDDEN, **sizes)
    return module.double() if dtype == np.float64 else module


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("cell", "module_of"), [("lstm", lstm), ("gru", gru), ("lstmp", lstmp)])
def test_the_cells_give_the_torch_modules_outputs_and_final_states(cell, module_of, dtype):
    torch = require_module("torch")
    module = module_for(torch, cell, dtype)
    parameters = interop.from_torch(module)
    assert isinstance(parameters, module_of.Parameters)
    assert parameters.event_update_weights.dtype == dtype
    rng = np.random.default_rng(4)
    x = rng.normal(size=(STEPS, BATCH, EVENT)).astype(dtype)
    ours, lasts, _ = module_of.forward(parameters, x)
    lasts = lasts if isinstance(lasts, tuple) else (lasts,)
    with torch.no_grad(), warnings.catch_warnings():
        # float32 nn.LSTM(proj_size) says it runs PyTorch's own implementation, not oneDNN's
        warnings.filterwarnings("ignore", "LSTM with projections is not supported with oneDNN")
        theirs, finals = module(torch.from_numpy(x))
    finals = finals if isinstance(finals, tuple) else (finals,)
    assert relative_error(ours, theirs.numpy()) <= TOLERANCE[dtype]
    for got, expected in zip(lasts, finals, strict=True):
        assert got.dtype == dtype
        assert relative_error(got, expected[0].numpy()) <= TOLERANCE[dtype]


@pytest.mark.parametrize("cell", ["lstm", "gru", "lstmp"])
def test_torch_modules_convert_bit_for_bit_both_ways(cell, random_problem):
    torch = require_module("torch")
    module = module_for(torch, cell, np.float32)
    state = interop.to_torch(interop.from_torch(module.state_dict()))
    assert list(state) == list(module.state_dict())
    for key, value in module.state_dict().items():
        assert state[key].dtype == np.float32
        np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)
    sizes = {"projection_size": PROJECTION} if cell == "lstmp" else {}
    ours = random_problem(cell, 1, 1, EVENT, HIDDEN, seed=5, scale=1.0, **sizes).parameters
    built = interop.to_torch_module(ours)
    assert type(built).__name__ == interop.TORCH_MODULES[cell][0]
    again = interop.from_torch(built)
    for name in ours.NAMES:
        np.testing.assert_array_equal(again.checked(name), ours.checked(name), err_msg=name)
        assert again.checked(name).dtype == np.float64


def test_a_bidirectional_torch_module_built_from_two_cells_gives_recurrents_outputs(
    random_problem,
):
    torch = require_module("torch")
    from lstm_sym.models import Recurrent

    cells = [random_problem(gru, 1, 1, EVENT, HIDDEN, seed=s, scale=1.0).parameters for s in (1, 2)]
    module = interop.to_torch_module(cells)
    assert module.bidirectional and module.weight_ih_l0.dtype == torch.float64
    x = np.random.default_rng(6).normal(size=(STEPS, BATCH, EVENT))
    with torch.no_grad():
        theirs, h_n = module(torch.from_numpy(x))
    ours, finals, _ = Recurrent.from_parameters([cells]).forward(x)
    assert relative_error(ours, theirs.numpy()) <= 1e-13
    assert relative_error(finals, h_n.numpy()) <= 1e-13


def test_the_cell_follows_from_a_state_dict_and_other_cells_are_refused(random_problem):
    keys = ("weight_ih_l0", "weight_hh_l0")
    gru_state = dict(zip(keys, (np.zeros((9, 2)), np.zeros((9, 3)))))
    lstm_state = dict(zip(keys, (np.zeros((12, 2)), np.zeros((12, 3)))))
    assert isinstance(interop.from_torch(gru_state), gru.Parameters)
    assert isinstance(interop.from_torch(lstm_state), lstm.Parameters)
    projected = dict(zip(keys, (np.zeros((12, 2)), np.zeros((12, 1))))) | {
        "weight_hr_l0": np.zeros((1, 3))
    }
    assert isinstance(interop.from_torch(projected), lstmp.Parameters)
    with pytest.raises(ValueError, match="PyTorch has no layer for the 'gru_cho' cell"):
        interop.to_torch(random_problem("gru_cho", 1, 1, 2, 3).parameters)
