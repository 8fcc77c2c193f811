"""Choosing the next token: greedy at temperature 0, else temperature / top-k / top-p sampling."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(256, ge=1, description="stop after this many new tokens")
    temperature: float = Field(0.0, ge=0.0, description="0 is greedy and deterministic")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling: keep the smallest set of tokens with this much probability")
    top_k: int = Field(0, ge=0, description="keep only the k most likely tokens (0: all)")
    seed: int = Field(0, description="seed of the sampler, so sampled text can be reproduced")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def choose_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token id from the last position's logits, shape (V,)."""
    if params.greedy:  # no division by the temperature: argmax is the limit
        return int(logits.argmax())
    # In float64, shifted so the best score is 0 before dividing: a vanishing temperature then sends
    # the others to -inf (greedy in the limit) instead of overflowing everything and the softmax to NaN.
    scores = logits.double()
    scores = (scores - scores.max()) / params.temperature
    if params.top_k and params.top_k < scores.numel():
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # drop a token when the tokens before it already hold top_p of the mass; the first always stays
        drop = sorted_probs.cumsum(0) - sorted_probs >= params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        pick = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[pick])
    return int(torch.multinomial(probs, 1, generator=generator))
