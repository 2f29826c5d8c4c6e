"""Each generated cell's C cites the equations of its derivation document: every label it cites
is a ``\\label`` of ``derivations/<cell>.tex``, every per-unit equation of the document (forward,
backward after CSE) is cited by the C line that computes it, and the matrix-product blocks cite
the projections, backpropagation through time and the linear adjoints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lstm_sym.cells import CELLS

ROOT = Path(__file__).resolve().parents[2]


def _labels(name: str) -> set[str]:
    return set(
        re.findall(r"\\label\{(eq:[^}]+)\}", (ROOT / "derivations" / f"{name}.tex").read_text())
    )


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_c_cites_only_and_all_per_unit_equations_of_its_derivation(name):
    source = (ROOT / "generated" / f"{name}.c").read_text()
    cited = set(re.findall(r"\beq:[a-z0-9-]+", source))
    labels = _labels(name)
    assert cited <= labels, sorted(cited - labels)
    per_unit = {label for label in labels if label.startswith(("eq:forward-", "eq:cse-"))}
    assert per_unit and per_unit <= cited, sorted(per_unit - cited)
    for kind in ("eq:projection-", "eq:bptt-through-", "eq:linear-weights", "eq:linear-inputs"):
        assert any(label.startswith(kind) for label in cited), kind
    # the masked update of variable lengths: the document states it under the plan's labels
    for label in ("eq:masked-state", "eq:masked-pass"):
        assert label in labels and label in cited, label
    # a per-unit line cites the equation of the value it computes
    lines = re.findall(
        r"/\* .*\((eq:(?:forward|cse)-[a-z0-9-]+)\) \*/\n\s*const \w+ (\w+) =", source
    )
    assert len(lines) >= len(per_unit)
    for label, target in lines:
        assert label.split("-", 1)[1] == target.replace("_", "-"), (label, target)
