"""Passthrough, linear and SLERP: mergekit 0.1.5's arithmetic, operation for operation.

Bit-identical results need the same floating-point operations in the same order, so each function
follows mergekit's numerics: linear accumulates in float32 (float64 for float64 inputs) from a zero
tensor and divides by the float32 sum of the weights; SLERP measures norms and the dot product over
the whole flattened tensor in chunks of 2**20 elements and blends in float32.
"""

from __future__ import annotations

import torch

from mindset.merge.methods.pieces import pieces
from mindset.merge.methods.registry import MergeInputs, Param, merge_method

SLERP_CHUNK = 1024 * 1024  # elements per chunk of the norm and dot-product sums (mergekit's, for identical rounding)


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """Linear and SLERP blend in float32, or float64 when the inputs are float64."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


@merge_method(
    "passthrough",
    params=(Param("scale", float, "input", default=None, optional=True),),
    max_inputs=1,
    elementwise=lambda per_input, shared: True,
    reference="mergekit passthrough: copy one input (optionally scaled)",
)
def passthrough(inputs: MergeInputs) -> torch.Tensor:
    """Copy the single input, multiplied by `scale` when given."""
    (scale,) = inputs.values("scale")
    tensor = inputs.tensors[0]
    return tensor if scale is None else tensor * scale


@merge_method(
    "linear",
    params=(Param("weight", float, "input"), Param("normalize", bool, "shared", default=True)),
    elementwise=lambda per_input, shared: True,
    reference="https://arxiv.org/abs/2203.05482",
)
def linear(inputs: MergeInputs, *, normalize: bool) -> torch.Tensor:
    """Weighted sum of the inputs, divided by the sum of the weights when `normalize`."""
    first = inputs.tensors[0]
    if not first.is_floating_point():
        raise TypeError(f"{inputs.name}: linear merging needs floating-point tensors")
    dtype = compute_dtype(first)
    weights = torch.tensor([inputs.values("weight")], dtype=dtype)  # (1, inputs), as mergekit packs it
    ones = (1,) * first.ndim
    result = torch.zeros_like(first, dtype=dtype)
    for tensor, weight in zip(inputs.tensors, weights.unbind(1)):
        result.addcmul_(tensor, weight.reshape(ones))
    if normalize:
        result.div_(weights.sum(dim=1).reshape(ones))
    return result.to(first.dtype)


@merge_method(
    "slerp",
    params=(Param("t", float, "shared"),),
    base="required",
    min_inputs=2,
    max_inputs=2,
    reduces=lambda per_input, shared: True,
    reference="https://en.wikipedia.org/wiki/Slerp",
)
def slerp_method(inputs: MergeInputs, *, t: float) -> torch.Tensor:
    """Spherical interpolation from the base (t=0) to the other input (t=1)."""
    base = inputs.base
    if not inputs.tensors[0].is_floating_point():
        raise TypeError(f"{inputs.name}: SLERP needs floating-point tensors")
    return slerp(t, inputs.tensors[base], inputs.tensors[1 - base], out=inputs.out)


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995, eps: float = 1e-8, out: torch.Tensor | None = None) -> torch.Tensor:
    """SLERP of two tensors seen as flat vectors; nearly collinear pairs fall back to linear blending.

    The norms and the dot product are summed over chunks of SLERP_CHUNK elements, as mergekit sums them
    (same chunks, same rounding); the blend itself is element-wise and runs in cache-sized pieces.
    """
    dtype = compute_dtype(v0)
    a = v0.reshape(1, -1)  # mergekit's layout: (outputs=1, elements)
    b = v1.reshape(1, -1)
    t_col = torch.tensor([t], dtype=dtype).reshape(-1, 1)
    count = a.shape[1]
    if not count:
        return ((1 - t_col) * a + t_col * b).reshape(v0.shape).to(v0.dtype)
    chunks = list(pieces(count, SLERP_CHUNK))

    def norm(x: torch.Tensor) -> torch.Tensor:  # the norm of the chunks' norms
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x[:, c].to(dtype), dim=1, keepdim=True) for c in chunks]), dim=0)

    norm_a, norm_b = norm(a), norm(b)
    norm_a = torch.where(norm_a > eps, norm_a, 1)
    norm_b = torch.where(norm_b > eps, norm_b, 1)
    scratch = torch.empty((3, min(SLERP_CHUNK, count)), dtype=dtype)  # reused: no fresh pages per chunk
    dots = []
    for c in chunks:
        width = c.stop - c.start
        unit_a = torch.div(a[:, c].to(dtype), norm_a, out=scratch[0:1, :width])
        unit_b = torch.div(b[:, c].to(dtype), norm_b, out=scratch[1:2, :width])
        dots.append(torch.mul(unit_a, unit_b, out=scratch[2:3, :width]).sum(dim=1, keepdim=True))
    dot = torch.stack(dots).sum(dim=0).clamp(-1, 1)
    linear_blend = dot.abs() > dot_threshold
    theta = torch.acos(torch.where(linear_blend, 0, dot))
    sin_theta = torch.sin(theta)
    coef_a = torch.where(linear_blend, 1 - t_col, torch.sin((1 - t_col) * theta) / sin_theta)
    coef_b = torch.where(linear_blend, t_col, torch.sin(t_col * theta) / sin_theta)
    usable = out is not None and out.dtype == v0.dtype and out.is_contiguous() and out.numel() == count
    result = out.reshape(1, -1) if usable else torch.empty_like(a)
    for p in pieces(count):
        width = p.stop - p.start
        blend = torch.add(torch.mul(coef_a, a[:, p].to(dtype), out=scratch[0:1, :width]), torch.mul(coef_b, b[:, p].to(dtype), out=scratch[1:2, :width]), out=scratch[2:3, :width])
        result[:, p].copy_(blend)
    return result.reshape(v0.shape)
