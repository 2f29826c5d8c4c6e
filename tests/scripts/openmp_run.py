"""Run a cell's OpenMP build on the problems of tests/kernels/test_c_kernels.py's OpenMP test
and save every output and gradient, flattened, to an .npz file (one entry per dtype and event
size). The thread count comes from OMP_NUM_THREADS.

    python tests/scripts/openmp_run.py OUT.npz CELL BATCH
"""

from __future__ import annotations

import sys

import numpy as np

from lstm_sym import native
from tests.problems import random_problem, run_both


def main(out: str, name: str, batch: int) -> None:
    cell = native.load(name, openmp=True)
    results = {}
    for dtype in (np.float64, np.float32):
        for event_size in (300, 40):
            problem = random_problem(name, 7, batch, event_size, 70, seed=3, dtype=dtype)
            outputs, lasts, grads = run_both(cell, problem)
            arrays = [outputs, *lasts, *(getattr(grads, n) for n in grads.NAMES)]
            key = f"{np.dtype(dtype).name}_{event_size}"
            results[key] = np.concatenate([a.ravel() for a in arrays])
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
