"""The derivation detects symbolically when a cell's state update is affine in the previous state
with coefficients free of it (minGRU, minLSTM): the condition for a time-parallel scan."""

from __future__ import annotations

import pytest

from lstm_sym.cells import CELLS, get
from lstm_sym.derive import derive
from lstm_sym.functions import relu, sigmoid
from lstm_sym.scan import affine_recurrence
from lstm_sym.spec import CellSpec, State, gate_symbols, real_symbol

h_prev, h = real_symbol("hidden_prev"), real_symbol("hidden")
z, c, p = real_symbol("z"), real_symbol("c"), real_symbol("p")


def _cell(equations, gates=("z", "c"), parameters=()):
    return CellSpec(
        name="x",
        title="x",
        gates=gates,
        states=(State("hidden", "h", h_prev, h),),
        output=h,
        recurrent=h_prev,
        equations=tuple(equations),
        unit_parameters=parameters,
    )


def test_mingru_and_minlstm_are_the_only_built_in_scans():
    found = [name for name in CELLS if affine_recurrence(derive(get(name))) is not None]
    assert found == ["mingru", "minlstm"]


def test_mingru_s_coefficients_are_the_paper_s():
    scan = affine_recurrence(derive(get("mingru")))
    update, candidate = real_symbol("update"), real_symbol("candidate")
    assert scan.coefficient == 1 - update and scan.offset == update * candidate


def test_minlstm_s_coefficients_are_the_normalized_gates():
    scan = affine_recurrence(derive(get("minlstm")))
    assert scan.coefficient == real_symbol("forget_norm")
    assert scan.offset == real_symbol("update_norm") * real_symbol("candidate")


def test_a_per_unit_parameter_may_be_the_coefficient():
    event, _ = gate_symbols(("c",))
    scan = affine_recurrence(
        derive(_cell([(h, sigmoid(p) * h_prev + event.c)], gates=("c",), parameters=(p,)))
    )
    # sigma(p) is a named intermediate of the step (the lowering names nested activations)
    assert scan is not None and scan.coefficient == real_symbol("sigmoid_p")
    assert scan.offset == real_symbol("c_pre")


@pytest.mark.parametrize(
    "case",
    ["gate reads h_prev", "quadratic", "relu", "hidden projection"],
)
def test_updates_that_are_not_affine_with_free_coefficients_are_no_scan(case):
    event, hidden = gate_symbols(("z", "c"))
    equations = {
        # the coefficient z depends on h_prev (per unit): not a scan
        "gate reads h_prev": [
            (z, sigmoid(event.z + p * h_prev)),
            (c, event.c),
            (h, (1 - z) * h_prev + z * c),
        ],
        "quadratic": [(z, sigmoid(event.z)), (c, event.c), (h, z * h_prev**2 + c)],
        "relu": [(z, sigmoid(event.z)), (c, event.c), (h, relu(z * h_prev + c))],
        # a hidden projection mixes the previous state across units
        "hidden projection": [
            (z, sigmoid(event.z + hidden.z)),
            (c, event.c),
            (h, (1 - z) * h_prev + z * c),
        ],
    }[case]
    parameters = (p,) if case == "gate reads h_prev" else ()
    assert affine_recurrence(derive(_cell(equations, parameters=parameters))) is None
