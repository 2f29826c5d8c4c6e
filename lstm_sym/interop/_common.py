"""What the converters share: gate blocks, the cell of a ``Parameters``, checks of what a format
cannot hold."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from ..models._io import float_array, float_dtype
from ..models.layers import resolve_cell

__all__ = [
    "blocks",
    "cell_of",
    "directions_of",
    "expect_ndim",
    "float_array",
    "float_dtype",
    "gate_names",
    "only_zero",
    "resolve_cell",
    "supported_cell",
]


def supported_cell(cell, table: dict, fmt: str):
    """The cell module for ``cell`` (a module, a name or None for ``lstm``), refused with the
    list of the cells ``fmt`` can express when it is not one of ``table``'s keys."""
    module = resolve_cell(cell)
    if module.CELL not in table:
        raise ValueError(
            f"cell: {fmt} has no layer for the {module.CELL!r} cell; it expresses "
            f"{', '.join(repr(name) for name in table)}"
        )
    return module


def cell_of(parameters):
    """The generated cell module a ``Parameters`` instance belongs to."""
    module = sys.modules.get(type(parameters).__module__)
    if module is None or not hasattr(module, "GATES") or not hasattr(module, "Parameters"):
        raise TypeError(
            f"parameters must be a generated cell's Parameters, got {type(parameters).__name__}"
        )
    return module


def directions_of(parameters) -> list:
    """One ``Parameters`` (a forward layer) or a sequence of one or two (forward, reverse), all
    of one cell and sizes, as a list."""
    directions = list(parameters) if isinstance(parameters, Sequence) else [parameters]
    if len(directions) not in (1, 2):
        raise ValueError(
            f"parameters must be one or two (bidirectional) cells, got {len(directions)}"
        )
    cell = cell_of(directions[0])
    if any(not isinstance(p, cell.Parameters) for p in directions):
        raise ValueError("both directions must be Parameters of the same cell")
    sizes = {tuple(p.checked(name).shape for name in p.NAMES) for p in directions}
    if len(sizes) != 1:
        raise ValueError("both directions must have the same sizes")
    return directions


def gate_names(gates) -> set[str]:
    """Every per-gate attribute name (``event_<gate>_weights``, ...) of ``gates``."""
    return {
        f"{side}_{gate}_{kind}"
        for gate in gates
        for side in ("event", "hidden")
        for kind in ("weights", "bias")
    }


def only_zero(parameters, held: set[str], fmt: str) -> None:
    """Refuse, by name, a non-zero attribute that ``fmt`` has no place for (not in ``held``)."""
    arrays = parameters.arrays()
    for name in parameters.NAMES:
        if name not in held and np.any(arrays[name] != 0):
            raise ValueError(f"{fmt} has no counterpart for parameters.{name}: it must be zero")


def blocks(array, gates, hidden_size, axis, name) -> dict[str, np.ndarray]:
    """``{gate: block}``: ``array`` split along ``axis`` into ``len(gates)`` blocks of
    ``hidden_size``, refused with the expected size when it does not split so."""
    expected = len(gates) * hidden_size
    if array.shape[axis] != expected:
        raise ValueError(
            f"{name} must have {expected} = {len(gates)} gates * hidden_size {hidden_size} "
            f"along axis {axis}, got shape {array.shape}"
        )
    return {
        gate: np.take(array, np.arange(k * hidden_size, (k + 1) * hidden_size), axis=axis)
        for k, gate in enumerate(gates)
    }


def expect_ndim(array, ndim, name, meaning) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{name} must have shape {meaning}, got {array.shape}")
