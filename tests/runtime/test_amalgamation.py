"""The runtime ships two ways: byte-identical copies in generated/ beside the cells, and one
amalgamated C file per cell (``lstm-sym amalgamate``), for a built-in cell or a user's spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lstm_sym import runtime
from tests.conftest import require_tool
from tests.support import STRICT

ROOT = Path(__file__).resolve().parents[2]


def test_generated_folder_holds_the_runtime_byte_for_byte():
    for name in runtime.FILES:
        assert (ROOT / "generated" / name).read_bytes() == (runtime.DIRECTORY / name).read_bytes()


def test_amalgamation_of_a_user_spec_compiles_alone_under_strict_warnings(tmp_path):
    cc = require_tool("gcc")
    spec = ROOT / "examples" / "cells" / "mgu.py"
    out, header = tmp_path / "mgu_all.c", tmp_path / "mgu.h"
    command = [sys.executable, "-m", "lstm_sym", "amalgamate", "--spec", str(spec)]
    result = subprocess.run(
        [*command, "--out", str(out), "--header", str(header)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    # every local include was written into the file (the runtime body once per precision)
    assert '#include "' not in text
    assert text.count("/* ---- lstm_sym_runtime_real.inc ---- */") == 2
    assert '#include "' not in header.read_text()
    for flags in ((), ("-O2", "-march=native", "-fopenmp")):
        command = [cc, *STRICT, "-Wconversion", *flags, "-c", str(out), "-o", str(tmp_path / "o")]
        built = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert built.returncode == 0, (flags, built.stderr)
    # the header alone declares the entry points (compiles in a caller without the runtime)
    caller = tmp_path / "caller.c"
    caller.write_text('#include "mgu.h"\nint main(void) { return mgu_cache_size(1, 1, 1) == 0; }\n')
    built = subprocess.run(
        [cc, *STRICT, str(caller), str(out), "-lm", "-o", str(tmp_path / "caller")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    assert subprocess.run([str(tmp_path / "caller")]).returncode == 0
