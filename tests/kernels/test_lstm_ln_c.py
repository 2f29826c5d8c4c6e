"""The C kernels of lstm_ln (reductions over units: per row, the statistics in two passes before
the per-unit loop, the backward's totals likewise, earlier stages recomputed), emitted from the
plan with its NumPy module and the runtime into a temporary folder and loaded with
``native.load(..., directory=)`` (the per-cell tests run the checked-in files), against the
exact model in float64 and float32, the NumPy module, and its own training forward (inference
bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_sym import artifacts
from lstm_sym.cells import lstm_ln
from lstm_sym.codegen import c_api, c_module, numpy_module
from lstm_sym.codegen.pyformat import format_python
from lstm_sym.plan import plan_cell
from lstm_sym.verify import ExactModel
from tests.conftest import require_tool

SIZES = {"steps": 4, "batch": 3, "event_size": 2, "hidden_size": 3}


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    require_tool("gcc")
    from lstm_sym import native

    folder = tmp_path_factory.mktemp("lstm_ln_c")
    kernel = plan_cell(lstm_ln.SPEC)
    (folder / "lstm_ln.c").write_text(c_module.emit_source(kernel))
    (folder / "lstm_ln.h").write_text(c_module.emit_header(kernel))
    (folder / "lstm_ln.abi.json").write_text(c_api.emit_abi(lstm_ln.SPEC))
    source = format_python(numpy_module.emit(kernel), "lstm_ln.py")
    (folder / "lstm_ln.py").write_text(source)
    for artifact in artifacts.runtime_artifacts(str(folder)):
        (folder / artifact.path.rsplit("/", 1)[-1]).write_bytes(artifact.render())
    return native.load("lstm_ln", directory=folder)


def _parameters(cell, model, dtype):
    parameters = cell.Parameters(SIZES["event_size"], SIZES["hidden_size"], dtype=dtype)
    for name, value in model.parameters.items():
        setattr(parameters, name, np.asarray(value, dtype=dtype))
    return parameters


def _run(kernel, parameters, model, dtype, lengths=None):
    initial = {f"{s}0": v.astype(dtype) for s, v in model.initial.items()}
    outputs, finals, cache = kernel.forward(
        parameters, model.events.astype(dtype), **initial, lengths=lengths
    )
    cot = {k: v.astype(dtype) for k, v in model.cotangents.items()}
    grads = kernel.backward(cache, cot["outputs"], d_h_last=cot["h"], d_c_last=cot["c"])
    return outputs, dict(zip("hc", finals, strict=True)), grads


@pytest.mark.parametrize("lengths", [None, (1, 4, 2)], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_the_c_kernels_equal_the_exact_model(cell, dtype, lengths):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=21, lengths=lengths)
    parameters = _parameters(cell, model, dtype)
    outputs, finals, grads = _run(
        cell, parameters, model, dtype, None if lengths is None else np.array(lengths)
    )
    tolerance = 1e-13 if dtype == np.float64 else 2e-6
    assert outputs.dtype == dtype
    np.testing.assert_allclose(outputs, model.outputs, rtol=0, atol=tolerance)
    for short in ("h", "c"):
        np.testing.assert_allclose(finals[short], model.finals[short], rtol=0, atol=tolerance)
    for name, expected in model.gradients.items():
        got = getattr(grads, name)
        assert got.dtype == dtype, name
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(got - expected).max() <= 10 * tolerance * scale, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_the_c_kernels_equal_the_numpy_module(cell, dtype):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=22)
    c_run = _run(cell, _parameters(cell, model, dtype), model, dtype)
    numpy_run = _run(cell.module, _parameters(cell.module, model, dtype), model, dtype)
    tolerance = 1e-13 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(c_run[0], numpy_run[0], rtol=0, atol=tolerance)
    for name in model.gradients:
        np.testing.assert_allclose(
            getattr(c_run[2], name),
            getattr(numpy_run[2], name),
            rtol=0,
            atol=tolerance,
            err_msg=name,
        )


@pytest.mark.parametrize("lengths", [None, (3, 1, 4)], ids=["full", "lengths"])
def test_c_inference_and_step_equal_the_training_forward(cell, lengths):
    model = ExactModel(lstm_ln.SPEC, **SIZES, seed=23)
    parameters = _parameters(cell, model, np.float64)
    lengths = None if lengths is None else np.array(lengths)
    initial = {f"{s}0": v for s, v in model.initial.items()}
    trained = cell.forward(parameters, model.events, **initial, lengths=lengths)
    inferred = cell.forward(parameters, model.events, **initial, lengths=lengths, cache=False)
    np.testing.assert_array_equal(inferred[0], trained[0])
    for got, expected in zip(inferred[1], trained[1], strict=True):
        np.testing.assert_array_equal(got, expected)
    if lengths is None:
        state = (model.initial["h"], model.initial["c"])
        for t in range(SIZES["steps"]):
            output, state = cell.step(parameters, model.events[t], state)
            np.testing.assert_allclose(output, trained[0][t], rtol=0, atol=1e-14)
