"""Pass the built-in LSTM's C backward the cache of another kernel named ``lstm``: a user's cell
spec named ``lstm`` (examples/cells/mgu.py renamed), generated into OUT and loaded with
``native.load("lstm", directory=OUT)``. Before issue 15 the C backward ran over the foreign
buffer (``free(): invalid pointer``, abort); now backward refuses it. Prints "refused: <message>"
and exits 0, or exits 1 if backward returned; a crash is a signal (tests/safety).

    python tests/scripts/foreign_cache.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lstm_sym import native
from lstm_sym.cli import main as cli
from tests.support import ROOT


def main(out: Path) -> int:
    spec = out / "user_lstm.py"
    text = (ROOT / "examples" / "cells" / "mgu.py").read_text()
    spec.write_text(text.replace('name="mgu"', 'name="lstm"'))
    assert cli(["generate", "--spec", str(spec), "--out", str(out / "kernels")]) in (0, None)
    user = native.load("lstm", directory=out / "kernels")
    builtin = native.load("lstm")
    rng = np.random.default_rng(0)
    parameters = user.Parameters(3, 4)
    for name in parameters.NAMES:
        setattr(parameters, name, rng.normal(size=parameters.checked(name).shape))
    outputs, _, cache = user.forward(parameters, rng.normal(size=(5, 2, 3)))
    try:
        builtin.backward(cache, np.ones_like(outputs))
    except TypeError as error:
        print(f"refused: {error}")
        return 0
    print("backward ran over a foreign cache")
    return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
