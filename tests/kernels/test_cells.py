"""Every built-in cell's kernels, parametrized: generated NumPy and C against the independent
exact model, finite differences, float32 C against float64, PyTorch where a module exists; the
NumPy module's contract and cache; the projected state (LSTMP) and hidden sources (GRU-Cho,
FGR) against the cells they generalize."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from lstm_sym import derivation_checks as checks
from lstm_sym.cells import CELLS, get
from lstm_sym.verify import ExactModel
from tests.conftest import require_module, require_tool
from tests.support import relative_error

NAMES = list(CELLS)
#: Exact-model sizes: every parameter, event and state entry is a leaf of the forward mode, so
#: keep them small; H = 3 and B = 2 still mix units and batch rows in every projection.
EXACT = {"steps": 3, "batch": 2, "event_size": 2, "hidden_size": 3}


def kernel(name):
    return importlib.import_module(f"generated.{name}")


@pytest.fixture(scope="module", params=NAMES)
def exact(request):
    spec = get(request.param)
    return spec, ExactModel(spec, **EXACT, seed=11)


@pytest.fixture(scope="module")
def natives():
    require_tool("gcc")
    from lstm_sym import native

    return {}, native


def native_cell(natives, name):
    cache, native = natives
    if name not in cache:
        cache[name] = native.load(name)
    return cache[name]


def _against_exact(spec, model, module):
    parameters = kernel(spec.name).Parameters(EXACT["event_size"], EXACT["hidden_size"])
    for name, value in model.parameters.items():
        setattr(parameters, name, value)
    cot = {
        "outputs": model.cotangents["outputs"],
        **{s.short: model.cotangents[s.short] for s in spec.states},
    }
    outputs, finals, grads = checks.run_kernel(
        spec, parameters, model.events, model.initial, cot, module
    )
    errors = {"outputs": relative_error(outputs, model.outputs)}
    errors.update({f"final {k}": relative_error(v, model.finals[k]) for k, v in finals.items()})
    errors.update({k: relative_error(grads[k], v) for k, v in model.gradients.items()})
    assert set(grads) == set(model.gradients)
    return errors


def test_numpy_matches_exact_model(exact):
    spec, model = exact
    errors = _against_exact(spec, model, kernel(spec.name))
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-12, (worst, errors[worst])


def test_c_matches_exact_model(exact, natives):
    spec, model = exact
    errors = _against_exact(spec, model, native_cell(natives, spec.name))
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-12, (worst, errors[worst])


@pytest.mark.parametrize("name", NAMES)
def test_finite_differences(name):
    row = checks.check_finite_differences(get(name), directions=4)
    assert row.passed, row


@pytest.mark.parametrize("name", NAMES)
def test_c_float32_matches_float64(name, natives):
    row = checks.check_float32(get(name), native_cell(natives, name))
    assert row.passed, row
    assert row.error > 0  # really computed in float32


@pytest.mark.parametrize("name", NAMES)
def test_unbatched_matches_batched(name, random_problem):
    module = kernel(name)
    spec = get(name)
    projection = checks.projection_size(spec, 2)
    problem = random_problem(name, 4, 1, 3, 2, seed=5, scale=0.6, projection_size=projection)
    parameters, events = problem.parameters, problem.events
    batched = checks.run_kernel(spec, parameters, events, problem.states, problem.cotangents)
    single = module.forward(
        parameters, events[:, 0], **{k: v[0] for k, v in problem.initial.items()}
    )
    assert relative_error(single[0], batched[0][:, 0]) == 0


@pytest.mark.parametrize("name", sorted(checks.TORCH_REFERENCES))
def test_pytorch_reference(name):
    require_module("torch")
    row = checks.check_torch(get(name))
    assert row.passed, row


# ---------------------------------------------------------------------------------------------
# The NumPy module's contract and its cache
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_module_contract(name):
    """Parameters attributes, Gradients names and the forward/backward signatures."""
    spec, module = get(name), kernel(name)
    assert module.CELL == name and module.GATES == spec.gates
    expected = [
        f"{side}_{g}_{kind}"
        for g in spec.gates
        for side in (("event", "hidden") if spec.hidden_parts else ("event",))
        for kind in ("weights", "bias")
    ]
    projection = ["projection_weights"] if spec.projected_state is not None else []
    assert list(module.Parameters.NAMES) == (
        expected + [p.name for p in spec.unit_parameters] + projection
    )
    assert module.Gradients.NAMES == (
        *module.Parameters.NAMES,
        "events",
        *(f"{s.short}0" for s in spec.states),
    )
    parameters = module.Parameters(3, 4)
    outputs, lasts, cache = module.forward(parameters, np.zeros((2, 3)))
    assert outputs.shape == (2, 4)
    if len(spec.states) == 1:
        assert lasts.shape == (4,)
    else:
        assert [last.shape for last in lasts] == [(4,)] * len(spec.states)
    grads = module.backward(cache, np.ones((2, 4)))
    assert grads.events.shape == (2, 3)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_cache_keeps_each_value_once(name, random_problem):
    """A saved value that is a state's new value (e.g. the peephole cells' ``cell``) is the
    state's sequence from step 1 on, not a second copy; every other saved value has its own
    array. The values are those of the step: backward's reference results cover them."""
    spec, module = get(name), kernel(name)
    problem = random_problem(module, 5, 2, 3, 4, seed=0, scale=1.0)
    _, _, cache = module.forward(problem.parameters, problem.events)
    news = {s.new.name: s.name for s in spec.states if s.projection is None}
    # A reduction's statistics are one value per row: (T, B, 1)
    statistics = {s.name for s in spec.reduction_symbols}
    arrays = {}
    for value, array in cache.saved.items():
        assert array.shape == ((5, 2, 1) if value in statistics else (5, 2, 4)), value
        if value in news:
            sequence = cache.states[news[value]]
            assert np.shares_memory(array, sequence), value
            np.testing.assert_array_equal(array, sequence[1:])
        else:
            arrays[value] = array
    for value, array in arrays.items():
        others = [*cache.states.values(), *(a for v, a in arrays.items() if v != value)]
        assert not any(np.shares_memory(array, other) for other in others), value


class _UninitializedIsNaN:
    """NumPy as the generated modules use it, except that ``empty`` fills its arrays with NaN:
    an element read before it is written shows."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float, **kwargs):
        return np.full(shape, np.nan, dtype=dtype, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_writes_every_uninitialized_element(name, monkeypatch, random_problem):
    """The generated NumPy allocates its caches and deltas uninitialized where every step
    writes them whole (and sets index 0 of each state sequence): NaN in those arrays changes
    nothing."""
    module = kernel(name)
    problem = random_problem(module, 5, 2, 3, 4, seed=1, scale=1.0)
    parameters, events, d_outputs, initial = (
        problem.parameters,
        problem.events,
        problem.d_outputs,
        problem.initial,
    )

    def run(given, scratch="kept"):
        outputs, lasts, cache = module.forward(parameters, events, **given)
        if scratch == "NaN":  # the forward's projections, which backward writes its deltas over
            for array in cache.scratch:
                array[...] = np.nan
        elif scratch == "taken":  # as while another backward of this cache runs
            cache.scratch.clear()
        grads = module.backward(cache, d_outputs)
        return [outputs, *np.atleast_1d(lasts)] + [getattr(grads, n) for n in grads.NAMES]

    expected = {k: run(g) for k, g in (("zeros", {}), ("given", initial))}
    monkeypatch.setattr(module, "np", _UninitializedIsNaN())
    for key, given in (("zeros", {}), ("given", initial)):
        for scratch in ("NaN", "taken"):
            for value, reference in zip(run(given, scratch), expected[key], strict=True):
                np.testing.assert_array_equal(value, reference)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_gradients_outlive_the_next_backward(name, random_problem):
    """backward writes its deltas over the cache's scratch: no gradient it returns is a view of
    that memory, so a second backward of the same cache leaves the first one's gradients as
    they were."""
    module = kernel(name)
    problem = random_problem(module, 5, 2, 3, 4, seed=2, scale=1.0)
    _, _, cache = module.forward(problem.parameters, problem.events)
    first = module.backward(cache, problem.d_outputs)
    kept = {n: np.array(getattr(first, n), copy=True) for n in first.NAMES}
    other = random_problem(module, 5, 2, 3, 4, seed=3, scale=1.0).d_outputs  # another cotangent
    second = module.backward(cache, other)
    for n in first.NAMES:
        np.testing.assert_array_equal(getattr(first, n), kept[n], err_msg=n)
        assert not np.array_equal(getattr(second, n), kept[n]), n


# ---------------------------------------------------------------------------------------------
# A projected state (LSTMP): sizes P != H, where a transposed map cannot hide
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("projection", [1, 2, 4])
def test_projected_state_against_exact_model(projection, natives):
    """lstmp with P below, at and above H (the exact model writes W_projection out as sums)."""
    spec = get("lstmp")
    model = ExactModel(spec, **EXACT, seed=5, projection_size=projection)
    for module in (kernel("lstmp"), native_cell(natives, "lstmp")):
        sizes = (EXACT["event_size"], EXACT["hidden_size"], projection)
        parameters = kernel("lstmp").Parameters(*sizes)
        for name, value in model.parameters.items():
            setattr(parameters, name, value)
        cot = {"outputs": model.cotangents["outputs"], "h": model.cotangents["h"]}
        cot["c"] = model.cotangents["c"]
        outputs, finals, grads = checks.run_kernel(
            spec, parameters, model.events, model.initial, cot, module
        )
        assert outputs.shape == (EXACT["steps"], EXACT["batch"], projection)
        errors = {"outputs": relative_error(outputs, model.outputs)}
        errors.update({k: relative_error(v, model.finals[k]) for k, v in finals.items()})
        errors.update({k: relative_error(grads[k], v) for k, v in model.gradients.items()})
        worst = max(errors, key=errors.get)
        assert errors[worst] <= 1e-12, (type(module).__name__, worst, errors[worst])


def test_projected_state_errors():
    module = kernel("lstmp")
    parameters = module.Parameters(2, 3, 2)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2,\) \(projection_size,\)"):
        module.forward(parameters, np.zeros((4, 2)), h0=np.zeros(3))
    with pytest.raises(ValueError, match=r"projection_weights must have shape \(2, 3\)"):
        parameters.projection_weights = np.zeros((3, 2))
        module.forward(parameters, np.zeros((4, 2)))


# ---------------------------------------------------------------------------------------------
# Hidden sources (Cho's GRU, FGR): a gate's hidden projection reads values of the step
# ---------------------------------------------------------------------------------------------


def _fgr_and_peephole(random_problem, zero_gate_blocks: bool, seed: int = 5):
    """lstm_fgr and peephole_lstm on the same problem: peephole_lstm's random problem, and its
    parameters by name for lstm_fgr, whose sourced gates' hidden weights read nine more blocks
    (zero, or random from ``seed + 1``)."""
    T, B, X, H = 4, 2, 3, 5
    problem = random_problem("peephole_lstm", T, B, X, H, seed=seed)
    events, initial, q = problem.events, problem.initial, problem.parameters
    fgr, peephole = kernel("lstm_fgr"), kernel("peephole_lstm")
    p = fgr.Parameters(X, H)
    rng = np.random.default_rng(seed + 1)
    for name in q.NAMES:
        value = getattr(q, name)
        if (
            name.startswith("hidden_")
            and name.endswith("_weights")
            and name != ("hidden_candidate_weights")
        ):  # [R_g, R_ig, R_fg, R_og]: the block reading h, then the nine gate-to-gate blocks
            extra = rng.normal(0, 0.5, size=(H, 3 * H)) * (not zero_gate_blocks)
            value = np.concatenate([value, extra], axis=1)
        setattr(p, name, value)
    return fgr.forward(p, events, **initial), peephole.forward(q, events, **initial)


def test_lstm_fgr_without_gate_recurrence_is_peephole_lstm(random_problem):
    """With the nine gate-to-gate blocks (and i0, f0, o0) zero, FGR is Greff's vanilla LSTM;
    with them it differs, and its carried gate states are the gate activations."""
    (out_f, lasts_f, cache_f), (out_p, lasts_p, cache_p) = _fgr_and_peephole(random_problem, True)
    assert relative_error(out_f, out_p) < 1e-14  # other summation orders only
    assert relative_error(lasts_f[1], lasts_p[1]) < 1e-14
    for name, state in (("update", "update_gate"), ("forget", "forget_gate")):
        assert relative_error(cache_f.states[state][1:], cache_p.saved[name]) < 1e-14
        assert (
            relative_error(lasts_f[2 if name == "update" else 3], cache_p.saved[name][-1]) < 1e-14
        )
    d_outputs = np.ones_like(out_f)
    grads_f = kernel("lstm_fgr").backward(cache_f, d_outputs)
    grads_p = kernel("peephole_lstm").backward(cache_p, d_outputs)
    for name in ("events", "h0", "c0", "peephole_update", "event_forget_weights"):
        assert relative_error(getattr(grads_f, name), getattr(grads_p, name)) < 1e-13, name
    H = out_f.shape[-1]
    assert (
        relative_error(grads_f.hidden_output_weights[:, :H], grads_p.hidden_output_weights) < 1e-13
    )
    (out_f, _, _), (out_p, _, _) = _fgr_and_peephole(random_problem, False)
    assert relative_error(out_f, out_p) > 1e-3


def test_lstm_fgr_hidden_weights_shapes_and_c_layout(natives):
    spec, module = get("lstm_fgr"), kernel("lstm_fgr")
    p = module.Parameters(2, 3)
    assert p.hidden_update_weights.shape == (3, 12)
    assert p.hidden_candidate_weights.shape == (3, 3)
    with pytest.raises(ValueError, match=r"hidden_forget_weights must have shape \(3, 12\)"):
        p.hidden_forget_weights = np.zeros((3, 3))
        p.arrays()
    p.hidden_forget_weights = np.zeros((3, 12))
    with pytest.raises(ValueError, match="PyTorch has no counterpart"):
        p.to_torch_state_dict()
    _, _, hidden_weights, _ = p.stacked(np.float64)
    assert hidden_weights.shape == (13 * 3 * 3,)
    assert [len(spec.sources(g)) for g in spec.gates] == [4, 4, 1, 4]


def test_gru_cho_differs_from_gru_only_by_where_reset_acts(random_problem):
    """Same parameters, same input: the two GRU forms agree when the reset gate is saturated open
    (r = 1 everywhere), and differ otherwise, so neither kernel can silently be the other."""
    T, B, X, H = 4, 2, 3, 5
    problems = {name: random_problem(name, T, B, X, H, seed=3) for name in ("gru", "gru_cho")}
    gru, cho = problems["gru"], problems["gru_cho"]  # the same parameters by name, same inputs
    assert gru.parameters.NAMES == cho.parameters.NAMES
    for name in gru.parameters.NAMES:
        np.testing.assert_array_equal(getattr(gru.parameters, name), getattr(cho.parameters, name))
    np.testing.assert_array_equal(gru.events, cho.events)
    np.testing.assert_array_equal(gru.states["h"], cho.states["h"])
    events, h0 = gru.events, gru.states["h"]
    results = {name: (kernel(name), problem.parameters) for name, problem in problems.items()}
    outs = {n: m.forward(p, events, h0=h0)[0] for n, (m, p) in results.items()}
    assert relative_error(outs["gru"], outs["gru_cho"]) > 1e-3
    for _, p in results.values():
        p.event_reset_bias = np.full(H, 60.0)  # sigmoid(60 + O(1)) == 1 in float64
    outs = {n: m.forward(p, events, h0=h0)[0] for n, (m, p) in results.items()}
    assert relative_error(outs["gru"], outs["gru_cho"]) < 1e-14


@pytest.mark.parametrize("name", ["gru_cho", "lstm_fgr"])
def test_sourced_c_steps_compose_to_the_sequence(name, natives, random_problem):
    """The C step entry points of cells with hidden sources (two-stage steps, gates reading
    several sources side by side), called by their C argument names, over T steps give the
    sequence forward and backward of the NumPy kernel."""
    import ctypes

    from lstm_sym.codegen import c_api

    spec, module, cell = get(name), kernel(name), native_cell(natives, name)
    T, B, X, H = 3, 2, 3, 4
    problem = random_problem(name, T, B, X, H, seed=7, scale=0.6)
    parameters, events, initial, cot = (
        problem.parameters,
        problem.events,
        problem.states,
        problem.cotangents,
    )
    arrays = parameters.arrays()
    stacked = dict(
        zip(
            ("event_weights", "event_bias", "hidden_weights", "hidden_bias"),
            (np.ascontiguousarray(a) for a in parameters.stacked(np.float64)),
            strict=True,
        )
    )
    functions = {f.name: f for f in c_api.functions(spec)}
    lib = cell.library
    for query in ("step_saved_size", "step_work_size"):
        getattr(lib, f"{name}_{query}").restype = ctypes.c_size_t
    saved_size = getattr(lib, f"{name}_step_saved_size")(ctypes.c_size_t(B), ctypes.c_size_t(H))
    work = np.empty(getattr(lib, f"{name}_step_work_size")(ctypes.c_size_t(B), ctypes.c_size_t(H)))

    def call(function, values):
        args = [
            ctypes.c_size_t(values[a.name]) if a.kind == "size" else values[a.name].ctypes.data
            for a in functions[function].args
        ]
        assert getattr(lib, f"{name}_{function}_f64")(*args) == 0

    shorts = [s.short for s in spec.states]
    sizes = {"batch": B, "event_size": X, "hidden_size": H, "work": work} | stacked
    sizes |= {p.name: np.ascontiguousarray(arrays[p.name]) for p in spec.unit_parameters}
    states = {s: [np.ascontiguousarray(initial[s])] for s in shorts}
    saved = []
    for t in range(T):
        values = sizes | {"event": np.ascontiguousarray(events[t])}
        values |= {f"{s}_prev": states[s][-1] for s in shorts}
        values |= {f"{s}_next": np.empty((B, H)) for s in shorts}
        saved.append(np.empty(saved_size))
        call("step_forward", values | {"saved": saved[-1]})
        for s in shorts:
            states[s].append(values[f"{s}_next"])
    outputs, lasts, cache = module.forward(
        parameters, events, **{f"{s}0": initial[s] for s in shorts}
    )
    lasts = lasts if isinstance(lasts, tuple) else (lasts,)
    out = spec.output_state.short
    assert relative_error(np.stack(states[out][1:]), outputs) < 1e-12
    for s, last in zip(shorts, lasts, strict=True):
        assert relative_error(states[s][-1], last) < 1e-12, s

    grads = module.backward(cache, cot["outputs"], **{f"d_{s}_last": cot[s] for s in shorts})
    accumulated = {f"d_{k}": np.zeros_like(v) for k, v in stacked.items()}
    accumulated |= {f"d_{p.name}": np.zeros(H) for p in spec.unit_parameters}
    d = {s: np.ascontiguousarray(cot[s]) for s in shorts}
    d_events = np.empty_like(events)
    for t in reversed(range(T)):
        values = sizes | accumulated | {"event": np.ascontiguousarray(events[t]), "saved": saved[t]}
        values |= {f"{s}_prev": states[s][t] for s in shorts}
        values |= {f"d_{s}_next": d[s] + (cot["outputs"][t] if s == out else 0) for s in shorts}
        values |= {f"d_{s}_prev": np.empty((B, H)) for s in shorts}
        values["d_event"] = np.empty((B, X))
        call("step_backward", values)
        d = {s: values[f"d_{s}_prev"] for s in shorts}
        d_events[t] = values["d_event"]
    assert relative_error(d_events, grads.events) < 1e-12
    for s in shorts:
        assert relative_error(d[s], getattr(grads, f"{s}0")) < 1e-12, s
    blocks = [len(spec.sources(g)) for g in spec.gates]
    for k, gate in enumerate(spec.gates):
        start = sum(blocks[:k]) * H * H
        hidden = accumulated["d_hidden_weights"].ravel()[start : start + blocks[k] * H * H]
        got = hidden.reshape(H, blocks[k] * H)
        assert relative_error(got, getattr(grads, f"hidden_{gate}_weights")) < 1e-12, gate
        rows = slice(k * H, (k + 1) * H)
        assert (
            relative_error(
                accumulated["d_hidden_bias"][rows], getattr(grads, f"hidden_{gate}_bias")
            )
            < 1e-12
        )
        assert (
            relative_error(
                accumulated["d_event_weights"][rows], getattr(grads, f"event_{gate}_weights")
            )
            < 1e-12
        )
    for p in spec.unit_parameters:
        assert relative_error(accumulated[f"d_{p.name}"], getattr(grads, p.name)) < 1e-12
