"""Model Stock (https://arxiv.org/abs/2403.19522): move the base toward the fine-tunes' average by an
amount set by how aligned their task vectors are (the mean pairwise cosine), as mergekit 0.1.5 does."""

from __future__ import annotations

import torch

from mindset.merge.methods.registry import MergeInputs, Param, merge_method


@merge_method(
    "model_stock",
    params=(Param("filter_wise", bool, "shared", default=False),),
    base="required",
    min_inputs=3,
    reduces=lambda per_input, shared: True,
    reference="https://arxiv.org/abs/2403.19522",
)
def model_stock(inputs: MergeInputs, *, filter_wise: bool) -> torch.Tensor:
    """Interpolate base → average of the others with t = k·cos / (1 + (k-1)·cos)."""
    w0 = inputs.tensors[inputs.base]
    ws = [inputs.tensors[i] for i in inputs.others]
    shape = w0.shape
    if filter_wise:  # one angle per output row
        if w0.dim() == 1:
            w0, ws = w0.unsqueeze(0), [w.unsqueeze(0) for w in ws]
    else:  # one angle for the whole tensor
        w0, ws = w0.reshape(-1), [w.reshape(-1) for w in ws]
    offsets = [w - w0 for w in ws]
    cosines = []
    for i, a in enumerate(offsets):
        for b in offsets[i + 1 :]:
            norms = torch.norm(a, dim=-1) * torch.norm(b, dim=-1)
            cosines.append(((a * b).sum(dim=-1) / norms.clamp(min=1e-6)).clamp(-1, 1))
    cos = torch.stack(cosines).mean(dim=0).unsqueeze(-1)
    k = len(ws)
    denominator = 1 + (k - 1) * cos
    singular = denominator.abs() < 1e-6  # opposing updates: no finite estimate, keep the base
    t = torch.where(singular, torch.zeros_like(cos), (k * cos) / torch.where(singular, torch.ones_like(denominator), denominator))
    average = sum(ws) / k
    return (t * average + (1 - t) * w0).reshape(shape)
