"""The operators' pooled C caches (lstm_sym/torch/cache_pool.py): a block is lent again only
when nothing holds a view of it, stale contents never reach a result, the pool stays bounded."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module

torch = require_module("torch")
cache_pool = pytest.importorskip("lstm_sym.torch.cache_pool")
ops = pytest.importorskip("lstm_sym.torch.ops")


@pytest.fixture(autouse=True)
def empty_pool():
    cache_pool.release()
    yield
    cache_pool.release()


def _block_of(tensor):
    return next(b for b in cache_pool._blocks if b.array.ctypes.data == tensor.data_ptr())


def test_a_block_is_lent_again_only_when_no_view_of_it_lives():
    first = cache_pool.take(1000, np.float64)
    view = first[:10]
    del first
    second = cache_pool.take(1000, np.float64)  # the first block is still held by the view
    assert second.data_ptr() != view.data_ptr()
    del view
    third = cache_pool.take(900, np.float64)  # free again: reused for a request that fits
    assert _block_of(third) is not None and len(cache_pool._blocks) == 2
    assert third.data_ptr() % cache_pool.ALIGNMENT == 0


def test_a_block_serves_neither_another_dtype_nor_a_much_smaller_or_larger_request():
    block = cache_pool.take(1000, np.float64)
    pointer = block.data_ptr()
    del block
    for size, dtype in ((1000, np.float32), (1001, np.float64), (100, np.float64)):
        assert cache_pool.take(size, dtype).data_ptr() != pointer


def test_release_drops_free_blocks_and_keeps_those_in_use():
    kept = cache_pool.take(1000, np.float64)
    cache_pool.take(2000, np.float64)  # dropped at once: free
    assert cache_pool.release() >= 2000 * 8
    assert cache_pool.pooled_bytes() >= 1000 * 8 and kept.numel() == 1000
    del kept
    assert cache_pool.release() >= 1000 * 8 and cache_pool.pooled_bytes() == 0


def test_the_pool_keeps_at_most_its_number_of_blocks():
    held = [cache_pool.take(100 + k, np.float32) for k in range(cache_pool.BLOCKS)]
    for k in range(5):
        cache_pool.take(10_000 + k, np.float32)  # free at once: the oldest free ones go
    assert len(cache_pool._blocks) <= cache_pool.BLOCKS
    assert all(_block_of(t) is not None for t in held)  # blocks in use are never dropped


def test_training_steps_on_reused_poisoned_caches_give_the_same_numbers():
    # Steps whose caches come from a pool filled with NaN between them: forward writes what
    # backward reads, the scratch is written before it is read, so every number is the same.
    cell = ops.get("peephole_lstm")
    generator = torch.Generator().manual_seed(3)
    sizes = {"steps": 5, "batch": 3, "event_size": 4, "hidden_size": 6}
    events = torch.randn(5, 3, 4, generator=generator, dtype=torch.float64)
    states = [torch.randn(3, 6, generator=generator, dtype=torch.float64) for _ in cell.states]
    weights = [
        (
            0.3 * torch.randn(cell.shape(w, sizes), generator=generator, dtype=torch.float64)
        ).requires_grad_()
        for w in cell.weights
    ]
    lengths = torch.tensor([5, 2, 4])

    def step():
        outputs, finals = cell.apply(events, states, weights, lengths)
        (outputs.sum() + sum(f.square().sum() for f in finals)).backward()
        results = [outputs.detach(), *(f.detach() for f in finals)]
        results += [w.grad.clone() for w in weights]
        for w in weights:
            w.grad = None
        return results

    first = step()
    assert cache_pool.pooled_bytes() > 0
    for block in cache_pool._blocks:
        assert block.free()
        block.array.fill(np.nan)
    count = len(cache_pool._blocks)
    second = step()
    assert len(cache_pool._blocks) == count  # the poisoned blocks served the second step
    for got, want in zip(second, first, strict=True):
        assert torch.equal(got, want)
