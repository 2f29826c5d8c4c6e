"""Property test of the binding (issue 15): random cell, small sizes, dtypes (float32, float64,
int, bool, complex, object), layouts (C or Fortran order, strided slices, misaligned, 0-d and
wrong ndim) of the inputs and of one parameter, given or missing initial states and final
adjoints. Every ``forward``/``backward`` of ``native.load(cell)`` either returns what the
cell's generated NumPy module returns (to a tolerance fitting the dtype, in the same dtype) or
raises ValueError/TypeError: never a crash, never another number."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from tests.conftest import require_module, require_tool
from tests.support import relative_error

hypothesis = require_module("hypothesis")
st = require_module("hypothesis.strategies")

DTYPES = ("float64", "float32", "int64", "int32", "bool", "complex128", "object")
LAYOUTS = ("C", "F", "strided", "misaligned", "0-d", "wrong ndim")
#: max |native - numpy| / max |numpy| by the dtype computed in.
TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-3}


@functools.cache
def _cell(name):
    from lstm_sym import native

    return native.load(name)


def _laid_out(array: np.ndarray, layout: str):
    """``array`` (values kept) in ``layout``; 0-d and wrong ndim change the shape."""
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided":
        wide = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), array.dtype)
        wide[..., ::2] = array
        return wide[..., ::2]
    if layout == "misaligned" and array.dtype != object and array.dtype.itemsize > 1:
        buffer = bytearray(array.nbytes + 1)
        view = np.frombuffer(buffer, array.dtype, array.size, offset=1).reshape(array.shape)
        view[...] = array
        return view
    if layout == "0-d":
        return array.reshape(-1)[:1].reshape(())
    if layout == "wrong ndim":
        return array[None, ...] if array.ndim < 3 else array.reshape(-1)
    return np.ascontiguousarray(array)


def _cast(array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype in ("int64", "int32"):
        return np.round(array * 2).astype(dtype)
    if dtype == "bool":
        return array > 0
    return array.astype(dtype)


def _run(function, *args, **named):
    """``("ok", result)`` or ``("refused", exception)`` for ValueError/TypeError."""
    try:
        return "ok", function(*args, **named)
    except (ValueError, TypeError) as error:
        return "refused", error


def _same(got, expected, path="outputs"):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _same(g, e, f"{path}[{i}]")
        return
    assert got.shape == expected.shape and got.dtype == expected.dtype, (path, got, expected)
    assert relative_error(got, expected) <= TOLERANCE[expected.dtype], path


@st.composite
def problems(draw):
    from lstm_sym import native

    name = draw(st.sampled_from(native.cells()))
    steps, batch = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    event_size, hidden = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    return {
        "name": name,
        "sizes": (steps, batch, event_size, hidden),
        "projection": draw(st.integers(1, hidden)) if name == "lstmp" else None,
        "parameters_dtype": draw(st.sampled_from(("float64", "float32"))),
        "parameters_layout": draw(st.sampled_from(LAYOUTS)),
        "parameter": draw(st.integers(0, 1000)),
        "events_dtype": draw(st.sampled_from(DTYPES)),
        "events_layout": draw(st.sampled_from(LAYOUTS)),
        "batched": draw(st.booleans()),
        "initial": draw(st.lists(st.booleans(), min_size=3, max_size=3)),
        "initial_layout": draw(st.sampled_from(LAYOUTS)),
        "adjoint_dtype": draw(st.sampled_from(DTYPES)),
        "adjoint_layout": draw(st.sampled_from(LAYOUTS)),
        "lasts": draw(st.lists(st.booleans(), min_size=3, max_size=3)),
        "seed": draw(st.integers(0, 2**16)),
    }


@pytest.mark.slow
@hypothesis.settings(max_examples=150, deadline=None, derandomize=True, database=None)
@hypothesis.given(case=problems())
def test_the_binding_equals_numpy_or_refuses_clearly(case):
    require_tool("gcc")
    from tests.problems import random_problem

    cell = _cell(case["name"])
    module = cell.module
    problem = random_problem(
        module,
        *case["sizes"],
        seed=case["seed"],
        dtype=np.dtype(case["parameters_dtype"]),
        projection_size=case["projection"],
    )
    names = problem.parameters.NAMES  # one parameter in another layout (0-d: a scalar)
    name = names[case["parameter"] % len(names)]
    value = getattr(problem.parameters, name)
    setattr(problem.parameters, name, _laid_out(value, case["parameters_layout"]))
    batched = case["batched"]
    pick = (lambda a: a) if batched else (lambda a: a[:, 0] if a.ndim == 3 else a[0])
    events = _laid_out(_cast(pick(problem.events), case["events_dtype"]), case["events_layout"])
    initial = {
        key: _laid_out(_cast(pick(value), case["events_dtype"]), case["initial_layout"])
        for (key, value), given in zip(problem.initial.items(), case["initial"], strict=False)
        if given
    }
    native_result = _run(cell.forward, problem.parameters, events, **initial)
    try:
        reference = "ok", module.forward(problem.parameters, events, **initial)
    except Exception as error:  # the NumPy module's own errors are its tests' business
        reference = "refused", error
    hypothesis.event(f"forward {native_result[0]}, NumPy {reference[0]}")
    if native_result[0] == "refused":
        return  # a ValueError/TypeError: the contract allows it
    assert reference[0] == "ok", (native_result, reference)
    outputs, lasts, cache = native_result[1]
    _same((outputs, lasts), reference[1][:2])

    adjoints = (problem.d_outputs, *problem.d_lasts.values())
    d_outputs, *d_lasts = (
        _laid_out(_cast(pick(a), case["adjoint_dtype"]), case["adjoint_layout"]) for a in adjoints
    )
    named = {
        key: value
        for key, value, given in zip(problem.lasts, d_lasts, case["lasts"], strict=False)
        if given
    }
    native_grads = _run(cell.backward, cache, d_outputs, **named)
    hypothesis.event(f"backward {native_grads[0]}")
    if native_grads[0] == "refused":
        return
    expected = module.backward(reference[1][2], d_outputs, **named)
    for attribute in expected.NAMES:
        _same(getattr(native_grads[1], attribute), getattr(expected, attribute), attribute)
