"""Head gates on the real SmolLM2-135M (30 layers, 9 heads in 3 kv groups): gates at c = 0 leave the logits
exactly as they were, gates away from 0 save, load and fold, and grow/prune keep the kv grouping."""

from __future__ import annotations

import copy
import time

import pytest
import torch

from mindset import surgery
from mindset.models import load, save
from mindset.models.anatomy import blocks
from mindset.models.custom import custom_modules, set_module
from mindset.surgery.gates import gated_blocks

pytestmark = pytest.mark.slow


def test_gates_on_smollm2(smollm2, tmp_path):
    ids = smollm2.tokenizer("The capital of France is Paris, and the capital of Italy is", return_tensors="pt").input_ids
    with torch.no_grad():
        before = smollm2.model(ids).logits
    start = time.perf_counter()
    gated = surgery.head_gates(smollm2, "0-29")
    print(f"head_gates: {time.perf_counter() - start:.2f} s")
    with torch.no_grad():
        assert torch.equal(gated.model(ids).logits, before)  # g = 2·sigmoid(0) = 1 exactly
        for i, b in enumerate(gated_blocks(gated.model)):
            b.attention.o.gate_logits.copy_(torch.linspace(-4, 4, 9).roll(i))
        expected = gated.model(ids).logits
    assert (expected - before).abs().max() > 1e-2
    save(gated, tmp_path / "gated")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "gated", device="cpu", dtype="float32").model(ids).logits, expected)
    with torch.no_grad():
        edited = gated.model.model.layers
        edited[0].self_attn.o_proj.gate_logits.fill_(5.0)  # every head saturated
        edited[1].self_attn.o_proj.gate_logits.copy_(torch.tensor([-5.0] * 3 + [-5.0, 0.0, 0.0] + [1.0] * 3))
        expected = gated.model(ids).logits
    grown = surgery.grow_saturated(gated, threshold=0.95)
    assert [b.n_heads for b in blocks(grown.model)[:3]] == [12, 9, 9]  # one kv group of 3 more in layer 0
    with torch.no_grad():  # float32 sums over more heads round in another order; in float64 the edit is exact
        drift64 = (copy.deepcopy(grown.model).double()(ids).logits - copy.deepcopy(gated.model).double()(ids).logits).abs().max()
        assert drift64 < 1e-5
    pruned = surgery.prune_closed(grown, threshold=0.05)  # group 0 of layer 1 closed; in group 1 only head 3
    assert [(b.n_heads, b.attention.n_kv_heads) for b in blocks(pruned.model)[:2]] == [(12, 4), (6, 2)]
    assert pruned.model.mindset_edits[-1]["kept_closed"]["1"] == [3]  # the other layers keep their lone -4 heads
    for path, module in custom_modules(gated.model):
        set_module(gated.model, path, module.mindset_fold())
    with torch.no_grad():
        assert (gated.model(ids).logits - expected).abs().max() < 1e-4 * expected.abs().max()
