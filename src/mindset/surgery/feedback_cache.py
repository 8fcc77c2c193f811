"""What a KV cache carries for layerwise feedback (mindset.surgery.feedback): pass 1's own KV cache and its h_j
at every cached position, kept in step with the cache's batch and length edits."""

from __future__ import annotations

import functools

import torch

STATE_ATTR = "mindset_feedback"  # the attribute a KV cache carries its FeedbackState in
SYNCED = ("reorder_cache", "crop", "batch_repeat_interleave", "batch_select_indices", "reset")


class FeedbackState:
    """What a KV cache carries for feedback: pass 1's own KV cache and pass 1's h_j at every cached position."""

    def __init__(self, config, sources: list[int]) -> None:
        from transformers import DynamicCache

        self.sources = list(sources)  # the j's, in the order of the history's layers
        self.kv = DynamicCache(config=config)
        self.history = DynamicCache()  # layer k: keys (B, 1, T, d) = h_{sources[k]}; values (B, 1, T, 0)

    def length(self) -> int:
        return self.history.get_seq_length()

    def last(self, j: int) -> torch.Tensor:  # (B, 1, d): h_j at the last cached position
        return self.history.layers[self.sources.index(j)].keys[:, 0, -1:]

    def push(self, states: dict[int, torch.Tensor]) -> None:
        for k, j in enumerate(self.sources):
            h = states[j][:, None]  # (B, 1, n, d)
            self.history.update(h, h[..., :0], k)

    def apply(self, name: str, *args, **kwargs) -> None:
        getattr(self.kv, name)(*args, **kwargs)
        getattr(self.history, name)(*args, **kwargs)


def _synced(method, name: str, state: FeedbackState, *args, **kwargs):
    """A cache method that also does the same to the feedback state the cache carries."""
    out = method(*args, **kwargs)
    state.apply(name, *args, **kwargs)
    return out


def bind_state(cache, state: FeedbackState) -> None:
    """Hang `state` on the cache object and keep it in step with the cache's batch and length edits."""
    setattr(cache, STATE_ATTR, state)
    for name in SYNCED:
        method = getattr(cache, name, None)
        if method is not None:
            setattr(cache, name, functools.partial(_synced, method, name, state))
