"""The C caches of the CPU operators, kept between calls for reuse.

A training step's forward makes one C cache per call (state sequences, saved values, event
projections, scratch: tens of MiB at (64, 50, 128, 256)), which lives until its backward has
run. Allocated afresh each step, the pages of such a block are mapped and zero-filled by the
kernel on first touch every time: measured at a fifth of the step (``gru`` training step at
(64, 50, 128, 256) float32: 73.5 ms with fresh caches, 55.5 ms reused; ``lstm`` 89.5 / 70.5).
So the operators take their caches from this pool instead, as CUDA's caching allocator keeps
GPU memory between steps.

Each block is a NumPy array owned by the pool, lent out as ``torch.from_numpy`` of its first
``size`` elements: the tensor (and every view of it, such as the forward's ``saved``) holds a
reference to the array, so a block whose reference count is the pool's own is free again; no
bookkeeping of who returns what. A request takes the least recently used free block of its
dtype with at least ``size`` elements and at most :data:`SLACK` times as many (variable-length
batches reuse the block of a longer one), else allocates one. The pool keeps at most
:data:`BLOCKS` blocks, dropping the least recently used free ones first; :func:`release` drops
every free block now (memory returns to the system), e.g. after training.

Not :class:`lstm_sym.native.Workspace`, which the NumPy-side binding uses: its buffers come back
by an explicit ``give`` (a ``NativeCache`` owns its buffer and gives it back when released),
keyed by exact size. Here nothing of ours owns a cache once it is lent (autograd keeps the
``saved`` view for as long as it likes), so a block's return is read off its reference count,
and one block serves shorter sequences too.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import torch

#: Blocks kept at most (in use or free): a two-layer bidirectional model holds four at once.
BLOCKS = 16
#: A free block serves a request of at least 1 / SLACK of its size.
SLACK = 4
#: Byte alignment of a block's first element (a cache line, as torch's CPU allocator).
ALIGNMENT = 64

_lock = threading.Lock()
#: The blocks, least recently used first.
_blocks: list = []


class _Block:
    """One pooled block: ``memory`` (bytes, the NumPy array that owns them) and ``array``, its
    ALIGNMENT-aligned view of ``elements`` of ``dtype``. Every array lent out is a view whose
    ``base`` is ``memory`` (NumPy points views of views at the owner), held by the tensor made
    of it: the block is free when ``memory``'s reference count is back to its count at
    creation."""

    __slots__ = ("array", "dtype", "elements", "free_count", "memory")

    def __init__(self, elements: int, dtype: np.dtype):
        self.memory = np.empty(elements * dtype.itemsize + ALIGNMENT, dtype=np.uint8)
        skip = -self.memory.ctypes.data % ALIGNMENT
        self.array = self.memory[skip : skip + elements * dtype.itemsize].view(dtype)
        self.dtype, self.elements = dtype, elements
        self.free_count = sys.getrefcount(self.memory)

    def free(self) -> bool:
        return sys.getrefcount(self.memory) == self.free_count

    def lend(self, size: int) -> torch.Tensor:
        return torch.from_numpy(self.array[:size])


def take(size: int, dtype: np.dtype) -> torch.Tensor:
    """A CPU tensor of ``size`` uninitialized elements of ``dtype`` on a pooled block."""
    dtype = np.dtype(dtype)
    with _lock:
        for index, block in enumerate(_blocks):
            if block.dtype == dtype and size <= block.elements <= SLACK * size and block.free():
                _blocks.append(_blocks.pop(index))
                return block.lend(size)
        block = _Block(size, dtype)
        _blocks.append(block)
        if len(_blocks) > BLOCKS:
            _drop_free(len(_blocks) - BLOCKS)
        return block.lend(size)


def _drop_free(count: int) -> int:
    """Drop up to ``count`` free blocks, least recently used first; the bytes dropped."""
    dropped, kept = 0, []
    for block in _blocks:
        if count and block.free():
            count -= 1
            dropped += block.memory.nbytes
        else:
            kept.append(block)
    _blocks[:] = kept
    return dropped


def release() -> int:
    """Drop every block not in use (their memory returns to the system); the bytes dropped."""
    with _lock:
        return _drop_free(len(_blocks))


def pooled_bytes() -> int:
    """Bytes of every block the pool keeps, in use or free."""
    with _lock:
        return sum(block.memory.nbytes for block in _blocks)
