"""Nodes of ONNX model files: :func:`read_onnx` reads an ``LSTM`` or ``GRU`` node (weights from
initializers or Constant nodes) as cells, :class:`OnnxRecurrent` computes its outputs with the
kernels, :func:`write_onnx` writes a one-node model. The ``onnx`` package is imported by
:func:`read_onnx` and :func:`write_onnx` only.

Reading a node refuses, by name, what no cell computes: ``clip``, activations other than the
defaults (Sigmoid, Tanh, Tanh for the LSTM; Sigmoid, Tanh for the GRU),
``activation_alpha``/``activation_beta``, a ``hidden_size`` other than R's, and attributes ONNX
does not define for the operator.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import (
    cell_of,
    directions_of,
    expect_ndim,
    float_array,
    float_dtype,
    resolve_cell,
    supported_cell,
)
from .onnx import OPERATORS, from_onnx, to_onnx

#: The activations ONNX defaults to, per direction: the only ones the cells compute.
DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh")}
#: The attributes ONNX defines for each operator (opset 14).
ATTRIBUTES = {
    "LSTM": frozenset(
        {"activation_alpha", "activation_beta", "activations", "clip", "direction"}
        | {"hidden_size", "input_forget", "layout"}
    ),
    "GRU": frozenset(
        {"activation_alpha", "activation_beta", "activations", "clip", "direction"}
        | {"hidden_size", "linear_before_reset", "layout"}
    ),
}
#: The operators' inputs, in ONNX's order ('' marks an absent optional input).
INPUTS = {
    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
    "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
}
DIRECTIONS = ("forward", "reverse", "bidirectional")


@dataclass(frozen=True, eq=False)
class OnnxRecurrent:
    """An ONNX ``LSTM`` or ``GRU`` node as cells: what :func:`read_onnx` returns.

    ``parameters``: one ``Parameters`` of ``cell`` per direction (forward, then reverse);
    ``initial_h``, ``initial_c``, ``sequence_lens``: the node's arrays when the file holds them
    (initializers or constants), in the node's layout, else None (they are fed at run time).
    """

    name: str
    op_type: str
    cell: str
    parameters: tuple
    direction: str
    layout: int
    initial_h: np.ndarray | None = None
    initial_c: np.ndarray | None = None
    sequence_lens: np.ndarray | None = None

    def forward(self, X, sequence_lens=None, initial_h=None, initial_c=None) -> tuple:
        """``(Y, Y_h)`` for a GRU, ``(Y, Y_h, Y_c)`` for an LSTM, as the ONNX operator computes
        them, with the cells' NumPy kernels: X (T, batch, X) (layout 1: (batch, T, X)); Y
        (T, num_directions, batch, H) (layout 1: (batch, T, num_directions, H)). Arguments left
        None take the node's own arrays (zeros for the states, full length T). With
        ``sequence_lens`` (needs the kernels' ``lengths``) steps past a row's length leave its
        state as it was and give zero outputs; the reverse direction runs each row's own
        ``sequence_lens[b]`` steps backwards, as ONNX does."""
        module = resolve_cell(self.cell)
        X = float_array(X, "X")
        if X.ndim != 3:
            raise ValueError(f"X must have shape {_x_meaning(self.layout)}, got {X.shape}")
        event_size = self.parameters[0].event_size
        if X.shape[-1] != event_size:
            raise ValueError(
                f"X must have shape {_x_meaning(self.layout)} with input_size {event_size}, "
                f"got {X.shape}"
            )
        if self.op_type == "GRU" and initial_c is not None:
            raise ValueError("initial_c: a GRU node has no cell state (initial_h only)")
        x = X.transpose(1, 0, 2) if self.layout else X
        steps, batch = x.shape[:2]
        lengths = self.sequence_lens if sequence_lens is None else sequence_lens
        if lengths is not None:
            lengths = _lengths(lengths, steps, batch)
        names = ("initial_h", "initial_c") if self.op_type == "LSTM" else ("initial_h",)
        given = (initial_h, initial_c)
        states = []
        for name, value in zip(names, given):
            value = getattr(self, name) if value is None else value
            if value is not None:
                value = float_array(value, name)
                expected = (len(self.parameters), batch, self.parameters[0].hidden_size)
                if self.layout:
                    expected = (expected[1], expected[0], expected[2])
                if value.shape != expected:
                    raise ValueError(
                        f"{name} must have shape {expected} "
                        f"{_state_meaning(self.layout)}, got {value.shape}"
                    )
                value = value.transpose(1, 0, 2) if self.layout else value
            states.append(value)
        outputs, finals = [], []
        for d, parameters in enumerate(self.parameters):
            reverse = d == 1 or self.direction == "reverse"
            events = _reversed(x, lengths) if reverse else x
            extra = {} if lengths is None else {"lengths": lengths}
            initial = [None if s is None else s[d] for s in states]
            y, lasts, _ = module.forward(parameters, events, *initial, **extra)
            outputs.append(_reversed(y, lengths) if reverse else y)
            finals.append(lasts if isinstance(lasts, tuple) else (lasts,))
        Y = np.stack(outputs, axis=1)
        per_state = [np.stack([f[k] for f in finals]) for k in range(len(finals[0]))]
        if self.layout:
            Y = Y.transpose(2, 0, 1, 3)
            per_state = [s.transpose(1, 0, 2) for s in per_state]
        return (Y, *per_state)


def _x_meaning(layout):
    return "(batch, T, input_size) (layout 1)" if layout else "(T, batch, input_size)"


def _state_meaning(layout):
    if layout:
        return "(batch, num_directions, hidden_size) (layout 1)"
    return "(num_directions, batch, hidden_size)"


def _lengths(value, steps, batch) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"sequence_lens must be integers, got dtype {array.dtype}")
    if array.shape != (batch,):
        raise ValueError(f"sequence_lens must have shape ({batch},) (batch,), got {array.shape}")
    bad = np.flatnonzero((array < 1) | (array > steps))
    if bad.size:
        raise ValueError(
            f"sequence_lens[{bad[0]}] = {array[bad[0]]}: every length must be in 1..T = {steps}"
        )
    return array.astype(np.int64)


def _reversed(x, lengths):
    """Each row's first ``lengths[b]`` steps in reverse order, the rest where they are: its own
    inverse (ONNX's reverse direction over a batch of different lengths)."""
    if lengths is None:
        return x[::-1]
    steps, batch = x.shape[:2]
    t = np.arange(steps)[:, None]
    index = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return x[index, np.arange(batch)[None, :]]


def _constants(graph) -> dict[str, np.ndarray]:
    """Every tensor the graph holds: initializers and the outputs of Constant nodes."""
    from onnx import helper, numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(
                        helper.get_attribute_value(attribute)
                    )
    return values


def _load(model):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_model_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(os.fspath(model))
    raise TypeError(
        f"model must be a path, bytes or an onnx.ModelProto, got {type(model).__name__}"
    )


def _pick(graph, node):
    recurrent = [n for n in graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    label = ", ".join(f"{n.op_type} {n.name!r}" for n in recurrent) or "none"
    if node is None:
        if len(recurrent) != 1:
            raise ValueError(
                f"node: the graph has {len(recurrent)} recurrent nodes ({label}): pick one by "
                "name or index"
            )
        found = recurrent[0]
    elif isinstance(node, str):
        matches = [n for n in recurrent if n.name == node]
        if not matches:
            raise ValueError(f"node: no recurrent node named {node!r} (there are: {label})")
        found = matches[0]
    elif isinstance(node, int) and not isinstance(node, bool):
        if not 0 <= node < len(recurrent):
            raise ValueError(f"node: index {node} out of range (recurrent nodes: {label})")
        found = recurrent[node]
    else:
        raise TypeError(f"node must be None, a name or an index, got {type(node).__name__}")
    if found.op_type == "RNN":
        raise ValueError(f"node {found.name!r}: ONNX's plain RNN has no cell here (LSTM, GRU)")
    if found.domain not in ("", "ai.onnx"):
        raise ValueError(f"node {found.name!r}: domain {found.domain!r}, expected ONNX's own")
    return found


def _attributes(node) -> dict:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        values[attribute.name] = value
    return values


def _check_attributes(node, attributes, directions, hidden_size) -> None:
    where = f"node {node.name!r} ({node.op_type})"
    unknown = sorted(set(attributes) - ATTRIBUTES[node.op_type])
    if unknown:
        raise ValueError(f"{where}: attribute {unknown[0]} is not one ONNX defines for it")
    if "clip" in attributes:
        raise ValueError(
            f"{where}: attribute clip={attributes['clip']!r}: the cells do not clip their "
            "pre-activations"
        )
    for name in ("activation_alpha", "activation_beta"):
        if name in attributes:
            raise ValueError(
                f"{where}: attribute {name}={attributes[name]!r}: the cells compute the default "
                "activations, which take no parameters"
            )
    default = list(DEFAULT_ACTIVATIONS[node.op_type]) * directions
    if "activations" in attributes and list(attributes["activations"]) != default:
        raise ValueError(
            f"{where}: attribute activations={attributes['activations']!r}: the cells compute "
            f"{default} only"
        )
    direction = attributes.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise ValueError(
            f"{where}: attribute direction={direction!r}, expected one of {DIRECTIONS}"
        )
    if (direction == "bidirectional") != (directions == 2):
        raise ValueError(f"{where}: direction={direction!r} but W holds {directions} direction(s)")
    if attributes.get("layout", 0) not in (0, 1):
        raise ValueError(f"{where}: attribute layout={attributes['layout']!r}, expected 0 or 1")
    if "hidden_size" in attributes and attributes["hidden_size"] != hidden_size:
        raise ValueError(
            f"{where}: attribute hidden_size={attributes['hidden_size']} but R is for "
            f"hidden_size {hidden_size}"
        )
    for name in ("input_forget", "linear_before_reset"):
        if attributes.get(name, 0) not in (0, 1):
            raise ValueError(f"{where}: attribute {name}={attributes[name]!r}, expected 0 or 1")


def read_onnx(model, node=None, *, cell=None, dtype=None) -> OnnxRecurrent:
    """The ``LSTM`` or ``GRU`` node of an ONNX model (a path, bytes or an ``onnx.ModelProto``)
    as cells: an :class:`OnnxRecurrent`. ``node``: its name or index among the recurrent nodes
    (None: the graph must have one). W, R, B and P must be in the file (initializers or
    Constant nodes); ``initial_h``, ``initial_c`` and ``sequence_lens`` are read when they are.
    The cell follows from the node: ``input_forget=1`` is ``lstm_cifg``, an LSTM with non-zero
    P ``peephole_lstm``, else ``lstm``; a GRU is ``gru`` with ``linear_before_reset=1``,
    ``gru_cho`` without. ``cell`` may name another cell computing the same node (e.g.
    ``peephole_lstm`` for an LSTM with zero P). Attributes no cell computes are refused by name.
    """
    dtype = float_dtype(dtype)
    graph = _load(model).graph
    found = _pick(graph, node)
    where = f"node {found.name!r} ({found.op_type})"
    constants = _constants(graph)
    names = dict(zip(INPUTS[found.op_type], list(found.input) + [""] * 8))
    values = {}
    for key in INPUTS[found.op_type][1:]:
        name = names[key]
        if not name:
            continue
        if name in constants:
            values[key] = constants[name]
        elif key in ("W", "R", "B", "P"):
            raise ValueError(
                f"{where}: input {key} ({name!r}) is not in the file (a graph input fed at run "
                "time, or computed): its weights must be initializers or constants"
            )
    for key in ("W", "R"):
        if key not in values:
            raise ValueError(f"{where}: input {key} is missing")
    W, R = float_array(values["W"], "W"), float_array(values["R"], "R")
    expect_ndim(R, 3, "R", "(num_directions, gates * hidden_size, hidden_size)")
    attributes = _attributes(found)
    _check_attributes(found, attributes, R.shape[0], R.shape[2])
    if found.op_type == "LSTM":
        if attributes.get("input_forget", 0):
            chosen = "lstm_cifg"
        elif "P" in values and np.any(values["P"] != 0):
            chosen = "peephole_lstm"
        else:
            chosen = "lstm"
    else:
        chosen = "gru" if attributes.get("linear_before_reset", 0) else "gru_cho"
    if cell is not None:
        wanted = supported_cell(cell, OPERATORS, "ONNX").CELL
        if OPERATORS[wanted] != OPERATORS[chosen]:
            raise ValueError(
                f"cell={wanted!r}: {where} with {OPERATORS[chosen][1]} computes the {chosen!r} cell"
            )
        chosen = wanted
    parameters = from_onnx(W, R, values.get("B"), values.get("P"), cell=chosen, dtype=dtype)
    return OnnxRecurrent(
        name=found.name,
        op_type=found.op_type,
        cell=chosen,
        parameters=tuple(parameters),
        direction=attributes.get("direction", "forward"),
        layout=int(attributes.get("layout", 0)),
        initial_h=values.get("initial_h"),
        initial_c=values.get("initial_c"),
        sequence_lens=values.get("sequence_lens"),
    )


def write_onnx(
    parameters,
    path=None,
    *,
    direction=None,
    layout=0,
    sequence_lens=False,
    initial_states=False,
    opset=14,
    name="recurrent",
):
    """An ONNX model of one ``LSTM`` or ``GRU`` node computing the cell(s) ``parameters`` (one
    ``Parameters``, or two: forward and reverse), its weights as initializers in the
    parameters' dtype (float32 or float64); returned as an ``onnx.ModelProto`` and, with
    ``path``, written there atomically (checked by ``onnx.checker`` first).

    Graph inputs: ``X`` (T, batch, input_size) (layout 1: (batch, T, input_size)), with
    ``sequence_lens=True`` an int32 ``sequence_lens`` (batch,), with ``initial_states=True``
    ``initial_h`` (and ``initial_c`` for an LSTM); outputs ``Y``, ``Y_h`` (and ``Y_c``).
    ``direction``: None (forward, or bidirectional for two), or "reverse" for one.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    directions = directions_of(parameters)
    cell = supported_cell(cell_of(directions[0]), OPERATORS, "ONNX")
    op_type, selecting = OPERATORS[cell.CELL]
    arrays = to_onnx(directions)
    if direction is None:
        direction = "bidirectional" if len(directions) == 2 else "forward"
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if (direction == "bidirectional") != (len(directions) == 2):
        raise ValueError(
            f"direction={direction!r} needs {2 if direction == 'bidirectional' else 1} "
            f"Parameters, got {len(directions)}"
        )
    if layout not in (0, 1) or isinstance(layout, bool):
        raise ValueError(f"layout must be 0 or 1, got {layout!r}")
    dtype = arrays["W"].dtype
    element = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    count, hidden = len(directions), directions[0].hidden_size
    event = directions[0].event_size

    def ordered(*dims):  # (T or D, batch, ...) in the node's layout
        return [dims[1], dims[0], *dims[2:]] if layout else list(dims)

    inputs = [helper.make_tensor_value_info("X", element, ordered("T", "batch", event))]
    node_inputs = {"X": "X", "W": "W", "R": "R", "B": "B"}
    initializers = [numpy_helper.from_array(arrays[k], k) for k in ("W", "R", "B")]
    if sequence_lens:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
        node_inputs["sequence_lens"] = "sequence_lens"
    states = ("initial_h", "initial_c") if op_type == "LSTM" else ("initial_h",)
    if initial_states:
        for state in states:
            inputs.append(
                helper.make_tensor_value_info(state, element, ordered(count, "batch", hidden))
            )
            node_inputs[state] = state
    if "P" in arrays:
        initializers.append(numpy_helper.from_array(arrays["P"], "P"))
        node_inputs["P"] = "P"
    order = INPUTS[op_type]
    last = max(order.index(k) for k in node_inputs)
    wired = [node_inputs.get(k, "") for k in order[: last + 1]]
    outputs = ["Y", "Y_h", "Y_c"][: 1 + len(states)]
    attributes = {"hidden_size": hidden, "direction": direction, "layout": layout}
    attributes.update({k: v for k, v in selecting.items() if v or op_type == "GRU"})
    node = helper.make_node(op_type, wired, outputs, name=name, **attributes)
    shapes = {"Y": ["T", count, "batch", hidden], "Y_h": [count, "batch", hidden]}
    if layout:
        shapes = {"Y": ["batch", "T", count, hidden], "Y_h": ["batch", count, hidden]}
    shapes["Y_c"] = shapes["Y_h"]
    graph = helper.make_graph(
        [node],
        name,
        inputs,
        [helper.make_tensor_value_info(k, element, shapes[k]) for k in outputs],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="lstm_sym",
        doc_string=f"the {cell.CELL} cell of lstm_sym as an ONNX {op_type} node",
    )
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        _write_atomically(Path(path), model.SerializeToString())
    return model


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.{os.getpid()}.tmp")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
