"""The repository's own Python passes the pinned ruff: lint and format (pyproject's settings)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    from ruff.__main__ import find_ruff_bin

    result = subprocess.run(
        [find_ruff_bin(), *command, "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
