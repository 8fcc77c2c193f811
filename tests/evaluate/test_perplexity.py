import math

import pytest
import torch

from mindset.data import corpus_text
from mindset.errors import MindsetError
from mindset.evaluate import perplexity, perplexity_of_ids, plan_windows


def ids_of(loaded, n_chars):
    return loaded.tokenizer(corpus_text("valid")[:n_chars], add_special_tokens=False)["input_ids"]


def hf_loss(model, ids):
    """Mean next-token loss as transformers computes it, with labels = inputs."""
    batch = torch.tensor([ids])
    with torch.no_grad():
        return model(batch, labels=batch).loss.item()


def test_equals_the_transformers_loss_when_the_text_fits(tiny):
    ids = ids_of(tiny, 200)
    result = perplexity(tiny, corpus_text("valid")[:200])
    assert result.tokens == len(ids) - 1 and result.windows == 1
    assert result.perplexity == pytest.approx(math.exp(hf_loss(tiny.model, ids)), rel=1e-4)


def test_sliding_window_equals_a_window_by_window_reference(tiny):
    """Each window's new tokens, scored by transformers with the earlier tokens masked out (-100)."""
    ids = ids_of(tiny, 1500)
    context, stride = 128, 48
    total, count = 0.0, 0
    for w in plan_windows(len(ids), context, stride):
        window = torch.tensor([ids[w.begin : w.end]])
        labels = window.clone()
        labels[0, : w.first_target - w.begin] = -100
        with torch.no_grad():
            loss = tiny.model(window, labels=labels).loss.item()
        n = w.end - w.first_target
        total, count = total + loss * n, count + n
    result = perplexity_of_ids(tiny.model, ids, context=context, stride=stride)
    assert result.tokens == count == len(ids) - 1
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-4)


def test_disjoint_chunks_score_all_but_each_chunks_first_token(tiny_llama):
    ids = ids_of(tiny_llama, 1000)
    chunks = [ids[i : i + 200] for i in range(0, len(ids), 200)]
    total = sum(hf_loss(tiny_llama.model, c) * (len(c) - 1) for c in chunks if len(c) > 1)
    count = sum(len(c) - 1 for c in chunks if len(c) > 1)
    result = perplexity_of_ids(tiny_llama.model, ids, context=200, stride=200)
    assert result.tokens == count
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-4)


def test_batching_windows_does_not_change_the_result(tiny_gpt2):
    ids = ids_of(tiny_gpt2, 1500)
    one = perplexity_of_ids(tiny_gpt2.model, ids, context=100, stride=30, batch_size=1)
    many = perplexity_of_ids(tiny_gpt2.model, ids, context=100, stride=30, batch_size=5)
    assert many.perplexity == pytest.approx(one.perplexity, rel=1e-5)


@pytest.mark.parametrize("n", [2, 3, 50, 129, 1000])
@pytest.mark.parametrize("context,stride", [(2, 1), (16, 16), (16, 5), (64, 63), (64, 1)])
def test_windows_score_every_token_once(n, context, stride):
    windows = plan_windows(n, context, stride)
    scored = [t for w in windows for t in range(w.first_target, w.end)]
    assert len(scored) == len(set(scored))
    assert all(w.end - w.begin <= context and w.begin < w.first_target for w in windows)
    missing = set(range(1, n)) - set(scored)
    if stride < context:
        assert not missing
    else:  # disjoint chunks: exactly the first token of every chunk after the first
        assert missing == {b for b in range(stride, n, stride)}


def test_max_tokens_limits_the_text(tiny_llama):
    assert perplexity(tiny_llama, corpus_text("valid"), max_tokens=100).tokens == 99


def test_bad_input(tiny_llama):
    with pytest.raises(MindsetError, match="empty"):
        perplexity(tiny_llama, "  \n")
    with pytest.raises(MindsetError, match="at least 2 tokens"):
        perplexity_of_ids(tiny_llama.model, [5])
    with pytest.raises(MindsetError, match="stride"):
        perplexity_of_ids(tiny_llama.model, list(range(50)), context=16, stride=17)
    with pytest.raises(MindsetError, match="longer than the model's context"):
        perplexity_of_ids(tiny_llama.model, list(range(50)), context=512)
