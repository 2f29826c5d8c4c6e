"""Every built-in cell, parametrized: generated NumPy and C against the independent exact model,
finite differences, float32 C against float64, PyTorch where a module exists; the cell list,
the generated files and README's table of cells agree; user spec files and their errors."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from c_support import relative_error
from conftest import require_module, require_tool

from lstm_sym import derivation_checks as checks
from lstm_sym.cells import CELLS, get
from lstm_sym.functions import sigmoid
from lstm_sym.spec import CellSpec, SpecError, State, gate_symbols, real_symbol, validate
from lstm_sym.verify import ExactModel, direct_gradients, random_point

ROOT = Path(__file__).resolve().parent.parent
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
def test_unbatched_matches_batched(name):
    module = kernel(name)
    spec = get(name)
    parameters, events, initial, cot = checks.random_problem(spec, 5, 4, 1, 3, 2)
    batched = checks.run_kernel(spec, parameters, events, initial, cot)
    single = module.forward(parameters, events[:, 0], **{f"{k}0": v[0] for k, v in initial.items()})
    assert relative_error(single[0], batched[0][:, 0]) == 0


@pytest.mark.parametrize("name", sorted(checks.TORCH_REFERENCES))
def test_pytorch_reference(name):
    require_module("torch")
    row = checks.check_torch(get(name))
    assert row.passed, row


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "hidden_size"),
    [
        ("peephole_lstm", 1),  # per-unit parameters
        ("gru", 2),  # separate event/hidden parts
        ("gru_cho", 2),  # a hidden source of the same step (two per-unit stages)
        ("lstm_fgr", 1),  # hidden sources that are previous states, side by side
    ],
)
def test_direct_model_agrees_with_forward_mode(name, hidden_size):
    """The slow direct model (sympy.diff of the unrolled loss) cross-checks the fast one
    (tests/test_lstm_exact.py does the LSTM)."""
    spec = get(name)
    sizes = {"steps": 2, "batch": 1, "event_size": 1, "hidden_size": hidden_size}
    model = ExactModel(spec, **sizes, seed=3)
    point, cot = random_point(spec, *sizes.values(), seed=3)
    direct = direct_gradients(spec, point, cot)
    for key, value in direct.items():
        assert relative_error(model.gradients[key], value) <= 1e-30 + 1e-14, key


# ---------------------------------------------------------------------------------------------
# The cell list, the generated files and README agree
# ---------------------------------------------------------------------------------------------


def _readme_table():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- cells:begin -->(.*?)<!-- cells:end -->", text, re.S)
    assert match, "README.md has no <!-- cells:begin --> ... <!-- cells:end --> table"
    rows = []
    for line in match.group(1).strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1].strip("`")))
    return rows


def test_cells_generated_files_and_readme_agree():
    rows = _readme_table()
    assert [name for name, _ in rows] == NAMES, "README's table of cells lists other cells"
    for name, source in rows:
        spec = get(name)
        assert source == spec.source and (ROOT / source).is_file(), name
        for path in (
            f"generated/{name}.py",
            f"generated/{name}.c",
            f"generated/{name}.h",
            f"derivations/{name}.tex",
            f"derivations/{name}.equations.json",
            f"derivations/{name}_verification.tex",
            f"derivations/{name}.pdf",
        ):
            assert (ROOT / path).is_file(), path
    listed = {p.stem for p in (ROOT / "generated").glob("*.py")} - {"__init__"}
    assert listed == set(NAMES), "generated/ holds modules of cells that are not registered"
    modules = {p.stem for p in (ROOT / "lstm_sym" / "cells").glob("*.py")}
    assert {Path(get(n).source).stem for n in NAMES} <= modules


@pytest.mark.parametrize("name", NAMES)
def test_module_contract(name):
    """Parameters attributes, Gradients names and the forward/backward signatures."""
    spec, module = get(name), kernel(name)
    assert module.CELL == name and module.GATES == spec.gates
    expected = [
        f"{side}_{g}_{kind}"
        for g in spec.gates
        for side in ("event", "hidden")
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
def test_numpy_cache_keeps_each_value_once(name):
    """A saved value that is a state's new value (e.g. the peephole cells' ``cell``) is the
    state's sequence from step 1 on, not a second copy; every other saved value has its own
    array. The values are those of the step: backward's reference results cover them."""
    spec, module = get(name), kernel(name)
    parameters = module.Parameters(3, 4)
    rng = np.random.default_rng(0)
    for attribute in parameters.NAMES:
        shape = np.shape(getattr(parameters, attribute)) or (4,)
        setattr(parameters, attribute, rng.normal(size=shape))
    _, _, cache = module.forward(parameters, rng.normal(size=(5, 2, 3)))
    news = {s.new.name: s.name for s in spec.states if s.projection is None}
    arrays = {}
    for value, array in cache.saved.items():
        assert array.shape == (5, 2, 4), value
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
def test_numpy_writes_every_uninitialized_element(name, monkeypatch):
    """The generated NumPy allocates its caches and deltas uninitialized where every step
    writes them whole (and sets index 0 of each state sequence): NaN in those arrays changes
    nothing."""
    spec, module = get(name), kernel(name)
    parameters = module.Parameters(3, 4)
    rng = np.random.default_rng(1)
    for attribute in parameters.NAMES:
        shape = np.shape(getattr(parameters, attribute)) or (4,)
        setattr(parameters, attribute, rng.normal(size=shape))
    events, d_outputs = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 4))
    initial = {f"{s.short}0": rng.normal(size=(2, 4)) for s in spec.states}

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
def test_numpy_gradients_outlive_the_next_backward(name):
    """backward writes its deltas over the cache's scratch: no gradient it returns is a view of
    that memory, so a second backward of the same cache leaves the first one's gradients as
    they were."""
    module = kernel(name)
    parameters = module.Parameters(3, 4)
    rng = np.random.default_rng(2)
    for attribute in parameters.NAMES:
        setattr(
            parameters, attribute, rng.normal(size=np.shape(getattr(parameters, attribute)) or (4,))
        )
    outputs, _, cache = module.forward(parameters, rng.normal(size=(5, 2, 3)))
    first = module.backward(cache, rng.normal(size=outputs.shape))
    kept = {n: np.array(getattr(first, n), copy=True) for n in first.NAMES}
    second = module.backward(cache, rng.normal(size=outputs.shape))
    for n in first.NAMES:
        np.testing.assert_array_equal(getattr(first, n), kept[n], err_msg=n)
        assert not np.array_equal(getattr(second, n), kept[n]), n


# ---------------------------------------------------------------------------------------------
# User spec files: the CLI, and errors that point at the equation, before anything is written
# ---------------------------------------------------------------------------------------------

EXAMPLE = ROOT / "examples" / "cells" / "mgu.py"


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "lstm_sym", *args], capture_output=True, text=True, cwd=cwd
    )


def test_generate_and_verify_a_user_spec(tmp_path):
    result = _cli("generate", "--spec", str(EXAMPLE), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    runtime = ["lstm_sym_runtime.c", "lstm_sym_runtime.h", "lstm_sym_runtime_real.inc"]
    runtime += ["lstm_sym_tuning.h"]  # the C runtime, copied beside the cell's C
    assert names == sorted([*runtime, "mgu.c", "mgu.equations.json", "mgu.h", "mgu.py", "mgu.tex"])
    check = _cli("generate", "--spec", str(EXAMPLE), "--out", str(tmp_path / "out"), "--check")
    assert check.returncode == 0, check.stderr
    result = _cli("verify", "--spec", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exact model" in result.stdout and "finite differences" in result.stdout
    assert "all checks passed" in result.stdout


def _spec_file(tmp_path, equations: str, extra: str = "") -> Path:
    path = tmp_path / "cell.py"
    path.write_text(
        "import sympy as sp\n"
        "from sympy import tanh\n"
        "from lstm_sym.functions import sigmoid\n"
        "from lstm_sym.spec import CellSpec, State, gate_symbols, real_symbol\n"
        "event, hidden = gate_symbols(('forget', 'candidate'))\n"
        "h_prev, h = real_symbol('hidden_prev'), real_symbol('hidden')\n"
        "f, z = real_symbol('f'), real_symbol('z')\n"
        f"{extra}\n"
        "SPEC = CellSpec(name='mine', title='t', gates=('forget', 'candidate'),\n"
        "    states=(State('hidden', 'h', h_prev, h),), output=h, recurrent=h_prev,\n"
        f"    equations={equations})\n"
    )
    return path


GOOD = (
    "((f, sigmoid(event.forget + hidden.forget)), (z, tanh(event.candidate + hidden.candidate)),"
    " (h, f * h_prev + (1 - f) * z))"
)
BAD_SPECS = [
    ("unknown", GOOD.replace("f * h_prev", "f * q"), "q = sp.Symbol('q')", "equation 3 (hidden = "),
    ("unknown", GOOD.replace("f * h_prev", "f * q"), "q = sp.Symbol('q')", "unknown symbol(s) q"),
    (
        "not real",
        GOOD.replace("f * h_prev", "f * sp.Symbol('hidden_prev')"),
        "",
        "other assumptions",
    ),
    ("never updated", GOOD.replace("(h, f", "(real_symbol('other'), f"), "", "never updated"),
    (
        "mixes units",
        GOOD.replace("(1 - f) * z", "(1 - f) * z + sp.MatrixSymbol('W', 2, 2)[0, 1]"),
        "",
        "mixes units",
    ),
    (
        "identifier",
        GOOD.replace("real_symbol('f')", "real_symbol('f')"),
        "f = real_symbol('for')",
        "not a valid identifier",
    ),
    ("reserved numpy", GOOD, "f = real_symbol('np')", "reserved by the generated NumPy"),
    ("reserved C", GOOD, "f = real_symbol('units')", "reserved by the generated C"),
    (
        "function",
        GOOD.replace("tanh(event.candidate", "sp.sin(event.candidate"),
        "",
        "not a supported",
    ),
    ("constant", GOOD.replace("(h, f * h_prev + (1 - f) * z)", "(h, 1.5)"), "", "SymPy expression"),
]


@pytest.mark.parametrize(
    ("case", "equations", "extra", "message"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_is_refused_before_writing(tmp_path, case, equations, extra, message):
    path = _spec_file(tmp_path, equations, extra)
    out = tmp_path / "out"
    result = _cli("generate", "--spec", str(path), "--out", str(out))
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "equation" in result.stderr
    assert not out.exists()


def test_good_spec_file_generates(tmp_path):
    path = _spec_file(tmp_path, GOOD)
    result = _cli("generate", "--spec", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr


def test_refuses_to_overwrite_the_spec(tmp_path):
    path = _spec_file(tmp_path, GOOD)
    (tmp_path / "mine.py").write_text(path.read_text())
    result = _cli("generate", "--spec", str(tmp_path / "mine.py"), "--out", str(tmp_path))
    assert result.returncode == 2 and "overwrite the spec" in result.stderr


def test_validate_names_the_equation():
    event, hidden = gate_symbols(("g",))
    h_prev, h = real_symbol("hidden_prev"), real_symbol("hidden")
    spec = CellSpec(
        name="x",
        title="x",
        gates=("g",),
        states=(State("hidden", "h", h_prev, h),),
        output=h,
        recurrent=h_prev,
        equations=((h, sigmoid(event.g + hidden.g) * sp.Symbol("y", real=True)),),
    )
    with pytest.raises(SpecError, match=r"equation 1 \(hidden = .*unknown symbol\(s\) y"):
        validate(spec)


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


@pytest.mark.slow
def test_projected_direct_model_agrees_with_forward_mode():
    spec = get("lstmp")
    sizes = {"steps": 2, "batch": 1, "event_size": 1, "hidden_size": 2}
    model = ExactModel(spec, **sizes, seed=3, projection_size=1)
    point, cot = random_point(spec, *sizes.values(), seed=3, projection_size=1)
    direct = direct_gradients(spec, point, cot)
    for key, value in direct.items():
        assert relative_error(model.gradients[key], value) <= 1e-30 + 1e-14, key


def test_lstmp_from_torch_round_trip():
    torch = require_module("torch")
    module = kernel("lstmp")
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


def test_projected_state_errors():
    module = kernel("lstmp")
    parameters = module.Parameters(2, 3, 2)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2,\) \(projection_size,\)"):
        module.forward(parameters, np.zeros((4, 2)), h0=np.zeros(3))
    with pytest.raises(ValueError, match=r"projection_weights must have shape \(2, 3\)"):
        parameters.projection_weights = np.zeros((3, 2))
        module.forward(parameters, np.zeros((4, 2)))


def test_projected_state_spec_errors():
    event, hidden = gate_symbols(("g",))
    h_prev, h, m = real_symbol("hidden_prev"), real_symbol("hidden"), real_symbol("m")
    state = State("hidden", "h", h_prev, h, projection=m)

    def spec(equations, states=(state,)):
        return CellSpec(
            name="x",
            title="x",
            gates=("g",),
            states=states,
            output=h,
            recurrent=h_prev,
            equations=equations,
        )

    validate(spec(((m, sp.tanh(event.g + hidden.g)),)))
    with pytest.raises(SpecError, match=r"equation 1 .*projected state hidden"):
        validate(spec(((m, sp.tanh(event.g + hidden.g) * h_prev),)))
    with pytest.raises(SpecError, match=r"equation 1 .*projected state hidden"):
        validate(spec(((h, sp.tanh(event.g + hidden.g)),)))
    with pytest.raises(SpecError, match="never updated"):
        validate(spec(((real_symbol("y"), sp.tanh(event.g + hidden.g)),)))


# ---------------------------------------------------------------------------------------------
# Hidden sources (Cho's GRU): a gate's hidden projection reads a per-unit value of the step
# ---------------------------------------------------------------------------------------------


def _sourced_spec(sources, equations=None):
    event, hidden = gate_symbols(("reset", "new"))
    h_prev, h = real_symbol("hidden_prev"), real_symbol("hidden")
    r, n, s = real_symbol("reset"), real_symbol("new"), real_symbol("reset_state")
    if equations is None:
        equations = (
            (r, sigmoid(event.reset + hidden.reset)),
            (s, r * h_prev),
            (n, sp.tanh(event.new + hidden.new)),
            (h, (n + h_prev) / 2),
        )
    symbols = {"s": s, "h": h, "h_prev": h_prev, "r": r}
    return CellSpec(
        name="sourced",
        title="t",
        gates=("reset", "new"),
        states=(State("hidden", "h", h_prev, h),),
        output=h,
        recurrent=h_prev,
        equations=equations,
        hidden_sources={
            g: tuple(symbols.get(x, x) for x in v) if isinstance(v, tuple) else symbols.get(v, v)
            for g, v in sources.items()
        },
    )


def test_hidden_sources_valid_spec_passes():
    validate(_sourced_spec({"new": "s"}))


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ({"newer": "s"}, "'newer' is not a gate"),
        ({"new": "h"}, r"hidden_sources\['new'\] = hidden: the source hidden is the new value"),
        ({"new": "h_prev"}, r"hidden_sources\['new'\] = hidden_prev: .* default source tuple"),
        ({"new": real_symbol("nowhere")}, "no equation assigns the source nowhere"),
        ({"reset": "s"}, "reads reset_hidden"),
        # Tuples: previous states and values of the step side by side
        (
            {"new": ("s", "s")},
            r"hidden_sources\['new'\] = \(reset_state, reset_state\): .* repeats",
        ),
        (
            {"new": ("s", real_symbol("nowhere"))},
            r"hidden_sources\['new'\] = .*: no equation assigns the source nowhere",
        ),
        ({"new": ("s", "h")}, "the source hidden is the new value of state hidden"),
        ({"new": ()}, "non-empty tuple"),
        ({"new": ("s", "x")}, "must be a Symbol"),
        ({"reset": ("h_prev", "s")}, "reads reset_hidden"),
    ],
)
def test_hidden_sources_errors_name_the_problem(sources, message):
    with pytest.raises(SpecError, match=message):
        validate(_sourced_spec(sources))


def test_hidden_source_tuples_of_previous_states_and_step_values_pass():
    validate(_sourced_spec({"new": ("h_prev", "s")}))
    validate(_sourced_spec({"new": ("s", "h_prev")}))


def test_projected_state_prev_as_a_hidden_source_is_refused():
    spec = get("lstmp")
    h_prev, c_prev = real_symbol("hidden_prev"), real_symbol("cell_prev")
    bad = CellSpec(
        **{
            **{f: getattr(spec, f) for f in ("name", "title", "gates", "states", "output")},
            "recurrent": spec.recurrent,
            "equations": spec.equations,
            "hidden_sources": {"forget": (c_prev, h_prev)},
        }
    )
    with pytest.raises(
        SpecError,
        match=r"hidden_sources\['forget'\] = \(cell_prev, hidden_prev\): hidden_prev is the "
        r"previous value of the projected state hidden",
    ):
        validate(bad)


def _fgr_and_peephole(zero_gate_blocks: bool, seed: int = 5):
    """lstm_fgr and peephole_lstm on the same problem (shared parameters by name)."""
    rng = np.random.default_rng(seed)
    T, B, X, H = 4, 2, 3, 5
    events = rng.normal(size=(T, B, X))
    initial = {"h0": rng.normal(size=(B, H)), "c0": rng.normal(size=(B, H))}
    fgr, peephole = kernel("lstm_fgr"), kernel("peephole_lstm")
    p, q = fgr.Parameters(X, H), peephole.Parameters(X, H)
    for name in q.NAMES:
        value = rng.normal(0, 0.5, size=np.shape(q.checked(name)))
        setattr(q, name, value)
        if (
            name.startswith("hidden_")
            and name.endswith("_weights")
            and name != ("hidden_candidate_weights")
        ):  # [R_g, R_ig, R_fg, R_og]: the block reading h, then the nine gate-to-gate blocks
            extra = rng.normal(0, 0.5, size=(H, 3 * H)) * (not zero_gate_blocks)
            value = np.concatenate([value, extra], axis=1)
        setattr(p, name, value)
    return fgr.forward(p, events, **initial), peephole.forward(q, events, **initial)


def test_lstm_fgr_without_gate_recurrence_is_peephole_lstm():
    """With the nine gate-to-gate blocks (and i0, f0, o0) zero, FGR is Greff's vanilla LSTM;
    with them it differs, and its carried gate states are the gate activations."""
    (out_f, lasts_f, cache_f), (out_p, lasts_p, cache_p) = _fgr_and_peephole(True)
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
    (out_f, _, _), (out_p, _, _) = _fgr_and_peephole(False)
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


def test_gru_cho_differs_from_gru_only_by_where_reset_acts():
    """Same parameters, same input: the two GRU forms agree when the reset gate is saturated open
    (r = 1 everywhere), and differ otherwise, so neither kernel can silently be the other."""
    rng = np.random.default_rng(3)
    T, B, X, H = 4, 2, 3, 5
    events = rng.normal(size=(T, B, X))
    h0 = rng.normal(size=(B, H))
    results = {}
    for name in ("gru", "gru_cho"):
        module = kernel(name)
        p = module.Parameters(X, H)
        rng_p = np.random.default_rng(4)
        for attribute in sorted(vars(p)):
            value = getattr(p, attribute)
            if isinstance(value, np.ndarray):
                setattr(p, attribute, rng_p.normal(0, 0.5, size=value.shape))
        results[name] = (module, p)
    outs = {n: m.forward(p, events, h0=h0)[0] for n, (m, p) in results.items()}
    assert relative_error(outs["gru"], outs["gru_cho"]) > 1e-3
    for _, p in results.values():
        p.event_reset_bias = np.full(H, 60.0)  # sigmoid(60 + O(1)) == 1 in float64
    outs = {n: m.forward(p, events, h0=h0)[0] for n, (m, p) in results.items()}
    assert relative_error(outs["gru"], outs["gru_cho"]) < 1e-14


@pytest.mark.parametrize("name", ["gru_cho", "lstm_fgr"])
def test_sourced_c_steps_compose_to_the_sequence(name, natives):
    """The C step entry points of cells with hidden sources (two-stage steps, gates reading
    several sources side by side), called by their C argument names, over T steps give the
    sequence forward and backward of the NumPy kernel."""
    import ctypes

    from lstm_sym.codegen import c_api

    spec, module, cell = get(name), kernel(name), native_cell(natives, name)
    T, B, X, H = 3, 2, 3, 4
    parameters, events, initial, cot = checks.random_problem(spec, 7, T, B, X, H)
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
