"""The ABI as data (generated/<cell>.abi.json): loading a kernel needs no SymPy, and the data
agrees with what it describes: the C header's prototypes and the NumPy module's arrays."""

from __future__ import annotations

import importlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_sym.native import abi
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "generated"
CELLS = abi.cells(GENERATED)
#: What loading and running a kernel must not import: the generator's side of the project.
GENERATOR = ("sympy", "lstm_sym.derive", "lstm_sym.spec", "lstm_sym.codegen", "lstm_sym.cells")

LOAD_AND_RUN = """
import json, sys
import numpy as np
from lstm_sym import native
imported_by_import = sorted(sys.modules)
cell = native.load("lstmp")
parameters = cell.Parameters(3, 4, 2)
outputs, lasts, cache = cell.forward(parameters, np.ones((2, 3)))
grads = cell.backward(cache, np.ones_like(outputs))
print(json.dumps([imported_by_import, sorted(sys.modules)]))
"""


def test_loading_and_running_a_kernel_imports_neither_sympy_nor_the_generator(tmp_path):
    require_tool("gcc")
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    after_import, after_run = json.loads(result.stdout.splitlines()[-1])
    for modules in (after_import, after_run):
        loaded = [m for m in modules if m.split(".")[0] == "sympy" or m.startswith(GENERATOR)]
        assert loaded == []
    assert "lstm_sym.kernels.lstmp" in after_run and "lstm_sym.native.abi" in after_run


def _prototypes(header: str) -> dict:
    """``{symbol: [argument names]}`` of every ``int <symbol>(...)`` prototype in a header."""
    found = {}
    for symbol, args in re.findall(r"^int (\w+)\(([^)]*)\);", header, flags=re.M):
        found[symbol] = [re.split(r"[\s*]+", a.strip())[-1] for a in args.split(",")]
    return found


@pytest.mark.parametrize("name", CELLS)
def test_abi_entry_points_are_the_headers_prototypes(name):
    cell = abi.read(GENERATED, name)
    prototypes = _prototypes((GENERATED / f"{name}.h").read_text())
    symbols = {s for f in cell.functions.values() for s in f.symbols.values()}
    assert symbols == {s for s in prototypes if s.endswith(("_f64", "_f32"))}
    for function in cell.functions.values():
        for symbol in function.symbols.values():
            assert prototypes[symbol] == [a.name for a in function.args], symbol
    assert re.search(rf"size_t {cell.cache_size[0]}\(", (GENERATED / f"{name}.h").read_text())


@pytest.mark.parametrize("name", CELLS)
def test_abi_shapes_hold_the_numpy_modules_arrays(name):
    """Every C parameter array has as many entries as its Parameters attributes together, and
    every Gradients view is a gradient's shape inside its C array (sizes all different)."""
    cell = abi.read(GENERATED, name)
    module = importlib.import_module(f"lstm_sym.kernels.{name}")
    sizes = {"steps": 5, "batch": 2, "event_size": 3, "hidden_size": 7, "projection_size": 4}
    extra = (4,) if cell.projected else ()
    parameters = module.Parameters(3, 7, *extra)
    arrays = parameters.arrays()
    for array, attributes in cell.parameters:
        total = sum(arrays[a].size for a in attributes)
        assert math.prod(cell.shape(array, sizes)) == total, array
    rng = np.random.default_rng(0)
    for attribute in parameters.NAMES:
        setattr(parameters, attribute, rng.normal(size=arrays[attribute].shape))
    events = rng.normal(size=(5, 2, 3))
    outputs, _, cache = module.forward(parameters, events)
    assert outputs.shape == cell.shape("outputs", sizes)
    grads = module.backward(cache, np.ones_like(outputs))
    assert {v.attribute for v in cell.gradients} == set(grads.NAMES)
    for view in cell.gradients:
        shape = tuple(abi.dimension(d, sizes) for d in view.shape)
        assert getattr(grads, view.attribute).shape == shape, view.attribute
        end = abi.dimension(view.offset, sizes) + math.prod(shape)
        assert end <= math.prod(cell.shape(view.array, sizes)), view.attribute


def test_abi_data_of_another_version_is_refused_with_what_to_do():
    data = json.loads((GENERATED / "lstm.abi.json").read_text())
    data["abi_version"] = 99
    with pytest.raises(ValueError, match=r"abi_version 99.*`lstm-sym generate`"):
        abi.from_data(data)


def test_a_dimension_is_a_product_of_integers_and_sizes():
    assert abi.dimension("4*hidden_size", {"hidden_size": 3}) == 12
    assert abi.dimension("13*hidden_size*hidden_size", {"hidden_size": 2}) == 52
    assert abi.dimension("0", {}) == 0 and abi.dimension("batch", {"batch": 5}) == 5
