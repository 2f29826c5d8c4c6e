"""Exercise the LSTM's binding built with address and undefined-behaviour sanitizers: forward
and backward over small batches (row-by-row products, narrow ones through the transpose) and
packed ones, batched and unbatched, float64 and float32, then one bad call. Prints
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


def main() -> None:
    cell = native.load("lstm", extra_flags=SANITIZE)
    for sizes in SIZES:
        for dtype in (np.float64, np.float32):
            p, events, states, d_outputs, d_lasts = random_problem(lstm, *sizes, dtype=dtype)
            _, _, cache = cell.forward(p, events, h0=states["h"], c0=states["c"])
            cell.backward(cache, d_outputs, d_h_last=d_lasts["h"], d_c_last=d_lasts["c"])
            _, _, cache = cell.forward(p, events[:, 0])
            cell.backward(cache, d_outputs[:, 0])
    try:
        cell.forward(p, events[..., :1])
    except ValueError:
        pass
    print("sanitized run ok")


if __name__ == "__main__":
    main()
