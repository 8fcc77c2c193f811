"""Fused int8 projections (q/k/v, gate/up in one kernel call) change no number, only the number of calls."""

import copy

import pytest
import torch

from mindset.models import load
from mindset.models.int8 import Int8WeightLinear, fusion_groups, quantize_int8


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    real = torch._weight_int8pack_mm

    def counting(*args):
        calls.append(tuple(args[1].shape))
        return real(*args)

    monkeypatch.setattr(torch, "_weight_int8pack_mm", counting)
    return calls


def pair(loaded):
    """The same float model quantized without and with fusion."""
    return quantize_int8(copy.deepcopy(loaded.model), fuse=False), quantize_int8(copy.deepcopy(loaded.model))


def test_groups_are_qkv_and_gate_up_per_block(tiny_llama, tiny_gpt2):
    groups = fusion_groups(tiny_llama.model)
    assert len(groups) == 2 * len(tiny_llama.model.model.layers)
    assert groups[0] == [f"model.layers.0.self_attn.{p}_proj" for p in "qkv"] and groups[1] == ["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    assert fusion_groups(tiny_gpt2.model) == []  # GPT-2's c_attn is fused already, its MLP is not gated


@pytest.mark.parametrize("shape", [(2, 40), (1, 1)])
def test_fused_logits_equal_unfused_bitwise_with_fewer_kernel_calls(tiny_llama, kernel_calls, shape):
    plain, fused = pair(tiny_llama)
    ids = torch.randint(0, 250, shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a = plain(input_ids=ids).logits
        plain_calls = len(kernel_calls)
        b = fused(input_ids=ids).logits
    layers = len(tiny_llama.model.model.layers)
    assert plain_calls == 7 * layers + 1 and len(kernel_calls) - plain_calls == 4 * layers + 1
    assert torch.equal(a, b)


def test_fused_greedy_decode_equals_unfused(tiny_llama):
    from mindset.chat.generation import encode_prompt, generate_from_ids
    from mindset.chat.sampling import SamplingParams

    plain, fused = pair(tiny_llama)
    ids = encode_prompt(tiny_llama.tokenizer, "Once upon a time")
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    runs = [generate_from_ids(type(tiny_llama)(m, tiny_llama.tokenizer, tiny_llama.source), ids, params).tokens for m in (plain, fused)]
    assert runs[0] == runs[1] and len(runs[0]) > 1


def test_members_are_views_of_one_matrix_and_stay_so_through_deepcopy(tiny_llama):
    _, fused = pair(tiny_llama)
    for model in (fused, copy.deepcopy(fused)):
        attn = model.model.layers[0].self_attn
        group, rows = attn.k_proj.__dict__["fused"]
        assert attn.q_proj.__dict__["fused"][0] is group and group.weight_int8.shape[0] == sum(m.out_features for m in (attn.q_proj, attn.k_proj, attn.v_proj))
        assert attn.k_proj.weight_int8.data_ptr() == group.weight_int8[rows].data_ptr()
        assert "fused" not in dict(model.named_modules())  # not a submodule: nothing saved or counted twice
    assert sum(b.numel() for b in fused.buffers()) == sum(b.numel() for b in quantize_int8(copy.deepcopy(tiny_llama.model), fuse=False).buffers())


def test_a_member_called_alone_or_on_a_new_input_gives_its_own_output(tiny_llama):
    """The shared product is reused only for the very input it was computed from."""
    plain, fused = pair(tiny_llama)
    p, f = plain.model.layers[1].self_attn, fused.model.layers[1].self_attn
    x, y = torch.randn(1, 3, p.q_proj.in_features), torch.randn(1, 3, p.q_proj.in_features)
    with torch.inference_mode():
        assert torch.equal(f.k_proj(x), p.k_proj(x))  # k first: computes for all, keeps the product
        assert torch.equal(f.q_proj(y), p.q_proj(y))  # another input: recomputed, not k's leftover
        assert torch.equal(f.v_proj(y), p.v_proj(y)) and torch.equal(f.k_proj(y), p.k_proj(y))
        assert f.k_proj.__dict__["fused"][0]._output is None  # every member read y's product: released
        assert torch.equal(f.v_proj(x), p.v_proj(x))
    assert isinstance(f.v_proj, Int8WeightLinear)


def test_int8_load_fuses(tiny_llama):
    q = load("tiny-llama", dtype="int8")
    layer = q.model.model.layers[0]
    assert all("fused" in m.__dict__ for m in (layer.self_attn.q_proj, layer.mlp.up_proj))
    assert "fused" not in layer.self_attn.o_proj.__dict__ and "fused" not in layer.mlp.down_proj.__dict__
