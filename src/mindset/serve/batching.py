"""Continuous batching: every active generation advances by one token in ONE forward pass per step.

The rows' KV caches live in one left-padded `DynamicCache`: layer tensors (B, heads, T, head_dim) where
row b's real tokens are the last `lengths[b]` of the T positions, and an attention mask (B, T) that is 0
on the padding. Each decode step feeds one token per row with its own position id (`lengths[b]`, not T:
a row's positions are those it would have alone), so rotary/learned position embeddings, and therefore
the numbers, are those of batch-1 decoding up to the summation order of the batched matrix products.

A request joins after its prompt is prefilled: alone (batch 1, exactly as `chat.stream_steps` does: the
first token is batch-1's bit for bit), or together with the others that arrived between the same steps
in ONE left-padded forward (`prefill_together`: per-row position ids and a padding mask, as the decode
steps use, so the numbers are batch-1's up to summation order). Only each row's real positions are
copied into the batch (padding columns stay zero), left-padded to the batch's width and stacked on.
Rows that finish, fail or are cancelled leave at the end of a step: the batch dimension is compacted and
the padding columns no remaining row needs are cut, so T stays the longest active row's length.

Only models whose cache is plain `DynamicLayer`s batch this way (sliding-window or linear-attention
layers would need their own padding rules); `batchable` says which, and the engine falls back to
round-robin for the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.cache_utils import DynamicLayer


def _plain_cache(model):
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def batchable(model) -> bool:
    """True when every layer of the model's KV cache is a plain, growing DynamicLayer."""
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


@torch.inference_mode()
def prefill_together(model, prompts: Sequence[Sequence[int]]):
    """(cache, logits (k, V)) of k prompts in one forward: left-padded to the longest, the padding masked
    out and each row's position ids counting from its first real token (what it would see alone). Row r's
    real positions are the last len(prompts[r]) of the cache."""
    width = max(len(p) for p in prompts)
    device = model_device(model)
    input_ids = torch.zeros(len(prompts), width, dtype=torch.long, device=device)  # (k, T); the pad id is masked out
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(list(ids), device=device)
        mask[row, width - len(ids) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # padding at 0: it is masked, any valid position will do
    cache = _plain_cache(model)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1)
    return cache, out.logits[:, -1]


def prefill_groups(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices of prompts (by length) grouped for `prefill_together`: similar lengths together, so that a
    group's padded area (count x longest) is at most twice its real tokens and at most `max_tokens`
    (attention memory grows with it). A group of one is prefilled alone."""
    groups: list[list[int]] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):  # ascending: the newest member is the longest
        n = lengths[i]
        if groups and (len(groups[-1]) + 1) * n <= min(2 * (real + n), max_tokens):
            groups[-1].append(i)
            real += n
        else:
            groups.append([i])
            real = n
    return groups


SPARE = 64  # positions a slab holds beyond its rows' longest; it doubles when full


class SlabLayer(DynamicLayer):
    """One layer's batched keys/values: views of the first `used` positions of preallocated slabs (B, heads,
    capacity, head_dim). A decode step writes its one new position in place, where DynamicLayer's update
    would copy the whole cache (torch.cat) in every layer at every step; the slabs double when full."""

    def __init__(self, key_slab: torch.Tensor, value_slab: torch.Tensor, used: int):
        super().__init__()
        self.is_initialized = True
        self.key_slab, self.value_slab, self.used = key_slab, value_slab, used
        self.dtype, self.device = key_slab.dtype, key_slab.device
        self._view()

    def _view(self) -> None:
        self.keys = self.key_slab[..., : self.used, :]
        self.values = self.value_slab[..., : self.used, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n = key_states.shape[-2]
        if self.used + n > self.key_slab.shape[-2]:
            self.key_slab, self.value_slab = (_slab(t, max(2 * t.shape[-2], self.used + n)) for t in (self.keys, self.values))
        self.key_slab[..., self.used : self.used + n, :] = key_states
        self.value_slab[..., self.used : self.used + n, :] = value_states
        self.used += n
        self._view()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.used


def _slab(x: torch.Tensor, capacity: int) -> torch.Tensor:
    """x (B, heads, t, d) copied into the first t positions of a zeroed (B, heads, capacity, d) tensor."""
    slab = x.new_zeros(*x.shape[:-2], capacity, x.shape[-1])
    slab[..., : x.shape[-2], :] = x
    return slab


class KVBatch:
    """The active rows' caches as one left-padded cache (a DynamicCache of SlabLayers) plus the mask that
    hides the padding."""

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

    def join(self, caches: Sequence, lengths: Sequence[int], rows: Sequence[int] | None = None) -> None:
        """Append rows: caches from `prefill` (or `prefill_together`, then `rows` says which row of each
        cache) whose last `lengths` positions are real tokens; one new slab per layer for all."""
        if not caches:
            return
        width, old = max([self.width, *lengths]), len(self)
        merged = _plain_cache(self.model)
        for i in range(len(merged.layers)):
            slabs = []
            for name in ("keys", "values"):
                first = getattr(caches[0].layers[i], name)
                slab = first.new_zeros(old + len(caches), first.shape[1], width + SPARE, first.shape[-1])
                if self.cache is not None:
                    slab[:old, :, width - self.width : width] = getattr(self.cache.layers[i], name)
                for row, (cache, length, source) in enumerate(zip(caches, lengths, rows or [0] * len(caches))):
                    slab[old + row, :, width - length : width] = getattr(cache.layers[i], name)[source, :, -length:]
                slabs.append(slab)
            merged.layers[i] = SlabLayer(*slabs, used=width)
        mask = torch.zeros(old + len(caches), width, dtype=torch.long, device=self.device)
        if self.mask is not None:
            mask[:old, width - self.width :] = self.mask
        for row, length in enumerate(lengths):
            mask[old + row, width - length :] = 1
        self.cache, self.mask = merged, mask
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
        for i, layer in enumerate(self.cache.layers):
            keys, values = (t.index_select(0, index)[..., cut:, :] for t in (layer.keys, layer.values))
            self.cache.layers[i] = SlabLayer(_slab(keys, keys.shape[-2] + SPARE), _slab(values, values.shape[-2] + SPARE), keys.shape[-2])
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
