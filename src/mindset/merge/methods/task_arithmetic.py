"""Task arithmetic and its sparsified, sign-elected variants: TIES, DARE-TIES, DARE-linear.

Every input's difference from the base (its "task vector") is optionally sparsified (TIES keeps the
largest magnitudes, DARE keeps a random subset), weighted, optionally restricted to the inputs that
agree with the majority sign of each element (TIES' election), summed, optionally divided by the
weights that contributed, scaled by `lambda` and added back to the base. Numerics follow mergekit
0.1.5: the arithmetic runs in the inputs' dtype and reductions run over the stacked deltas.
"""

from __future__ import annotations

import torch

from mindset.merge.methods.pieces import pieces
from mindset.merge.methods.registry import MergeInputs, MergeMethod, Param, register
from mindset.merge.methods.topk import keep_top_magnitudes, top_magnitude_mask


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


def magnitude_sparsify(tensor: torch.Tensor, density: float, rescale_l1: bool) -> torch.Tensor:
    """Keep the `density` fraction of largest-magnitude entries (at least one), zero the rest."""
    if density >= 1:
        return tensor
    if density <= 0 or tensor.numel() == 0:
        return torch.zeros_like(tensor)
    k = max(1, int(density * tensor.numel()))
    if rescale_l1:
        return rescaled(tensor, top_magnitude_mask(tensor, k), rescale_l1)
    return keep_top_magnitudes(tensor, k)


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
        # sparsifying needs each whole task vector (top-k, random masks, norms); the rest is element-wise
        deltas = []
        for index in others:
            delta = inputs.tensors[index] - base
            density = inputs.params[index]["density"]
            if sparsify == "magnitude":
                delta = magnitude_sparsify(delta, density, rescale)
            elif sparsify == "random":
                delta = random_sparsify(delta, density, rescale, inputs.generator)
            deltas.append(delta.to(base.dtype).reshape(-1))
        weights = torch.tensor(inputs.values("weight", others), dtype=base.dtype).unsqueeze(-1)
        usable = inputs.out is not None and inputs.out.dtype == base.dtype and inputs.out.is_contiguous()
        result = inputs.out.reshape(-1) if usable else torch.empty(base.numel(), dtype=base.dtype)
        flat_base = base.reshape(-1)
        for p in pieces(flat_base.numel()):
            result[p] = combine(flat_base[p], torch.stack([d[p] for d in deltas]), weights, elect, normalize, shared["lambda"], int8_mask)
        return result.reshape(base.shape)

    params = (
        Param("weight", float, "non_base"),
        Param("density", float, "non_base", default=1.0, low=0.0, high=1.0),
        Param("normalize", bool, "shared", default=normalize),
        Param("rescale", bool, "shared", default=rescale),
        Param("lambda", float, "shared", default=1.0),
        Param("int8_mask", bool, "shared", default=False),
    )
    return merge, params


def combine(base: torch.Tensor, deltas: torch.Tensor, weights: torch.Tensor, elect: bool, normalize: bool, scale: float, int8_mask: bool) -> torch.Tensor:
    """base + scale · (weighted task vectors, optionally sign-elected and normalised): deltas is (inputs, elements)."""
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
    if scale != 1:
        mixed *= scale
    return (base + mixed).to(base.dtype)


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
            # without sparsification (no sparsifier, or every density 1) only element-wise arithmetic is left
            elementwise=lambda per_input, shared, s=_sparsify: s is None or all(p.get("density", 1.0) >= 1 for p in per_input),
            # rescaling a sparsified task vector divides two whole-tensor sums
            reduces=lambda per_input, shared, s=_sparsify: s is not None and shared["rescale"] and any(p.get("density", 1.0) < 1 for p in per_input),
            description="base + weighted task vectors" + {"magnitude": ", top-magnitude", "random": ", random (DARE)", None: ""}[_sparsify]
            + (" sparsified" if _sparsify else "") + (", majority sign elected" if _elect else ""),
            reference=_reference,
        )
    )
