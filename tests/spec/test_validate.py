"""Spec validation: errors name the equation; a projected state and hidden sources (a gate's
hidden projection reading values of the step) are checked before anything is derived."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from lstm_sym.cells import get
from lstm_sym.functions import sigmoid
from lstm_sym.spec import CellSpec, SpecError, State, gate_symbols, real_symbol, validate


def test_validate_names_the_equation():
    event, hidden = gate_symbols(("g",))
    h_prev, h = real_symbol("hidden_prev"), real_symbol("hidden")
    spec = CellSpec(
        name="x",
        title="x",
        gates=("g",),
        states=(State("hidden", "h", h_prev, h),),
        output=h,
        recurrent=h_prev,
        equations=((h, sigmoid(event.g + hidden.g) * sp.Symbol("y", real=True)),),
    )
    with pytest.raises(SpecError, match=r"equation 1 \(hidden = .*unknown symbol\(s\) y"):
        validate(spec)


def test_projected_state_spec_errors():
    event, hidden = gate_symbols(("g",))
    h_prev, h, m = real_symbol("hidden_prev"), real_symbol("hidden"), real_symbol("m")
    state = State("hidden", "h", h_prev, h, projection=m)

    def spec(equations, states=(state,)):
        return CellSpec(
            name="x",
            title="x",
            gates=("g",),
            states=states,
            output=h,
            recurrent=h_prev,
            equations=equations,
        )

    validate(spec(((m, sp.tanh(event.g + hidden.g)),)))
    with pytest.raises(SpecError, match=r"equation 1 .*projected state hidden"):
        validate(spec(((m, sp.tanh(event.g + hidden.g) * h_prev),)))
    with pytest.raises(SpecError, match=r"equation 1 .*projected state hidden"):
        validate(spec(((h, sp.tanh(event.g + hidden.g)),)))
    with pytest.raises(SpecError, match="never updated"):
        validate(spec(((real_symbol("y"), sp.tanh(event.g + hidden.g)),)))


def _sourced_spec(sources, equations=None):
    event, hidden = gate_symbols(("reset", "new"))
    h_prev, h = real_symbol("hidden_prev"), real_symbol("hidden")
    r, n, s = real_symbol("reset"), real_symbol("new"), real_symbol("reset_state")
    if equations is None:
        equations = (
            (r, sigmoid(event.reset + hidden.reset)),
            (s, r * h_prev),
            (n, sp.tanh(event.new + hidden.new)),
            (h, (n + h_prev) / 2),
        )
    symbols = {"s": s, "h": h, "h_prev": h_prev, "r": r}
    return CellSpec(
        name="sourced",
        title="t",
        gates=("reset", "new"),
        states=(State("hidden", "h", h_prev, h),),
        output=h,
        recurrent=h_prev,
        equations=equations,
        hidden_sources={
            g: tuple(symbols.get(x, x) for x in v) if isinstance(v, tuple) else symbols.get(v, v)
            for g, v in sources.items()
        },
    )


def test_hidden_sources_valid_spec_passes():
    validate(_sourced_spec({"new": "s"}))


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ({"newer": "s"}, "'newer' is not a gate"),
        ({"new": "h"}, r"hidden_sources\['new'\] = hidden: the source hidden is the new value"),
        ({"new": "h_prev"}, r"hidden_sources\['new'\] = hidden_prev: .* default source tuple"),
        ({"new": real_symbol("nowhere")}, "no equation assigns the source nowhere"),
        ({"reset": "s"}, "reads reset_hidden"),
        # Tuples: previous states and values of the step side by side
        (
            {"new": ("s", "s")},
            r"hidden_sources\['new'\] = \(reset_state, reset_state\): .* repeats",
        ),
        (
            {"new": ("s", real_symbol("nowhere"))},
            r"hidden_sources\['new'\] = .*: no equation assigns the source nowhere",
        ),
        ({"new": ("s", "h")}, "the source hidden is the new value of state hidden"),
        ({"new": ()}, "non-empty tuple"),
        ({"new": ("s", "x")}, "must be a Symbol"),
        ({"reset": ("h_prev", "s")}, "reads reset_hidden"),
    ],
)
def test_hidden_sources_errors_name_the_problem(sources, message):
    with pytest.raises(SpecError, match=message):
        validate(_sourced_spec(sources))


def test_hidden_source_tuples_of_previous_states_and_step_values_pass():
    validate(_sourced_spec({"new": ("h_prev", "s")}))
    validate(_sourced_spec({"new": ("s", "h_prev")}))


def test_projected_state_prev_as_a_hidden_source_is_refused():
    spec = get("lstmp")
    h_prev, c_prev = real_symbol("hidden_prev"), real_symbol("cell_prev")
    bad = CellSpec(
        **{
            **{f: getattr(spec, f) for f in ("name", "title", "gates", "states", "output")},
            "recurrent": spec.recurrent,
            "equations": spec.equations,
            "hidden_sources": {"forget": (c_prev, h_prev)},
        }
    )
    with pytest.raises(
        SpecError,
        match=r"hidden_sources\['forget'\] = \(cell_prev, hidden_prev\): hidden_prev is the "
        r"previous value of the projected state hidden",
    ):
        validate(bad)


def test_exp_logsigmoid_and_max_of_two_are_accepted_and_others_named():
    from lstm_sym.functions import logsigmoid

    event, hidden = gate_symbols(("g",))
    h_prev, h, m = real_symbol("hidden_prev"), real_symbol("hidden"), real_symbol("m")

    def spec(expr):
        return CellSpec(
            name="x",
            title="x",
            gates=("g",),
            states=(State("hidden", "h", h_prev, h),),
            output=h,
            recurrent=h_prev,
            equations=((m, expr), (h, sp.exp(m - h_prev))),
        )

    pre = event.g + hidden.g
    validate(spec(sp.Max(logsigmoid(pre) + h_prev, pre)))
    for bad, name in (
        (sp.Max(pre, h_prev, 2 * pre), "3 arguments"),
        (sp.Min(pre, h_prev), "Min"),
        (sp.log(sigmoid(pre)), "log"),
    ):
        with pytest.raises(SpecError, match=rf"equation 1 \(m = .*{name}"):
            validate(spec(bad))


def test_a_stabilizer_names_states_of_the_cell():
    spec = get("slstm")
    validate(spec)
    bad = ({"stabilizer": ("cell", "memory")}, {"stab": ("cell",)}, {"cell": ()}, ("cell",))
    for stabilizer in bad:
        with pytest.raises(SpecError, match="stabilizer"):
            validate(dataclasses.replace(spec, stabilizer=stabilizer))


@pytest.mark.parametrize(
    ("module_init", "message"),
    [
        ({"cell_scale": 1, "not_a_parameter": 0}, "'not_a_parameter', which is not a unit"),
        ({"cell_scale": float("inf")}, "module_init['cell_scale'] must be a finite real number"),
        ({"cell_scale": "one"}, "module_init['cell_scale'] must be a finite real number"),
        ([("cell_scale", 1)], "module_init must be a dict"),
    ],
)
def test_module_init_names_unit_parameters_and_finite_numbers(module_init, message):
    spec = dataclasses.replace(get("lstm_ln"), module_init=module_init)
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(spec)
