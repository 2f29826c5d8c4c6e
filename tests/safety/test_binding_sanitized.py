"""The binding's whole bad-input table (test_bad_inputs_binding.py) again, in a process of its
own, with every cell's library built with address and undefined-behaviour sanitizers: any
sanitizer report (a wild read or write, an overflow, undefined behaviour) fails it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import require_tool
from tests.safety import test_bad_inputs_binding as table
from tests.support import ROOT


@pytest.mark.slow
def test_the_binding_bad_input_table_passes_under_address_and_undefined_sanitizers():
    gcc = require_tool("gcc")
    libasan = subprocess.run(
        [gcc, "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("gcc has no libasan")
    env = dict(
        os.environ,
        LD_PRELOAD=libasan,
        ASAN_OPTIONS="detect_leaks=0",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        LSTM_SYM_TEST_SANITIZE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += [str(ROOT / "tests" / "safety" / "test_bad_inputs_binding.py")]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=1800
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "AddressSanitizer" not in output and "runtime error" not in output, output[-6000:]
    # every row, the baseline, each lengths row for both backends and the two C lengths tests
    expected = len(table.ROWS) + 1 + 2 * len(table.LENGTHS_ROWS) + 2
    assert f"{expected} passed" in result.stdout, result.stdout[-2000:]
