"""The bad-input table of the file loaders, interop and the generated NumPy modules (issue 15):
one row per input, with the error it must raise and a fragment of its message. Every row is a
case of its own; a row's call gets a directory to write the files it needs."""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from generated import gru, lstm, lstmp
from lstm_sym import interop
from lstm_sym.models import Dense, Recurrent
from tests.hostile_files import entries_of


class Row(NamedTuple):
    id: str
    call: Callable[[Path], object]
    error: type[BaseException]
    fragment: str


# -- files ------------------------------------------------------------------------------------


def lstm_file(directory: Path, **changes) -> Path:
    """An lstm Parameters(3, 4) file, its entries changed (None deletes one), as np.savez."""
    source = directory / "source.npz"
    parameters = lstm.Parameters(3, 4)
    for name in parameters.NAMES:
        setattr(parameters, name, np.full(parameters.checked(name).shape, 0.25))
    parameters.save(source)
    return rewritten(directory, source, changes)


def model_file(directory: Path, **changes) -> Path:
    source = directory / "model-source.npz"
    Recurrent(3, 4, rng=0).save(source)
    return rewritten(directory, source, changes)


def rewritten(directory: Path, source: Path, changes: dict) -> Path:
    if not changes:
        return source
    entries = entries_of(source)
    for name, value in changes.items():
        name = name.replace("__dot__", ".")
        if value is None:
            del entries[name]
        else:
            entries[name] = value
    path = directory / "changed.npz"
    np.savez(path, **entries)
    return path


def written(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def truncated(directory: Path) -> Path:
    data = lstm_file(directory).read_bytes()
    return written(directory, "truncated.npz", data[: len(data) // 2])


def corrupted(directory: Path) -> Path:
    """A stored entry's data bytes changed: its CRC no longer matches."""
    path = lstm_file(directory)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("hidden_update_weights.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[start : start + 8] = b"\x7f" * 8
    return written(directory, "corrupt.npz", bytes(data))


def with_member(directory: Path, name: str, data: bytes) -> Path:
    path = directory / "with-member.npz"
    path.write_bytes(lstm_file(directory).read_bytes())
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name: that is the point
        archive.writestr(name, data)
    return path


def npy_file(directory: Path) -> Path:
    path = directory / "array.npy"
    np.save(path, np.zeros(3))
    return path


def pickled(directory: Path) -> Path:
    path = directory / "pickled.npz"
    entries = entries_of(lstm_file(directory))
    entries["hidden_update_weights"] = np.array([{"a": 1}] * 16, dtype=object).reshape(4, 4)
    np.savez(path, **entries)
    return path


FILES = [
    Row(
        "not a zip",
        lambda d: lstm.Parameters.load(written(d, "t.npz", b"hello")),
        ValueError,
        "is not an .npz file",
    ),
    Row(
        "empty file",
        lambda d: lstm.Parameters.load(written(d, "e.npz", b"")),
        ValueError,
        "is not an .npz file",
    ),
    Row(
        "an .npy, not an .npz",
        lambda d: lstm.Parameters.load(npy_file(d)),
        ValueError,
        "is not an .npz file",
    ),
    Row(
        "truncated", lambda d: lstm.Parameters.load(truncated(d)), ValueError, "is not an .npz file"
    ),
    Row(
        "corrupt data (CRC)",
        lambda d: lstm.Parameters.load(corrupted(d)),
        ValueError,
        "'hidden_update_weights' is not a readable .npy array",
    ),
    Row(
        "missing file",
        lambda d: lstm.Parameters.load(d / "absent.npz"),
        FileNotFoundError,
        "absent.npz",
    ),
    Row(
        "a member not .npy",
        lambda d: lstm.Parameters.load(with_member(d, "notes.txt", b"x")),
        ValueError,
        "unexpected entry 'notes.txt'",
    ),
    Row(
        "a duplicated member",
        lambda d: lstm.Parameters.load(with_member(d, "__cell__.npy", b"x")),
        ValueError,
        "unexpected entry '__cell__.npy'",
    ),
    Row(
        "no header",
        lambda d: lstm.Parameters.load(lstm_file(d, __cell__=None)),
        ValueError,
        "is not an lstm_sym parameters file (no __cell__)",
    ),
    Row(
        "another cell",
        lambda d: gru.Parameters.load(lstm_file(d)),
        ValueError,
        "holds parameters of the 'lstm' cell, not of 'gru'",
    ),
    Row(
        "cell name not a string",
        lambda d: lstm.Parameters.load(lstm_file(d, __cell__=np.array(3))),
        ValueError,
        "__cell__ must be a string",
    ),
    Row(
        "wrong hidden_size asked",
        lambda d: lstm.Parameters.load(lstm_file(d), hidden_size=5),
        ValueError,
        "hidden_size=4, expected hidden_size=5",
    ),
    Row(
        "wrong event_size asked",
        lambda d: lstm.Parameters.load(lstm_file(d), event_size=2),
        ValueError,
        "event_size=3, expected event_size=2",
    ),
    Row(
        "format version 2",
        lambda d: lstm.Parameters.load(lstm_file(d, __format__=np.array(2))),
        ValueError,
        "format version 2; this module reads 1",
    ),
    Row(
        "format version 1.7",
        lambda d: lstm.Parameters.load(lstm_file(d, __format__=np.array(1.7))),
        ValueError,
        "__format__ must be an integer",
    ),
    Row(
        "format version as a vector",
        lambda d: lstm.Parameters.load(lstm_file(d, __format__=np.array([1]))),
        ValueError,
        "__format__ must be an integer",
    ),
    Row(
        "size zero",
        lambda d: lstm.Parameters.load(lstm_file(d, __hidden_size__=np.array(0))),
        ValueError,
        "hidden_size must be a positive integer, got 0",
    ),
    Row(
        "size negative",
        lambda d: lstm.Parameters.load(lstm_file(d, __event_size__=np.array(-3))),
        ValueError,
        "event_size must be a positive integer, got -3",
    ),
    Row(
        "size a float",
        lambda d: lstm.Parameters.load(lstm_file(d, __hidden_size__=np.array(4.0))),
        ValueError,
        "__hidden_size__ must be an integer",
    ),
    Row(
        "size absurd",
        lambda d: lstm.Parameters.load(lstm_file(d, __hidden_size__=np.array(10**12))),
        ValueError,
        "a corrupt or hostile file",
    ),
    Row(
        "an array missing",
        lambda d: lstm.Parameters.load(lstm_file(d, hidden_output_bias=None)),
        ValueError,
        "missing ['hidden_output_bias']",
    ),
    Row(
        "an extra array",
        lambda d: lstm.Parameters.load(lstm_file(d, extra=np.zeros(2))),
        ValueError,
        "unexpected ['extra']",
    ),
    Row(
        "wrong shape",
        lambda d: lstm.Parameters.load(lstm_file(d, hidden_output_weights=np.zeros((4, 3)))),
        ValueError,
        "parameters.hidden_output_weights must have shape (4, 4)",
    ),
    Row(
        "wrong bias shape",
        lambda d: lstm.Parameters.load(lstm_file(d, event_update_bias=np.zeros(3))),
        ValueError,
        "parameters.event_update_bias must have shape (4,)",
    ),
    Row(
        "complex array",
        lambda d: lstm.Parameters.load(
            lstm_file(d, event_update_weights=np.zeros((4, 3), complex))
        ),
        ValueError,
        "'event_update_weights' has dtype complex128: not a plain number",
    ),
    Row(
        "string array",
        lambda d: lstm.Parameters.load(lstm_file(d, event_update_weights=np.full((4, 3), "a"))),
        ValueError,
        "parameters.event_update_weights must be a real numeric array",
    ),
    Row(
        "pickled object array",
        lambda d: lstm.Parameters.load(pickled(d)),
        ValueError,
        "not a plain number or string",
    ),
    Row(
        "model: another kind",
        lambda d: Recurrent.load((Dense(2, 3, rng=0).save(d / "dense.npz"), d / "dense.npz")[1]),
        ValueError,
        "holds a 'dense' model, not a 'recurrent' model",
    ),
    Row(
        "model: another cell asked",
        lambda d: Recurrent.load(model_file(d), cell="gru"),
        ValueError,
        "holds a 'lstm' model, not a 'gru' one",
    ),
    Row(
        "model: unknown cell",
        lambda d: Recurrent.load(model_file(d, __cell__=np.array("nope"))),
        ValueError,
        "no generated cell module lstm_sym.kernels.nope",
    ),
    Row(
        "model: format 1.7",
        lambda d: Recurrent.load(model_file(d, __format__=np.array(1.7))),
        ValueError,
        "__format__ must be an integer",
    ),
    Row(
        "model: sizes of two",
        lambda d: Recurrent.load(model_file(d, __sizes__=np.array([3, 4]))),
        ValueError,
        "__sizes__ must be 3 integers",
    ),
    Row(
        "model: no layers",
        lambda d: Recurrent.load(model_file(d, __sizes__=np.array([3, 4, 0]))),
        ValueError,
        "num_layers must be a positive integer, got 0",
    ),
    Row(
        "model: absurd sizes",
        lambda d: Recurrent.load(model_file(d, __sizes__=np.array([3, 10**7, 1]))),
        ValueError,
        "a corrupt or hostile file",
    ),
    Row(
        "model: more layers than arrays",
        lambda d: Recurrent.load(model_file(d, __sizes__=np.array([3, 4, 2]))),
        ValueError,
        "missing ['l1.event_candidate_bias'",
    ),
    Row(
        "model: float16 array",
        lambda d: Recurrent.load(model_file(d, l0__dot__event_forget_bias=np.zeros(4, np.float16))),
        ValueError,
        "l0.event_forget_bias must be float32 or float64, got float16",
    ),
    Row(
        "model: wrong shape",
        lambda d: Recurrent.load(model_file(d, l0__dot__hidden_forget_weights=np.zeros((4, 5)))),
        ValueError,
        "l0.hidden_forget_weights has shape (4, 5), expected (4, 4)",
    ),
    Row(
        "dense: 3-D weights",
        lambda d: Dense.load(
            (
                np.savez(
                    d / "dn.npz",
                    __model__=np.array("dense"),
                    __format__=np.array(1),
                    weights=np.zeros((2, 2, 2)),
                ),
                d / "dn.npz",
            )[1]
        ),
        ValueError,
        "weights must be 2-D",
    ),
    Row(
        "dense: int weights",
        lambda d: Dense.load(
            (
                np.savez(
                    d / "di.npz",
                    __model__=np.array("dense"),
                    __format__=np.array(1),
                    weights=np.zeros((2, 2), int),
                ),
                d / "di.npz",
            )[1]
        ),
        ValueError,
        "weights must be float32 or float64, got int64",
    ),
]

# -- interop: dtypes and arrays ---------------------------------------------------------------

TORCH = {"weight_ih_l0": np.zeros((8, 2)), "weight_hh_l0": np.zeros((8, 2))}
INTEROP = [
    Row(
        "from_keras dtype=int",
        lambda d: interop.from_keras(np.ones((2, 8)), np.ones((2, 8)), dtype=int),
        TypeError,
        "dtype must be float32 or float64, got int64",
    ),
    Row(
        "from_keras dtype=float16",
        lambda d: interop.from_keras(np.ones((2, 8)), np.ones((2, 8)), dtype=np.float16),
        TypeError,
        "dtype must be float32 or float64, got float16",
    ),
    Row(
        "from_keras dtype='nonsense'",
        lambda d: interop.from_keras(np.ones((2, 8)), np.ones((2, 8)), dtype="nonsense"),
        TypeError,
        "dtype must be float32 or float64, got 'nonsense'",
    ),
    Row(
        "from_keras string kernel",
        lambda d: interop.from_keras(np.full((2, 8), "a"), np.ones((2, 8))),
        TypeError,
        "kernel must be a float32 or float64 array",
    ),
    Row(
        "from_onnx dtype=bool",
        lambda d: interop.from_onnx(np.ones((1, 8, 2)), np.ones((1, 8, 2)), dtype=bool),
        TypeError,
        "dtype must be float32 or float64, got bool",
    ),
    Row(
        "from_torch dtype=int32",
        lambda d: lstm.Parameters.from_torch(TORCH, dtype=np.int32),
        TypeError,
        "dtype must be float32 or float64, got int32",
    ),
    Row(
        "to_torch_state_dict dtype=int",
        lambda d: lstm.Parameters(2, 2).to_torch_state_dict(dtype=int),
        TypeError,
        "dtype must be float32 or float64, got int64",
    ),
    Row(
        "Recurrent.from_torch dtype=complex",
        lambda d: Recurrent.from_torch(TORCH, dtype=complex),
        TypeError,
        "dtype must be float32 or float64, got complex128",
    ),
    Row(
        "Recurrent dtype=int",
        lambda d: Recurrent(2, 2, dtype=int),
        TypeError,
        "dtype must be float32 or float64, got int64",
    ),
]

# -- the generated NumPy modules --------------------------------------------------------------


def lstm_parameters(**changes):
    parameters = lstm.Parameters(3, 4)
    for name, value in changes.items():
        setattr(parameters, name, value)
    return parameters


def lstm_backward(d_outputs=None, cache=None, **lasts):
    _, _, own = lstm.forward(lstm_parameters(), np.zeros((5, 2, 3)))
    d_outputs = np.zeros((5, 2, 4)) if d_outputs is None else d_outputs
    return lstm.backward(own if cache is None else cache, d_outputs, **lasts)


def gru_cache():
    return gru.forward(gru.Parameters(3, 4), np.zeros((5, 2, 3)))[2]


NUMPY = [
    Row(
        "events 1-D",
        lambda d: lstm.forward(lstm_parameters(), np.zeros(3)),
        ValueError,
        "events must have shape (T, 3) or (T, batch, 3)",
    ),
    Row(
        "events 4-D",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((5, 2, 1, 3))),
        ValueError,
        "got (5, 2, 1, 3)",
    ),
    Row(
        "events wrong width",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((5, 2, 4))),
        ValueError,
        "events must have shape (T, 3) or (T, batch, 3)",
    ),
    Row(
        "events no steps",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((0, 2, 3))),
        ValueError,
        "at least one step",
    ),
    Row(
        "events complex",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((5, 3), complex)),
        TypeError,
        "events must be a real numeric array, got dtype complex128",
    ),
    Row(
        "events strings",
        lambda d: lstm.forward(lstm_parameters(), np.full((5, 3), "x")),
        TypeError,
        "events must be a real numeric array",
    ),
    Row(
        "events objects",
        lambda d: lstm.forward(lstm_parameters(), [[object()] * 3] * 5),
        TypeError,
        "events must be a real numeric array, got dtype object",
    ),
    Row(
        "events longdouble",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((5, 3), np.longdouble)),
        TypeError,
        "inputs must be float32 or float64",
    ),
    Row(
        "h0 wrong shape",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((5, 2, 3)), h0=np.zeros((2, 5))),
        ValueError,
        "h0 must have shape (2, 4) (batch, hidden_size), got (2, 5)",
    ),
    Row(
        "c0 unbatched wrong shape",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((5, 3)), c0=np.zeros((1, 4))),
        ValueError,
        "c0 must have shape (4,) (hidden_size,), got (1, 4)",
    ),
    Row(
        "h0 complex",
        lambda d: lstm.forward(lstm_parameters(), np.zeros((5, 3)), h0=np.zeros(4, complex)),
        TypeError,
        "h0 must be a real numeric array",
    ),
    Row(
        "lstmp h0 of hidden_size, not projection_size",
        lambda d: lstmp.forward(lstmp.Parameters(3, 4, 2), np.zeros((5, 3)), h0=np.zeros(4)),
        ValueError,
        "h0 must have shape (2,) (projection_size,)",
    ),
    Row(
        "parameters of another cell",
        lambda d: lstm.forward(gru.Parameters(3, 4), np.zeros((5, 3))),
        TypeError,
        "parameters must be a lstm.Parameters, got Parameters",
    ),
    Row(
        "parameters not parameters",
        lambda d: lstm.forward({"a": 1}, np.zeros((5, 3))),
        TypeError,
        "parameters must be a lstm.Parameters, got dict",
    ),
    Row(
        "a weight of the wrong shape",
        lambda d: lstm.forward(
            lstm_parameters(event_forget_weights=np.zeros((3, 4))), np.zeros((5, 3))
        ),
        ValueError,
        "parameters.event_forget_weights must have shape (4, 3)",
    ),
    Row(
        "a weight 1-D",
        lambda d: lstm.forward(
            lstm_parameters(hidden_forget_weights=np.zeros(16)), np.zeros((5, 3))
        ),
        ValueError,
        "parameters.hidden_forget_weights must have shape (4, 4)",
    ),
    Row(
        "a bias of the wrong length",
        lambda d: lstm.forward(lstm_parameters(event_forget_bias=np.zeros(3)), np.zeros((5, 3))),
        ValueError,
        "parameters.event_forget_bias must have shape (4,)",
    ),
    Row(
        "a weight complex",
        lambda d: lstm.forward(
            lstm_parameters(event_forget_weights=np.zeros((4, 3), complex)), np.zeros((5, 3))
        ),
        TypeError,
        "parameters.event_forget_weights must be a real numeric array",
    ),
    Row(
        "a weight None",
        lambda d: lstm.forward(lstm_parameters(event_forget_weights=None), np.zeros((5, 3))),
        TypeError,
        "parameters.event_forget_weights must be a real numeric array",
    ),
    Row(
        "Parameters size zero",
        lambda d: lstm.Parameters(0, 3),
        ValueError,
        "event_size must be a positive integer, got 0",
    ),
    Row(
        "Parameters size a float",
        lambda d: lstm.Parameters(3, 2.5),
        ValueError,
        "hidden_size must be a positive integer, got 2.5",
    ),
    Row(
        "Parameters.shapes size negative",
        lambda d: lstm.Parameters.shapes(3, -1),
        ValueError,
        "hidden_size must be a positive integer, got -1",
    ),
    Row(
        "d_outputs wrong shape",
        lambda d: lstm_backward(np.zeros((5, 2, 3))),
        ValueError,
        "d_outputs must have shape (5, 2, 4) (like outputs), got (5, 2, 3)",
    ),
    Row(
        "d_outputs unbatched for a batched cache",
        lambda d: lstm_backward(np.zeros((5, 4))),
        ValueError,
        "d_outputs must have shape (5, 2, 4)",
    ),
    Row(
        "d_outputs objects",
        lambda d: lstm_backward(np.full((5, 2, 4), None)),
        TypeError,
        "d_outputs must be a real numeric array, got dtype object",
    ),
    Row(
        "d_h_last wrong shape",
        lambda d: lstm_backward(d_h_last=np.zeros(4)),
        ValueError,
        "d_h_last must have shape (2, 4) (batch, hidden_size), got (4,)",
    ),
    Row(
        "d_c_last complex",
        lambda d: lstm_backward(d_c_last=np.zeros((2, 4), complex)),
        TypeError,
        "d_c_last must be a real numeric array",
    ),
    Row(
        "a cache of another cell",
        lambda d: lstm_backward(cache=gru_cache()),
        TypeError,
        "cache must be the Cache returned by lstm.forward, got Cache",
    ),
    Row(
        "a cache that is not one",
        lambda d: lstm_backward(cache={"cell": "lstm"}),
        TypeError,
        "cache must be the Cache returned by lstm.forward, got dict",
    ),
    Row(
        "step function: event wrong width",
        lambda d: lstm.input_gate(np.zeros(2), np.zeros(4), lstm_parameters()),
        ValueError,
        "event must have shape (..., 3)",
    ),
    Row(
        "step function: hidden state wrong shape",
        lambda d: lstm.forget_gate(np.zeros(3), np.zeros(5), np.zeros(4), lstm_parameters()),
        ValueError,
        "hidden_state must have shape (4,)",
    ),
]

TABLE = FILES + INTEROP + NUMPY


def test_the_table_has_one_row_per_input():
    ids = [row.id for row in TABLE]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_bad_input_is_refused_with_a_clear_error(row, tmp_path):
    with pytest.raises(row.error) as raised:
        row.call(tmp_path)
    assert row.fragment in str(raised.value)
