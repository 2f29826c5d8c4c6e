"""The registry of built-in cell specs, one small module per cell."""

from __future__ import annotations

from ..spec import CellSpec, validate
from . import (
    gru,
    gru_cho,
    indrnn,
    lstm,
    lstm_cifg,
    lstm_fgr,
    lstm_ln,
    lstm_nfg,
    lstm_niaf,
    lstm_nig,
    lstm_noaf,
    lstm_nog,
    lstmp,
    mingru,
    minlstm,
    peephole_lstm,
    slstm,
)

#: Built-in cells by name, in the order ``lstm-sym generate`` writes them.
CELLS: dict[str, CellSpec] = {
    module.SPEC.name: module.SPEC
    for module in (
        lstm,
        peephole_lstm,
        lstm_nig,
        lstm_nfg,
        lstm_nog,
        lstm_niaf,
        lstm_noaf,
        lstm_cifg,
        lstm_fgr,
        gru,
        gru_cho,
        lstmp,
        slstm,
        indrnn,
        mingru,
        minlstm,
        lstm_ln,
    )
}


def get(name: str) -> CellSpec:
    """The built-in cell ``name``, validated; a clear error lists the known names."""
    try:
        spec = CELLS[name]
    except KeyError:
        raise KeyError(f"unknown cell {name!r}; built-in cells: {', '.join(CELLS)}") from None
    validate(spec)
    return spec
