"""Top-k retrieval as an autograd function with straight-through selection.

    out[n] = sum_j w[n, j] * values[s[n, j]],   w[n] = softmax_j(scale * query[n] . keys[s[n, j]])

The slots s were chosen by a store's top-k search, a discrete step with no gradient. Backward treats
that choice as fixed and differentiates the soft part as if the k selected entries were all there is:
gradients reach the query, the retrieved values and the retrieved keys (scattered back into the slot
tables, so a trainable table learns only where it was read). While the selection does not change this
is the exact gradient (finite differences agree); with k = all entries it is full soft attention's.
Slots of -1 (a store with fewer than k entries) take no weight; a row with none at all reads zeros.
"""

from __future__ import annotations

import torch


class TopKRetrieval(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, keys, values, slots, scale: float):
        valid = slots >= 0
        safe = slots.clamp(min=0)
        logits = scale * torch.einsum("nd,nkd->nk", query, keys[safe])  # (N, k)
        logits = logits.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # rows without any entry: all zero
        out = torch.einsum("nk,nkv->nv", weights.to(values.dtype), values[safe].flatten(2)).reshape(query.shape[0], *values.shape[1:])
        ctx.save_for_backward(query, keys, values, slots, weights)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, keys, values, slots, weights = ctx.saved_tensors
        scale = ctx.scale
        safe = slots.clamp(min=0)
        n, k = slots.shape
        grad_out = grad_out.reshape(n, -1)
        flat_values = values.flatten(1)
        grad_weights = torch.einsum("nv,nkv->nk", grad_out, flat_values[safe])
        # softmax backward: dL/dlogit_j = w_j (dL/dw_j - sum_i w_i dL/dw_i); zero where w is zero (no entry)
        grad_logits = weights * (grad_weights - (weights * grad_weights).sum(-1, keepdim=True))
        grad_query = grad_keys = grad_values = None
        if ctx.needs_input_grad[0]:
            grad_query = scale * torch.einsum("nk,nkd->nd", grad_logits, keys[safe])
        if ctx.needs_input_grad[1]:
            contrib = scale * grad_logits[..., None] * query[:, None, :]  # (N, k, d)
            grad_keys = torch.zeros_like(keys).index_add_(0, safe.flatten(), contrib.reshape(n * k, -1).to(keys.dtype))
        if ctx.needs_input_grad[2]:
            contrib = weights[..., None] * grad_out[:, None, :]  # (N, k, v)
            grad_values = torch.zeros_like(flat_values).index_add_(0, safe.flatten(), contrib.reshape(n * k, -1).to(values.dtype))
            grad_values = grad_values.reshape(values.shape)
        return grad_query, grad_keys, grad_values, None, None


def retrieve(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, slots: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Softmax-weighted read of the selected slots; see the module docstring for its gradients."""
    return TopKRetrieval.apply(query, keys, values, slots, float(scale))
