"""The binding's bad-input table (issue 15): one row per hostile input to ``native.load(...)``'s
``forward``/``backward`` and to the C API called through ctypes, with the error expected and a
fragment of its message. The C entry points must return their error codes (``<cell>_error_string``
names them), never crash: NULL where a pointer is required, sizes whose products overflow size_t.

``tests/safety/test_binding_sanitized.py`` runs this whole table again in a process of its own,
with the library built with address and undefined-behaviour sanitizers
(``LSTM_SYM_TEST_SANITIZE=1``)."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from generated import gru, lstm
from lstm_sym.native import abi as abi_data
from lstm_sym.native import kernels_directory
from tests.conftest import require_tool
from tests.support import SANITIZE

#: Set by the sanitized run: load the cells built with SANITIZE.
SANITIZED = os.environ.get("LSTM_SYM_TEST_SANITIZE") == "1"
#: Cells whose C entry points get the NULL and overflow rows (plain, projected, two products).
C_CELLS = ("lstm", "lstmp", "gru_cho")
#: Small valid sizes for the C rows.
SIZES = {"steps": 2, "batch": 2, "event_size": 3, "hidden_size": 4, "projection_size": 3}
HUGE = 1 << 62


class CError(Exception):
    """A C entry point returned an error code (message: ``<cell>_error_string``), or a size
    function returned 0."""


@dataclass
class Context:
    cells: dict  # name -> NativeCell
    problem: Any
    cache: Any  # a NativeCache of lstm's forward, batched
    outputs: np.ndarray


@pytest.fixture(scope="module")
def context():
    require_tool("gcc")
    from lstm_sym import native
    from tests.problems import random_problem

    flags = SANITIZE if SANITIZED else ()
    cells = {name: native.load(name, extra_flags=flags) for name in {"lstm", "gru", *C_CELLS}}
    problem = random_problem(lstm, 3, 2, 4, 5)
    outputs, _, cache = cells["lstm"].forward(problem.parameters, problem.events)
    return Context(cells, problem, cache, outputs)


def _forward(c: Context, *args, parameters=None, events=None, **named):
    p = c.problem
    parameters = p.parameters if parameters is None else parameters
    return c.cells["lstm"].forward(
        parameters, p.events if events is None else events, *args, **named
    )


_OWN = object()  # _backward's default cache: the context's


def _backward(c: Context, *args, cache=_OWN, d_outputs=None, **named):
    cache = c.cache if cache is _OWN else cache
    d_outputs = c.problem.d_outputs if d_outputs is None else d_outputs
    return c.cells["lstm"].backward(cache, d_outputs, *args, **named)


def _bad_parameter(c: Context, name: str, value):
    p = lstm.Parameters(4, 5)
    for attribute in p.NAMES:
        setattr(p, attribute, getattr(c.problem.parameters, attribute))
    setattr(p, name, value)
    return _forward(c, parameters=p)


def _released(c: Context):
    _, _, cache = _forward(c)
    cache.release()
    return _backward(c, cache=cache)


def _foreign(c: Context):
    p = gru.Parameters(4, 5)
    _, _, cache = c.cells["gru"].forward(p, c.problem.events)
    return _backward(c, cache=cache)


def _numpy_cache(c: Context):
    _, _, cache = lstm.forward(c.problem.parameters, c.problem.events)
    return _backward(c, cache=cache)


def _load(name: str, **options):
    from lstm_sym import native

    return native.load(name, **options)


BINDING_ROWS = [
    ("an unknown cell", lambda c: _load("nope"),
     ValueError, "no generated cell 'nope' in"),
    ("a directory without the cell", lambda c: _load("lstm", directory=os.devnull + "-none"),
     ValueError, "the cells there are none"),
    ("parameters of another cell", lambda c: _forward(c, parameters=gru.Parameters(4, 5)),
     TypeError, "parameters must be a lstm.Parameters, got gru.Parameters"),
    ("parameters a dict", lambda c: _forward(c, parameters={"a": 1}),
     TypeError, "parameters must be a lstm.Parameters, got dict"),
    ("events a string", lambda c: _forward(c, events="events"),
     TypeError, "events must be a real numeric array"),
    ("events complex", lambda c: _forward(c, events=np.zeros((3, 2, 4), complex)),
     TypeError, "events must be a real numeric array, got dtype complex128"),
    ("events object dtype", lambda c: _forward(c, events=np.zeros((3, 2, 4), object)),
     TypeError, "events must be a real numeric array"),
    ("events long double", lambda c: _forward(c, events=np.zeros((3, 2, 4), np.longdouble)),
     TypeError, "inputs must be float32 or float64"),
    ("events 0-d", lambda c: _forward(c, events=np.float64(1.0)),
     ValueError, "events must have shape (T, 4) or (T, batch, 4)"),
    ("events 1-d", lambda c: _forward(c, events=np.zeros(4)),
     ValueError, "events must have shape (T, 4)"),
    ("events 4-d", lambda c: _forward(c, events=np.zeros((3, 2, 1, 4))),
     ValueError, "got (3, 2, 1, 4)"),
    ("events of another event size", lambda c: _forward(c, events=np.zeros((3, 2, 5))),
     ValueError, "events must have shape (T, 4)"),
    ("events with no steps", lambda c: _forward(c, events=np.zeros((0, 2, 4))),
     ValueError, "T and batch >= 1, got (0, 2, 4)"),
    ("events with an empty batch", lambda c: _forward(c, events=np.zeros((3, 0, 4))),
     ValueError, "T and batch >= 1"),
    ("steps too many for one cache",
     lambda c: _forward(c, events=np.broadcast_to(np.zeros((1, 1, 4), bool), (1 << 60, 1, 4))),
     ValueError, "sizes too large for one cache"),
    ("h0 of another shape", lambda c: _forward(c, h0=np.zeros((2, 4))),
     ValueError, "h0 must have shape (2, 5) (batch, hidden_size)"),
    ("c0 complex", lambda c: _forward(c, c0=np.zeros((2, 5), complex)),
     TypeError, "c0 must be a real numeric array"),
    ("c0 unbatched for batched events", lambda c: _forward(c, c0=np.zeros(5)),
     ValueError, "c0 must have shape (2, 5)"),
    ("an unknown state", lambda c: _forward(c, x0=np.zeros((2, 5))),
     TypeError, "unexpected or repeated argument 'x0'"),
    ("too many states", lambda c: _forward(c, None, None, None),
     TypeError, "takes at most 2 state arguments, got 3"),
    ("a weight of another shape",
     lambda c: _bad_parameter(c, "hidden_forget_weights", np.zeros((5, 4))),
     ValueError, "parameters.hidden_forget_weights must have shape (5, 5)"),
    ("a weight complex",
     lambda c: _bad_parameter(c, "event_update_weights", np.zeros((5, 4), complex)),
     TypeError, "parameters.event_update_weights must be a real"),
    ("a bias a string", lambda c: _bad_parameter(c, "event_output_bias", "zero"),
     TypeError, "parameters.event_output_bias must be a real"),
    ("cache None", lambda c: _backward(c, cache=None),
     TypeError, "cache must be the Cache returned by lstm.forward"),
    ("cache of the NumPy module", _numpy_cache,
     TypeError, "cache must be the Cache returned by lstm.forward of this native module"),
    ("cache of another cell's kernel", _foreign,
     TypeError, "cache must be made by this kernel's forward"),
    ("cache released", _released, ValueError, "cache was released"),
    ("d_outputs of another shape", lambda c: _backward(c, d_outputs=np.zeros((3, 2, 4))),
     ValueError, "d_outputs must have shape (3, 2, 5)"),
    ("d_outputs unbatched for a batched cache", lambda c: _backward(c, d_outputs=np.zeros((3, 5))),
     ValueError, "d_outputs must have shape (3, 2, 5)"),
    ("d_outputs complex", lambda c: _backward(c, d_outputs=np.zeros((3, 2, 5), complex)),
     TypeError, "d_outputs must be a real numeric array"),
    ("d_outputs a list of strings", lambda c: _backward(c, d_outputs=["a", "b"]),
     TypeError, "d_outputs must be a real numeric array"),
    ("d_h_last of another shape", lambda c: _backward(c, d_h_last=np.zeros((2, 4))),
     ValueError, "d_h_last must have shape (2, 5)"),
    ("d_c_last object dtype", lambda c: _backward(c, d_c_last=np.zeros((2, 5), object)),
     TypeError, "d_c_last must be a real numeric array"),
    ("an unknown adjoint", lambda c: _backward(c, d_x_last=np.zeros((2, 5))),
     TypeError, "unexpected or repeated argument 'd_x_last'"),
]  # fmt: skip


# --- the C API through ctypes ----------------------------------------------------------------


def _c_call(
    cell, function: str, dtype, sizes: dict, null: str | None = None, lengths=None, out=None
):
    """Call ``<cell>_<function>_<f64|f32>`` through ctypes with ``sizes`` and a zeroed buffer,
    large enough for the small sizes, for every pointer (``null``: that one NULL; ``lengths``:
    the rows' lengths, default every row all ``steps``; ``out``: a dict that receives the
    buffers by argument name); CError with ``<cell>_error_string`` of a non-zero return."""
    dtype = np.dtype(dtype)
    # A function object of its own (indexing makes a new one): its argtypes are not the
    # binding's, which the loaded cell keeps using
    entry = cell.library[cell.abi.functions[function].symbols[dtype.name]]
    size_function = getattr(cell.library, cell.abi.cache_size[0])
    size_function.restype = ctypes.c_size_t
    size_function.argtypes = [ctypes.c_size_t] * len(cell.abi.cache_size[1])
    elements = size_function(*(SIZES[n] for n in cell.abi.cache_size[1])) + 4096
    buffers, arguments = [], []
    for argument in cell.abi.functions[function].args:
        if argument.kind == "size":
            arguments.append(ctypes.c_size_t(sizes[argument.name]))
        elif argument.name == null:
            arguments.append(ctypes.c_void_p(None))
        elif argument.kind == "bound":
            # step_forward_bound: step_forward's sizes, parameter addresses and the results'
            # offsets (disjoint regions of the results buffer) in one uint64 array
            entries, chunk = [], elements // len(cell.abi.step_bound)
            for index, (name, form) in enumerate(cell.abi.step_bound):
                if form == "size":
                    entries.append(sizes[name])
                elif form == "address":
                    buffers.append(np.zeros(elements, dtype))
                    entries.append(buffers[-1].ctypes.data)
                else:
                    entries.append(index * chunk)
            buffers.append(np.array(entries, dtype=np.uint64))
            arguments.append(ctypes.c_void_p(buffers[-1].ctypes.data))
        elif argument.kind == "lengths":
            given = np.full(SIZES["batch"], SIZES["steps"]) if lengths is None else lengths
            buffers.append(np.ascontiguousarray(given, dtype=np.int64))
            arguments.append(ctypes.c_void_p(buffers[-1].ctypes.data))
        else:
            buffers.append(np.zeros(elements, dtype))
            arguments.append(ctypes.c_void_p(buffers[-1].ctypes.data))
        if out is not None and argument.kind != "size":
            out[argument.name] = buffers[-1] if argument.name != null else None
    entry.restype = ctypes.c_int
    entry.argtypes = None
    status = entry(*arguments)
    if status != 0:
        cell._error_string.restype = ctypes.c_char_p
        raise CError(f"{entry.__name__}: {cell._error_string(status).decode()}")
    return status


def _c_cache_size(cell, sizes: dict):
    size_function = getattr(cell.library, cell.abi.cache_size[0])
    size_function.restype = ctypes.c_size_t
    size_function.argtypes = [ctypes.c_size_t] * len(cell.abi.cache_size[1])
    value = size_function(*(sizes[n] for n in cell.abi.cache_size[1]))
    if value == 0:
        raise CError(f"{cell.abi.cache_size[0]} returned 0")
    return value


def _c_rows():
    rows = []
    for name in C_CELLS:
        abi = abi_data.read(kernels_directory(), name)
        rows.append(
            (
                f"C {name} cache_size of sizes whose product overflows",
                lambda c, n=name: _c_cache_size(c.cells[n], dict.fromkeys(SIZES, HUGE)),
                CError,
                "returned 0",
            )
        )
        rows.append(
            (
                f"C {name} cache_size of a zero size",
                lambda c, n=name: _c_cache_size(c.cells[n], {**SIZES, "batch": 0}),
                CError,
                "returned 0",
            )
        )
        for function in abi.functions.values():
            sizes = [a.name for a in function.args if a.kind == "size"]
            if any(a.kind == "bound" for a in function.args):  # the sizes in its bound array
                sizes = [name for name, form in abi.step_bound if form == "size"]
            required = [a.name for a in function.args if a.kind != "size" and not a.optional]
            for dtype in ("float64", "float32"):
                symbol = function.symbols[dtype]
                for size in sizes:
                    rows.append(
                        (
                            f"C {symbol} {size} 2^62",
                            lambda c, n=name, f=function.name, d=dtype, s=size: _c_call(
                                c.cells[n], f, d, {**SIZES, s: HUGE}
                            ),
                            CError,
                            "invalid size",
                        )
                    )
                    rows.append(
                        (
                            f"C {symbol} {size} 0",
                            lambda c, n=name, f=function.name, d=dtype, s=size: _c_call(
                                c.cells[n], f, d, {**SIZES, s: 0}
                            ),
                            CError,
                            "invalid size",
                        )
                    )
                rows.append(
                    (
                        f"C {symbol} batch and hidden_size 2^33 (product overflows)",
                        lambda c, n=name, f=function.name, d=dtype: _c_call(
                            c.cells[n], f, d, {**SIZES, "batch": 1 << 33, "hidden_size": 1 << 33}
                        ),
                        CError,
                        "invalid size",
                    )
                )
                for label, bad in (("0", 0), ("negative", -1), ("above steps", 3)):
                    if not any(a.kind == "lengths" for a in function.args):
                        continue
                    rows.append(
                        (
                            f"C {symbol} a length {label}",
                            lambda c, n=name, f=function.name, d=dtype, v=bad: _c_call(
                                c.cells[n], f, d, SIZES, lengths=[SIZES["steps"], v]
                            ),
                            CError,
                            "invalid lengths: every length must be at least 1 and at most steps",
                        )
                    )
                for pointer in required:
                    rows.append(
                        (
                            f"C {symbol} {pointer} NULL",
                            lambda c, n=name, f=function.name, d=dtype, p=pointer: _c_call(
                                c.cells[n], f, d, SIZES, null=p
                            ),
                            CError,
                            "a required pointer argument is NULL",
                        )
                    )
    return rows


ROWS = BINDING_ROWS + _c_rows()


# --- lengths: the same refusal from the NumPy module and the binding --------------------------

#: (id, lengths, batched events, error, the whole message); the events have T = 3, batch 2.
LENGTHS_ROWS = [
    ("lengths of another batch", np.array([3, 3, 3]), True,
     ValueError, "lengths must have shape (2,) (batch,), got (3,)"),
    ("lengths 2-d", np.array([[3, 3]]), True,
     ValueError, "lengths must have shape (2,) (batch,), got (1, 2)"),
    ("lengths a scalar for batched events", 3, True,
     ValueError, "lengths must have shape (2,) (batch,), got ()"),
    ("lengths float", np.array([3.0, 2.0]), True,
     TypeError, "lengths must hold integers, got dtype float64"),
    ("lengths float32 integral", np.array([3, 2], np.float32), True,
     TypeError, "lengths must hold integers, got dtype float32"),
    ("lengths bool", np.array([True, True]), True,
     TypeError, "lengths must hold integers, got dtype bool"),
    ("lengths strings", ["3", "2"], True,
     TypeError, "lengths must hold integers, got dtype <U1"),
    ("lengths too large for int64", [2**70, 1], True,
     TypeError, "lengths must hold integers, got dtype object"),
    ("a length 0", np.array([3, 0]), True,
     ValueError, "lengths[1] must be between 1 and T = 3 (the events' steps), got 0"),
    ("a length negative", np.array([-2, 1]), True,
     ValueError, "lengths[0] must be between 1 and T = 3 (the events' steps), got -2"),
    ("a length above T", np.array([1, 4], np.uint8), True,
     ValueError, "lengths[1] must be between 1 and T = 3 (the events' steps), got 4"),
    ("unbatched events with a (batch,) array", np.array([3]), False,
     ValueError, "lengths must be an integer scalar (shape ()) for unbatched events, got (1,)"),
    ("unbatched events with a bool", True, False,
     TypeError, "lengths must hold integers, got dtype bool"),
    ("unbatched events with a length 0", 0, False,
     ValueError, "lengths must be between 1 and T = 3 (the events' steps), got 0"),
    ("unbatched events with a length above T", np.int16(9), False,
     ValueError, "lengths must be between 1 and T = 3 (the events' steps), got 9"),
]  # fmt: skip


@pytest.mark.parametrize("backend", ["numpy", "binding"])
@pytest.mark.parametrize(
    ("lengths", "batched", "error", "message"),
    [r[1:] for r in LENGTHS_ROWS],
    ids=[r[0] for r in LENGTHS_ROWS],
)
def test_bad_lengths_are_refused_with_the_same_message_by_numpy_and_the_binding(
    context, backend, lengths, batched, error, message
):
    forward = lstm.forward if backend == "numpy" else context.cells["lstm"].forward
    events = context.problem.events if batched else context.problem.events[:, 0]
    with pytest.raises(error) as raised:
        forward(context.problem.parameters, events, lengths=lengths)
    assert str(raised.value) == message


@pytest.mark.parametrize("function", ["forward", "backward"])
def test_c_refuses_bad_lengths_before_writing_anything(context, function):
    """On LENGTHS_ERROR_LENGTHS every output buffer is as it was (zeros)."""
    out = {}
    with pytest.raises(CError, match="invalid lengths"):
        _c_call(context.cells["lstm"], function, "float64", SIZES, lengths=[1, 0], out=out)
    written = [n for n, a in cell_outputs(context.cells["lstm"], function, out) if np.any(a)]
    assert written == []


def test_every_c_forward_and_backward_runs_rows_of_different_lengths(context):
    """The masked path (one row finished after its first step) with every pointer given: under
    the sanitized run, no out-of-bounds access or undefined behaviour in it either."""
    for name in C_CELLS:
        cell = context.cells[name]
        for function in ("forward", "backward"):
            for dtype in ("float64", "float32"):
                assert _c_call(cell, function, dtype, SIZES, lengths=[1, 2]) == 0


def cell_outputs(cell, function, buffers):
    return [
        (a.name, buffers[a.name])
        for a in cell.abi.functions[function].args
        if a.kind in ("out", "inout") and a.name in buffers
    ]


@pytest.mark.parametrize(
    ("call", "error", "fragment"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_bad_input_is_refused_with_a_clear_error(context, call, error, fragment):
    with pytest.raises(error) as raised:
        call(context)
    assert fragment in str(raised.value), str(raised.value)


def test_every_c_entry_point_runs_with_the_small_sizes_and_every_pointer(context):
    """The C rows' baseline: with every pointer given, each entry point returns 0, so a row's
    error comes from its one bad size or NULL."""
    for name in C_CELLS:
        cell = context.cells[name]
        if SANITIZED:  # the run is only worth its name with instrumented libraries
            assert b"__asan" in cell.library_path.read_bytes(), cell.library_path
        for function in cell.abi.functions:
            for dtype in ("float64", "float32"):
                assert _c_call(cell, function, dtype, SIZES) == 0, (name, function, dtype)
