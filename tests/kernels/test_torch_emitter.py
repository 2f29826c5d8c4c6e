"""The generated PyTorch emitter (``generated/<cell>_torch.py``) against the generated NumPy
modules, on CPU: forward outputs and final states, the derived backward's gradients, variable
lengths (unsorted, NaN in the padding), autograd through the emitter's own forward, and what its
saved tuple holds."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json

import numpy as np
import pytest

from lstm_sym.cells import CELLS
from tests.conftest import require_module
from tests.support import ROOT

STEPS, BATCH, EVENT, HIDDEN, PROJECTION = 5, 4, 3, 6, 4
LENGTHS = np.array([3, 5, 1, 4])  # unsorted, a row of 1 and one of T
#: (rtol, atol relative to the largest reference value) per dtype
TOLERANCES = {np.float64: (1e-13, 1e-13), np.float32: (2e-5, 2e-6)}


@pytest.fixture(scope="module")
def torch():
    return require_module("torch")


def _emitter(cell):
    return importlib.import_module(f"generated.{cell}_torch")


def _problem(random_problem, cell, dtype, seed=0):
    projection = PROJECTION if cell == "lstmp" else None
    return random_problem(
        cell, STEPS, BATCH, EVENT, HIDDEN, seed=seed, dtype=dtype, projection_size=projection
    )


def _arrays(parameters, module, names, dtype):
    """The ABI's parameter arrays (``WEIGHTS`` order) of a ``Parameters``-like object: the
    gate-stacked ones (four, or the event two of a cell without hidden parts), then the per-unit
    parameters and a projection by attribute."""
    stacked = module.Parameters.stacked(parameters, dtype)
    rest = names[len(stacked) :]
    return [*stacked, *(np.asarray(getattr(parameters, n), dtype=dtype) for n in rest)]


def _gradient_arrays(grads, parameters, module, names, dtype):
    """The NumPy gradients laid out like the weights tuple (through ``Parameters.stacked``)."""
    holder = copy.deepcopy(parameters)
    for name in module.Parameters.NAMES:
        setattr(holder, name, getattr(grads, name))
    return _arrays(holder, module, names, dtype)


def _tensors(torch, problem, module, emitter, dtype, lengths):
    events = problem.events.copy()
    d_outputs = problem.d_outputs.copy()
    if lengths is not None:  # never read: NaN there must reach nothing
        padded = np.arange(STEPS)[:, None] >= lengths
        events[padded] = np.nan
        d_outputs[padded] = np.nan
    weights = _arrays(problem.parameters, module, emitter.WEIGHTS, dtype)
    return {
        "events": torch.from_numpy(events),
        "initial_states": tuple(torch.from_numpy(v) for v in problem.states.values()),
        "weights": tuple(torch.from_numpy(np.ascontiguousarray(w)) for w in weights),
        "lengths": None if lengths is None else torch.from_numpy(lengths),
        "d_outputs": torch.from_numpy(d_outputs),
        "d_final_states": tuple(torch.from_numpy(v) for v in problem.d_lasts.values()),
    }


def _close(actual, expected, what, dtype):
    rtol, atol = TOLERANCES[dtype]
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(
        np.asarray(actual).reshape(expected.shape),
        expected,
        rtol=rtol,
        atol=atol * scale,
        err_msg=what,
    )


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "unsorted_lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_the_emitter_computes_what_the_numpy_module_computes(
    torch, random_problem, cell, dtype, lengths
):
    module = importlib.import_module(f"generated.{cell}")
    emitter = _emitter(cell)
    problem = _problem(random_problem, cell, dtype)
    outputs, lasts, cache = module.forward(
        problem.parameters, problem.events, **problem.initial, lengths=lengths
    )
    lasts = lasts if isinstance(lasts, tuple) else (lasts,)
    grads = module.backward(cache, problem.d_outputs, **problem.lasts)

    given = _tensors(torch, problem, module, emitter, dtype, lengths)
    ours, finals, saved = emitter.forward(
        given["events"], given["initial_states"], given["weights"], given["lengths"]
    )
    assert ours.dtype == given["events"].dtype
    _close(ours.numpy(), outputs, "outputs", dtype)
    for state, ours_last, last in zip(emitter.STATES, finals, lasts, strict=True):
        _close(ours_last.numpy(), last, f"final {state}", dtype)
    d_events, d_initial, d_weights = emitter.backward(
        given["events"],
        given["initial_states"],
        given["weights"],
        given["lengths"],
        saved,
        given["d_outputs"],
        given["d_final_states"],
    )
    _close(d_events.numpy(), grads.events, "d events", dtype)
    for short, d in zip(problem.states, d_initial, strict=True):
        _close(d.numpy(), getattr(grads, f"{short}0"), f"d {short}0", dtype)
    expected = _gradient_arrays(grads, problem.parameters, module, emitter.WEIGHTS, dtype)
    for name, weight, d, reference in zip(
        emitter.WEIGHTS, given["weights"], d_weights, expected, strict=True
    ):
        assert d.shape == weight.shape, name
        _close(d.numpy(), reference, f"d {name}", dtype)
    if lengths is not None:
        padded = torch.from_numpy(np.arange(STEPS)[:, None] >= lengths)
        assert (ours[padded] == 0).all()
        assert (d_events[padded] == 0).all()  # the padded events' gradient is exactly zero


def test_the_weights_are_the_c_abis_parameter_arrays_in_order(torch):
    for cell in CELLS:
        abi = json.loads((ROOT / "generated" / f"{cell}.abi.json").read_text())
        emitter = _emitter(cell)
        assert emitter.WEIGHTS == tuple(p["array"] for p in abi["parameters"]), cell
        assert emitter.STATES == tuple(s["name"] for s in abi["states"]), cell
        assert emitter.CELL == cell


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "unsorted_lengths"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_autograd_through_the_emitters_forward_gives_its_derived_gradients(
    torch, random_problem, cell, lengths
):
    module = importlib.import_module(f"generated.{cell}")
    emitter = _emitter(cell)
    problem = _problem(random_problem, cell, np.float64, seed=3)
    given = _tensors(torch, problem, module, emitter, np.float64, None)
    leaves = [given["events"], *given["initial_states"], *given["weights"]]
    leaves = [leaf.clone().requires_grad_(True) for leaf in leaves]
    events, initial, weights = (
        leaves[0],
        tuple(leaves[1 : 1 + len(emitter.STATES)]),
        leaves[-len(given["weights"]) :],
    )
    lengths_tensor = None if lengths is None else torch.from_numpy(lengths)
    with torch.enable_grad():
        outputs, finals, _ = emitter.forward_graph(events, initial, tuple(weights), lengths_tensor)
        loss = (outputs * given["d_outputs"]).sum() + sum(
            (f * d).sum() for f, d in zip(finals, given["d_final_states"], strict=True)
        )
        autograd = torch.autograd.grad(loss, leaves)
    _, _, saved = emitter.forward(
        given["events"], given["initial_states"], given["weights"], lengths_tensor
    )
    d_events, d_initial, d_weights = emitter.backward(
        given["events"],
        given["initial_states"],
        given["weights"],
        lengths_tensor,
        saved,
        given["d_outputs"],
        given["d_final_states"],
    )
    names = ["events", *(f"{s}0" for s in problem.states), *emitter.WEIGHTS]
    for name, ours, theirs in zip(names, [d_events, *d_initial, *d_weights], autograd, strict=True):
        scale = max(1.0, float(theirs.abs().max()))
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12 * scale, msg=name)


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "unsorted_lengths"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_the_emitter_s_infer_gives_forward_s_results_bit_for_bit_saving_nothing(
    torch, random_problem, cell, dtype, lengths
):
    module = importlib.import_module(f"generated.{cell}")
    emitter = _emitter(cell)
    given = _tensors(torch, _problem(random_problem, cell, dtype), module, emitter, dtype, lengths)
    arguments = (given["events"], given["initial_states"], given["weights"], given["lengths"])
    outputs, finals, _ = emitter.forward(*arguments)
    inferred = emitter.infer(*arguments)
    assert len(inferred) == 2 and len(inferred[1]) == len(emitter.STATES)
    for got, want in zip((inferred[0], *inferred[1]), (outputs, *finals), strict=True):
        assert got.dtype == want.dtype and torch.equal(got, want)
    # tensors of their own: no result shares memory with an input or another result
    pointers = [t.untyped_storage().data_ptr() for t in (inferred[0], *inferred[1])]
    inputs = {t.untyped_storage().data_ptr() for t in (arguments[0], *arguments[1], *arguments[2])}
    assert len(set(pointers)) == len(pointers) and not set(pointers) & inputs


@pytest.mark.parametrize("cell", list(CELLS))
def test_the_saved_tuple_holds_only_what_backward_reads(torch, random_problem, cell):
    module = importlib.import_module(f"generated.{cell}")
    emitter = _emitter(cell)
    problem = _problem(random_problem, cell, np.float64)
    given = _tensors(torch, problem, module, emitter, np.float64, None)
    arguments = (given["events"], given["initial_states"], given["weights"], None)
    _, _, saved = emitter.forward(*arguments)
    assert len(saved) == len(emitter.SAVED)
    # No more than the NumPy cache's saved values: its state sequences and saved buffer (the
    # events' copy and the event projections are its scratch, which the emitter keeps none of)
    _, _, cache = module.forward(problem.parameters, problem.events, **problem.initial)
    sequences = list(cache.states.values())
    own = [v for v in cache.saved.values() if not any(np.shares_memory(v, s) for s in sequences)]
    numpy_values = sum(s.size for s in sequences) + sum(v.size for v in own)
    assert sum(t.numel() for t in saved) <= numpy_values
    # Every saved tensor is read: poisoned with NaN, some gradient is NaN.
    for k, name in enumerate(emitter.SAVED):
        poisoned = list(saved)
        poisoned[k] = torch.full_like(saved[k], float("nan"))
        d_events, d_initial, d_weights = emitter.backward(
            *arguments, tuple(poisoned), given["d_outputs"], given["d_final_states"]
        )
        results = [d_events, *d_initial, *d_weights]
        assert any(not torch.isfinite(r).all() for r in results), f"{name} is never read"


def test_the_generated_module_imports_only_torch_and_names_its_source():
    import ast

    for cell in CELLS:
        source = (ROOT / "generated" / f"{cell}_torch.py").read_text()
        assert source.startswith(
            f"# Generated by lstm_sym from the cell spec lstm_sym/cells/{cell}.py -- DO NOT EDIT.\n"
            "# Regenerate with: lstm-sym generate\n"
        )
        imported = {
            alias.name
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert imported == {"torch"}
        assert not any(isinstance(n, ast.ImportFrom) for n in ast.walk(ast.parse(source)))


def test_a_user_specs_emitter_computes_what_its_numpy_module_computes(torch, tmp_path):
    from lstm_sym.artifacts import cell_artifacts
    from lstm_sym.userspec import load_spec

    spec = load_spec(ROOT / "examples" / "cells" / "mgu.py")
    for artifact in cell_artifacts(spec, "lstm-sym generate --spec examples/cells/mgu.py"):
        name = artifact.path.rsplit("/", 1)[-1]
        if name.endswith(".py"):
            (tmp_path / name).write_bytes(artifact.render())
    modules = {}
    for name in (spec.name, f"{spec.name}_torch"):
        loader = importlib.util.spec_from_file_location(f"_user_{name}", tmp_path / f"{name}.py")
        modules[name] = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(modules[name])
    module, emitter = modules[spec.name], modules[f"{spec.name}_torch"]
    source = (tmp_path / f"{spec.name}_torch.py").read_text()
    assert "# Regenerate with: lstm-sym generate --spec examples/cells/mgu.py\n" in source
    rng = np.random.default_rng(5)
    parameters = module.Parameters(EVENT, HIDDEN)
    for name in parameters.NAMES:
        shape = (HIDDEN,) if name.endswith("_bias") else np.shape(getattr(parameters, name))
        setattr(parameters, name, rng.normal(0.0, 0.5, size=shape))
    events = rng.normal(size=(STEPS, BATCH, EVENT))
    states = {s.short: rng.normal(size=(BATCH, HIDDEN)) for s in spec.states}
    d_outputs = rng.normal(size=(STEPS, BATCH, HIDDEN))
    d_lasts = {s: rng.normal(size=(BATCH, HIDDEN)) for s in states}
    outputs, lasts, cache = module.forward(
        parameters, events, **{f"{s}0": v for s, v in states.items()}, lengths=LENGTHS
    )
    lasts = lasts if isinstance(lasts, tuple) else (lasts,)
    grads = module.backward(cache, d_outputs, **{f"d_{s}_last": v for s, v in d_lasts.items()})
    weights = tuple(
        torch.from_numpy(np.ascontiguousarray(w))
        for w in _arrays(parameters, module, emitter.WEIGHTS, np.float64)
    )
    initial = tuple(torch.from_numpy(v) for v in states.values())
    lengths = torch.from_numpy(LENGTHS)
    ours, finals, saved = emitter.forward(torch.from_numpy(events), initial, weights, lengths)
    _close(ours.numpy(), outputs, "outputs", np.float64)
    for ours_last, last in zip(finals, lasts, strict=True):
        _close(ours_last.numpy(), last, "final state", np.float64)
    d_events, d_initial, d_weights = emitter.backward(
        torch.from_numpy(events),
        initial,
        weights,
        lengths,
        saved,
        torch.from_numpy(d_outputs),
        tuple(torch.from_numpy(v) for v in d_lasts.values()),
    )
    _close(d_events.numpy(), grads.events, "d events", np.float64)
    for short, d in zip(states, d_initial, strict=True):
        _close(d.numpy(), getattr(grads, f"{short}0"), f"d {short}0", np.float64)
    expected = _gradient_arrays(grads, parameters, module, emitter.WEIGHTS, np.float64)
    for name, d, reference in zip(emitter.WEIGHTS, d_weights, expected, strict=True):
        _close(d.numpy(), reference, f"d {name}", np.float64)
