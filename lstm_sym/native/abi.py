"""A cell's C ABI as data: ``generated/<cell>.abi.json``, read without SymPy or the spec.

``lstm-sym generate`` writes the file beside ``<cell>.c``/``<cell>.h`` from
``lstm_sym/codegen/c_api.py``, the one source of the ABI (the C emitter prints the same entry
points from it). It holds the entry points (symbols, arguments in order), the shape of every
array argument as products of size names (``4*hidden_size``), and where the Python
``Parameters``/``Gradients`` attributes sit in the C arrays.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

#: The ABI data version this binding reads (``c_api.ABI_VERSION`` when it was written).
VERSION = 2


@dataclass(frozen=True)
class Arg:
    """One argument of an entry point: ``kind`` is ``size``, ``in``, ``out``, ``inout`` or
    ``lengths`` (``const int64_t *``: each batch row's number of steps, NULL: all)."""

    name: str
    kind: str
    optional: bool


@dataclass(frozen=True)
class Function:
    name: str  # e.g. "forward"
    symbols: dict  # {"float64": "lstm_forward_f64", "float32": ...}
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class State:
    short: str  # "h"
    name: str  # "hidden"
    size: str  # "hidden_size" or "projection_size"


@dataclass(frozen=True)
class View:
    """A ``Gradients`` attribute: a view of C output ``array`` at ``offset`` with ``shape``."""

    attribute: str
    array: str
    offset: str
    shape: tuple[str, ...]


@dataclass(frozen=True)
class Abi:
    cell: str
    sizes: tuple[str, ...]
    gates: tuple[str, ...]
    states: tuple[State, ...]
    output_state: str
    cache_size: tuple[str, tuple[str, ...]]  # (symbol, size arguments)
    #: (symbol, size arguments) of <cell>_saved_size: the cache's first elements, which forward
    #: writes in full and backward only reads
    saved_size: tuple[str, tuple[str, ...]]
    error_string: str
    functions: dict  # name -> Function
    shapes: dict  # array name -> tuple of dimensions
    parameters: tuple[tuple[str, tuple[str, ...]], ...]  # (C array, attributes packed into it)
    gradients: tuple[View, ...]
    #: (symbol, size arguments) of ``<cell>_infer_work_size``; None in ABI data without it
    infer_work_size: tuple[str, tuple[str, ...]] | None = None
    #: (symbol, size arguments) of ``<cell>_step_work_size``; None in ABI data without it
    step_work_size: tuple[str, tuple[str, ...]] | None = None
    #: ``{per-unit parameter array: value}`` a PyTorch module initializes it to (the spec's
    #: ``module_init``; empty for most cells)
    module_init: dict = field(default_factory=dict)
    #: ``(argument of step_forward, form)`` per entry of ``step_forward_bound``'s ``bound``
    #: array (form ``size``, ``address`` or ``offset``); empty in ABI data without it
    step_bound: tuple[tuple[str, str], ...] = ()

    @property
    def projected(self) -> bool:
        """Whether a state has ``projection_size`` entries (the cell takes that size too)."""
        return "projection_size" in self.sizes

    def shape(self, name: str, sizes: dict) -> tuple[int, ...]:
        """The shape of array ``name`` for ``sizes`` (by size name)."""
        return tuple(dimension(d, sizes) for d in self.shapes[name])


def dimension(text: str, sizes: dict) -> int:
    """The value of one dimension: a product of integers and size names (``4*hidden_size``)."""
    return math.prod(int(f) if f.isdigit() else sizes[f] for f in text.split("*"))


def from_data(data: dict) -> Abi:
    """The :class:`Abi` of decoded ABI data; ValueError if its version is not this binding's."""
    if data.get("abi_version") != VERSION:
        raise ValueError(
            f"ABI data of cell {data.get('cell')!r} has abi_version "
            f"{data.get('abi_version')!r}, this binding reads {VERSION}: regenerate with "
            "`lstm-sym generate`"
        )
    return Abi(
        cell=data["cell"],
        sizes=tuple(data["sizes"]),
        gates=tuple(data["gates"]),
        states=tuple(State(**s) for s in data["states"]),
        output_state=data["output_state"],
        cache_size=(data["cache_size"]["symbol"], tuple(data["cache_size"]["args"])),
        saved_size=(data["saved_size"]["symbol"], tuple(data["saved_size"]["args"])),
        error_string=data["error_string"],
        functions={
            f["name"]: Function(f["name"], dict(f["symbols"]), tuple(Arg(**a) for a in f["args"]))
            for f in data["functions"]
        },
        shapes={name: tuple(shape) for name, shape in data["shapes"].items()},
        parameters=tuple((p["array"], tuple(p["attributes"])) for p in data["parameters"]),
        gradients=tuple(
            View(g["attribute"], g["array"], g["offset"], tuple(g["shape"]))
            for g in data["gradients"]
        ),
        infer_work_size=_symbol(data, "infer_work_size"),
        step_work_size=_symbol(data, "step_work_size"),
        module_init=dict(data.get("module_init", {})),
        step_bound=tuple((name, form) for name, form in data.get("step_bound", ())),
    )


def _symbol(data: dict, field: str):
    """``(symbol, size arguments)`` of a size function named in the ABI data, or None."""
    entry = data.get(field)
    return None if entry is None else (entry["symbol"], tuple(entry["args"]))


def path(directory: Path, name: str) -> Path:
    """Where cell ``name``'s ABI data lives in a directory of generated files."""
    return Path(directory) / f"{name}.abi.json"


def read(directory: Path, name: str) -> Abi:
    """Cell ``name``'s ABI from ``directory/<name>.abi.json``."""
    return from_data(json.loads(path(directory, name).read_text()))


def cells(directory: Path) -> list[str]:
    """The cells with ABI data in ``directory``, sorted."""
    return sorted(p.name.removesuffix(".abi.json") for p in Path(directory).glob("*.abi.json"))
