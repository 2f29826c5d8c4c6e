"""The registered cells, their generated files and derivations, and README's table of cells
agree."""

from __future__ import annotations

import re
from pathlib import Path

from lstm_sym.cells import CELLS, get
from tests.support import ROOT

NAMES = list(CELLS)


def _readme_table():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- cells:begin -->(.*?)<!-- cells:end -->", text, re.S)
    assert match, "README.md has no <!-- cells:begin --> ... <!-- cells:end --> table"
    rows = []
    for line in match.group(1).strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1].strip("`")))
    return rows


def test_cells_generated_files_and_readme_agree():
    rows = _readme_table()
    assert [name for name, _ in rows] == NAMES, "README's table of cells lists other cells"
    for name, source in rows:
        spec = get(name)
        assert source == spec.source and (ROOT / source).is_file(), name
        for path in (
            f"generated/{name}.py",
            f"generated/{name}.c",
            f"generated/{name}.h",
            f"generated/{name}.abi.json",
            f"generated/{name}_torch.py",
            f"derivations/{name}.tex",
            f"derivations/{name}.equations.json",
            f"derivations/{name}_verification.tex",
            f"derivations/{name}.pdf",
        ):
            assert (ROOT / path).is_file(), path
    # Each cell's NumPy module and its PyTorch operations (<cell>_torch.py)
    listed = {p.stem.removesuffix("_torch") for p in (ROOT / "generated").glob("*.py")}
    listed -= {"__init__"}
    assert listed == set(NAMES), "generated/ holds modules of cells that are not registered"
    modules = {p.stem for p in (ROOT / "lstm_sym" / "cells").glob("*.py")}
    assert {Path(get(n).source).stem for n in NAMES} <= modules
