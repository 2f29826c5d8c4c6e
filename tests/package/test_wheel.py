"""The wheel installs and works: built from the checkout, installed into a fresh venv (its
dependencies from pip's configured index), run from a directory outside the checkout: the
NumPy kernels, native.load compiling the C shipped in the wheel, generate and verify --spec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _run(command, cwd, env=None, timeout=1200):
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _copy_checkout(target: Path) -> None:
    """The checkout's files as git sees them (tracked and new, not ignored): a build writes
    build/ and *.egg-info beside the sources, and no stale build output may reach the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.slow
def test_the_wheel_installs_and_runs_kernels_from_outside_the_checkout(tmp_path):
    require_tool("git")
    require_tool("gcc")
    source, dist, env_dir, work = (tmp_path / n for n in ("source", "dist", "venv", "work"))
    for directory in (source, work):
        directory.mkdir()
    _copy_checkout(source)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, source], cwd=tmp_path)
    (wheel,) = dist.glob("lstm_sym-*.whl")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run([python, "-m", "pip", "install", "--disable-pip-version-check", wheel], cwd=work)
    site_packages = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work).strip()
    )
    assert (site_packages / "lstm_sym" / "kernels" / "lstm.c").is_file()
    assert not (site_packages / "generated").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    shutil.copy(ROOT / "examples" / "cells" / "mgu.py", work / "mgu.py")
    out = work / "out"
    _run([env_dir / "bin" / "lstm-sym", "generate", "--spec", "mgu.py", "--out", out], work, env)
    assert {p.name for p in out.iterdir()} >= {"mgu.py", "mgu.c", "mgu.h", "mgu.abi.json"}
    verified = _run([env_dir / "bin" / "lstm-sym", "verify", "--spec", "mgu.py"], work, env)
    assert "generated C, float64" in verified and "mgu: all checks passed" in verified
    shutil.copy(HERE / "installed_run.py", work / "installed_run.py")
    output = _run([python, "installed_run.py", out], work, env)
    assert output.strip().endswith("ok"), output
