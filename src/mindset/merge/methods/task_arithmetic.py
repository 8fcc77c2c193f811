"""Task arithmetic and its sparsified, sign-elected variants: TIES, DARE-TIES, DARE-linear.

Every input's difference from the base (its "task vector") is optionally sparsified (TIES keeps the
largest magnitudes, DARE keeps a random subset), weighted, optionally restricted to the inputs that
agree with the majority sign of each element (TIES' election), summed, optionally divided by the
weights that contributed, scaled by `lambda` and added back to the base. Numerics follow mergekit
0.1.5: the arithmetic runs in the inputs' dtype and reductions run over the stacked deltas.
"""

from __future__ import annotations

import torch

from mindset.merge.methods.registry import MergeInputs, MergeMethod, Param, register


def rescaled(tensor: torch.Tensor, mask: torch.Tensor, rescale_l1: bool, eps: float = 1e-7) -> torch.Tensor:
    """tensor * mask, scaled back to the tensor's L1 norm when asked (DARE's rescaling, as mergekit does it)."""
    masked = tensor * mask
    if not rescale_l1:
        return masked
    before = tensor.abs().sum()
    after = masked.abs().sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def top_magnitude_mask(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """A 0/1 mask (in the tensor's dtype) of the k largest |values|, the set mergekit's argsort selects.

    When the k-th largest magnitude is not tied across the cut, the top-k set is unique and a k-th
    value search finds it in linear time; otherwise which tied elements are kept depends on the sort
    algorithm, so this falls back to the same unstable argsort mergekit uses, for identical masks.
    """
    flat = tensor.abs().reshape(-1)
    if flat.device.type == "cpu":
        flat = flat.float()
    count = flat.numel()
    if k < count and not torch.isnan(flat).any():
        threshold = torch.kthvalue(flat, count - k + 1).values
        above = flat > threshold
        at = flat == threshold
        if int(above.sum()) + int(at.sum()) == k:
            return (above | at).to(tensor.dtype).reshape(tensor.shape)
    mask = torch.zeros(count, dtype=tensor.dtype, device=tensor.device)
    mask[torch.argsort(flat, descending=True)[:k]] = 1
    return mask.reshape(tensor.shape)


def magnitude_sparsify(tensor: torch.Tensor, density: float, rescale_l1: bool) -> torch.Tensor:
    """Keep the `density` fraction of largest-magnitude entries (at least one), zero the rest."""
    if density >= 1:
        return tensor
    if density <= 0 or tensor.numel() == 0:
        return torch.zeros_like(tensor)
    k = max(1, int(density * tensor.numel()))
    return rescaled(tensor, top_magnitude_mask(tensor, k), rescale_l1)


def random_sparsify(tensor: torch.Tensor, density: float, rescale_l1: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Keep each entry with probability `density` (a Bernoulli mask drawn from `generator`)."""
    if density >= 1:
        return tensor
    # CPU Bernoulli has no float16 kernel: mergekit draws in float32 there (bfloat16 stays bfloat16)
    work = tensor.dtype if tensor.device.type != "cpu" or tensor.dtype == torch.bfloat16 else torch.float32
    mask = torch.bernoulli(torch.full_like(tensor, density, dtype=work), generator=generator)
    return rescaled(tensor.to(work), mask, rescale_l1).to(tensor.dtype)


def majority_sign_mask(deltas: torch.Tensor, mask_dtype: torch.dtype) -> torch.Tensor:
    """TIES' election: True where an input's delta has the sign of the summed deltas (ties count as +)."""
    sign = deltas.sign().to(mask_dtype)
    majority = (deltas.sum(dim=0) >= 0).to(mask_dtype) * 2 - 1
    return sign == majority


def task_arithmetic_family(sparsify: str | None, elect: bool, normalize: bool, rescale: bool):
    """The merge function for one member of the family, given its sparsifier and sign election."""

    def merge(inputs: MergeInputs, *, normalize: bool, rescale: bool, int8_mask: bool, **shared) -> torch.Tensor:
        base = inputs.tensors[inputs.base]
        others = inputs.others
        if not others:
            return base
        deltas = base.new_empty((len(others), *base.shape))
        for row, index in enumerate(others):
            delta = inputs.tensors[index] - base
            density = inputs.params[index]["density"]
            if sparsify == "magnitude":
                delta = magnitude_sparsify(delta, density, rescale)
            elif sparsify == "random":
                delta = random_sparsify(delta, density, rescale, inputs.generator)
            deltas[row] = delta
            del delta
        weights = torch.tensor(inputs.values("weight", others), dtype=deltas.dtype)
        while weights.dim() < deltas.dim():
            weights.unsqueeze_(-1)
        deltas.mul_(weights)
        if elect:
            mask = majority_sign_mask(deltas, torch.int8 if int8_mask else base.dtype)
            mixed = (deltas * mask).sum(dim=0)
            divisor = (weights * mask).sum(dim=0)
            divisor[divisor == 0] = 1
        else:
            mixed = deltas.sum(dim=0)
            divisor = weights.sum(dim=0)
            divisor[divisor.abs() < 1e-8] = 1
        if normalize:
            mixed /= divisor
        if shared["lambda"] != 1:
            mixed *= shared["lambda"]
        return (base + mixed).to(base.dtype)

    params = (
        Param("weight", float, "non_base"),
        Param("density", float, "non_base", default=1.0, low=0.0, high=1.0),
        Param("normalize", bool, "shared", default=normalize),
        Param("rescale", bool, "shared", default=rescale),
        Param("lambda", float, "shared", default=1.0),
        Param("int8_mask", bool, "shared", default=False),
    )
    return merge, params


FAMILY = {
    # name: (sparsifier, sign election, normalize default, rescale default, reference)
    "task_arithmetic": (None, False, False, False, "https://arxiv.org/abs/2212.04089"),
    "ties": ("magnitude", True, True, False, "https://arxiv.org/abs/2306.01708"),
    "dare_ties": ("random", True, False, True, "https://arxiv.org/abs/2311.03099"),
    "dare_linear": ("random", False, False, True, "https://arxiv.org/abs/2311.03099"),
}

for _name, (_sparsify, _elect, _normalize, _rescale, _reference) in FAMILY.items():
    _function, _params = task_arithmetic_family(_sparsify, _elect, _normalize, _rescale)
    register(
        MergeMethod(
            _name,
            _function,
            _params,
            base="required",
            random=_sparsify == "random",
            description="base + weighted task vectors" + {"magnitude": ", top-magnitude", "random": ", random (DARE)", None: ""}[_sparsify]
            + (" sparsified" if _sparsify else "") + (", majority sign elected" if _elect else ""),
            reference=_reference,
        )
    )
