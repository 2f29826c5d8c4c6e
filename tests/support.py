"""Helpers shared by the tests: the repository root, C compiler flags, the helper scripts,
comparing results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

#: The repository's root (tests/ is one level below it).
ROOT = Path(__file__).resolve().parent.parent
SANITIZE = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all")
STRICT = ("-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion")
#: Helper scripts the tests run in a process of their own (tests/scripts/).
SCRIPTS = ROOT / "tests" / "scripts"


def run_script(name: str, *args, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    """Run ``tests/scripts/<name>`` with this Python from the repository root, the checkout
    first on its import path (as pytest's ``pythonpath`` has it), output captured; ``env``
    replaces the environment (default: this process's), ``options`` go to subprocess.run."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, str(SCRIPTS / name), *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, **options)


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected| (the max norm), 0 for two zero arrays."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    error = np.max(np.abs(actual - expected)) if expected.size else 0.0
    return float(error / scale) if scale > 0 else float(error)
