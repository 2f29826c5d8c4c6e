"""Formats generated Python with the pinned ruff, isolated from any user configuration."""

from __future__ import annotations

import subprocess

from ruff.__main__ import find_ruff_bin

LINE_LENGTH = 100


def format_python(source: str, filename: str) -> str:
    result = subprocess.run(
        [
            find_ruff_bin(),
            "format",
            "--isolated",
            f"--line-length={LINE_LENGTH}",
            f"--stdin-filename={filename}",
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ruff could not format generated {filename}:\n{result.stderr}")
    return result.stdout
