"""Weights in and out (issue 7): PyTorch state dicts, .npz files, Keras and ONNX layouts."""

from __future__ import annotations

import numpy as np
import pytest

from generated import gru, lstm, lstmp, peephole_lstm
from lstm_sym import interop
from lstm_sym.models import Recurrent
from tests.conftest import require_module


def assert_same(a, b):
    assert a.NAMES == b.NAMES
    for name in a.NAMES:
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


# -- PyTorch ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("module_name", "cell"), [("LSTM", lstm), ("GRU", gru)])
def test_torch_state_dict_round_trip_is_exact(module_name, cell, random_problem):
    torch = require_module("torch")
    torch.manual_seed(0)
    module = getattr(torch.nn, module_name)(3, 5)  # float32, as PyTorch builds it
    parameters = cell.Parameters.from_torch(module)
    assert (parameters.event_size, parameters.hidden_size) == (3, 5)
    assert parameters.event_update_weights.dtype == np.float32
    exported = parameters.to_torch_state_dict()
    reference = module.state_dict()
    assert list(exported) == list(reference)
    for key, value in exported.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, reference[key].numpy())
    # and back into PyTorch
    fresh = getattr(torch.nn, module_name)(3, 5)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()})
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, reference[key])
    # ours -> torch -> ours
    ours = random_problem(cell, 1, 1, 4, 2, seed=1, scale=1.0).parameters
    again = cell.Parameters.from_torch(
        {k: torch.from_numpy(v) for k, v in ours.to_torch_state_dict().items()}
    )
    assert_same(ours, again)


def test_torch_gate_rows_are_the_named_gates():
    """Row block k of weight_ih_l0 is GATES[k]: i, f, g, o = update, forget, candidate, output."""
    torch = require_module("torch")
    module = torch.nn.LSTM(2, 3)
    parameters = lstm.Parameters.from_torch(module, dtype=np.float64)
    weight = module.weight_ih_l0.detach().numpy().astype(np.float64)
    for k, gate in enumerate(("update", "forget", "candidate", "output")):
        np.testing.assert_array_equal(
            getattr(parameters, f"event_{gate}_weights"), weight[3 * k : 3 * (k + 1)]
        )
    assert parameters.event_update_weights.dtype == np.float64


def test_torch_without_bias_and_refusals():
    torch = require_module("torch")
    parameters = lstm.Parameters.from_torch(torch.nn.LSTM(2, 3, bias=False))
    assert not np.any(parameters.arrays()["hidden_output_bias"])
    with pytest.raises(ValueError, match=r"several layers/directions \(l0, l0_reverse, l1"):
        lstm.Parameters.from_torch(torch.nn.LSTM(2, 3, num_layers=2, bidirectional=True))
    second = lstm.Parameters.from_torch(
        torch.nn.LSTM(2, 3, num_layers=2, bidirectional=True), layer=1, reverse=True
    )
    assert (second.event_size, second.hidden_size) == (6, 3)
    with pytest.raises(ValueError, match="no counterpart for weight_hr_l0"):
        lstm.Parameters.from_torch(torch.nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(ValueError, match=r"weight_hh_l0 must have shape \(4 \* hidden_size"):
        lstm.Parameters.from_torch(torch.nn.GRU(2, 4))
    with pytest.raises(ValueError, match="no layer l3"):
        lstm.Parameters.from_torch(torch.nn.LSTM(2, 3), layer=3)
    with pytest.raises(TypeError, match="module_or_state_dict must be"):
        lstm.Parameters.from_torch(42)
    with pytest.raises(ValueError, match="both bias_ih_l0 and bias_hh_l0 or neither"):
        state = dict(torch.nn.LSTM(2, 3).state_dict())
        del state["bias_hh_l0"]
        lstm.Parameters.from_torch(state)


def test_peepholes_import_as_zero_and_must_be_zero_to_export():
    torch = require_module("torch")
    module = torch.nn.LSTM(2, 3).double()
    parameters = peephole_lstm.Parameters.from_torch(module)
    assert not np.any(parameters.arrays()["peephole_forget"])
    x = np.random.default_rng(0).normal(size=(5, 2))
    ours, _, _ = peephole_lstm.forward(parameters, x)
    theirs, _ = module(torch.from_numpy(x))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-14)
    parameters.peephole_forget = np.ones(3)
    with pytest.raises(ValueError, match=r"no counterpart for parameters\.peephole_forget"):
        parameters.to_torch_state_dict()


# -- .npz ---------------------------------------------------------------------------------------


def test_npz_round_trip_is_exact(tmp_path, random_problem):
    for cell, dtype in ((lstm, np.float64), (lstm, np.float32), (gru, np.float64)):
        parameters = random_problem(cell, 1, 1, 3, 4, seed=2, dtype=dtype, scale=1.0).parameters
        path = tmp_path / f"{cell.CELL}-{np.dtype(dtype).name}.npz"
        parameters.save(path)
        assert_same(parameters, cell.Parameters.load(path, event_size=3, hidden_size=4))
    # a scalar bias stays a scalar
    plain = lstm.Parameters(2, 2)
    plain.save(tmp_path / "plain.npz")
    loaded = lstm.Parameters.load(tmp_path / "plain.npz")
    assert np.ndim(loaded.event_forget_bias) == 0 and loaded.event_forget_bias == 0


def test_npz_refuses_other_cells_sizes_versions_and_files(tmp_path, random_problem):
    path = tmp_path / "lstm.npz"
    random_problem(lstm, 1, 1, 3, 4, seed=3, scale=1.0).parameters.save(path)
    with pytest.raises(ValueError, match=r"holds parameters of the 'lstm' cell, not of 'gru'"):
        gru.Parameters.load(path)
    with pytest.raises(ValueError, match="hidden_size=4, expected hidden_size=5"):
        lstm.Parameters.load(path, hidden_size=5)
    with pytest.raises(ValueError, match="event_size=3, expected event_size=2"):
        lstm.Parameters.load(path, event_size=2)
    entries = dict(np.load(path))
    np.savez(tmp_path / "v2.npz", **(entries | {"__format__": np.array(2)}))
    with pytest.raises(ValueError, match="format version 2; this module reads 1"):
        lstm.Parameters.load(tmp_path / "v2.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an lstm_sym parameters file"):
        lstm.Parameters.load(tmp_path / "other.npz")
    del entries["hidden_output_bias"]
    np.savez(tmp_path / "missing.npz", **entries)
    with pytest.raises(ValueError, match=r"missing \['hidden_output_bias'\]"):
        lstm.Parameters.load(tmp_path / "missing.npz")
    wrong = dict(np.load(path)) | {"hidden_output_weights": np.zeros((4, 3))}
    np.savez(tmp_path / "shape.npz", **wrong)
    with pytest.raises(
        ValueError, match=r"parameters.hidden_output_weights must have shape \(4, 4\)"
    ):
        lstm.Parameters.load(tmp_path / "shape.npz")


def test_npz_save_checks_before_writing(tmp_path):
    parameters = lstm.Parameters(2, 3)
    parameters.event_forget_weights = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"parameters\.event_forget_weights must have shape"):
        parameters.save(tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


def test_npz_save_is_whole_or_nothing(tmp_path, monkeypatch, random_problem):
    """A write that fails half-way leaves an existing file as it was and no temporary behind."""
    path = tmp_path / "weights.npz"
    first = random_problem(lstm, 1, 1, 2, 3, seed=1, scale=1.0).parameters
    first.save(path)
    before = path.read_bytes()

    def fail_half_way(file, **arrays):
        file.write(b"PK half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(lstm.np, "savez", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        random_problem(lstm, 1, 1, 2, 3, seed=2, scale=1.0).parameters.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.npz"]
    loaded = lstm.Parameters.load(path)
    assert np.array_equal(loaded.hidden_forget_weights, first.hidden_forget_weights)


# -- Keras: its documented LSTMCell, written out ------------------------------------------------


def keras_lstm(x, kernel, recurrent_kernel, bias):
    """Keras' ``LSTMCell.call`` (implementation 2), with its default activations (sigmoid
    recurrent activation, tanh): z = x kernel + h recurrent_kernel + bias, split i, f, c, o."""
    hidden = recurrent_kernel.shape[0]
    h, c = np.zeros((x.shape[1], hidden)), np.zeros((x.shape[1], hidden))
    outputs = []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent_kernel + bias
        z0, z1, z2, z3 = np.split(z, 4, axis=-1)
        i, f, o = (1 / (1 + np.exp(-z0)), 1 / (1 + np.exp(-z1)), 1 / (1 + np.exp(-z3)))
        c = f * c + i * np.tanh(z2)
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs)


def test_keras_layout_computes_the_same_lstm_and_round_trips(random_problem):
    rng = np.random.default_rng(4)
    event_size, hidden = 3, 5
    kernel = rng.normal(size=(event_size, 4 * hidden))
    recurrent_kernel = rng.normal(size=(hidden, 4 * hidden))
    bias = rng.normal(size=4 * hidden)
    x = rng.normal(size=(6, 2, event_size))
    parameters = interop.from_keras(kernel, recurrent_kernel, bias)
    ours, _, _ = lstm.forward(parameters, x)
    np.testing.assert_allclose(
        ours, keras_lstm(x, kernel, recurrent_kernel, bias), rtol=0, atol=1e-13
    )
    for got, expected in zip(
        interop.to_keras(parameters), (kernel, recurrent_kernel, bias), strict=True
    ):
        np.testing.assert_array_equal(got, expected)
    # ours -> Keras: the two biases are summed, the function is unchanged
    ours_parameters = random_problem(lstm, 1, 1, 3, 5, seed=5, scale=1.0).parameters
    converted = interop.from_keras(*interop.to_keras(ours_parameters))
    np.testing.assert_allclose(
        lstm.forward(converted, x)[0], lstm.forward(ours_parameters, x)[0], rtol=0, atol=1e-14
    )
    no_bias = interop.from_keras(kernel, recurrent_kernel, None)
    assert not np.any(no_bias.arrays()["event_update_bias"])
    with pytest.raises(ValueError, match=r"cell: Keras has no layer for the 'peephole_lstm' cell"):
        interop.from_keras(kernel, recurrent_kernel, bias, cell="peephole_lstm")
    with pytest.raises(ValueError, match=r"kernel must have 15 = 3 gates \* hidden_size 5"):
        interop.from_keras(kernel, recurrent_kernel, bias, cell="gru")
    with pytest.raises(ValueError, match=r"kernel must have 20 = 4 gates \* hidden_size 5"):
        interop.from_keras(kernel[:, :8], recurrent_kernel, bias)


# -- ONNX: the onnx package's reference implementation of the LSTM operator ---------------------


def run_onnx_lstm(x, arrays, direction):
    onnx = require_module("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    names = ["X", "W", "R", "B", "", "", "", "P"] if "P" in arrays else ["X", "W", "R", "B"]
    directions, rows, _ = arrays["W"].shape
    hidden = rows // 4
    node = helper.make_node(
        "LSTM", names, ["Y", "Y_h", "Y_c"], hidden_size=hidden, direction=direction
    )
    feeds = {"X": x} | dict(arrays)
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.DOUBLE, feeds[name].shape)
        for name in names
        if name
    ]
    steps, batch = x.shape[:2]
    shapes = {"Y": (steps, directions, batch, hidden), "Y_h": (directions, batch, hidden)}
    shapes["Y_c"] = shapes["Y_h"]
    outputs = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, s) for n, s in shapes.items()]
    graph = helper.make_graph([node], "lstm", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return ReferenceEvaluator(model).run(None, feeds)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_onnx_layout_against_the_onnx_reference_lstm(direction, random_problem):
    rng = np.random.default_rng(6)
    steps, batch, event_size, hidden = 5, 3, 4, 2
    cells = [
        random_problem(lstm, 1, 1, event_size, hidden, seed=7 + d, scale=1.0).parameters
        for d in range(1 + (direction == "bidirectional"))
    ]
    arrays = interop.to_onnx(cells if len(cells) > 1 else cells[0])
    assert arrays["W"].shape == (len(cells), 4 * hidden, event_size) and "P" not in arrays
    x = rng.normal(size=(steps, batch, event_size))
    y, y_h, y_c = run_onnx_lstm(x, arrays, direction)
    model = Recurrent.from_parameters([cells])
    ours, (h_n, c_n), _ = model.forward(x)
    # ONNX Y is (T, directions, batch, hidden); ours concatenates the directions on the features
    theirs = np.concatenate([y[:, d] for d in range(len(cells))], axis=-1)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-13)
    np.testing.assert_allclose(h_n, y_h, rtol=0, atol=1e-13)
    np.testing.assert_allclose(c_n, y_c, rtol=0, atol=1e-13)
    back = interop.from_onnx(**arrays)
    for a, b in zip(cells, back, strict=True):
        assert_same(a, b)


def test_onnx_peepholes_map_to_the_peephole_cell(random_problem):
    rng = np.random.default_rng(8)
    cell = random_problem(peephole_lstm, 1, 1, 3, 4, seed=9, scale=1.0).parameters
    arrays = interop.to_onnx(cell)
    assert arrays["P"].shape == (1, 12)
    x = rng.normal(size=(6, 2, 3))
    y, _, _ = run_onnx_lstm(x, arrays, "forward")
    ours, _, _ = peephole_lstm.forward(cell, x)
    np.testing.assert_allclose(ours, y[:, 0], rtol=0, atol=1e-13)
    assert_same(cell, interop.from_onnx(**arrays, cell="peephole_lstm")[0])
    with pytest.raises(ValueError, match=r"non-zero peepholes.*cell='peephole_lstm'"):
        interop.from_onnx(**arrays)
    zero_p = arrays | {"P": np.zeros_like(arrays["P"])}
    assert interop.from_onnx(**zero_p)[0].hidden_size == 4


# -- a projected state: PyTorch's LSTM(proj_size=P) ----------------------------------------------


def test_lstmp_from_torch_round_trip():
    torch = require_module("torch")
    module = lstmp
    lstm = torch.nn.LSTM(3, 5, proj_size=2)
    parameters = module.Parameters.from_torch(lstm, dtype=np.float64)
    assert (parameters.hidden_size, parameters.projection_size) == (5, 2)
    assert parameters.hidden_update_weights.shape == (5, 2)
    state = parameters.to_torch_state_dict(dtype=np.float32)
    assert sorted(state) == sorted(lstm.state_dict())
    for key, value in lstm.state_dict().items():
        assert np.array_equal(state[key], value.numpy()), key
    with pytest.raises(ValueError, match="weight_hr_l0"):
        module.Parameters.from_torch(torch.nn.LSTM(3, 5))
