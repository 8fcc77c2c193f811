"""Working through big tensors in cache-sized pieces, with the same bits as whole-tensor operations.

An element-wise operation gives each element the same value whether it runs on a whole tensor or on a
slice, so a chain of them can run piece by piece: the temporaries of a 2**18-element piece stay in the
CPU cache instead of streaming every intermediate through memory, and a piece this small is merged
fastest by one thread. Whole-tensor reductions (norms, sums over all elements) are different: their
rounding depends on how the work is split, including across how many threads, so they stay whole and
run with torch's default thread count, as mergekit runs them. The thread count is process-wide, so
methods never change it; the executor runs element-wise merges with one thread, and merges that
reduce with the default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

PIECE = 1 << 18  # elements per piece: 1 MiB per float32 operand


def pieces(count: int, size: int = PIECE) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(count, start + size))


@contextmanager
def torch_threads(count: int | None):
    """Run torch with `count` intra-op threads (None: leave the setting alone)."""
    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
