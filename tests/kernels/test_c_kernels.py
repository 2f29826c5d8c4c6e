"""The generated C of every cell against the generated NumPy module, the exact model and itself
in float32; the LSTM's C entry points called directly through ctypes."""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import os
import re
import subprocess

import numpy as np
import pytest

from generated import lstm
from lstm_sym.cells import CELLS, get
from lstm_sym.runtime import FILES as RUNTIME_FILES
from tests.conftest import require_tool
from tests.problems import run_both
from tests.support import ROOT, STRICT, relative_error, run_script

SIZES = [  # (steps, batch, event_size, hidden_size), ones included
    (1, 1, 1, 1),
    (1, 3, 2, 5),
    (4, 1, 3, 2),
    (3, 2, 1, 4),
    (5, 4, 6, 1),
    (7, 3, 9, 11),
    (2, 5, 17, 33),  # longer than the dot product's lanes, with tails
    (3, 9, 5, 7),  # batch >= 8: the packed matrix products, partial tiles and panels
]
# Packed, with several blocks of terms, of rows and of columns (float32: see test_packed_kernel)
LARGE = (3, 50, 300, 70)
# Cells whose gates sum their parts compute both weight gradients with one packing of the deltas
# when the event and hidden columns fit the packing area side by side (X + H within about 4 H,
# neither narrower than half a panel): here over two blocks of terms (T B = 300).
SHARED = (3, 100, 40, 70)
# Batch < 8: W_hidden packed for the row-by-row products of each step (pairs of panels, a last
# partial panel alone, in float64 an odd count of terms: gru's 3 H = 213 rows), and narrow
# products (event size <= half a panel, through the transpose) over more than one block of rows.
# Few steps at H = 71: the random problems' gradients grow fast with T and amplify rounding.
SMALL_BATCH = [((3, 3, 5, 71), 1e-4), ((70, 1, 3, 5), 1e-5)]


@pytest.fixture(scope="module")
def native():
    require_tool("gcc")
    from lstm_sym import native

    return native.load("lstm")


@pytest.fixture(scope="module", params=list(CELLS))
def cell(request):
    """``(numpy module, native cell)`` of every built-in cell."""
    require_tool("gcc")
    from lstm_sym import native

    return importlib.import_module(f"generated.{request.param}"), native.load(request.param)


def _compare(got, ref, tolerance, scaled=False):
    """The worst relative error of every result; ``scaled``: each error relative to the
    largest value of all results instead (see :func:`_degenerate_layer_norm`)."""
    outputs, lasts, grads = got
    ref_outputs, ref_lasts, ref_grads = ref
    pairs = {"outputs": (outputs, ref_outputs)}
    pairs.update({f"last{k}": ab for k, ab in enumerate(zip(lasts, ref_lasts, strict=True))})
    pairs.update({n: (getattr(grads, n), getattr(ref_grads, n)) for n in ref_grads.NAMES})
    if scaled:
        scale = max(float(np.max(np.abs(b))) for _, b in pairs.values())
        errors = {
            k: float(np.max(np.abs(np.asarray(a, np.float64) - b))) / scale
            for k, (a, b) in pairs.items()
        }
    else:
        errors = {k: relative_error(a, b) for k, (a, b) in pairs.items()}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tolerance, (worst, errors[worst])
    return errors[worst]


CASES = [(s, True) for s in [*SIZES, LARGE]] + [(s, False) for s in SIZES if s[1] == 1]


def _degenerate_layer_norm(module, hidden_size) -> bool:
    """A layer norm over the H units' values (lstm_ln's cell norm) with H <= 2 maps them to
    exactly its shift (H = 1) or to about -1 and 1 whatever they are (H = 2), so every gradient
    through it is exactly zero or of the order of epsilon, computed as the difference of O(1)
    terms: both kernels' values are rounding noise there and their relative error measures
    nothing. Those sizes are compared relative to the largest value of all results."""
    return bool(get(module.CELL).reductions) and hidden_size <= 2


@pytest.mark.parametrize(("sizes", "batched"), CASES, ids=lambda c: str(c))
def test_f64_matches_numpy(cell, sizes, batched, random_problem):
    module, native = cell
    problem = random_problem(module, *sizes, seed=sum(sizes))
    got = run_both(native, problem, batched)
    assert got[0].dtype == np.float64 and got[2].events.dtype == np.float64
    scaled = _degenerate_layer_norm(module, sizes[3])
    _compare(got, run_both(module, problem, batched), 1e-12, scaled)


def test_default_states_are_zeros(cell, random_problem):
    module, native = cell
    parameters, events, *_ = random_problem(module, 3, 2, 4, 5)
    outputs, lasts, cache = native.forward(parameters, events)
    ref_outputs, ref_lasts, ref_cache = module.forward(parameters, events)
    assert relative_error(outputs, ref_outputs) < 1e-12
    for last, ref_last in zip(_states(lasts), _states(ref_lasts), strict=True):
        assert relative_error(last, ref_last) < 1e-12
    d_outputs = np.ones_like(outputs)
    grads, ref = native.backward(cache, d_outputs), module.backward(ref_cache, d_outputs)
    # Relative to the largest gradient: from zero states some gradients are exactly 0 and
    # both sides hold rounding errors (sLSTM's input-gate biases: h does not change when every
    # i~_t shifts by one constant, since c~ and n~ then scale alike)
    scale = max(np.max(np.abs(getattr(ref, name))) for name in ref.NAMES)
    for name in ref.NAMES:
        error = np.max(np.abs(getattr(grads, name) - getattr(ref, name)))
        assert error <= 1e-12 * scale, name


def _states(lasts):
    return lasts if isinstance(lasts, tuple) else (lasts,)


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (2, 1, 3, 1)])
def test_f64_matches_exact_model(cell, sizes):
    """Odd sizes (ones) against the exact model; tests/kernels/test_cells.py covers H > 1."""
    from lstm_sym.cells import get
    from lstm_sym.verify import ExactModel

    module, native = cell
    steps, batch, event_size, hidden_size = sizes
    exact = ExactModel(
        get(module.CELL), steps=steps, batch=batch, event_size=event_size, hidden_size=hidden_size
    )
    parameters = module.Parameters(event_size, hidden_size)
    for name, value in exact.parameters.items():
        setattr(parameters, name, value)
    outputs, lasts, cache = native.forward(
        parameters, exact.events, **{f"{s}0": v for s, v in exact.initial.items()}
    )
    lasts = _states(lasts)
    assert relative_error(outputs, exact.outputs) <= 1e-12
    for (short, final), last in zip(exact.finals.items(), lasts, strict=True):
        assert relative_error(last, final) <= 1e-12, short
    grads = native.backward(
        cache,
        exact.cotangents["outputs"],
        **{f"d_{s}_last": exact.cotangents[s] for s in exact.finals},
    )
    for name, expected in exact.gradients.items():
        assert relative_error(getattr(grads, name), expected) <= 1e-12, name


@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "T{}B{}X{}H{}".format(*s))
def test_f32_matches_f64(cell, sizes, random_problem):
    module, native = cell
    problem32 = random_problem(module, *sizes, seed=7, dtype=np.float32)
    got = run_both(native, problem32)
    assert got[0].dtype == np.float32 and got[2].events.dtype == np.float32
    assert all(getattr(got[2], n).dtype == np.float32 for n in got[2].NAMES)
    # Same float32 inputs, computed in float64 as the reference.
    ref = run_both(native, (problem32.parameters, *(_as64(x) for x in problem32[1:])))
    # A projection multiplies every output adjoint by W_projection: with H = P = 1 this seed's
    # single weight is -0.016, and the bias gradient (a sum over the samples that cancels to
    # 5e-3) keeps float32's absolute rounding (~1e-7) but not its relative size.
    projected = get(module.CELL).projected_state is not None
    _compare(
        got,
        ref,
        1e-4 if projected and sizes[3] == 1 else 1e-5,
        _degenerate_layer_norm(module, sizes[3]),
    )


@pytest.mark.parametrize("portable", [False, True], ids=["default", "portable"])
@pytest.mark.parametrize("name", ["lstm", "gru", "lstmp", "gru_cho", "lstm_fgr"])
def test_packed_kernel(name, portable, random_problem):
    """The packed products (the per-step ones for batch >= 8 and below 8, see SMALL_BATCH; for
    gru_cho and lstm_fgr each run's and source group's product, packed per step from 8 rows on)
    against NumPy in float64 and against float64 in float32, with the kernel of this CPU
    (AVX-512 where the compiler targets it) and the plain-C kernel (-DLSTM_SYM_PORTABLE: what a
    compiler without AVX-512 builds). The float32 sums of 300 + 70 terms (LARGE) round to about
    2e-5 of the largest output for the cells without an input activation, so 1e-4 there."""
    require_tool("gcc")
    from lstm_sym import native

    module = importlib.import_module(f"generated.{name}")
    flags = ("-DLSTM_SYM_PORTABLE",) if portable else ()
    cell = native.load(name, extra_flags=flags)
    for sizes, tolerance in [((3, 9, 5, 7), 1e-5), (LARGE, 1e-4), (SHARED, 1e-4), *SMALL_BATCH]:
        problem = random_problem(module, *sizes, seed=3)
        _compare(run_both(cell, problem), run_both(module, problem), 1e-12)
        problem32 = random_problem(module, *sizes, seed=3, dtype=np.float32)
        reference = run_both(cell, (problem32.parameters, *(_as64(x) for x in problem32[1:])))
        _compare(run_both(cell, problem32), reference, tolerance)


@pytest.mark.parametrize("name", ["lstm", "lstmp", "gru_cho", "peephole_lstm"])
def test_openmp_build_is_deterministic(tmp_path, name, random_problem):
    """Built with -fopenmp (the packing and tiles of the packed products, and the per-unit work
    from {PREFIX}_PARALLEL_UNITS units on, shared among threads), 1 and 2 threads give the same
    bits as the build without: every tile and every unit is computed by one thread in the same
    order. Batch 150 (at H = 70: 10500 units) reaches the parallel per-unit work (peephole_lstm:
    forward only, its peephole gradients sum over the batch rows), and T = 7 the parallel bias
    broadcasts and column sums (7 * 150 * 4 * 70 elements); in float32 the per-step
    products have two blocks of rows and the backward ones two blocks of terms, which threads
    pass without waiting for each other (each keeps its tiles of C). The weight gradients (A
    packed) split their 280 rows between the threads, in blocks of up to 60 packed rows on 2
    threads (126 on 1), over five blocks of terms; at X = 40 the summed cells compute both
    weight gradients with one packing of the deltas (see SHARED)."""
    gcc = require_tool("gcc")
    probe = subprocess.run(
        [gcc, "-fopenmp", "-x", "c", "-", "-o", str(tmp_path / "probe")],
        input="int main(void) { return 0; }\n",
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip("gcc has no OpenMP")
    from lstm_sym import native

    module = importlib.import_module(f"generated.{name}")
    batch = 150
    with open(os.path.join(ROOT, "generated", "lstm_sym_tuning.h")) as file:
        source = file.read()
    threshold = re.search(r"_PARALLEL_UNITS (\d+)u", source)
    assert batch * 70 >= int(threshold.group(1))  # the per-unit work runs on a team
    serial = {}
    for dtype in (np.float64, np.float32):
        for event_size in (300, 40):
            problem = random_problem(module, 7, batch, event_size, 70, seed=3, dtype=dtype)
            outputs, lasts, grads = run_both(native.load(name), problem)
            serial[f"{np.dtype(dtype).name}_{event_size}"] = np.concatenate(
                [a.ravel() for a in [outputs, *lasts, *(getattr(grads, n) for n in grads.NAMES)]]
            )
    assert serial["float32_40"].dtype == np.float32
    for threads in (1, 2):
        out = tmp_path / f"threads{threads}.npz"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        result = run_script("openmp_run.py", out, name, batch, env=env, text=True)
        assert result.returncode == 0, result.stderr[-4000:]
        with np.load(out) as got:
            assert sorted(got.files) == sorted(serial)
            for dtype, expected in serial.items():
                assert np.array_equal(got[dtype], expected), (threads, dtype)


def _as64(value):
    if isinstance(value, dict):
        return {k: v.astype(np.float64) for k, v in value.items()}
    return value.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_saturated_pre_activations_stay_finite(cell, dtype, random_problem):
    """Pre-activations of +-1e4 (biases of +-1e4): no NaN, no inf, forward or backward."""
    module, native = cell
    parameters, events, states, d_outputs, d_lasts = random_problem(module, 4, 3, 2, 3, dtype=dtype)
    for k, name in enumerate(n for n in parameters.NAMES if n.endswith("_bias")):
        sign = 1 if k % 3 else -1
        setattr(parameters, name, np.full(3, sign * 1e4, dtype=dtype))
    outputs, lasts, grads = run_both(native, (parameters, events, states, d_outputs, d_lasts))
    assert np.all(np.isfinite(outputs)) and all(np.all(np.isfinite(x)) for x in lasts)
    assert all(np.all(np.isfinite(getattr(grads, n))) for n in grads.NAMES)


# ---------------------------------------------------------------------------------------------
# The step entry points and the error codes, called directly through ctypes
# ---------------------------------------------------------------------------------------------


def _pointer(array):
    return None if array is None else array.ctypes.data


def _stacked(parameters):
    return [np.ascontiguousarray(a) for a in parameters.stacked(np.float64)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_steps_compose_to_the_sequence(native, dtype, random_problem):
    """step_forward / step_backward over T steps give the sequence forward / backward."""
    steps, batch, event_size, hidden = 4, 3, 5, 6
    suffix = "f64" if dtype == np.float64 else "f32"
    parameters, events, states, d_outputs, d_lasts = random_problem(
        lstm, steps, batch, event_size, hidden
    )
    ew, eb, hw, hb = (a.astype(dtype) for a in _stacked(parameters))
    events, d_outputs = events.astype(dtype), d_outputs.astype(dtype)
    h, c = states["h"].astype(dtype), states["c"].astype(dtype)
    lib = native.library
    saved_size = lib.lstm_step_saved_size(ctypes.c_size_t(batch), ctypes.c_size_t(hidden))
    work = np.empty(4 * batch * hidden, dtype=dtype)
    hs, cs, saved = [h], [c], []
    step_forward = getattr(lib, f"lstm_step_forward_{suffix}")
    for t in range(steps):
        h_next, c_next = np.empty_like(h), np.empty_like(c)
        saved.append(np.empty(saved_size, dtype=dtype))
        arguments = (events[t], hs[-1], cs[-1], ew, eb, hw, hb, h_next, c_next, saved[-1], work)
        assert step_forward(batch, event_size, hidden, *map(_pointer, arguments)) == 0
        hs.append(h_next)
        cs.append(c_next)
    params_d = _with_dtype(parameters, dtype)
    ref_outputs, (_, ref_c), cache = native.forward(params_d, events, h0=h, c0=c)
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    assert relative_error(np.stack(hs[1:]), ref_outputs) <= tolerance
    assert relative_error(cs[-1], ref_c) <= tolerance

    grads = native.backward(
        cache, d_outputs, d_h_last=d_lasts["h"].astype(dtype), d_c_last=d_lasts["c"].astype(dtype)
    )
    d_ew, d_eb, d_hw, d_hb = (np.zeros_like(a) for a in (ew, eb, hw, hb))
    d_h, d_c = d_lasts["h"].astype(dtype), d_lasts["c"].astype(dtype)
    d_events = np.empty_like(events)
    step_backward = getattr(lib, f"lstm_step_backward_{suffix}")
    for t in reversed(range(steps)):
        d_h_next = d_h + d_outputs[t]
        d_h_prev, d_c_prev = np.empty_like(d_h), np.empty_like(d_c)
        arguments = (
            events[t],
            hs[t],
            cs[t],
            ew,
            hw,
            saved[t],
            d_h_next,
            d_c,
            d_ew,
            d_eb,
            d_hw,
            d_hb,
        )
        arguments += (d_events[t], d_h_prev, d_c_prev, work)
        assert step_backward(batch, event_size, hidden, *map(_pointer, arguments)) == 0
        d_h, d_c = d_h_prev, d_c_prev
    assert relative_error(d_events, grads.events) <= tolerance
    assert relative_error(d_h, grads.h0) <= tolerance and relative_error(d_c, grads.c0) <= tolerance
    rows = slice(hidden, 2 * hidden)  # the forget gate's block
    assert relative_error(d_ew[rows], grads.event_forget_weights) <= tolerance
    assert relative_error(d_hw[rows], grads.hidden_forget_weights) <= tolerance
    assert relative_error(d_hb[rows], grads.hidden_forget_bias) <= tolerance


def _with_dtype(parameters, dtype):
    copy = lstm.Parameters(parameters.event_size, parameters.hidden_size)
    for name in parameters.NAMES:
        setattr(copy, name, np.asarray(getattr(parameters, name), dtype=dtype))
    return copy


@pytest.mark.parametrize("name", ["gru_cho", "lstm_fgr"])
def test_sourced_cells_pack_area_holds_each_block_packed(name):
    """A cell whose gates read other sources than h_{t-1} packs each block of W_hidden its
    per-step products read once per call, one after the other: forward the block's transpose
    (its count * H rows rounded up to whole 64-column panels, times its width * H columns),
    backward the block itself (columns rounded up, times rows). The packing area is the larger
    of the two, a block of B (256 terms of the wider rounded size of G * H and H), a block of A
    and 16 for alignment. The cache's other parts grow with the batch, the packing area does
    not: it is 2 size(B = 1) - size(B = 2)."""
    from lstm_sym import native
    from lstm_sym.plan import plan_cell

    kernel = plan_cell(get(name))
    blocks = [(len(r.gates), 1) for r in kernel.recurrent_runs]
    blocks += [(len(r.gates), r.width) for r in kernel.runs]
    assert sum(count * width for count, width in blocks) == sum(kernel.blocks)  # all of W_hidden
    cache_size = getattr(native.load(name).library, f"{name}_cache_size")
    cache_size.restype = ctypes.c_size_t

    def size(batch, hidden):
        return cache_size(ctypes.c_size_t(4), ctypes.c_size_t(batch), ctypes.c_size_t(hidden))

    def up(n):
        return -(-n // 64) * 64

    for hidden in (1, 7, 33, 64, 65, 100, 256):
        forward = sum(up(count * hidden) * width * hidden for count, width in blocks)
        backward = sum(up(width * hidden) * count * hidden for count, width in blocks)
        rows = len(kernel.gates) * hidden
        area = max(forward, backward) + 256 * max(up(rows), up(hidden)) + 128 * 256 + 16
        assert 2 * size(1, hidden) - size(2, hidden) == area, hidden


def test_errors_write_nothing(native, random_problem):
    """Zero sizes and NULL required pointers return their codes and leave every buffer alone."""
    steps, batch, event_size, hidden = 2, 1, 2, 3
    parameters, events, *_ = random_problem(lstm, steps, batch, event_size, hidden)
    ew, eb, hw, hb = _stacked(parameters)
    size = native.library.lstm_cache_size(
        ctypes.c_size_t(steps), ctypes.c_size_t(batch), ctypes.c_size_t(hidden)
    )
    # The packing area (lstm.h): W_hidden with both sizes rounded up to whole 64-column panels,
    # a block of B (256 terms of the wider rounded size), a block of A, 16 for alignment
    rows, hidden_up = -(-4 * hidden // 64) * 64, -(-hidden // 64) * 64
    pack = rows * hidden_up + 256 * max(rows, hidden_up) + 128 * 256 + 16
    assert size == batch * hidden * (2 * (steps + 1) + 9 * steps) + pack
    outputs = np.full((steps, batch, hidden), 7.0)
    h_last, c_last, cache = (
        np.full((batch, hidden), 7.0),
        np.full((batch, hidden), 7.0),
        np.full(size, 7.0),
    )
    forward = native.library.lstm_forward_f64
    good = [events, None, None, None, ew, eb, hw, hb, outputs, h_last, c_last, cache]

    def call(sizes, arrays):
        return forward(*sizes, *map(_pointer, arrays))

    assert call((0, batch, event_size, hidden), good) == 1
    assert call((steps, batch, 0, hidden), good) == 1
    assert call((steps, batch, event_size, 2**62), good) == 1  # overflowing sizes
    for k in (0, 4, 5, 6, 7, 8, 9, 10, 11):  # every required pointer (lengths, h0, c0 may be NULL)
        arrays = list(good)
        arrays[k] = None
        assert call((steps, batch, event_size, hidden), arrays) == 2, k
    for bad in ([0], [-1], [steps + 1]):  # a length below 1 or above steps
        arrays = list(good)
        arrays[1] = np.array(bad, dtype=np.int64)
        assert call((steps, batch, event_size, hidden), arrays) == 3, bad
    for array in (outputs, h_last, c_last, cache):
        assert np.all(array == 7.0)
    assert call((steps, batch, event_size, hidden), good) == 0
    assert not np.all(outputs == 7.0)
    native.library.lstm_error_string.restype = ctypes.c_char_p
    assert b"NULL" in native.library.lstm_error_string(2)
    assert b"lengths" in native.library.lstm_error_string(3)


# ---------------------------------------------------------------------------------------------
# The generated source itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_compiles_with_strict_warnings(compiler, tmp_path):
    """-std=c99 -pedantic -Wall -Wextra -Werror -Wdouble-promotion (and -Wconversion) on the
    kernel, the header included from C++ (extern "C"), and the example."""
    if compiler == "clang" and not require_optional("clang"):
        pytest.skip("optional: clang is not installed")
    path = require_tool(compiler)
    generated = os.path.join(ROOT, "generated")
    sources = [f"generated/{name}.c" for name in CELLS] + ["examples/c/lstm_example.c"]
    sources += ["generated/lstm_sym_runtime.c"]
    for source in sources:
        command = [
            path,
            *STRICT,
            "-Wconversion",
            "-Wshadow",
            "-Wstrict-prototypes",
            "-O2",
            "-I",
            generated,
        ]
        command += ["-c", os.path.join(ROOT, source), "-o", str(tmp_path / "out.o")]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, (source, result.stderr)


def require_optional(tool):
    import shutil

    return shutil.which(tool) is not None


def test_header_is_valid_cplusplus(tmp_path):
    import shutil

    compiler = shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    source = tmp_path / "use.cpp"
    includes = "".join(f'#include "{name}.h"\n' for name in CELLS)
    # A cell with a projected state (lstmp) also takes projection_size.
    checks = " || ".join(
        f"{name}_cache_size(1, 1, 1{', 1' if get(name).projected_state else ''}) == 0"
        for name in CELLS
    )
    source.write_text(f"{includes}int main() {{ return {checks}; }}\n")
    command = [
        compiler,
        "-Wall",
        "-Werror",
        "-I",
        os.path.join(ROOT, "generated"),
        "-c",
        str(source),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["lstm", "peephole_lstm", "gru"])
def test_generated_c_is_deterministic(tmp_path, name):
    """Same bytes under two hash seeds, and equal to the checked-in files."""
    digests = []
    for seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = run_script("render_digests.py", name, "--suffix", ".c", ".h", env=env, text=True)
        assert result.returncode == 0, result.stderr
        digests.append(json.loads(result.stdout))
    assert digests[0] == digests[1]
    runtime = [f"generated/{f}" for f in RUNTIME_FILES if f.endswith((".c", ".h"))]
    assert sorted(digests[0]) == sorted([f"generated/{name}.c", f"generated/{name}.h", *runtime])
    for path, digest in digests[0].items():
        assert hashlib.sha256((ROOT / path).read_bytes()).hexdigest() == digest, path


@pytest.mark.parametrize("name", [*CELLS, "lstm_sym_runtime"])
def test_no_allocation_globals_or_static_state(name):
    with open(os.path.join(ROOT, "generated", f"{name}.c")) as handle:
        source = handle.read()
    if name == "lstm_sym_runtime":  # with its body, included once per precision
        with open(os.path.join(ROOT, "generated", "lstm_sym_runtime_real.inc")) as handle:
            source += handle.read()
    includes = sorted(line for line in source.splitlines() if line.startswith("#include"))
    if name != "lstm_sym_runtime":  # a cell: its header and the runtime's
        assert includes == sorted([f'#include "{name}.h"', '#include "lstm_sym_runtime.h"'])
    else:
        # <immintrin.h> only behind a check for AVX-512 (the packed products' kernel), <omp.h>
        # only in an OpenMP build (the team's thread count)
        assert includes == [
            '#include "lstm_sym_runtime.h"',
            '#include "lstm_sym_runtime_real.inc"',
            '#include "lstm_sym_runtime_real.inc"',
            "#include <immintrin.h>",
            "#include <omp.h>",
            "#include <stdint.h>",
        ]
        before = source.split("#include <immintrin.h>")[0].splitlines()
        assert before[-1] == "#if defined(LSTM_SYM_AVX512) || defined(LSTM_SYM_AVX2)"
        assert source.split("#include <omp.h>")[0].splitlines()[-1] == "#ifdef _OPENMP"
    for word in ("malloc", "calloc", "free(", "static double ", "static float "):
        assert word not in source.replace(f"static double {name}_", "").replace(
            f"static float {name}_", ""
        ), word
    for line in source.splitlines():
        if line.startswith(("size_t", "int", "const char", "static")):
            assert "(" in line, f"file-scope object: {line}"  # only functions at file scope
