"""ONNX LSTM and GRU nodes (issue 16) against onnxruntime and the onnx package's reference
implementation: every cell an ONNX node expresses, every direction, model files both ways.

What each reference runs (onnxruntime 1.32, CPU): float32 with ``layout=0`` only; its LSTM and
GRU kernels refuse double ("does not support double yet") and ``layout=1`` ("Batchwise recurrent
operations (layout == 1) are not supported"). The onnx package's ``ReferenceEvaluator`` runs
float64 and both layouts, but ignores ``input_forget`` and ``sequence_lens``: ``lstm_cifg`` and
variable lengths are checked against onnxruntime in float32 only.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from generated import gru, lstm
from lstm_sym import interop
from lstm_sym.models import Recurrent
from tests.conftest import require_module
from tests.support import relative_error

CELLS = tuple(interop.OPERATORS)
DIRECTIONS = ("forward", "reverse", "bidirectional")
STEPS, BATCH, EVENT, HIDDEN = 6, 3, 4, 5
#: Largest relative error (max norm): float32 results to float32's rounding, float64 to 1e-13.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-13}


def assert_same(a, b):
    assert type(a) is type(b)
    for name in a.NAMES:
        x, y = a.checked(name), b.checked(name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def cells_for(cell, direction, random_problem, dtype=np.float32, seed=0):
    return [
        random_problem(cell, 1, 1, EVENT, HIDDEN, seed=seed + d, dtype=dtype, scale=1.0).parameters
        for d in range(2 if direction == "bidirectional" else 1)
    ]


def feeds_for(cell, directions, dtype, seed=1, layout=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS, BATCH, EVENT))
    states = {"initial_h": rng.normal(size=(directions, BATCH, HIDDEN))}
    if interop.OPERATORS[cell][0] == "LSTM":
        states["initial_c"] = rng.normal(size=(directions, BATCH, HIDDEN))
    if layout:
        x = x.transpose(1, 0, 2)
        states = {k: v.transpose(1, 0, 2) for k, v in states.items()}
    return {k: v.astype(dtype) for k, v in {"X": x, **states}.items()}


def onnxruntime_session(model):
    ort = require_module("onnxruntime")
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


# -- onnxruntime, float32 ----------------------------------------------------------------------


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_onnxruntime_runs_our_model_file_with_the_cells_outputs(
    cell, direction, random_problem, tmp_path
):
    require_module("onnx")
    cells = cells_for(cell, direction, random_problem)
    path = tmp_path / f"{cell}.onnx"
    interop.write_onnx(cells, path, direction=direction, initial_states=True)
    feeds = feeds_for(cell, len(cells), np.float32)
    theirs = onnxruntime_session(str(path)).run(None, feeds)
    node = interop.read_onnx(path)
    assert (node.cell, node.direction, node.layout) == (cell, direction, 0)
    ours = node.forward(**feeds)
    assert len(ours) == len(theirs) == 1 + len(feeds) - 1
    for got, expected in zip(ours, theirs, strict=True):
        assert got.dtype == expected.dtype == np.float32
        assert got.shape == expected.shape
        assert relative_error(got, expected) <= TOLERANCE[np.float32]


def test_an_onnx_node_computes_what_the_kernels_and_recurrent_compute(random_problem):
    """OnnxRecurrent.forward is the cells' forward: the reverse direction on reversed events,
    bidirectional as Recurrent (bit for bit)."""
    require_module("onnx")
    cells = cells_for("lstm", "bidirectional", random_problem, np.float64)
    feeds = feeds_for("lstm", 2, np.float64)
    x, h0, c0 = feeds["X"], feeds["initial_h"], feeds["initial_c"]
    y, y_h, y_c = interop.read_onnx(interop.write_onnx(cells)).forward(x, None, h0, c0)
    ours, (h_n, c_n), _ = Recurrent.from_parameters([cells]).forward(x, (h0, c0))
    np.testing.assert_array_equal(y, np.stack(np.split(ours, 2, axis=-1), axis=1))
    np.testing.assert_array_equal(y_h, h_n)
    np.testing.assert_array_equal(y_c, c_n)
    reverse = interop.read_onnx(interop.write_onnx(cells[1], direction="reverse"))
    y, y_h, _ = reverse.forward(x, initial_h=h0[1:], initial_c=c0[1:])
    expected, (h_last, _), _ = lstm.forward(cells[1], x[::-1], h0[1], c0[1])
    np.testing.assert_array_equal(y[:, 0], expected[::-1])
    np.testing.assert_array_equal(y_h[0], h_last)


def test_input_forget_ignores_the_forget_blocks_in_onnxruntime_as_lstm_cifg_does(random_problem):
    """With input_forget=1 ONNX computes f = 1 - i: the f blocks of W, R, B and p_f are unused,
    so lstm_cifg (which has no forget weights) reads any node of that kind."""
    onnx = require_module("onnx")
    from onnx import numpy_helper

    cells = cells_for("lstm_cifg", "forward", random_problem)
    model = interop.write_onnx(cells, initial_states=True)
    feeds = feeds_for("lstm_cifg", 1, np.float32)
    clean = onnxruntime_session(model.SerializeToString()).run(None, feeds)
    rng = np.random.default_rng(7)
    arrays = interop.to_onnx(cells)
    noisy = {k: v.copy() for k, v in arrays.items()}
    forget = slice(2 * HIDDEN, 3 * HIDDEN)  # i, o, f, c
    noisy["W"][:, forget] = rng.normal(size=noisy["W"][:, forget].shape)
    noisy["R"][:, forget] = rng.normal(size=noisy["R"][:, forget].shape)
    noisy["B"][:, forget] = rng.normal(size=(1, HIDDEN))
    noisy["P"][:, 2 * HIDDEN :] = rng.normal(size=(1, HIDDEN))  # p_f
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    del changed.graph.initializer[:]
    changed.graph.initializer.extend(
        numpy_helper.from_array(v.astype(np.float32), k) for k, v in noisy.items()
    )
    again = onnxruntime_session(changed.SerializeToString()).run(None, feeds)
    for a, b in zip(clean, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same(interop.read_onnx(changed).parameters[0], cells[0])


# -- the onnx package's reference implementation: float64, both layouts -----------------------


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm", "gru", "gru_cho"])
def test_the_onnx_reference_runs_our_float64_model_with_the_cells_outputs(
    cell, direction, layout, random_problem
):
    require_module("onnx")
    from onnx.reference import ReferenceEvaluator

    cells = cells_for(cell, direction, random_problem, np.float64, seed=3)
    model = interop.write_onnx(cells, direction=direction, layout=layout, initial_states=True)
    feeds = feeds_for(cell, len(cells), np.float64, layout=layout)
    theirs = ReferenceEvaluator(model).run(None, feeds)
    node = interop.read_onnx(model)
    assert node.layout == layout
    ours = node.forward(**feeds)
    for got, expected in zip(ours, theirs, strict=True):
        assert got.dtype == expected.dtype == np.float64
        assert got.shape == expected.shape
        assert relative_error(got, expected) <= TOLERANCE[np.float64]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_what_onnxruntime_runs_beyond_float32_and_layout_0(cell, random_problem):
    """float64 and layout=1 models are valid ONNX (the checker passes) and the onnx reference
    runs them; onnxruntime either gives the cells' outputs or refuses with its known message."""
    require_module("onnx")
    state = require_module("onnxruntime").capi.onnxruntime_pybind11_state
    for dtype, layout, refusal in (
        (np.float64, 0, "does not support double"),
        (np.float32, 1, "layout == 1) are not supported"),
    ):
        cells = cells_for(cell, "forward", random_problem, dtype)
        model = interop.write_onnx(cells, layout=layout)
        feeds = feeds_for(cell, 1, dtype, layout=layout)
        feeds = {"X": feeds["X"]}
        try:
            theirs = onnxruntime_session(model.SerializeToString()).run(None, feeds)
        except (state.Fail, state.RuntimeException) as error:
            assert refusal in str(error)
            continue
        for got, expected in zip(interop.read_onnx(model).forward(**feeds), theirs, strict=True):
            assert relative_error(got, expected) <= TOLERANCE[dtype]


# -- round trips: bit for bit --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_arrays_and_files_round_trip_bit_for_bit(cell, dtype, random_problem, tmp_path):
    require_module("onnx")
    cells = cells_for(cell, "bidirectional", random_problem, dtype, seed=11)
    # ours -> ONNX arrays -> ours, and through a file
    arrays = interop.to_onnx(cells)
    assert all(a.dtype == dtype for a in arrays.values())
    for a, b in zip(cells, interop.from_onnx(**arrays, cell=cell), strict=True):
        assert_same(a, b)
    interop.write_onnx(cells, tmp_path / "model.onnx")
    for a, b in zip(cells, interop.read_onnx(tmp_path / "model.onnx").parameters, strict=True):
        assert_same(a, b)
    # ONNX arrays -> ours -> ONNX (random arrays; the blocks a cell's node ignores are zero)
    rng = np.random.default_rng(12)
    random = {k: rng.normal(size=v.shape).astype(dtype) for k, v in arrays.items()}
    for k, v in arrays.items():
        random[k][v == 0] = 0  # keep the unused blocks (lstm_cifg's f, p_f) zero
    back = interop.to_onnx(interop.from_onnx(**random, cell=cell))
    assert set(back) == set(random)
    for k in random:
        assert back[k].dtype == random[k].dtype
        np.testing.assert_array_equal(back[k], random[k], err_msg=k)


# -- a model file written by other code ----------------------------------------------------------


def encoder_model(rng, **overrides):
    """A small model as an exporter would write it: Identity -> LSTM (weights as initializers,
    initial_h from a Constant node, the default activations spelled out) -> Squeeze."""
    from onnx import TensorProto, helper, numpy_helper

    W = rng.normal(size=(1, 4 * HIDDEN, EVENT)).astype(np.float32)
    R = rng.normal(size=(1, 4 * HIDDEN, HIDDEN)).astype(np.float32)
    B = rng.normal(size=(1, 8 * HIDDEN)).astype(np.float32)
    P = rng.normal(size=(1, 3 * HIDDEN)).astype(np.float32)
    h0 = rng.normal(size=(1, BATCH, HIDDEN)).astype(np.float32)
    attributes = {
        "hidden_size": HIDDEN,
        "activations": ["Sigmoid", "Tanh", "Tanh"],
        "direction": "forward",
    } | overrides
    nodes = [
        helper.make_node("Identity", ["input"], ["x"], name="prepare"),
        helper.make_node(
            "Constant", [], ["h0"], value=numpy_helper.from_array(h0, "h0"), name="initial"
        ),
        helper.make_node(
            "LSTM",
            ["x", "W", "R", "B", "", "h0", "", "P"],
            ["y", "y_h"],
            name="encoder",
            **attributes,
        ),
        helper.make_node("Squeeze", ["y", "axes"], ["output"], name="squeeze"),
    ]
    initializers = [
        numpy_helper.from_array(value, name)
        for name, value in (("W", W), ("R", R), ("B", B), ("P", P))
    ] + [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")]
    graph = helper.make_graph(
        nodes,
        "encoder",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["T", BATCH, EVENT])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["T", BATCH, HIDDEN])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    return model, {"W": W, "R": R, "B": B, "P": P, "h0": h0}


def test_a_node_of_a_model_file_written_elsewhere_reads_as_its_cell(tmp_path):
    onnx = require_module("onnx")
    model, arrays = encoder_model(np.random.default_rng(20))
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "encoder.onnx"
    onnx.save(model, path)
    node = interop.read_onnx(str(path))
    assert (node.name, node.op_type, node.cell) == ("encoder", "LSTM", "peephole_lstm")
    np.testing.assert_array_equal(node.initial_h, arrays["h0"])
    assert node.initial_c is None and node.sequence_lens is None
    parameters = node.parameters[0]
    np.testing.assert_array_equal(parameters.event_output_weights, arrays["W"][0, 5:10])
    np.testing.assert_array_equal(parameters.hidden_forget_bias, arrays["B"][0, 30:35])
    np.testing.assert_array_equal(parameters.peephole_output, arrays["P"][0, 5:10])
    x = np.random.default_rng(21).normal(size=(STEPS, BATCH, EVENT)).astype(np.float32)
    (theirs,) = onnxruntime_session(str(path)).run(None, {"input": x})
    y, _, _ = node.forward(x)
    assert relative_error(y[:, 0], theirs) <= TOLERANCE[np.float32]
    # the peephole cell computes it; asked for, a cell without peepholes refuses P
    with pytest.raises(ValueError, match=r"P holds non-zero peepholes \(peephole_update\)"):
        interop.read_onnx(model, cell="lstm")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clip": 3.0}, r"attribute clip=3\.0: the cells do not clip"),
        (
            {"activations": ["Sigmoid", "Relu", "Tanh"]},
            r"attribute activations=\['Sigmoid', 'Relu', 'Tanh'\]: the cells compute "
            r"\['Sigmoid', 'Tanh', 'Tanh'\] only",
        ),
        ({"activation_alpha": [0.5]}, r"attribute activation_alpha=\[0\.5\]"),
        ({"activation_beta": [0.5]}, r"attribute activation_beta=\[0\.5\]"),
        ({"hidden_size": 7}, "attribute hidden_size=7 but R is for hidden_size 5"),
        ({"direction": "bidirectional"}, "direction='bidirectional' but W holds 1 direction"),
        ({"layout": 2}, "attribute layout=2, expected 0 or 1"),
        ({"input_forget": 2}, "attribute input_forget=2, expected 0 or 1"),
        ({"linear_before_reset": 1}, "attribute linear_before_reset is not one ONNX defines"),
    ],
)
def test_attributes_no_cell_computes_are_refused_by_name(overrides, message):
    require_module("onnx")
    model, _ = encoder_model(np.random.default_rng(22), **overrides)
    with pytest.raises(ValueError, match=r"node 'encoder' \(LSTM\): " + message):
        interop.read_onnx(model)


def test_nodes_and_inputs_read_onnx_cannot_convert_are_refused_by_name(random_problem):
    onnx = require_module("onnx")
    from onnx import TensorProto, helper

    model, _ = encoder_model(np.random.default_rng(23))
    with pytest.raises(ValueError, match=r"cell='gru': node 'encoder' \(LSTM\) with"):
        interop.read_onnx(model, cell="gru")
    with pytest.raises(ValueError, match=r"no recurrent node named 'decoder' \(there are: LSTM"):
        interop.read_onnx(model, node="decoder")
    cifg = interop.write_onnx(cells_for("lstm_cifg", "forward", random_problem))
    with pytest.raises(ValueError, match=r"with \{'input_forget': 1\} computes the 'lstm_cifg'"):
        interop.read_onnx(cifg, cell="lstm")
    # weights fed at run time are not in the file
    fed = onnx.ModelProto()
    fed.CopyFrom(model)
    weights = next(i for i in fed.graph.initializer if i.name == "W")
    fed.graph.initializer.remove(weights)
    fed.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match=r"input W \('W'\) is not in the file"):
        interop.read_onnx(fed)
    # two recurrent nodes: one must be named
    twice = onnx.ModelProto()
    twice.CopyFrom(model)
    second = onnx.NodeProto()
    second.CopyFrom(twice.graph.node[2])
    second.name, second.output[:] = "decoder", ["y2", "y2_h"]
    twice.graph.node.append(second)
    with pytest.raises(ValueError, match=r"2 recurrent nodes \(LSTM 'encoder', LSTM 'decoder'\)"):
        interop.read_onnx(twice)
    assert interop.read_onnx(twice, node="decoder").name == "decoder"
    assert interop.read_onnx(twice, node=1).name == "decoder"
    with pytest.raises(TypeError, match=r"model must be a path, bytes or an onnx\.ModelProto"):
        interop.read_onnx(42)


def test_onnx_arrays_refuse_what_the_cells_cannot_hold(random_problem):
    W, R = np.zeros((1, 15, 2)), np.zeros((1, 15, 5))
    with pytest.raises(ValueError, match="P: an ONNX GRU has no peepholes"):
        interop.from_onnx(W, R, P=np.zeros((1, 15)), cell="gru")
    with pytest.raises(ValueError, match=r"B must have shape \(1, 30\) \(num_directions, 2 \* 3"):
        interop.from_onnx(W, R, np.zeros((1, 40)), cell="gru_cho")
    with pytest.raises(ValueError, match="cell: ONNX has no layer for the 'lstm_nfg' cell"):
        interop.from_onnx(W, R, cell="lstm_nfg")
    parameters = random_problem(gru, 1, 1, 2, 5).parameters
    with pytest.raises(ValueError, match="direction='bidirectional' needs 2 Parameters, got 1"):
        interop.write_onnx(parameters, direction="bidirectional")
    with pytest.raises(ValueError, match="both directions must be Parameters of the same cell"):
        interop.to_onnx([parameters, random_problem(lstm, 1, 1, 2, 5).parameters])
    with pytest.raises(ValueError, match="cell: ONNX has no layer for the 'lstmp' cell"):
        interop.to_onnx(random_problem("lstmp", 1, 1, 2, 5, projection_size=3).parameters)


# -- sequence_lens: batches of different lengths -------------------------------------------------

LENGTHS = np.array([4, STEPS, 1], dtype=np.int32)  # unsorted, the full length and one step


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_sequence_lens_give_onnxruntimes_outputs_and_final_states(cell, direction, random_problem):
    """Steps past a row's length: zero outputs, states kept; the reverse direction runs each
    row's own steps backwards. NaN in the padding reaches no result (ONNX never reads it)."""
    require_module("onnx")
    cells = cells_for(cell, direction, random_problem, seed=30)
    model = interop.write_onnx(cells, direction=direction, sequence_lens=True, initial_states=True)
    feeds = feeds_for(cell, len(cells), np.float32, seed=31) | {"sequence_lens": LENGTHS}
    theirs = onnxruntime_session(model.SerializeToString()).run(None, feeds)
    padded = feeds["X"].copy()
    for b, length in enumerate(LENGTHS):
        padded[length:, b] = np.nan
    ours = interop.read_onnx(model).forward(**(feeds | {"X": padded}))
    for got, expected in zip(ours, theirs, strict=True):
        assert got.shape == expected.shape
        assert relative_error(got, expected) <= TOLERANCE[np.float32]
    y = ours[0]
    for b, length in enumerate(LENGTHS):
        assert not np.any(y[length:, :, b]), "outputs past a row's length are zero"


def test_sequence_lens_of_a_bidirectional_node_are_recurrents_lengths(random_problem):
    """Two implementations of the per-row reversal agree bit for bit: OnnxRecurrent's and
    Recurrent's (lstm_sym.models)."""
    require_module("onnx")
    cells = cells_for("gru", "bidirectional", random_problem, np.float64, seed=32)
    feeds = feeds_for("gru", 2, np.float64, seed=33)
    y, y_h = interop.read_onnx(interop.write_onnx(cells)).forward(
        feeds["X"], LENGTHS, feeds["initial_h"]
    )
    ours, h_n, _ = Recurrent.from_parameters([cells]).forward(
        feeds["X"], feeds["initial_h"], lengths=LENGTHS
    )
    np.testing.assert_array_equal(y, np.stack(np.split(ours, 2, axis=-1), axis=1))
    np.testing.assert_array_equal(y_h, h_n)


def test_bad_inputs_of_a_node_are_refused_by_name(random_problem):
    require_module("onnx")
    node = interop.read_onnx(interop.write_onnx(cells_for("lstm", "forward", random_problem)))
    x = np.zeros((STEPS, BATCH, EVENT), dtype=np.float32)
    with pytest.raises(ValueError, match=r"sequence_lens\[1\] = 0: every length must be in 1\.\.T"):
        node.forward(x, np.array([1, 0, 2]))
    with pytest.raises(ValueError, match=r"sequence_lens must have shape \(3,\) \(batch,\)"):
        node.forward(x, np.array([1, 2]))
    with pytest.raises(TypeError, match="sequence_lens must be integers, got dtype float64"):
        node.forward(x, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(
        ValueError, match=r"X must have shape \(T, batch, input_size\) with input_s"
    ):
        node.forward(x[..., :2])
    with pytest.raises(ValueError, match=r"initial_h must have shape \(1, 3, 5\) \(num_direct"):
        node.forward(x, initial_h=np.zeros((3, 5)))
    gru_node = interop.read_onnx(interop.write_onnx(cells_for("gru", "forward", random_problem)))
    with pytest.raises(ValueError, match="initial_c: a GRU node has no cell state"):
        gru_node.forward(x, initial_c=np.zeros((1, 3, 5)))


@pytest.mark.parametrize(("kind", "cell"), [("GRU", "gru"), ("LSTM", "lstm")])
def test_a_model_pytorchs_exporter_writes_reads_as_its_cell(kind, cell):
    """torch.onnx.export (TorchScript exporter) of a bidirectional nn.GRU / nn.LSTM: the node
    reads as the cell PyTorch computes, with PyTorch's outputs."""
    torch = require_module("torch")
    require_module("onnx")
    torch.manual_seed(40)
    module = getattr(torch.nn, kind)(EVENT, HIDDEN, bidirectional=True)
    x = torch.randn(STEPS, BATCH, EVENT)
    file = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's own deprecation notes
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), file, dynamo=False, input_names=["x"], opset_version=14)
    node = interop.read_onnx(file.getvalue())
    assert (node.cell, node.direction) == (cell, "bidirectional")
    y = node.forward(x.numpy())[0]
    with torch.no_grad():
        expected, _ = module(x)
    ours = np.concatenate([y[:, 0], y[:, 1]], axis=-1)
    assert relative_error(ours, expected.numpy()) <= TOLERANCE[np.float32]
