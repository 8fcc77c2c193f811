"""Role-aware int8: critical blocks stay fp32 (exactly), the rest become int8 and the model shrinks."""

import pytest
import torch
from torch import nn

from mindset.circuits.prune import magnitude_scores
from mindset.circuits.quantize import block_names, critical_blocks, quantize_blocks, weight_bytes
from mindset.errors import MindsetError


def test_critical_blocks_stay_fp32(tiny_llama):
    fp32 = weight_bytes(tiny_llama.model)
    uniform = quantize_blocks(tiny_llama)
    role = quantize_blocks(tiny_llama, ["L0.mlp"])
    assert weight_bytes(uniform.model) < weight_bytes(role.model) < fp32
    kept = role.model.model.layers[0].mlp
    assert all(type(m) is nn.Linear for m in (kept.gate_proj, kept.up_proj, kept.down_proj))
    torch.testing.assert_close(kept.down_proj.weight, tiny_llama.model.model.layers[0].mlp.down_proj.weight)
    assert type(role.model.model.layers[1].mlp.down_proj) is not nn.Linear
    assert type(tiny_llama.model.model.layers[1].mlp.down_proj) is nn.Linear  # the original is untouched
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        a, b = tiny_llama.model(input_ids=ids).logits, uniform.model(input_ids=ids).logits
    assert 0 < (a - b).abs().max() < 0.5


def test_choosing_critical_blocks(tiny_llama):
    scores = magnitude_scores(tiny_llama.model)
    chosen = critical_blocks(scores, 0.5)
    assert len(chosen) == 2 and set(chosen) <= set(block_names(tiny_llama.model))
    assert critical_blocks(scores, 0.0) == []
    with pytest.raises(MindsetError, match="not a block"):
        quantize_blocks(tiny_llama, ["L5.mlp"])
