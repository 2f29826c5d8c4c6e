"""Load a (hostile) file in a process of its own and report, as one JSON line, what happened:
the exception's type and message, the peak resident memory and the time taken.

    python tests/scripts/load_hostile_file.py parameters|recurrent|dense PATH [ADDRESS_SPACE_MB]

``ADDRESS_SPACE_MB`` caps the process's address space (``RLIMIT_AS``), so that a loader that
does allocate what the file claims fails with MemoryError instead of taking the machine down.
"""

from __future__ import annotations

import json
import resource
import sys
import time

if len(sys.argv) > 3:
    limit = int(sys.argv[3]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

from generated import lstm
from lstm_sym.models import Dense, Recurrent

LOADERS = {"parameters": lstm.Parameters.load, "recurrent": Recurrent.load, "dense": Dense.load}

kind, path = sys.argv[1], sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    LOADERS[kind](path)
    error, message = None, ""
except Exception as caught:  # report whatever it is
    error, message = type(caught).__name__, str(caught)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(
    json.dumps(
        {
            "error": error,
            "message": message,
            "seconds": seconds,
            "rss_before_kb": before,
            "rss_peak_kb": peak,
        }
    )
)
