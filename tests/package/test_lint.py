"""The repository's own Python passes the pinned ruff: lint and format (pyproject's settings)."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import ROOT


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    from ruff.__main__ import find_ruff_bin

    result = subprocess.run(
        [find_ruff_bin(), *command, "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
