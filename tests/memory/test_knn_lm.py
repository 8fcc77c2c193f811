
import pytest
import torch
from transformers import AutoModelForCausalLM

from mindset.errors import MindsetError
from mindset.evaluate import perplexity
from mindset.memory import KnnLMHead, add_text, make_store, memorize
from mindset.memory.knn_lm import final_hidden_states
from mindset.models import load, save
from mindset.surgery import attach_knn_lm, detach_knn_lm

FACT = "The lighthouse keeper of Vellmore Rock, Ottilie Brandquist, painted every stair of the tower a different shade of green."


def logits(loaded, text=FACT):
    ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return loaded.model(ids).logits


def test_empty_store_changes_nothing_and_head_stays_tied(tiny_llama):
    attached = attach_knn_lm(tiny_llama, capacity=1024)
    head = attached.model.get_output_embeddings()
    assert isinstance(head, KnnLMHead)
    assert head.weight is attached.model.model.embed_tokens.weight
    assert torch.equal(logits(attached), logits(tiny_llama))
    assert not isinstance(tiny_llama.model.get_output_embeddings(), KnnLMHead)  # pure: the input is untouched


def test_interpolation_is_the_stated_mixture(tiny_llama):
    attached = attach_knn_lm(tiny_llama, capacity=1024, k=4, lam=0.3, temperature=2.0, fallback=None)
    head = attached.model.get_output_embeddings()
    add_text(attached.model, attached.tokenizer, head.store, FACT, context=64)
    ids = torch.tensor([attached.tokenizer("Ottilie painted")["input_ids"]])
    with torch.no_grad():
        hidden = final_hidden_states(attached.model, ids)[0]
        out = attached.model(ids).logits[0]
        hits = head.store.query(hidden, 4, touch=False)
    p_lm = torch.softmax(hidden @ head.weight.T, -1)
    w = torch.softmax(hits.scores / 2.0, -1)
    p_knn = torch.zeros_like(p_lm).scatter_add(1, head.store.values[hits.slots], w)
    assert torch.allclose(out.exp(), 0.7 * p_lm + 0.3 * p_knn, atol=1e-5)
    assert torch.allclose(out.exp().sum(-1), torch.ones(ids.shape[1]), atol=1e-5)


def test_memorizing_a_text_lowers_its_perplexity_without_training(tiny):
    before = perplexity(tiny, FACT).perplexity
    attached = attach_knn_lm(tiny, capacity=1024)
    report = memorize(attached, FACT, label="fact")
    assert report["knn_lm"]["added"] == len(tiny.tokenizer(FACT, add_special_tokens=False)["input_ids"]) - 1
    after = perplexity(attached, FACT).perplexity
    assert after < before / 2
    store = attached.model.get_output_embeddings().store
    assert store.sources[0].startswith("[fact] ")


def test_fallback_keeps_far_queries_on_the_model(tiny_llama):
    attached = attach_knn_lm(tiny_llama, capacity=1024, lam=0.5, temperature=1.0, fallback=0.0)
    memorize(attached, FACT)
    other = "Zzyzx qqq 12345 !!"
    with torch.no_grad():
        hits = attached.model.get_output_embeddings().store.query(final_hidden_states(attached.model, torch.tensor([attached.tokenizer(other)["input_ids"]]))[0], 1)
    assert (hits.scores < -5).all()  # nothing near: every neighbour is far beyond the fallback at distance 0
    assert torch.allclose(logits(attached, other).log_softmax(-1), logits(tiny_llama, other).log_softmax(-1), atol=1e-2)


def test_saved_knn_model_reloads_with_identical_logits_and_plain_transformers_sees_the_dense_model(tiny, tmp_path):
    attached = attach_knn_lm(tiny, capacity=1024)
    memorize(attached, FACT)
    folder = save(attached, tmp_path / "knn")
    again = load(folder)
    assert isinstance(again.model.get_output_embeddings(), KnnLMHead)
    assert torch.equal(logits(again), logits(attached))
    plain = AutoModelForCausalLM.from_pretrained(folder)
    ids = torch.tensor([tiny.tokenizer(FACT)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, logits(tiny), atol=1e-6)
    back = detach_knn_lm(again)
    assert torch.allclose(logits(back), logits(tiny), atol=1e-6)


def test_knn_errors(tiny_llama):
    with pytest.raises(MindsetError, match="final hidden state has 64"):
        attach_knn_lm(tiny_llama, make_store("torch", 32, 16, metric="l2", value_shape=(), value_dtype=torch.long))
    with pytest.raises(MindsetError, match="l2 metric and one token id"):
        attach_knn_lm(tiny_llama, make_store("torch", 64, 16, metric="cosine"))
    with pytest.raises(MindsetError, match="k must be between 1"):
        attach_knn_lm(tiny_llama, capacity=8, k=9)
    with pytest.raises(MindsetError, match="no memory store"):
        memorize(tiny_llama, FACT)
    with pytest.raises(MindsetError, match="no kNN-LM store"):
        detach_knn_lm(tiny_llama)
    attached = attach_knn_lm(tiny_llama, capacity=8, k=4)
    with pytest.raises(MindsetError, match="already has a kNN-LM head"):
        attach_knn_lm(attached)
