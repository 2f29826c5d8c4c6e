"""The torch emitter's time-parallel form of the affine cells (``forward_scan``/``backward_scan``
of ``<cell>_torch.py``) gives what its step loop gives, ``saved`` included (either backward takes
either forward's), with and without lengths, in float64 and float32."""

from __future__ import annotations

import importlib

import pytest

from tests.conftest import require_module
from tests.support import relative_error

torch = require_module("torch")

SCANS = ("mingru", "minlstm")


def _inputs(module, steps, dtype, seed):
    generator = torch.Generator().manual_seed(seed)
    batch, event_size, hidden_size = 3, 4, 5

    def normal(*shape, scale=1.0):
        return torch.randn(*shape, generator=generator, dtype=dtype) * scale

    gates = len(module.GATES)
    weights = (normal(gates * hidden_size, event_size, scale=0.6), normal(gates * hidden_size))
    events = normal(steps, batch, event_size)
    h0 = normal(batch, hidden_size)
    d_outputs, d_last = normal(steps, batch, hidden_size), normal(batch, hidden_size)
    return events, (h0,), weights, d_outputs, (d_last,)


def _max_error(got, want):
    pairs = [
        (got[0], want[0]),
        *zip(got[1], want[1], strict=True),
        *zip(got[2], want[2], strict=True),
    ]
    return max(relative_error(a.numpy(), b.numpy()) for a, b in pairs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("lengths", [None, [70, 1, 40]], ids=["full", "lengths"])
@pytest.mark.parametrize("name", SCANS)
def test_the_torch_scan_equals_the_torch_step_loop(name, lengths, dtype):
    module = importlib.import_module(f"generated.{name}_torch")
    events, initial, weights, d_outputs, d_finals = _inputs(module, 70, dtype, seed=3)
    lengths = None if lengths is None else torch.tensor(lengths)
    tolerance = 1e-12 if dtype == torch.float64 else 2e-5
    loop = module.forward(events, initial, weights, lengths)
    scan = module.forward_scan(events, initial, weights, lengths)
    assert _max_error(scan, loop) <= tolerance
    for forward_saved in (loop[2], scan[2]):  # either backward reads either forward's saved
        want = module.backward(
            events, initial, weights, lengths, forward_saved, d_outputs, d_finals
        )
        got = module.backward_scan(
            events, initial, weights, lengths, forward_saved, d_outputs, d_finals
        )
        assert _max_error(got, want) <= tolerance


def test_only_the_affine_cells_have_a_torch_scan():
    from lstm_sym.cells import CELLS

    for name in CELLS:
        module = importlib.import_module(f"generated.{name}_torch")
        assert hasattr(module, "forward_scan") == (name in SCANS), name
