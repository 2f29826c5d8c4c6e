"""Work buffers reused between calls: a :class:`Workspace` owned by a cell or by the caller.

A forward needs one buffer for the parameters in the C layout, its inputs and the C cache
(what backward reads). A fresh buffer of a few hundred KiB costs more than a tiny C forward
(the kernel maps it page by page on first touch), and a fresh 70 MiB cache a tenth of a large
forward+backward (measured at (B, T, X, H) = (64, 32, 256, 512), float32). So a forward takes
its buffer from a workspace, and the :class:`~lstm_sym.native.NativeCache` it returns owns the
buffer (no view of it is ever handed out) until it is released, explicitly
(``cache.release()``) or when the cache is garbage-collected; the buffer then goes back to the
workspace for the next forward of the same size.
"""

from __future__ import annotations

import threading

import numpy as np


class Workspace:
    """Free work buffers by (dtype, size): at most ``per_size`` of each, each at most half of
    ``limit`` bytes, ``limit`` bytes in all (1 GiB by default).

    Every cell loaded has its own (``cell.workspace``); pass one to ``native.load(...,
    workspace=...)`` to share it between cells, or set ``cell.workspace``. Thread-safe."""

    def __init__(self, limit: int = 1 << 30, per_size: int = 2):
        self.limit, self.per_size = limit, per_size
        self._free: dict = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held in free buffers."""
        return self._bytes

    def __len__(self) -> int:
        """The number of free buffers held."""
        return sum(map(len, self._free.values()))

    def __repr__(self):
        return (
            f"Workspace({len(self)} free buffers, {self._bytes} bytes, limit={self.limit}, "
            f"per_size={self.per_size})"
        )

    def take(self, dtype: np.dtype, size: int) -> np.ndarray:
        """A free buffer of ``size`` elements of ``dtype`` (uninitialised), else a new one."""
        with self._lock:
            stack = self._free.get((dtype, size))
            if stack:
                buffer = stack.pop()
                self._bytes -= buffer.nbytes
                return buffer
        return np.empty(size, dtype=dtype)

    def give(self, buffer: np.ndarray) -> bool:
        """Keep ``buffer`` for a later :meth:`take`, if the limits allow; True if kept.

        The caller gives up ``buffer``: nothing may read or write it afterwards."""
        if buffer.nbytes > self.limit // 2:
            return False
        with self._lock:
            stack = self._free.setdefault((buffer.dtype, buffer.size), [])
            if len(stack) < self.per_size and self._bytes + buffer.nbytes <= self.limit:
                stack.append(buffer)
                self._bytes += buffer.nbytes
                return True
        return False

    def clear(self) -> None:
        """Free every buffer held."""
        with self._lock:
            self._free.clear()
            self._bytes = 0
