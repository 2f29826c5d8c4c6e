"""Start saving a file and be killed (SIGKILL) half-way through the write, as an out-of-memory
kill or ``kill -9`` would: no exception handler runs.

    python tests/scripts/killed_save.py parameters|recurrent PATH
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

from generated import lstm
from lstm_sym.models import Recurrent


def killed_half_way(file, **arrays):
    file.write(b"PK half an archive")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)


kind, path = sys.argv[1], sys.argv[2]
np.savez = killed_half_way  # the generated module and lstm_sym.models._io both call np.savez
if kind == "parameters":
    lstm.Parameters(2, 3).save(path)
else:
    Recurrent(2, 3, rng=0).save(path)
