"""native.load: the cells there are, generated files elsewhere, one module object per kernel
whichever name imported it, and builds of several sources with include directories."""

from __future__ import annotations

import ctypes
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]


def test_loading_an_unknown_cell_names_the_cells_there_are():
    from lstm_sym import native

    with pytest.raises(ValueError) as error:
        native.load("nope")
    message = str(error.value)
    assert "no generated cell 'nope'" in message
    for name in ("lstm", "gru", "lstmp", "peephole_lstm"):
        assert f" {name}," in message or message.endswith(f" {name}")
    assert native.cells() == sorted(native.cells()) and "gru_cho" in native.cells()


def test_generated_and_lstm_sym_kernels_are_the_same_modules():
    import lstm_sym.kernels.gru

    import generated.gru
    from generated import lstm
    from lstm_sym.kernels import lstm as installed

    assert lstm is installed and generated.gru is lstm_sym.kernels.gru
    assert importlib.import_module("generated.lstmp") is importlib.import_module(
        "lstm_sym.kernels.lstmp"
    )
    assert isinstance(lstm.Parameters(2, 3), installed.Parameters)
    assert lstm.__spec__.name == "lstm_sym.kernels.lstm" == lstm.__name__


def test_a_generated_module_runs_where_lstm_sym_is_not_importable(tmp_path):
    """generated/ copied alone (no lstm_sym beside it) is still a plain package of kernels."""
    shutil.copytree(ROOT / "generated", tmp_path / "generated")
    # -I keeps the checkout and PYTHONPATH off sys.path; the copy's folder is put first by hand,
    # and lstm_sym is made unimportable (None in sys.modules) whatever site-packages holds.
    script = (
        "import sys; sys.path.insert(0, ''); sys.modules['lstm_sym'] = None\n"
        "from generated import lstm; print(lstm.__name__, lstm.forward.__module__)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["generated.lstm", "generated.lstm"]


@pytest.mark.slow
def test_a_users_cell_loads_from_its_generated_directory(tmp_path):
    require_tool("gcc")
    from lstm_sym import native
    from lstm_sym.cli import main

    out = tmp_path / "out"
    spec = tmp_path / "mgu.py"
    shutil.copy(ROOT / "examples" / "cells" / "mgu.py", spec)
    assert main(["generate", "--spec", str(spec), "--out", str(out)]) in (0, None)
    cell = native.load("mgu", directory=out)
    assert native.cells(out) == ["mgu"]
    module = cell.module
    rng = np.random.default_rng(0)
    parameters = module.Parameters(3, 4)
    for name in parameters.NAMES:
        setattr(parameters, name, rng.normal(size=parameters.checked(name).shape))
    events = rng.normal(size=(4, 2, 3))
    outputs, _, cache = cell.forward(parameters, events)
    ref_outputs, _, ref_cache = module.forward(parameters, events)
    assert np.max(np.abs(outputs - ref_outputs)) <= 1e-12 * np.max(np.abs(ref_outputs))
    grads = cell.backward(cache, np.ones_like(outputs))
    ref = module.backward(ref_cache, np.ones_like(outputs))
    for name in ref.NAMES:
        want = getattr(ref, name)
        assert np.max(np.abs(getattr(grads, name) - want)) <= 1e-12 * np.max(np.abs(want)), name
    assert native.load("mgu", directory=out).module is module  # imported once


def test_a_library_is_built_from_several_sources_and_include_directories(tmp_path, monkeypatch):
    require_tool("gcc")
    from lstm_sym import native

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    include = tmp_path / "include"
    include.mkdir()
    (include / "scale.h").write_text("#define SCALE 3\nint scaled(int x);\n")
    (tmp_path / "a.c").write_text('#include "scale.h"\nint scaled(int x) { return SCALE * x; }\n')
    (tmp_path / "b.c").write_text(
        '#include "scale.h"\nint twice_scaled(int x) { return 2 * scaled(x); }\n'
    )
    sources = [tmp_path / "a.c", tmp_path / "b.c"]
    first = native.compile_library("two", sources, [include])
    assert ctypes.CDLL(str(first)).twice_scaled(7) == 42
    assert native.compile_library("two", sources, [include]) == first  # cached
    (include / "scale.h").write_text("#define SCALE 5\nint scaled(int x);\n")
    second = native.compile_library("two", sources, [include])  # a header changed: rebuilt
    assert second != first and ctypes.CDLL(str(second)).twice_scaled(7) == 70
