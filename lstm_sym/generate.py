"""Render artifacts and write them atomically, or check that the files on disk are fresh."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .artifacts import Artifact
from .pins import check_pins
from .spec import SpecError

#: What ``write_atomically``'s temporary name adds to a file's name: ``.<name>.`` + mkstemp's
#: 8 random characters + ``.tmp``.
TEMPORARY_EXTRA = len("..") + 8 + len(".tmp")


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


def _name_max(directory: Path) -> int:
    """The longest file name the file system of ``directory`` (or its nearest existing
    ancestor) takes, ``NAME_MAX``; 255 where it cannot tell."""
    for folder in (directory, *directory.parents):
        if folder.is_dir():
            try:
                return os.pathconf(folder, "PC_NAME_MAX")
            except (OSError, ValueError, AttributeError):
                return 255
    return 255


def check_targets(root: Path, relatives) -> None:
    """Before anything is written: every file (and its temporary twin) has a name the file
    system takes, and no folder on the way is a file."""
    for relative in relatives:
        path = root / relative
        for folder in (path.parent, *path.parent.parents):
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {folder} is a file, not a folder")
        limit = _name_max(path.parent)
        for part in Path(relative).parts:
            if len(os.fsencode(part)) + TEMPORARY_EXTRA > limit:
                raise SpecError(
                    f"cannot write {path}: the file name {part!r} ({len(os.fsencode(part))} "
                    f"bytes, {TEMPORARY_EXTRA} more while written) is longer than the file "
                    f"system's limit of {limit} bytes: shorten the cell's name"
                )


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
    if not check:
        check_targets(Path(root), rendered)
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
