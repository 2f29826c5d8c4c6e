"""The runtime's name prefix ``lstm_sym_`` is its own: a cell named ``lstm_sym`` (whose C
functions would share it) is refused with an error naming the cell, before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_cell_named_like_the_runtime_is_refused(tmp_path):
    example = (ROOT / "examples" / "cells" / "mgu.py").read_text()
    assert example.count('name="mgu"') == 1
    spec = tmp_path / "clash.py"
    spec.write_text(example.replace('name="mgu"', 'name="lstm_sym"'))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "lstm_sym", "generate", "--spec", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr
    assert "'lstm_sym'" in result.stderr and "C runtime" in result.stderr
    assert not out.exists()
