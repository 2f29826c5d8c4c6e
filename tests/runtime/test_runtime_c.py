"""The hand-written C runtime (lstm_sym/runtime) on its own: tests/runtime/runtime_test.c checks
every product (nt, nn, packed, rows, shared; sizes 1 and around every tile and block edge;
strided and transposed operands), fill/copy/broadcast/column sums and exp/tanh/sigmoid (against
libm in a wider type, in ulps; -0, huge, inf, NaN) against naive references, in double and float,
for each build a user or the binding makes."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import require_tool
from tests.support import ROOT, SANITIZE, STRICT

HERE = os.path.dirname(os.path.abspath(__file__))
BINDING = ("-O3", "-march=native", "-ffp-contract=fast", "-fno-trapping-math")  # lstm_sym.native's

#: Builds: name -> (extra compiler flags, environment of the run).
VARIANTS = {
    "binding flags (AVX-512 kernel where the CPU has it)": (BINDING, {}),
    "binding flags with LSTM_SYM_PORTABLE": ((*BINDING, "-DLSTM_SYM_PORTABLE"), {}),
    "AVX2 + FMA kernel (-march=haswell)": (
        ("-O3", "-march=haswell", "-ffp-contract=fast", "-fno-trapping-math"),
        {},
    ),
    "plain c99 -O2 (an embedding user's build)": (("-O2",), {}),
    "OpenMP on two threads": ((*BINDING, "-fopenmp"), {"OMP_NUM_THREADS": "2"}),
    "address and undefined-behaviour sanitizers": (("-O1", "-march=native", *SANITIZE), {}),
    "sanitizers with LSTM_SYM_PORTABLE": (
        ("-O1", "-march=native", "-DLSTM_SYM_PORTABLE", *SANITIZE),
        {},
    ),
}


def _cpu_has(*features: str) -> bool:
    try:
        with open("/proc/cpuinfo") as handle:
            flags = set(handle.read().split())
    except OSError:
        return False
    return set(features) <= flags


def _build(tmp_path, flags, precision) -> str:
    compiler = require_tool("gcc")
    target = str(tmp_path / f"runtime_test_{precision}")
    command = [compiler, *STRICT, *flags, "-I", os.path.join(ROOT, "generated")]
    command += ["-DTEST_F32"] if precision == "float" else []
    command += [os.path.join(HERE, "runtime_test.c")]
    command += [os.path.join(ROOT, "generated", "lstm_sym_runtime.c"), "-lm", "-o", target]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 and "-fopenmp" in flags and "omp" in result.stderr:
        pytest.skip("gcc has no OpenMP")
    if result.returncode != 0 and "-fsanitize" in " ".join(flags) and "asan" in result.stderr:
        pytest.skip("gcc has no sanitizer runtime")
    assert result.returncode == 0, result.stderr
    return target


@pytest.mark.parametrize("precision", ["double", "float"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_runtime_routines_match_naive_references_and_libm(tmp_path, variant, precision):
    flags, environment = VARIANTS[variant]
    if "-march=haswell" in flags and not _cpu_has("avx2", "fma"):
        pytest.skip("this CPU has no AVX2 + FMA")
    program = _build(tmp_path, flags, precision)
    result = subprocess.run(
        [program], capture_output=True, text=True, env={**os.environ, **environment}, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok {precision} ")
    assert int(result.stdout.split()[2]) > 1_000_000  # every check ran
