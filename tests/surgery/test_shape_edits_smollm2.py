"""The preserving edits on the real SmolLM2-135M (9 heads in 3 kv groups, 30 layers): logits unchanged,
and each edit's cost printed (issue 15 asks for at most 2 s each on 2 cores)."""

from __future__ import annotations

import copy
import time

import pytest
import torch

from mindset import surgery

pytestmark = pytest.mark.slow

OPS = {
    "widen_ffn": lambda m: surgery.widen_ffn(m, "0-29", add=256, init="random"),
    "widen_ffn split": lambda m: surgery.widen_ffn(m, [3, 7], add=512, init="split"),
    "add_heads": lambda m: surgery.add_heads(m, "0-29", 3, init="random"),
    "insert_layers": lambda m: surgery.insert_layers(m, after=7, n=4),
    "embedding_shim": lambda m: surgery.embedding_shim(m),
    "embedding_shim rank 64": lambda m: surgery.embedding_shim(m, rank=64),
}


@pytest.mark.parametrize("op", OPS)
def test_preserving_edits_on_smollm2(smollm2, op):
    ids = smollm2.tokenizer("The capital of France is Paris, and the capital of Italy is", return_tensors="pt").input_ids
    with torch.no_grad():
        before = smollm2.model(ids).logits
    start = time.perf_counter()
    edited = OPS[op](smollm2)
    took = time.perf_counter() - start
    with torch.no_grad():
        drift32 = (edited.model(ids).logits - before).abs().max().item()
        # float32 sums over a wider K in another order (~1e-6 relative per layer, 30 layers); in float64
        # the edit's exactness shows without that rounding
        before64 = copy.deepcopy(smollm2.model).double()(ids).logits
        drift64 = (edited.model.double()(ids).logits - before64).abs().max().item()
    print(f"{op}: {took:.2f} s, max logit change {drift32:.1e} (float32), {drift64:.1e} (float64)")
    assert drift64 < 1e-5
    assert drift32 < 1e-5 * before.abs().max().item()
