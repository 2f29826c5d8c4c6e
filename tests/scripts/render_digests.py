"""Print the SHA-256 of generated files as rendered in this process, as JSON {path: digest}.

    python tests/scripts/render_digests.py [CELL ...] [--suffix SUFFIX ...]

Every generated file of the named cells (all built-in cells by default), optionally only those
whose path ends with one of the suffixes. The tests run it under several PYTHONHASHSEEDs: the
bytes must not depend on the hash seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json

from lstm_sym import artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*", help="cell names (default: every built-in cell)")
    parser.add_argument("--suffix", nargs="+", default=[""], help="keep paths ending so")
    options = parser.parse_args()
    digests = {
        artifact.path: hashlib.sha256(artifact.render()).hexdigest()
        for artifact in artifacts.all_artifacts(options.cells or None)
        if artifact.path.endswith(tuple(options.suffix))
    }
    print(json.dumps(digests, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
