"""The reserved names come from rendering the emitters, not from a list: every built-in cell
passes the check, and a name an emitter starts writing is reserved at once."""

from __future__ import annotations

import pytest

from lstm_sym.cells import CELLS
from lstm_sym.codegen import numpy_module, reserved


@pytest.mark.parametrize("name", list(CELLS))
def test_every_built_in_cell_passes_the_name_check(name):
    reserved.check(CELLS[name])


def test_a_name_an_emitter_starts_writing_is_reserved(monkeypatch):
    emit = numpy_module.emit
    monkeypatch.setattr(
        numpy_module, "emit", lambda *a, **k: emit(*a, **k) + "\nbrand_new_global = 1\n"
    )
    table = reserved.reserved.__wrapped__()
    assert ("brand_new_global", False) in table.fixed
    assert ("brand_new_global", False) not in reserved.reserved().fixed


def test_names_made_of_the_spec_names_become_templates():
    patterns = {t.pattern for t in reserved.reserved().templates}
    assert {"{gate}_pre", "slice_{gate}", "{state}_states", "{cell}_forward_f32"} <= patterns
