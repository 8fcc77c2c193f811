"""Edits are pure: a write to either model never shows in the other, and tied weights stay tied in the copy."""

from __future__ import annotations

import pytest
import torch

from mindset import surgery
from mindset.surgery.layers import working_copy

IDS = torch.tensor([[5, 17, 99, 3, 42, 8]])


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


EDITS = {  # edits that replace projections, and one that moves whole layers
    "widen_ffn": lambda m: surgery.widen_ffn(m, None, add=4),
    "narrow_ffn": lambda m: surgery.narrow_ffn(m, [1], width=100),
    "add_heads": lambda m: surgery.add_heads(m, [0], 4 if "llama" in m.name else 1),
    "remove_heads": lambda m: surgery.remove_heads(m, {1: [0, 1]}),
    "insert_layers": lambda m: surgery.insert_layers(m, after=0),
}


@pytest.mark.parametrize("op", EDITS)
def test_writes_to_the_copy_never_reach_the_original(tiny, op):
    before = params(tiny.model)
    edited = EDITS[op](tiny)
    with torch.no_grad():
        for p in edited.model.parameters():
            p.add_(1.0)
    after = tiny.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_writes_to_the_original_never_reach_the_copy(tiny_llama):
    edited = surgery.widen_ffn(tiny_llama, [0], add=4)
    kept = params(edited.model)
    with torch.no_grad():
        for p in tiny_llama.model.parameters():
            p.mul_(0.0)
    assert all(torch.equal(kept[k], v) for k, v in edited.model.state_dict().items())


def test_tied_weights_stay_tied_in_the_copy(tiny_llama):
    copied = working_copy(tiny_llama.model, False)
    assert copied.lm_head.weight is copied.model.embed_tokens.weight
    assert copied.lm_head.weight is not tiny_llama.model.lm_head.weight
