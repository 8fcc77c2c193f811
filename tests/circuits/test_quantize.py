"""Role-aware int8: critical blocks stay fp32 (exactly), the rest become int8 and the model shrinks."""

import pytest
import torch
from torch import nn

from mindset.circuits.prune import magnitude_scores
from mindset.circuits.quantize import block_names, critical_blocks, quantize_blocks, weight_bytes
from mindset.errors import MindsetError


@pytest.mark.parametrize("mode", ["weight-only", "dynamic"])
def test_critical_blocks_stay_fp32(tiny_llama, mode):
    fp32 = weight_bytes(tiny_llama.model)
    uniform = quantize_blocks(tiny_llama, mode=mode)
    role = quantize_blocks(tiny_llama, ["L0.mlp"], mode=mode)
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


def test_weight_only_int8_is_the_rounded_weight():
    from mindset.circuits.quantize import Int8Linear

    linear = nn.Linear(32, 8)
    q = Int8Linear(linear)
    x = torch.randn(3, 32)
    scale = linear.weight.abs().amax(1) / 127
    expected = x @ (torch.round(linear.weight / scale[:, None]) * scale[:, None]).T + linear.bias
    torch.testing.assert_close(q(x), expected.detach())
    assert (q(x) - linear(x)).abs().max() < 0.02
    assert q.weight_int8.dtype == torch.int8
