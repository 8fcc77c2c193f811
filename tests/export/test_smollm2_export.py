"""GGUF export of the real model, read back by transformers: exact in f32, measured tolerances below."""

import pytest
import torch

from mindset.data import corpus_text
from mindset.export import export_gguf
from mindset.models import load

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("precision", ["f32", "q8_0"])
def test_round_trip(smollm2, tmp_path, precision):
    written = export_gguf(smollm2, tmp_path / f"smollm2-{precision}.gguf", precision)
    back = load(written["gguf"], device="cpu", dtype="float32")
    text = corpus_text("valid")[:600]
    ids = smollm2.tokenizer(text)["input_ids"]
    assert back.tokenizer(text)["input_ids"] == ids
    assert back.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == smollm2.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False
    )
    with torch.no_grad():
        ours, theirs = back.model(torch.tensor([ids])).logits, smollm2.model(torch.tensor([ids])).logits
    if precision == "f32":
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    else:  # benchmarks/gguf_export.py measures these; the bounds leave room for other texts
        assert (ours - theirs).abs().max().item() < 3.0
        assert (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item() > 0.85
