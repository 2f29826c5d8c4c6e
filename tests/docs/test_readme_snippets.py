"""The README's Python snippets run as written, one after another in one fresh interpreter (as a
newcomer pastes them), and write only under the scratch folder build/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_installed, require_module, require_tool

ROOT = Path(__file__).resolve().parents[2]


def readme_snippets(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def test_the_readme_python_snippets_run_in_order_and_write_only_under_build(tmp_path):
    require_module("torch")
    require_module("onnxruntime")
    require_installed("keras")  # imported by the snippets themselves, on the torch backend
    require_tool("gcc")
    snippets = readme_snippets("python")
    assert len(snippets) >= 3, "the generated LSTM, its C twin and the PyTorch model"
    script = tmp_path / "readme_snippets.py"
    script.write_text("\n".join(snippets), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    written = sorted(p.relative_to(work) for p in work.rglob("*") if p.is_file())
    assert written, "the snippets save a model"
    assert all(p.parts[0] == "build" for p in written), f"written outside build/: {written}"
