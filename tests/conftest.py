"""Shared test helpers: the tools a test requires, and the ``random_problem`` fixture.

Reference tests need outside tools (PyTorch, gcc, pdflatex). Locally a missing tool skips its
tests; in CI (env ``CI`` or ``LSTM_SYM_REQUIRE_ALL=1``) it fails them, and so does any other
skip: a skipped reference test must never pass for a green run. Skips whose reason starts
with ``optional:`` (e.g. clang, which CI does not install) are the only exception.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil

import pytest

REQUIRE_ALL = bool(os.environ.get("CI")) or os.environ.get("LSTM_SYM_REQUIRE_ALL") == "1"
OPTIONAL = "optional:"


def _missing(message: str):
    if REQUIRE_ALL:
        pytest.fail(f"{message} (required in CI)", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, hint: str = "") -> str:
    """Path of executable ``name``: skips locally, fails in CI when it is missing."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is not installed{': ' + hint if hint else ''}")
    return path


def require_module(name: str):
    """Import module ``name``: skips locally, fails in CI when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        _missing(f"Python module {name} is not importable ({error}); pip install -e '.[test]'")


def require_installed(name: str) -> None:
    """Check that module ``name`` is installed without importing it (for a module a test runs
    in a process of its own, e.g. Keras, whose import picks a backend): skips locally, fails in
    CI when it is missing."""
    if importlib.util.find_spec(name) is None:
        _missing(f"Python module {name} is not installed; pip install -e '.[test]'")


def pytest_runtest_logreport(report):
    """Under REQUIRE_ALL, turn every non-optional skip into a failure."""
    if not (REQUIRE_ALL and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if OPTIONAL not in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every reference test: {reason}"


@pytest.fixture(scope="session")
def random_problem():
    """``random_problem(cell, steps, batch, event_size, hidden_size, *, seed=0, dtype=float64,
    scale=0.5, projection_size=None)``: a random problem for any cell (name or generated
    module), size and dtype: Parameters with random weights and biases, events, initial states
    and cotangents (tests/problems.py)."""
    from tests import problems  # the cells' registry imports SymPy: only when a test asks

    return problems.random_problem
