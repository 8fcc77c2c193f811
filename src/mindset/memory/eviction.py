"""Which entries leave a full store: LRFU (a decayed mix of recency and frequency) or FIFO.

LRFU (Lee et al., 1999) keeps for each entry a combined recency-frequency value
    CRF(t) = sum over its accesses a of  2 ** (-lam * (t - t_a))
on a logical clock that ticks once per store operation (an insert or a query call). An access adds 1
after decaying the old value, so only (CRF, time of last access) need storing. The victim has the
smallest CRF now. lam = 0 is pure LFU (counts only); lam = 1 makes one fresh access outweigh any
number of older ones (LRU). The default, LRFU_LAMBDA = 0.01, halves an access's weight every 100
operations: an entry retrieved often in the last few hundred operations beats one retrieved once,
and a burst of old hits fades. Insertion counts as the first access.
"""

from __future__ import annotations

import torch

LRFU_LAMBDA = 0.01


def decay(lam: float, now: int, last: torch.Tensor) -> torch.Tensor:
    return torch.pow(2.0, -lam * (now - last).to(torch.float64))


def lrfu_touch(crf: torch.Tensor, last: torch.Tensor, slots: torch.Tensor, now: int, lam: float) -> None:
    """Record one access per occurrence of a slot in `slots` (repeats in one call count at the same time)."""
    if slots.numel() == 0:
        return
    unique, counts = torch.unique(slots, return_counts=True)
    crf[unique] = counts.to(crf.dtype) + crf[unique] * decay(lam, now, last[unique])
    last[unique] = now


def victims(policy: str, n: int, occupied: torch.Tensor, crf: torch.Tensor, last: torch.Tensor, entry_ids: torch.Tensor, now: int, lam: float) -> torch.Tensor:
    """The `n` occupied slots to evict: lowest CRF now (lrfu) or oldest insertion (fifo: ids grow with insertion)."""
    if policy == "lrfu":
        priority = crf * decay(lam, now, last)
    elif policy == "fifo":
        priority = entry_ids.to(torch.float64)
    else:
        raise ValueError(policy)
    priority = priority.masked_fill(~occupied, float("inf"))
    return torch.topk(priority, n, largest=False).indices
