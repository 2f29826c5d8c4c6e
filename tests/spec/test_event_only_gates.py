"""Gates that read the event alone (IndRNN, minGRU, minLSTM): the spec says so by never reading a
gate's hidden part, and then nothing hidden exists anywhere -- no array in the plan, the ABI or
``Parameters``, and no hidden product printed by any emitter. And relu, a spec function whose
derivative SymPy derives (0 at 0, as PyTorch's relu backward)."""

from __future__ import annotations

import json

import pytest
import sympy as sp

from lstm_sym.cells import CELLS, get
from lstm_sym.codegen import c_api, c_module, numpy_module, torch_module
from lstm_sym.functions import relu
from lstm_sym.plan import plan_cell
from lstm_sym.spec import CellSpec, SpecError, State, gate_symbols, real_symbol, validate

EVENT_ONLY = ("indrnn", "mingru", "minlstm")


def test_the_event_only_cells_are_exactly_those_without_hidden_parts():
    assert [name for name in CELLS if not get(name).hidden_parts] == list(EVENT_ONLY)


@pytest.mark.parametrize("name", EVENT_ONLY)
def test_a_cell_without_hidden_parts_has_no_hidden_array_or_product_anywhere(name):
    kernel = plan_cell(get(name))
    assert not kernel.hidden and not kernel.recurrent_runs and not kernel.runs
    assert not [b.name for b in kernel.buffers if "hidden" in b.name and b.name != "hidden_states"]
    assert all(a.name.startswith("event_") or a.role == "attribute" for a in kernel.attributes)
    assert [p.name for p in kernel.products] == ["event_projection", "d_event_weights"]
    abi = json.loads(c_api.emit_abi(get(name)))
    assert "hidden_weights" not in json.dumps(abi) and "hidden_bias" not in json.dumps(abi)
    sources = {
        "NumPy": numpy_module.emit(kernel),
        "torch": torch_module.emit(kernel),
        "C": c_module.emit_source(kernel),
        "C header": c_module.emit_header(kernel),
    }
    for language, source in sources.items():
        for word in ("hidden_weights", "hidden_bias", "hidden_projection", "delta_hidden"):
            assert word not in source, (language, word)


def test_a_cell_with_hidden_parts_keeps_them():
    kernel = plan_cell(get("gru"))
    assert kernel.hidden and {"hidden_weights", "hidden_bias"} <= {b.name for b in kernel.buffers}


def test_a_projected_state_needs_a_gate_that_reads_its_hidden_part():
    event, _ = gate_symbols(("g",))
    h_prev, h, m = real_symbol("hidden_prev"), real_symbol("hidden"), real_symbol("m")
    spec = CellSpec(
        name="x",
        title="x",
        gates=("g",),
        states=(State("hidden", "h", h_prev, h, projection=m),),
        output=h,
        recurrent=h_prev,
        equations=((m, relu(event.g)),),
    )
    with pytest.raises(SpecError, match=r"no gate reads its hidden part"):
        validate(spec)


def test_relu_s_derivative_is_derived_by_sympy_and_is_zero_at_zero():
    x = real_symbol("x")
    derivative = sp.diff(relu(x), x)
    # written through the saved value: the step of relu(x), 0 at 0
    assert derivative == sp.Heaviside(relu(x), 0)
    assert [derivative.subs(x, v) for v in (-1, 0, sp.Rational(1, 3))] == [0, 0, 1]
    # SymPy's own derivative of the piecewise definition agrees everywhere
    piecewise = sp.diff(sp.Piecewise((x, x > 0), (0, True)), x)
    for v in (-2, 0, sp.Rational(1, 7), 3):
        assert piecewise.subs(x, v) == derivative.subs(x, v)
    assert relu(sp.Float(-0.5)) == 0 and relu(sp.Float(0.25)) == sp.Float(0.25)
