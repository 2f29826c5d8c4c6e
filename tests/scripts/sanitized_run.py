"""Exercise the binding built with address and undefined-behaviour sanitizers: the LSTM's
forward and backward over small batches (row-by-row products, narrow ones through the
transpose) and packed ones, batched and unbatched, float64 and float32; then, for the LSTM and
the cells whose hidden products take sourced states (gru_cho, lstm_fgr: each W_hidden block
packed once per call at its own place), training, inference (cache=False on prepared
parameters) and steps below and at LSTM_SYM_PACK_BATCH rows; then one bad call. Prints
"sanitized run ok" at the end; run with libasan preloaded (tests/native/test_c_binding.py).

    python tests/scripts/sanitized_run.py
"""

from __future__ import annotations

import numpy as np

from generated import lstm
from lstm_sym import native
from tests.problems import random_problem
from tests.support import SANITIZE

SIZES = [
    (1, 1, 1, 1),
    (3, 2, 5, 7),
    (2, 4, 17, 33),
    (70, 1, 3, 5),
    (2, 9, 3, 5),
    (2, 50, 300, 70),
    (3, 100, 40, 70),
]


#: Cells whose every entry point runs at a small and a packed batch (T, B, X, H).
CELLS = ("lstm", "gru_cho", "lstm_fgr")
CELL_SIZES = [(3, 2, 5, 7), (4, 9, 6, 11), (2, 33, 20, 40)]


def exercise(name: str) -> None:
    """Training, inference and a step of cell ``name`` at CELL_SIZES, in both precisions."""
    cell = native.load(name, extra_flags=SANITIZE)
    for sizes in CELL_SIZES:
        for dtype in (np.float64, np.float32):
            problem = random_problem(name, *sizes, dtype=dtype)
            _, _, cache = cell.forward(problem.parameters, problem.events, **problem.initial)
            cell.backward(cache, problem.d_outputs, **problem.lasts)
            prepared = cell.prepare(problem.parameters)
            for _ in range(2):  # the checked path, then the fast one
                cell.forward(prepared, problem.events, *problem.states.values(), cache=False)
                cell.forward(prepared, problem.events, cache=False)
            state = None
            for event in problem.events:  # the whole batch, one step at a time
                _, state = cell.step(prepared, event, state)


def main() -> None:
    cell = native.load("lstm", extra_flags=SANITIZE)
    for sizes in SIZES:
        for dtype in (np.float64, np.float32):
            p, events, states, d_outputs, d_lasts = random_problem(lstm, *sizes, dtype=dtype)
            _, _, cache = cell.forward(p, events, h0=states["h"], c0=states["c"])
            cell.backward(cache, d_outputs, d_h_last=d_lasts["h"], d_c_last=d_lasts["c"])
            _, _, cache = cell.forward(p, events[:, 0])
            cell.backward(cache, d_outputs[:, 0])
    for name in CELLS:
        exercise(name)
    try:
        cell.forward(p, events[..., :1])
    except ValueError:
        pass
    print("sanitized run ok")


if __name__ == "__main__":
    main()
