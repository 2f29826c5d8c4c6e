"""The NumPy module of lstm_ln (layer norms over units: the plan's Reduce and Totals items),
emitted from the plan into a temporary folder (so these tests do not lean on the checked-in
generated file; the per-cell tests run that one), against the exact model, finite differences
and the hand-written fastrnns ``LayerNormLSTMCell`` with autograd
(tests/kernels/test_lstm_ln.py)."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest

from lstm_sym.cells import lstm_ln
from lstm_sym.codegen import numpy_module
from lstm_sym.codegen.pyformat import format_python
from lstm_sym.plan import plan_cell
from lstm_sym.verify import ExactModel
from tests.kernels.test_lstm_ln import (
    _layer_norm_lstm_cell,
    _torch,
    _torch_gradients,
)

SIZES = {"steps": 4, "batch": 3, "event_size": 2, "hidden_size": 3}


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    path = tmp_path_factory.mktemp("lstm_ln") / "lstm_ln.py"
    source = numpy_module.emit(plan_cell(lstm_ln.SPEC))
    path.write_text(format_python(source, "lstm_ln.py"))
    spec = importlib.util.spec_from_file_location("lstm_ln_emitted", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def _parameters(module, model, dtype=np.float64):
    parameters = module.Parameters(SIZES["event_size"], SIZES["hidden_size"], dtype=dtype)
    for name, value in model.parameters.items():
        setattr(parameters, name, np.asarray(value, dtype=dtype))
    return parameters


def _run(module, parameters, events, initial, cotangents, lengths=None, dtype=np.float64):
    outputs, (h, c), cache = module.forward(
        parameters,
        events.astype(dtype),
        h0=initial["h"].astype(dtype),
        c0=initial["c"].astype(dtype),
        lengths=lengths,
    )
    grads = module.backward(
        cache,
        cotangents["outputs"].astype(dtype),
        d_h_last=cotangents["h"].astype(dtype),
        d_c_last=cotangents["c"].astype(dtype),
    )
    return outputs, {"h": h, "c": c}, grads


@pytest.mark.parametrize("lengths", [None, (1, 4, 2)], ids=["full", "lengths"])
def test_the_numpy_module_equals_the_exact_model(module, lengths):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=3, lengths=lengths)
    outputs, finals, grads = _run(
        module,
        _parameters(module, model),
        model.events,
        model.initial,
        model.cotangents,
        None if lengths is None else np.array(lengths),
    )
    np.testing.assert_allclose(outputs, model.outputs, rtol=0, atol=1e-13)
    for short in ("h", "c"):
        np.testing.assert_allclose(finals[short], model.finals[short], rtol=0, atol=1e-13)
    for name, expected in model.gradients.items():
        np.testing.assert_allclose(
            getattr(grads, name), expected, rtol=1e-11, atol=1e-12, err_msg=name
        )


def test_float32_follows_float64_to_float32_rounding(module):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=5)
    run = {
        dtype: _run(
            module,
            _parameters(module, model, dtype),
            model.events,
            model.initial,
            model.cotangents,
            dtype=dtype,
        )
        for dtype in (np.float32, np.float64)
    }
    assert run[np.float32][0].dtype == np.float32
    np.testing.assert_allclose(run[np.float32][0], model.outputs, rtol=0, atol=2e-5)
    for name, expected in model.gradients.items():
        got = getattr(run[np.float32][2], name)
        assert got.dtype == np.float32, name
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(got - expected).max() <= 1e-4 * scale, name


def test_central_finite_differences_of_the_numpy_forward_equal_its_backward(module):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=8)
    parameters = _parameters(module, model)
    cot = model.cotangents
    _, _, grads = _run(module, parameters, model.events, model.initial, cot)

    def loss(events):
        outputs, (h, c), _ = module.forward(
            parameters, events, h0=model.initial["h"], c0=model.initial["c"], cache=False
        )
        return (outputs * cot["outputs"]).sum() + (h * cot["h"]).sum() + (c * cot["c"]).sum()

    step = 1e-6
    for index in np.ndindex(*model.events.shape):
        plus, minus = model.events.copy(), model.events.copy()
        plus[index] += step
        minus[index] -= step
        estimate = (loss(plus) - loss(minus)) / (2 * step)
        assert abs(estimate - grads.events[index]) < 1e-7, index


@pytest.mark.parametrize("lengths", [None, (2, 4, 1)], ids=["full", "lengths"])
def test_inference_equals_the_training_forward_bit_for_bit(module, lengths):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=9)
    parameters = _parameters(module, model)
    lengths = None if lengths is None else np.array(lengths)
    initial = {"h0": model.initial["h"], "c0": model.initial["c"]}
    trained = module.forward(parameters, model.events, **initial, lengths=lengths)
    inferred = module.forward(parameters, model.events, **initial, lengths=lengths, cache=False)
    assert inferred[2] is None
    np.testing.assert_array_equal(inferred[0], trained[0])
    for got, expected in zip(inferred[1], trained[1], strict=True):
        np.testing.assert_array_equal(got, expected)


def test_step_equals_forward_over_the_sequence(module):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=10)
    parameters = _parameters(module, model)
    outputs, finals, _ = module.forward(
        parameters, model.events, h0=model.initial["h"], c0=model.initial["c"]
    )
    state = (model.initial["h"], model.initial["c"])
    for t in range(SIZES["steps"]):
        output, state = module.step(parameters, model.events[t], state)
        np.testing.assert_allclose(output, outputs[t], rtol=0, atol=1e-14)
    for got, expected in zip(state, finals, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("lengths", [None, (3, 1, 4)], ids=["full", "lengths"])
def test_from_torch_runs_as_the_fastrnns_cell_with_autograd(module, lengths):
    torch = _torch()
    torch.manual_seed(0)
    cell = _layer_norm_lstm_cell(torch, SIZES["event_size"], SIZES["hidden_size"], 1e-5, False)
    with torch.no_grad():  # LayerNorm starts at weight 1, bias 0: draw them too
        for norm in (cell.layernorm_i, cell.layernorm_h, cell.layernorm_c):
            norm.weight.normal_()
            norm.bias.normal_()
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=12)  # events, states, cotangents
    leaves = {"events": model.events, "h0": model.initial["h"], "c0": model.initial["c"]}
    parameters = module.Parameters.from_torch(cell)
    outputs, finals, grads = _run(
        module,
        parameters,
        model.events,
        model.initial,
        model.cotangents,
        None if lengths is None else np.array(lengths),
    )
    expected_outputs, expected_finals, expected = _torch_gradients(
        torch, cell, leaves, model.cotangents, lengths
    )
    np.testing.assert_allclose(outputs, expected_outputs, rtol=0, atol=1e-10)
    for short in ("h", "c"):
        np.testing.assert_allclose(finals[short], expected_finals[short], rtol=0, atol=1e-10)
    assert len(expected) == 3 + 2 * 4 + 4 * 4 + 2  # every tensor of the module, and the inputs
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(grads, name), value, rtol=0, atol=1e-10, err_msg=name)
    # and back: the module's own state dict, bit for bit
    written = parameters.to_torch_state_dict()
    state = {k: v.detach().numpy() for k, v in cell.state_dict().items()}
    assert sorted(written) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)


def test_torch_state_dicts_outside_the_recipe_are_refused_by_name(module):
    torch = _torch()
    with_biases = _layer_norm_lstm_cell(torch, 2, 3, 1e-5, True)
    with pytest.raises(ValueError, match="no counterpart for bias_hh, bias_ih"):
        module.Parameters.from_torch(with_biases)
    recipe = _layer_norm_lstm_cell(torch, 2, 3, 1e-5, False)
    state = dict(recipe.state_dict())
    del state["layernorm_c.bias"]
    with pytest.raises(ValueError, match=r"lacks layernorm_c\.bias"):
        module.Parameters.from_torch(state)
    state = dict(recipe.state_dict())
    state["layernorm_h.weight"] = state["layernorm_h.weight"][:-1]
    with pytest.raises(ValueError, match=r"layernorm_h.weight must have shape \(12,\)"):
        module.Parameters.from_torch(state)
    parameters = module.Parameters.from_torch(recipe)
    assert not np.any(parameters.event_forget_bias) and not np.any(parameters.hidden_output_bias)
    parameters.hidden_output_bias = np.ones(3)
    with pytest.raises(ValueError, match=r"parameters.hidden_output_bias: it must be zero"):
        parameters.to_torch_state_dict()
    with pytest.raises(ValueError, match="one cell"):
        module.Parameters.from_torch(recipe, layer=1)


def test_the_derivation_document_derives_the_reductions_and_compiles(tmp_path):
    from lstm_sym.codegen import latex_document
    from tests.conftest import require_tool

    text = latex_document.emit(plan_cell(lstm_ln.SPEC))
    assert r"\label{sec:reductions}" in text
    for label in (
        "eq:reduction-d-mean",
        "eq:reduction-d-variance",
        "eq:reduction-d-rstd",
        "eq:total-cell-norm-mean",
        "eq:total-hidden-norm-variance",
        "eq:reduction-event-norm-into-forget-event",
    ):
        assert rf"\label{{{label}}}" in text, label
    # SymPy's partials on the symbolic vector, as printed
    assert r"\frac{\partial \mu}{\partial v_{j}} &= \frac{1}{n}" in text
    require_tool("pdflatex")
    import subprocess

    (tmp_path / "lstm_ln.tex").write_text(text)
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "lstm_ln.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:]
