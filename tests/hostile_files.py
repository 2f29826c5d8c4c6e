"""Crafted ``.npz`` files for the loader tests: a size header that lies, zip bombs built
cheaply (a deflate segment of zeros repeated, never the zeros themselves on disk or in
memory), corrupt and truncated archives."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

MiB = 1 << 20


def npy_header(shape, dtype=np.float64) -> bytes:
    """The bytes of a .npy header (format 1.0) for ``shape`` and ``dtype``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)}
    )
    return out.getvalue()


def npy_bytes(array) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asarray(array), allow_pickle=False)
    return out.getvalue()


def zero_stream(header: bytes, zeros: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``header`` then ``zeros`` zero bytes (a multiple of 1 MiB),
    built from one compressed MiB repeated: cheap however large, and a CRC of 0."""
    assert zeros % MiB == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)]
    segment = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert segment == again  # a full flush resets the window: every MiB compresses alike
    parts += [segment] * (zeros // MiB)
    parts.append(compressor.flush())
    # The CRC is left 0 (computing the true one would read every byte): a loader must refuse
    # the entry from its sizes, before reading its data; one that reads it all fails only then.
    crc = 0
    return b"".join(parts), crc


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, bool, int | None]]) -> Path:
    """A zip archive of ``(name, data, crc, size, deflated, declared_size)`` members written
    byte by byte: ``data`` as stored (raw deflate when ``deflated``), ``declared_size`` the
    uncompressed size the headers claim (None: the true ``size``)."""
    body, central = bytearray(), bytearray()
    for name, data, crc, size, deflated, declared in members:
        declared = size if declared is None else declared
        method = 8 if deflated else 0
        encoded = name.encode()
        offset = len(body)
        body += struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(data),
            declared,
            len(encoded),
            0,
        )
        body += encoded + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(data),
            declared,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += encoded
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0
    )
    path.write_bytes(bytes(body + central + end))
    return path


def stored(name: str, array) -> tuple:
    data = npy_bytes(array)
    return (f"{name}.npy", data, zlib.crc32(data), len(data), False, None)


def entries_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def archive_of(path: Path, arrays: dict, bombs: dict | None = None) -> Path:
    """``arrays`` stored, and ``bombs``: ``{name: (shape, declared_size or None)}`` members of
    zeros of ``shape`` (float64), deflated, their size declared truly or as given."""
    members = [stored(name, value) for name, value in arrays.items()]
    for name, (shape, declared) in (bombs or {}).items():
        header = npy_header(shape)
        zeros = int(np.prod(shape)) * 8
        data, crc = zero_stream(header, zeros)
        members.append((f"{name}.npy", data, crc, len(header) + zeros, True, declared))
    return write_zip(path, members)
