"""Load a cell's C with ``native.load`` and run one forward and backward against its NumPy
module; prints the library's path and "native run ok". Run in a process of its own by tests
that damage the build cache first (a crash is a signal, not a failed test).

    python tests/scripts/native_run.py [CELL]
"""

from __future__ import annotations

import sys

import numpy as np

from lstm_sym import native
from tests.problems import random_problem


def main(name: str) -> None:
    cell = native.load(name)
    problem = random_problem(name, 3, 2, 4, 5)
    parameters, events = problem.parameters, problem.events
    outputs, _, cache = cell.forward(parameters, events, **problem.initial)
    expected, _, reference = cell.module.forward(parameters, events, **problem.initial)
    assert np.allclose(outputs, expected, rtol=1e-12, atol=1e-12)
    grads = cell.backward(cache, problem.d_outputs, **problem.lasts)
    wanted = cell.module.backward(reference, problem.d_outputs, **problem.lasts)
    for attribute in wanted.NAMES:
        assert np.allclose(getattr(grads, attribute), getattr(wanted, attribute), 1e-12, 1e-12)
    print(cell.library_path)
    print("native run ok")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lstm")
