"""TIES' magnitude selection: the k largest |values| of a tensor, the very set mergekit's argsort keeps.

mergekit sorts every magnitude (`argsort(|x|, descending=True)[:k]`), O(n log n) for each task vector.
When the k-th largest magnitude is not tied across the cut, the top-k set is unique: it is everything
at or above that value, found here without sorting. A strided sample brackets the k-th value, one
pass in cache-sized pieces counts what lies above the bracket and gathers what lies inside it, and a
k-th value search in that small band finishes. When the cut falls inside a run of equal magnitudes,
which of them survive depends on the sort algorithm, so the same argsort as mergekit's decides.
"""

from __future__ import annotations

import torch

from mindset.merge.methods.pieces import pieces

SAMPLE = 1 << 16  # sample size that brackets the k-th value
BRACKET = 512  # sample ranks on each side of the estimate


def magnitudes(values: torch.Tensor) -> torch.Tensor:
    """|values| as mergekit ranks them (in float32 on the CPU)."""
    result = values.abs()
    return result.float() if result.device.type == "cpu" else result


def argsort_mask(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """mergekit's mask: 1 at the first k positions of a descending argsort of the magnitudes."""
    mask = torch.zeros(tensor.numel(), dtype=tensor.dtype, device=tensor.device)
    mask[torch.argsort(magnitudes(tensor.reshape(-1)), descending=True)[:k]] = 1
    return mask.reshape(tensor.shape)


def kth_largest_magnitude(flat: torch.Tensor, k: int) -> torch.Tensor | None:
    """The k-th largest |value| of a 1-D tensor, or None when it cannot decide the set (NaN, k ≥ n)."""
    count = flat.numel()
    if k >= count:
        return None
    if count <= 16 * SAMPLE:
        values = magnitudes(flat)
        return None if torch.isnan(values.max()) else torch.kthvalue(values, count - k + 1).values
    sample = magnitudes(flat[:: count // SAMPLE]).sort().values
    if torch.isnan(sample[-1]):
        return None
    position = int(sample.numel() * (1 - k / count))
    low = sample[max(0, position - BRACKET)]
    high = sample[min(sample.numel() - 1, position + BRACKET)]
    above = below = 0
    band = []
    for piece in pieces(count):
        values = magnitudes(flat[piece])
        above += int((values > high).sum())
        below += int((values < low).sum())
        band.append(values[(values >= low) & (values <= high)])
    inside = torch.cat(band)
    if above + below + inside.numel() != count:  # NaNs compare false everywhere
        return None
    need = k - above
    if 0 < need <= inside.numel():
        return torch.kthvalue(inside, inside.numel() - need + 1).values
    return torch.kthvalue(magnitudes(flat), count - k + 1).values  # the sample missed: search everything


def top_magnitude_mask(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """A 0/1 mask (in the tensor's dtype) of the k largest magnitudes."""
    flat = tensor.reshape(-1)
    threshold = kth_largest_magnitude(flat, k)
    if threshold is not None:
        keep = magnitudes(flat) >= threshold
        if int(keep.sum()) == k:
            return keep.to(tensor.dtype).reshape(tensor.shape)
    return argsort_mask(tensor, k)


def keep_top_magnitudes(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """tensor × top_magnitude_mask(tensor, k), computed piece by piece without a full-size mask."""
    flat = tensor.reshape(-1)
    threshold = kth_largest_magnitude(flat, k)
    if threshold is not None:
        result = torch.empty_like(flat)
        kept = 0
        for piece in pieces(flat.numel()):
            keep = magnitudes(flat[piece]) >= threshold
            kept += int(keep.sum())
            torch.mul(flat[piece], keep.to(tensor.dtype), out=result[piece])
        if kept == k:
            return result.reshape(tensor.shape)
    return tensor * argsort_mask(tensor, k)
