"""The C runtime every generated cell calls: hand-written C files shipped in this package.

``lstm-sym generate`` copies them byte for byte into ``generated/`` beside the cells, so that
``cc cell.c lstm_sym_runtime.c -lm`` builds a cell from ``generated/`` alone;
:func:`amalgamation` joins the runtime and one cell into a single C file (as SQLite ships).
"""

from __future__ import annotations

import re
from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
#: The files, in the order an amalgamation takes them (headers first).
HEADERS = ("lstm_sym_tuning.h", "lstm_sym_runtime.h")
SOURCE = "lstm_sym_runtime.c"
BODY = "lstm_sym_runtime_real.inc"  # included by SOURCE once per precision
FILES = (*HEADERS, SOURCE, BODY)

_LOCAL_INCLUDE = re.compile(r'^#include "([^"]+)"\n', re.MULTILINE)


def read(name: str) -> str:
    """The text of one runtime file."""
    return (DIRECTORY / name).read_text()


def amalgamation(cell: str, header: str, source: str, command: str) -> str:
    """One C99 file with the runtime and the cell ``cell`` (its ``header`` and ``source`` text):
    every ``#include "..."`` of these files replaced by the file's text, each file once (the
    runtime body once per precision, where the runtime source includes it)."""
    texts = {name: read(name) for name in FILES}
    texts[f"{cell}.h"] = header
    texts[f"{cell}.c"] = source
    done: set[str] = set()

    def expand(name: str) -> str:
        if name in done and name != BODY:
            return ""
        done.add(name)
        text = _LOCAL_INCLUDE.sub(lambda m: expand(m.group(1)), texts[name])
        return f"/* ---- {name} ---- */\n{text}"

    banner = (
        f"/* Amalgamation of the lstm_sym cell {cell} and the lstm_sym C runtime -- DO NOT EDIT.\n"
        f" * Written by: {command}\n"
        " * One C99 file: cc -c this.c (link with -lm); the declarations of the cell's entry\n"
        f" * points are in {cell}.h, included below (its text also ships on its own).\n"
        " */\n"
    )
    return banner + expand(f"{cell}.h") + expand(SOURCE) + expand(f"{cell}.c")


def amalgamated_header(cell: str, header: str) -> str:
    """The cell's header with the runtime's tuning header (its only include) written into it."""
    return _LOCAL_INCLUDE.sub(lambda m: read(m.group(1)), header)
