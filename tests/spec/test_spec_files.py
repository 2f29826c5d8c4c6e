"""User spec files through the CLI: generate and verify a user's cell, and errors that point at
the equation, before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

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
    cell = ["mgu.abi.json", "mgu.c", "mgu.equations.json", "mgu.h", "mgu.py", "mgu.tex"]
    cell += ["mgu_torch.py"]  # its PyTorch operations
    assert names == sorted([*runtime, *cell])
    check = _cli("generate", "--spec", str(EXAMPLE), "--out", str(tmp_path / "out"), "--check")
    assert check.returncode == 0, check.stderr
    result = _cli("verify", "--spec", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exact model" in result.stdout and "finite differences" in result.stdout
    assert "generated C, float64" in result.stdout  # the C compiled and was checked
    # and both on a padded batch with unsorted lengths
    assert "generated NumPy, float64, lengths" in result.stdout
    assert "generated C, float64, lengths" in result.stdout
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
