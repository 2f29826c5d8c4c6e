"""Keras 3 LSTM and GRU layers (issue 16) against Keras itself: the cells give Keras' outputs,
weights and layer objects convert exactly both ways.

Keras runs in a process of its own (tests/scripts/keras_run.py) on the torch backend, chosen
there by ``KERAS_BACKEND`` before Keras is imported: the choice does not reach other tests, and
the backend installs without TensorFlow (the numpy backend imports jax and scipy, the jax
backend computes "float64" layers in float32 unless x64 is enabled). The torch backend computes
float64 layers in float64 with one exception: each case checks the dtype Keras reports for its
outputs and its compute dtype, and a float64 comparison at 1e-13 could not pass had Keras
computed in float32. The exception: Keras 3's ``ops.matmul`` computes two float64 tensors in
float32 (its dtype promotion maps 64-bit types to 32-bit "to be aligned with JAX's default");
LSTM and GRU(reset_after=True) multiply by the kernel variables, which stay float64, but
GRU(reset_after=False) multiplies by slices of the recurrent kernel, plain tensors: its float64
layer returns float64 arrays holding float32-rounded products (1.3e-7 from float64). That case
is compared with the float32 tolerance, and ``gru_cho`` is checked in float64 against Keras'
GRU equations written out instead.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from generated import gru, gru_cho, lstm
from lstm_sym import interop
from tests.conftest import require_installed, require_module
from tests.support import relative_error, run_script

BACKEND = "torch"
CELLS = {"lstm": lstm, "gru": gru, "gru_cho": gru_cho}
STEPS, BATCH, EVENT, UNITS = 7, 3, 4, 5
#: Largest relative error (max norm) against Keras: float64 to rounding, float32 to its own.
TOLERANCE = {"float64": 1e-13, "float32": 1e-5}
#: float64 layers Keras computes partly in float32 (see above): compared as float32.
PARTLY_FLOAT32 = {"gru_cho-float64"}


def keras_weights(rng, layer, reset_after, use_bias=True):
    gates = 4 if layer == "LSTM" else 3
    weights = [
        rng.normal(scale=0.5, size=(EVENT, gates * UNITS)),
        rng.normal(scale=0.5, size=(UNITS, gates * UNITS)),
    ]
    if use_bias:
        shape = (2, gates * UNITS) if layer == "GRU" and reset_after else (gates * UNITS,)
        weights.append(rng.normal(scale=0.5, size=shape))
    return weights


def make_cases():
    rng = np.random.default_rng(16)
    cases, inputs = [], {}
    for cell, (layer, options) in interop.KERAS_LAYERS.items():
        for dtype in ("float64", "float32"):
            cases.append(
                {"name": f"{cell}-{dtype}", "cell": cell, "layer": layer, "dtype": dtype}
                | {"reset_after": options.get("reset_after", False), "units": UNITS}
            )
    cases.append(cases[0] | {"name": "lstm-no-bias", "use_bias": False})
    cases.append(cases[2] | {"name": "gru-bidirectional", "bidirectional": True})
    cases.append(cases[0] | {"name": "lstm-relu", "activation": "relu"})
    for case in cases:
        dtype = case["dtype"]
        x = rng.normal(size=(BATCH, STEPS, EVENT)).astype(dtype)
        inputs[f"{case['name']}.x"] = x
        count = 2 if case.get("bidirectional") else 1
        weights = [
            w.astype(dtype)
            for _ in range(count)
            for w in keras_weights(
                rng, case["layer"], case["reset_after"], case.get("use_bias", True)
            )
        ]
        for k, weight in enumerate(weights):
            inputs[f"{case['name']}.w{k}"] = weight
    return cases, inputs


@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    """Every case run by Keras, once for this module."""
    require_module("torch")
    require_installed("keras")
    folder = tmp_path_factory.mktemp("keras")
    cases, inputs = make_cases()
    (folder / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    np.savez(folder / "inputs.npz", **inputs)
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    run = run_script(
        "keras_run.py",
        folder / "cases.json",
        folder / "inputs.npz",
        folder / "outputs.npz",
        env=env,
        timeout=600,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = dict(np.load(folder / "outputs.npz"))
    assert str(outputs["backend"]) == BACKEND
    return {case["name"]: case for case in cases}, inputs, outputs


def ours_from(inputs, name, case, direction=0):
    per_direction = 3 if case.get("use_bias", True) else 2
    weights = [inputs[f"{name}.w{direction * per_direction + k}"] for k in range(per_direction)]
    if len(weights) == 2:
        weights.append(None)
    return interop.from_keras(*weights, cell=case["cell"])


NAMES = [f"{cell}-{dtype}" for cell in interop.KERAS_LAYERS for dtype in ("float64", "float32")]


@pytest.mark.parametrize("name", [*NAMES, "lstm-no-bias"])
def test_the_cells_give_keras_outputs_and_final_states(name, keras_results):
    cases, inputs, outputs = keras_results
    case = cases[name]
    output_dtype, compute_dtype, weight_dtype = map(str, outputs[f"{name}.dtypes"])
    # Keras computed in the dtype asked for: the comparison is in that dtype
    assert (output_dtype, compute_dtype, weight_dtype) == (case["dtype"],) * 3
    parameters = ours_from(inputs, name, case)
    cell = CELLS[case["cell"]]
    events = inputs[f"{name}.x"].transpose(1, 0, 2)  # Keras is batch-first
    y, lasts, _ = cell.forward(parameters, events)
    lasts = lasts if isinstance(lasts, tuple) else (lasts,)
    assert y.dtype == np.dtype(case["dtype"])
    theirs = [
        outputs[f"{name}.out0"].transpose(1, 0, 2),
        *(outputs[f"{name}.out{k + 1}"] for k in range(len(lasts))),
    ]
    tolerance = TOLERANCE["float32" if name in PARTLY_FLOAT32 else case["dtype"]]
    for ours, expected in zip([y, *lasts], theirs, strict=True):
        assert relative_error(ours, expected) <= tolerance


@pytest.mark.parametrize("name", [*NAMES, "lstm-no-bias"])
def test_a_keras_layer_converts_exactly_both_ways(name, keras_results):
    cases, inputs, outputs = keras_results
    case = cases[name]
    assert str(outputs[f"{name}.cell"]) == case["cell"]
    expected = ours_from(inputs, name, case).arrays()
    for attribute, value in expected.items():
        got = outputs[f"{name}.ours.0.{attribute}"]
        assert got.dtype == value.dtype, attribute
        np.testing.assert_array_equal(got, value, err_msg=attribute)
    # Keras -> ours -> Keras: the same weights bit for bit, hence the same outputs bit for bit
    count = sum(1 for key in inputs if key.startswith(f"{name}.w"))
    for k in range(count):
        np.testing.assert_array_equal(outputs[f"{name}.again.w{k}"], inputs[f"{name}.w{k}"])
    for k in range(2 if case["layer"] == "GRU" else 3):
        np.testing.assert_array_equal(outputs[f"{name}.again.out{k}"], outputs[f"{name}.out{k}"])


def test_a_bidirectional_keras_layer_is_a_bidirectional_recurrent(keras_results):
    from lstm_sym.models import Recurrent

    cases, inputs, outputs = keras_results
    name = "gru-bidirectional"
    directions = [ours_from(inputs, name, cases[name], d) for d in (0, 1)]
    for d, parameters in enumerate(directions):
        for attribute, value in parameters.arrays().items():
            np.testing.assert_array_equal(outputs[f"{name}.ours.{d}.{attribute}"], value)
    model = Recurrent.from_parameters([directions], batch_first=True)
    y, h_n, _ = model.forward(inputs[f"{name}.x"])
    assert relative_error(y, outputs[f"{name}.out0"]) <= 1e-13
    # Keras returns [outputs, forward h, backward h]
    assert (
        relative_error(h_n, np.stack([outputs[f"{name}.out1"], outputs[f"{name}.out2"]])) <= 1e-13
    )


def test_keras_activations_the_cells_do_not_compute_are_refused_by_name(keras_results):
    _, _, outputs = keras_results
    message = str(outputs["lstm-relu.error"])
    assert message.startswith("ValueError: layer ")
    assert "activation='relu': the cells compute activation='tanh' only" in message


def test_keras_weights_of_every_layout_round_trip_bit_for_bit(random_problem):
    rng = np.random.default_rng(3)
    for cell, (layer, options) in interop.KERAS_LAYERS.items():
        for dtype in (np.float64, np.float32):
            weights = [
                w.astype(dtype) for w in keras_weights(rng, layer, options.get("reset_after"))
            ]
            back = interop.to_keras(interop.from_keras(*weights, cell=cell))
            for got, expected in zip(back, weights, strict=True):
                assert got.dtype == expected.dtype
                np.testing.assert_array_equal(got, expected)
    # ours -> Keras -> ours: exact for the gru (two biases); the one-bias layouts keep the sum
    parameters = random_problem(gru, 1, 1, 3, 4, seed=2, scale=1.0).parameters
    again = interop.from_keras(*interop.to_keras(parameters), cell="gru")
    for attribute, value in parameters.arrays().items():
        np.testing.assert_array_equal(again.arrays()[attribute], value)
    for cell in (lstm, gru_cho):
        parameters = random_problem(cell, 1, 1, 3, 4, seed=3, scale=1.0).parameters
        again = interop.from_keras(*interop.to_keras(parameters), cell=cell.CELL)
        arrays = parameters.arrays()
        for gate in cell.GATES:
            np.testing.assert_array_equal(
                again.arrays()[f"event_{gate}_weights"], arrays[f"event_{gate}_weights"]
            )
            np.testing.assert_array_equal(
                again.arrays()[f"event_{gate}_bias"],
                arrays[f"event_{gate}_bias"] + arrays[f"hidden_{gate}_bias"],
            )


def test_keras_layouts_refuse_what_they_cannot_hold(random_problem):
    kernel, recurrent = np.ones((2, 9)), np.ones((3, 9))
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 9\) \(input and recurrent"):
        interop.from_keras(kernel, recurrent, np.ones(9), cell="gru")
    with pytest.raises(ValueError, match=r"bias must have shape \(3 \* hidden_size,\)"):
        interop.from_keras(kernel, recurrent, np.ones((2, 9)), cell="gru_cho")
    with pytest.raises(ValueError, match="Keras has no layer for the 'lstmp' cell"):
        interop.to_keras(random_problem("lstmp", 1, 1, 2, 3, projection_size=2).parameters)
    with pytest.raises(TypeError, match="layer must be a Keras LSTM, GRU or Bidirectional"):
        interop.from_keras_layer(object())


def keras_gru_reset_before(x, kernel, recurrent_kernel, bias):
    """Keras' ``GRUCell.call`` with ``reset_after=False`` written out (sigmoid recurrent
    activation, tanh; gates z, r, h): the reset multiplies h before the recurrent kernel."""
    units = recurrent_kernel.shape[0]
    h, outputs = np.zeros((x.shape[1], units)), []
    for x_t in x:
        x_z, x_r, x_h = np.split(x_t @ kernel + bias, 3, axis=-1)
        z = 1 / (1 + np.exp(-(x_z + h @ recurrent_kernel[:, :units])))
        r = 1 / (1 + np.exp(-(x_r + h @ recurrent_kernel[:, units : 2 * units])))
        candidate = np.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * units :])
        h = z * h + (1 - z) * candidate
        outputs.append(h)
    return np.stack(outputs)


def test_gru_cho_is_keras_gru_reset_before_in_float64():
    """The float64 check Keras' own float64 GRU(reset_after=False) cannot give (see above)."""
    rng = np.random.default_rng(5)
    kernel, recurrent, bias = keras_weights(rng, "GRU", reset_after=False)
    x = rng.normal(size=(STEPS, BATCH, EVENT))
    ours, _, _ = gru_cho.forward(interop.from_keras(kernel, recurrent, bias, cell="gru_cho"), x)
    assert relative_error(ours, keras_gru_reset_before(x, kernel, recurrent, bias)) <= 1e-13
