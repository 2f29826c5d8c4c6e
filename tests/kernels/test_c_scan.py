"""The generated C's blocked scan (``<cell>_forward_scan``/``<cell>_backward_scan`` of the cells
whose update the derivation proves affine: minGRU, minLSTM) computes what the exact model, the C
step loop and the NumPy scan compute, every gradient included, on padded batches and in float32
over ten thousand steps, and refuses bad input as the loop does."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from lstm_sym.cells import CELLS, get
from lstm_sym.derivation_checks import check_exact, check_finite_differences
from tests.conftest import require_tool
from tests.support import ROOT, relative_error

SCANS = ("mingru", "minlstm")


@pytest.fixture(scope="module", params=SCANS)
def cell(request):
    """``(numpy module, native cell)`` of each cell with a C scan."""
    require_tool("gcc")
    from lstm_sym import native

    return importlib.import_module(f"generated.{request.param}"), native.load(request.param)


class _CScan:
    """The C scan with the kernel interface the derivation checks call."""

    def __init__(self, native):
        self.Parameters = native.Parameters
        self.forward, self.backward = native.forward_scan, native.backward_scan


def _problem(module, steps, batch, dtype, seed=0, event_size=3, hidden_size=5):
    rng = np.random.default_rng(seed)
    parameters = module.Parameters(event_size, hidden_size, dtype=dtype)
    for name in parameters.NAMES:
        shape = (hidden_size,) if name.endswith("_bias") else np.shape(getattr(parameters, name))
        setattr(parameters, name, rng.normal(0.0, 0.6, size=shape).astype(dtype))
    events = rng.normal(size=(steps, batch, event_size)).astype(dtype)
    h0 = rng.normal(size=(batch, hidden_size)).astype(dtype)
    d_outputs = rng.normal(size=(steps, batch, hidden_size)).astype(dtype)
    d_last = rng.normal(size=(batch, hidden_size)).astype(dtype)
    return parameters, events, h0, d_outputs, d_last


def _run(forward, backward, problem, lengths=None):
    parameters, events, h0, d_outputs, d_last = problem
    outputs, last, cache = forward(parameters, events, h0, lengths=lengths)
    return outputs, last, backward(cache, d_outputs, d_last)


def _error(got, want):
    errors = [relative_error(got[0], want[0]), relative_error(got[1], want[1])]
    errors += [relative_error(getattr(got[2], n), getattr(want[2], n)) for n in want[2].NAMES]
    return max(errors)


def test_only_the_affine_cells_have_c_scan_entry_points():
    for name in CELLS:
        abi = json.loads((ROOT / "generated" / f"{name}.abi.json").read_text())
        names = {f["name"] for f in abi["functions"]}
        assert ({"forward_scan", "backward_scan"} <= names) == (name in SCANS), name
        header = (ROOT / "generated" / f"{name}.h").read_text()
        for function in ("forward_scan", "backward_scan"):
            for suffix in ("f64", "f32"):
                assert (f"int {name}_{function}_{suffix}(" in header) == (name in SCANS)


def test_a_cell_without_a_scan_has_no_scan_attributes():
    require_tool("gcc")
    from lstm_sym import native

    lstm = native.load("lstm")
    assert not hasattr(lstm, "forward_scan") and not hasattr(lstm, "backward_scan")
    with pytest.raises(AttributeError, match=r"lstm has no forward_scan: .* not affine"):
        lstm.forward_scan  # noqa: B018


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_the_c_scan_equals_the_exact_model_in_float64(cell, lengths):
    module, native = cell
    row = check_exact(get(module.CELL), _CScan(native), "generated C scan", lengths=lengths)
    assert row.error <= 1e-12, row


def test_the_c_scan_gradients_equal_finite_differences_on_a_padded_batch(cell):
    module, native = cell
    row = check_finite_differences(get(module.CELL), module=_CScan(native), lengths=True)
    assert row.passed, row


# At batch 3 and hidden 5 a block is 2048 // 15 = 136 steps: one step, one block, several
# blocks with a partial last one.
@pytest.mark.parametrize("steps", [1, 7, 136, 700])
def test_the_c_scan_equals_the_c_loop_and_the_numpy_scan(cell, steps):
    module, native = cell
    problem = _problem(module, steps, 3, np.float64, seed=steps)
    scan = _run(native.forward_scan, native.backward_scan, problem)
    assert _error(scan, _run(native.forward, native.backward, problem)) <= 1e-12
    assert _error(scan, _run(module.forward_scan, module.backward_scan, problem)) <= 1e-12


def test_either_c_backward_takes_either_c_forwards_cache(cell):
    module, native = cell
    parameters, events, h0, d_outputs, d_last = _problem(module, 300, 3, np.float64, seed=3)
    lengths = np.array([300, 1, 170])
    _, _, loop_cache = native.forward(parameters, events, h0, lengths=lengths)
    _, _, scan_cache = native.forward_scan(parameters, events, h0, lengths=lengths)
    reference = native.backward(loop_cache, d_outputs, d_last)
    for backward, cache in [
        (native.backward_scan, loop_cache),
        (native.backward_scan, scan_cache),
        (native.backward, scan_cache),
    ]:
        grads = backward(cache, d_outputs, d_last)
        for name in reference.NAMES:
            assert relative_error(getattr(grads, name), getattr(reference, name)) <= 1e-12


def test_the_c_scan_on_a_padded_batch_keeps_finished_rows_and_never_reads_their_events(cell):
    module, native = cell
    steps = 70
    problem = _problem(module, steps, 4, np.float64, seed=1)
    lengths = np.array([70, 1, 33, 64])
    problem[1][steps - 1, 1] = np.nan  # a padded event: never read
    problem[1][40, 2] = np.inf
    scan = _run(native.forward_scan, native.backward_scan, problem, lengths)
    loop = _run(native.forward, native.backward, problem, lengths)
    assert _error(scan, loop) <= 1e-12
    outputs, last, grads = scan
    for row, length in enumerate(lengths):
        assert np.all(outputs[length:, row] == 0) and np.all(grads.events[length:, row] == 0)
        assert np.array_equal(last[row], outputs[length - 1, row])
    # unbatched, a scalar length
    parameters, events, h0, d_outputs, d_last = problem
    one = (parameters, events[:, 0], h0[0], d_outputs[:, 0], d_last[0])
    scan1 = _run(native.forward_scan, native.backward_scan, one, 70)
    assert _error(scan1, _run(module.forward, module.backward, one, 70)) <= 1e-12


def test_float32_in_float32_out(cell):
    module, native = cell
    problem = _problem(module, 40, 2, np.float32, seed=4)
    outputs, last, grads = _run(native.forward_scan, native.backward_scan, problem)
    assert outputs.dtype == last.dtype == np.float32
    assert all(getattr(grads, n).dtype == np.float32 for n in grads.NAMES)
    reference = _run(native.forward, native.backward, _problem(module, 40, 2, np.float64, seed=4))
    assert _error((outputs, last, grads), reference) <= 1e-5


def test_float32_over_ten_thousand_steps_is_as_accurate_as_the_float32_loop(cell):
    """Against the float64 C loop: the float32 C scan's error is the float32 C loop's (the
    recurrence is the same multiply-add per step, only the order of the passes differs)."""
    module, native = cell
    problem64 = _problem(module, 10_000, 2, np.float64, seed=7, event_size=4, hidden_size=8)
    problem32 = _problem(module, 10_000, 2, np.float32, seed=7, event_size=4, hidden_size=8)
    reference = _run(native.forward, native.backward, problem64)
    scan32 = _error(_run(native.forward_scan, native.backward_scan, problem32), reference)
    loop32 = _error(_run(native.forward, native.backward, problem32), reference)
    print(f"{module.CELL}: float32 at T = 10000, scan {scan32:.2e}, loop {loop32:.2e}")
    assert scan32 <= 1e-4 and scan32 <= 3 * loop32, (scan32, loop32)


def _bad_calls(problem):
    parameters, events, h0 = problem[:3]
    return [
        ((parameters, events[:, :, :2]), {}),
        ((parameters, events.astype(complex)), {}),
        (("not parameters", events), {}),
        ((parameters, events, h0[:1]), {}),
        ((parameters, events), {"lengths": [3, 0, 1]}),
        ((parameters, events), {"lengths": [3, 99, 1]}),
        ((parameters, events), {"lengths": [3, 1]}),
        ((parameters, events), {"lengths": [1.5, 2, 3]}),
        ((parameters, events), {"x0": h0}),
        ((parameters, events, h0, h0), {}),
    ]


def test_bad_input_is_refused_as_by_the_loop(cell):
    module, native = cell
    problem = _problem(module, 6, 3, np.float64)
    for args, kwargs in _bad_calls(problem):
        with pytest.raises((TypeError, ValueError)) as loop:
            native.forward(*args, **kwargs)
        with pytest.raises(type(loop.value)) as scan:
            native.forward_scan(*args, **kwargs)
        assert str(scan.value).replace("forward_scan", "forward") == str(loop.value), kwargs
    with pytest.raises(TypeError, match="unexpected keyword argument 'cache'"):
        native.forward_scan(problem[0], problem[1], cache=False)
    parameters, events, h0, d_outputs, d_last = problem
    _, _, cache = native.forward_scan(parameters, events, h0)
    _, _, numpy_cache = module.forward(parameters, events)
    for args, kwargs in [
        ((numpy_cache, d_outputs), {}),
        ((cache, d_outputs[:2]), {}),
        ((cache, d_outputs.astype(complex)), {}),
        ((cache, d_outputs), {"d_h_last": d_last[0]}),
        ((cache, d_outputs), {"d_x_last": d_last}),
    ]:
        with pytest.raises((TypeError, ValueError)) as loop:
            native.backward(*args, **kwargs)
        with pytest.raises(type(loop.value)) as scan:
            native.backward_scan(*args, **kwargs)
        assert str(scan.value).replace("backward_scan", "backward") == str(loop.value)


def test_the_c_entry_points_return_the_loops_status_and_write_nothing(cell):
    module, native = cell
    name = module.CELL
    steps, batch, hidden = 4, 3, 5
    parameters, events, h0, _, _ = _problem(module, steps, batch, np.float64, hidden_size=hidden)
    event_weights, event_bias = parameters.stacked(np.float64)

    def arguments(**changed):
        values = {
            "steps": steps,
            "batch": batch,
            "event_size": 3,
            "hidden_size": hidden,
            "events": np.ascontiguousarray(events),
            "lengths": np.array([1, 4, 2], dtype=np.int64),
            "h0": h0,
            "event_weights": event_weights,
            "event_bias": event_bias,
            "outputs": np.full((steps, batch, hidden), 7.0),
            "h_last": np.full((batch, hidden), 7.0),
            "cache": np.full(native._cache_size(steps, batch, hidden), 7.0),
        }
        values.update(changed)
        return values

    bad = {
        "invalid lengths": {"lengths": np.array([1, 0, 2], dtype=np.int64)},
        "invalid size": {"hidden_size": 0},
        "a required pointer argument is NULL": {"events": None},
    }
    for message, changed in bad.items():
        for function in ("forward", "forward_scan"):
            values = arguments(**changed)
            shapes = {n: np.shape(v) for n, v in values.items() if v is not None}
            shapes["events"] = events.shape
            with pytest.raises(RuntimeError, match=f"{name}_{function}_f64 failed: {message}"):
                native.call(function, np.float64, values, shapes)
            for written in ("outputs", "h_last", "cache"):
                assert np.all(values[written] == 7.0), (function, written)
    values = arguments()
    shapes = {n: np.shape(v) for n, v in values.items()}
    native.call("forward_scan", np.float64, values, shapes)
    expected, last, _ = native.forward(parameters, events, h0, lengths=[1, 4, 2])
    assert relative_error(values["outputs"], expected) <= 1e-15
    assert relative_error(values["h_last"], last) <= 1e-15


#: A user's cell with an affine update whose coefficient reads a per-unit parameter (a learnt
#: decay of the forget gate): the C scan prints the parameter's reads and its gradient's sums.
DECAY_SPEC = '''"""A forget gate scaled by a learnt per-unit decay: an affine update."""

from sympy import tanh

from lstm_sym.functions import sigmoid
from lstm_sym.spec import CellSpec, State, gate_symbols, real_symbol

GATES = ("forget", "input")
event, _ = gate_symbols(GATES)
hidden_prev, hidden_new = real_symbol("hidden_prev"), real_symbol("hidden")
forget, candidate, decay = (real_symbol(n) for n in ("forget", "candidate", "decay"))

SPEC = CellSpec(
    name="decayed",
    title="Decayed forget gate",
    description=__doc__,
    source="decayed.py",
    gates=GATES,
    states=(State(name="hidden", short="h", prev=hidden_prev, new=hidden_new),),
    output=hidden_new,
    recurrent=hidden_prev,
    equations=(
        (forget, sigmoid(event.forget)),
        (candidate, tanh(event.input)),
        (hidden_new, decay * forget * hidden_prev + (1 - forget) * candidate),
    ),
    unit_parameters=(decay,),
)
'''


def test_a_user_cell_with_an_affine_update_gets_a_c_scan_checked_against_the_exact_model(
    tmp_path,
):
    import subprocess

    from lstm_sym.artifacts import cell_artifacts, runtime_artifacts
    from lstm_sym.codegen import c_api
    from lstm_sym.userspec import load_spec, verify
    from tests.support import STRICT

    gcc = require_tool("gcc")
    path = tmp_path / "decayed.py"
    path.write_text(DECAY_SPEC)
    spec = load_spec(path)
    assert c_api.has_scan(spec)
    for artifact in cell_artifacts(spec) + runtime_artifacts("."):
        (tmp_path / artifact.path.rsplit("/", 1)[-1]).write_bytes(artifact.render())
    source = (tmp_path / "decayed.c").read_text()
    assert "decayed_forward_scan_f32(" in source and "d_decay_vector[k] +=" in source
    strict = [gcc, *STRICT, "-Wconversion", "-Wshadow", "-O2", "-I", str(tmp_path), "-c"]
    result = subprocess.run(
        [*strict, str(tmp_path / "decayed.c"), "-o", str(tmp_path / "decayed.o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = []
    assert verify(spec, log=lines.append), "\n".join(lines)
    scans = [line for line in lines if line.startswith("generated C scan, float64")]
    assert len(scans) == 2 and all(line.endswith(" ok") for line in scans), lines
