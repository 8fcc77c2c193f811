"""Memory layers on the real SmolLM2-135M. Slow: run in CI, skip with -m 'not slow'."""

import pytest
import torch

from mindset.data import corpus_text
from mindset.evaluate import perplexity
from mindset.memory import memorize
from mindset.surgery import attach_knn_lm, ffn_to_memory

pytestmark = pytest.mark.slow

# A made-up fact: no model has seen it.
FACT = (
    "The lighthouse on Vellmore Rock was kept for forty-one years by Ottilie Brandquist, who painted each of its "
    "two hundred and twelve stairs a different shade of green and named every shade after a ship that had passed "
    "safely in the night. Her logbook, bound in sailcloth, records that the Marigold Quarrie passed on the ninth of "
    "March and that she mixed verdigris with chalk to paint the stair that still bears its name."
)
VALID_TOKENS = 2048  # a fixed prefix of the valid split, scored in 4 disjoint windows of 512 tokens


def test_featural_memory_at_k_equal_d_ff_is_the_dense_model(smollm2):
    ids = torch.tensor([smollm2.tokenizer("It is a truth universally acknowledged, that a single man")["input_ids"]])
    converted = ffn_to_memory(smollm2, kind="featural", k=1536)  # all 30 layers, through top-k (auto: masked path)
    with torch.no_grad():
        expected, got = smollm2.model(ids).logits, converted.model(ids).logits
    assert (got - expected).abs().max() < 1e-5


def test_gather_path_at_k_equal_d_ff_is_as_close_as_the_dense_model_is_to_itself(smollm2):
    """The gather path sums the slots in another order than the dense matmul, so it cannot be bit-exact; it
    must stay within the dense model's own fp32 noise (its logits for one sequence, batch 1 vs batch 3)."""
    ids = torch.tensor([smollm2.tokenizer("It is a truth universally acknowledged, that a single man")["input_ids"]])
    converted = ffn_to_memory(smollm2, kind="featural", k=1536, path="gather")
    with torch.no_grad():
        expected = smollm2.model(ids).logits
        noise = (smollm2.model(ids.repeat(3, 1)).logits[1:2] - expected).abs().max()
        error = (converted.model(ids).logits - expected).abs().max()
    print(f"gather path error {float(error):.2e}, dense batch-shape noise {float(noise):.2e}")
    assert error <= 2 * noise + 1e-5


def test_memorizing_a_made_up_fact_halves_its_perplexity_and_leaves_valid_alone(smollm2):
    valid = corpus_text("valid")
    fact_before = perplexity(smollm2, FACT).perplexity
    valid_before = perplexity(smollm2, valid, max_tokens=VALID_TOKENS, context=512, stride=512).perplexity
    model = attach_knn_lm(smollm2, capacity=4096)  # defaults: k=16, lambda=0.25, T=20, fallback at 100
    report = memorize(model, FACT, label="lighthouse")  # no gradient step: entries written into the store
    assert report["knn_lm"]["added"] > 50
    fact_after = perplexity(model, FACT).perplexity
    valid_after = perplexity(model, valid, max_tokens=VALID_TOKENS, context=512, stride=512).perplexity
    print(f"fact {fact_before:.2f} -> {fact_after:.2f}; valid {valid_before:.3f} -> {valid_after:.3f}")
    assert fact_after <= fact_before / 2
    assert valid_after <= valid_before * 1.02
