"""The registry of built-in cell specs, one small module per cell."""

from __future__ import annotations

from ..spec import CellSpec, validate
from . import lstm

#: Built-in cells by name, in the order ``lstm-sym generate`` writes them.
CELLS: dict[str, CellSpec] = {spec.name: spec for spec in (lstm.SPEC,)}


def get(name: str) -> CellSpec:
    """The built-in cell ``name``, validated; a clear error lists the known names."""
    try:
        spec = CELLS[name]
    except KeyError:
        raise KeyError(f"unknown cell {name!r}; built-in cells: {', '.join(CELLS)}") from None
    validate(spec)
    return spec
