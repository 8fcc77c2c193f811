"""Continuous batching: every active generation advances by one token in ONE forward pass per step.

The rows' KV caches live in one left-padded `DynamicCache`: layer tensors (B, heads, T, head_dim) where
row b's real tokens are the last `lengths[b]` of the T positions, and an attention mask (B, T) that is 0
on the padding. Each decode step feeds one token per row with its own position id (`lengths[b]`, not T:
a row's positions are those it would have alone), so rotary/learned position embeddings, and therefore
the numbers, are those of batch-1 decoding up to the summation order of the batched matrix products.

A request joins after its prompt is prefilled on its own (batch 1, exactly as `chat.stream_steps` does:
the first token is batch-1's bit for bit); its cache is left-padded to the batch's width and stacked on.
Rows that finish, fail or are cancelled leave at the end of a step: the batch dimension is compacted and
the padding columns no remaining row needs are cut, so T stays the longest active row's length.

Only models whose cache is plain `DynamicLayer`s batch this way (sliding-window or linear-attention
layers would need their own padding rules); `batchable` says which, and the engine falls back to
round-robin for the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _plain_cache(model):
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def batchable(model) -> bool:
    """True when every layer of the model's KV cache is a plain, growing DynamicLayer."""
    from transformers.cache_utils import DynamicLayer

    try:
        cache = _plain_cache(model)
    except Exception:  # a config DynamicCache cannot read: not a model this batches
        return False
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def prefill(model, prompt_ids: Sequence[int]):
    """(cache, logits (V,)) of one prompt at batch 1: the same call `chat.stream_steps` starts with."""
    cache = _plain_cache(model)
    input_ids = torch.tensor([list(prompt_ids)], device=model_device(model))
    logits = model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
    return cache, logits


def _pad_left(x: torch.Tensor, width: int) -> torch.Tensor:
    """x (..., t, d) with zeros in front along the sequence axis, to (..., width, d)."""
    missing = width - x.shape[-2]
    if missing == 0:
        return x
    return torch.cat([x.new_zeros(*x.shape[:-2], missing, x.shape[-1]), x], dim=-2)


class KVBatch:
    """The active rows' caches as one left-padded DynamicCache plus the mask that hides the padding."""

    def __init__(self, model):
        self.model = model
        self.device = model_device(model)
        self.cache = None
        self.mask: torch.Tensor | None = None  # (B, T) long, 1 where a row has a real token
        self.lengths: list[int] = []  # each row's real token count (its next position id)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return 0 if self.mask is None else self.mask.shape[1]

    def join(self, caches: Sequence, lengths: Sequence[int]) -> None:
        """Append rows: batch-1 caches (from `prefill`) holding `lengths` tokens each. One copy per layer for all."""
        if not caches:
            return
        width = max([self.width, *lengths])
        parts = ([self.cache] if self.cache is not None else []) + list(caches)
        merged = _plain_cache(self.model)
        for i, layer in enumerate(merged.layers):
            sources = [part.layers[i] for part in parts]
            layer.lazy_initialization(sources[0].keys, sources[0].values)
            layer.keys = torch.cat([_pad_left(s.keys, width) for s in sources], dim=0)
            layer.values = torch.cat([_pad_left(s.values, width) for s in sources], dim=0)
        new_mask = torch.zeros(len(lengths), width, dtype=torch.long, device=self.device)
        for row, length in enumerate(lengths):
            new_mask[row, width - length :] = 1
        old_mask = [] if self.mask is None else [torch.cat([self.mask.new_zeros(len(self), width - self.width), self.mask], dim=1)]
        self.cache, self.mask = merged, torch.cat([*old_mask, new_mask], dim=0)
        self.lengths += list(lengths)

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only `rows` (indices, in order); then cut the padding columns no remaining row needs."""
        if len(rows) == len(self):
            return
        if not rows:
            self.cache, self.mask, self.lengths = None, None, []
            return
        index = torch.tensor(list(rows), device=self.device)
        self.lengths = [self.lengths[r] for r in rows]
        cut = self.width - max(self.lengths)  # leading columns that are padding in every remaining row
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[..., cut:, :]
            layer.values = layer.values.index_select(0, index)[..., cut:, :]
        self.mask = self.mask.index_select(0, index)[:, cut:]

    @torch.inference_mode()
    def step(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed one token per row; returns the next-token logits (B, V). On an exception the cache may be
        half-updated: the caller must drop the whole batch."""
        input_ids = torch.tensor(list(tokens), device=self.device).unsqueeze(1)
        positions = torch.tensor(self.lengths, device=self.device).unsqueeze(1)
        mask = torch.cat([self.mask, self.mask.new_ones(len(self), 1)], dim=1)
        out = self.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=self.cache, use_cache=True, logits_to_keep=1
        )
        self.mask = mask
        self.lengths = [n + 1 for n in self.lengths]
        return out.logits[:, -1]
