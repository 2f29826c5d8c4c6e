"""Render artifacts and write them atomically, or check that the files on disk are fresh."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .artifacts import Artifact
from .pins import check_pins


@dataclass(frozen=True)
class Report:
    written: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def render_all(artifacts: list[Artifact]) -> dict[str, bytes]:
    """Render everything in memory first: an error anywhere means nothing gets written."""
    check_pins()
    return {artifact.path: artifact.render() for artifact in artifacts}


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(root: Path, artifacts: list[Artifact], check: bool = False) -> Report:
    """Write (or with ``check``, only compare) every artifact under ``root``."""
    rendered = render_all(artifacts)
    written, unchanged, stale, missing = [], [], [], []
    for relative, data in rendered.items():
        path = root / relative
        current = path.read_bytes() if path.exists() else None
        if current == data:
            unchanged.append(relative)
        elif check:
            (missing if current is None else stale).append(relative)
        else:
            write_atomically(path, data)
            written.append(relative)
    return Report(tuple(written), tuple(unchanged), tuple(stale), tuple(missing))
