"""The notebooks: valid, fresh, the seed's numbers, and they execute without error."""

from __future__ import annotations

import nbformat
import pytest

from lstm_sym.cells import CELLS
from lstm_sym.codegen import notebooks
from tests.support import ROOT

PATHS = [f"derivations/{name}_derivation.ipynb" for name in CELLS] + [
    "derivations/walkthrough.ipynb"
]

#: The outputs of the seed tutorial (shared/seed/lstm_walkthrough_notebook.txt, In [5]-[10]),
#: in order: forget gate at zero weights, with identity weights, event only; input gate at zero
#: weights, with identity hidden weights.
SEED_OUTPUTS = [
    "array([0.5, 0.5, 0.5])",
    "array([0.9999546, 0.5      , 0.9999546])",
    "array([0.9999546, 0.5      , 0.5      ])",
    "array([0., 0., 0.])",
    "array([0.       , 0.       , 0.9999546])",
]


@pytest.mark.parametrize("path", PATHS)
def test_valid_and_stored_with_outputs(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not any(o.output_type == "error" for c in code for o in c.outputs)


def test_notebooks_are_fresh():
    """What ``lstm-sym notebook --check`` runs: sources and inputs hash, no kernel."""
    assert notebooks.write(ROOT, list(CELLS), check=True, log=lambda *_: None) == []


def test_walkthrough_has_the_seed_numbers():
    nb = nbformat.read(ROOT / "derivations" / "walkthrough.ipynb", as_version=4)
    results = [
        o["data"]["text/plain"]
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "execute_result"
    ]
    assert results[: len(SEED_OUTPUTS)] == SEED_OUTPUTS
    text = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert r"\mathrm{sigmoid}(0) = 0.5" in text
    assert "%psource" not in "".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
def test_notebooks_execute(path):
    """Re-execute with nbclient from the project root: no cell raises, same outputs."""
    pytest.importorskip("ipykernel")
    stored = nbformat.read(ROOT / path, as_version=4)
    fresh = notebooks.planned(ROOT, list(CELLS))[path]
    executed = notebooks.execute(fresh, ROOT)
    assert notebooks.dumps(executed) == (ROOT / path).read_bytes() or [
        c.get("outputs") for c in executed.cells
    ] == [c.get("outputs") for c in stored.cells]
