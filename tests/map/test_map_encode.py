"""Encodings: batched equals one at a time, paths are prefix encodings, layers, the cache and fingerprints."""

import numpy as np
import pytest
import torch

from mindset.errors import MindsetError
from mindset.map.cache import EncodingCache, item_key, model_fingerprint
from mindset.map.encode import encode_items, hidden_states, resolve_layer, tokenize_item

TEXTS = ["The cat sat on the mat.", "Hi", "A much longer sentence, with commas, numbers 12345 and more words to pad the batch."]


def _one_by_one(model, ids, layer):
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[layer][0, -1].numpy()


@pytest.mark.parametrize("layer", [-1, 0, 1])
def test_batched_last_token_states_equal_unpadded_forward_passes(tiny, layer):
    tokenized = [tokenize_item(tiny.tokenizer, t) for t in TEXTS]
    layer = resolve_layer(tiny.model, layer)
    states, _ = hidden_states(tiny.model, [t.ids for t in tokenized], layer, batch_tokens=10_000)
    for row, t in zip(states, tokenized):
        np.testing.assert_allclose(row, _one_by_one(tiny.model, t.ids, layer), atol=1e-5)


def test_small_batches_give_the_same_states(tiny_llama):
    ids = [tokenize_item(tiny_llama.tokenizer, t).ids for t in TEXTS]
    big, _ = hidden_states(tiny_llama.model, ids, 2, batch_tokens=10_000)
    small, _ = hidden_states(tiny_llama.model, ids, 2, batch_tokens=16)
    np.testing.assert_allclose(big, small, atol=1e-5)


def test_a_path_is_the_encoding_of_each_prefix(tiny_llama):
    item = tokenize_item(tiny_llama.tokenizer, "Question: 2+2?\nAnswer:", " 4, of course")
    states, paths = hidden_states(tiny_llama.model, [item.ids], 2, paths_from=[item.path_start])
    path = paths[0]
    assert len(path) == len(item.ids) - item.path_start
    np.testing.assert_allclose(path[-1], states[0], atol=1e-6)
    for k in (0, 3):  # position path_start + k is the last token of that prefix
        prefix = item.ids[: item.path_start + k + 1]
        np.testing.assert_allclose(path[k], _one_by_one(tiny_llama.model, prefix, 2), atol=1e-5)


def test_tokenized_item_is_prompt_then_completion_and_long_items_keep_their_end(tiny_llama):
    tok = tiny_llama.tokenizer
    item = tokenize_item(tok, "abc", "de")
    assert item.ids == list(tok("abc")["input_ids"]) + list(tok("de", add_special_tokens=False)["input_ids"])
    assert item.path_start == len(tok("abc")["input_ids"]) - 1
    cut = tokenize_item(tok, "x" * 50, "yz", max_length=10)
    assert len(cut.ids) == 10 and cut.truncated == 42 and cut.ids[-2:] == list(tok("yz", add_special_tokens=False)["input_ids"])


def test_unknown_layer_and_empty_item_are_user_errors(tiny_llama):
    with pytest.raises(MindsetError, match="layer 7 does not exist: this model has layers 0"):
        resolve_layer(tiny_llama.model, 7)
    assert resolve_layer(tiny_llama.model, -1) == 2 and resolve_layer(tiny_llama.model, -3) == 0
    with pytest.raises(MindsetError, match="no tokens"):
        tokenize_item(tiny_llama.tokenizer, "", "")


def test_the_cache_returns_what_was_computed_and_computes_only_what_is_new(tiny_llama, tmp_path):
    fp = model_fingerprint(tiny_llama)
    tokenized = [tokenize_item(tiny_llama.tokenizer, t) for t in TEXTS]
    cache = EncodingCache(tmp_path, fp, 2)
    first, _, computed = encode_items(tiny_llama, tokenized[:2], 2, cache=cache)
    assert computed == 2
    reopened = EncodingCache(tmp_path, fp, 2)
    assert len(reopened) == 2
    again, _, computed = encode_items(tiny_llama, tokenized, 2, cache=reopened)
    assert computed == 1  # only the new item
    np.testing.assert_array_equal(again[:2], first)
    fresh, _, _ = encode_items(tiny_llama, tokenized, 2, cache=None)
    np.testing.assert_allclose(again, fresh, atol=1e-6)
    names = sorted(p.name for p in (tmp_path / fp / "layer-2").iterdir())
    assert names[0] == "index.json" and len(names) == 3  # the index and one shard per run that computed something
    assert all(p.suffix in (".safetensors", ".json") for p in (tmp_path / fp / "layer-2").iterdir())  # nothing pickled


def test_layers_are_cached_apart(tiny_llama, tmp_path):
    fp = model_fingerprint(tiny_llama)
    tokenized = [tokenize_item(tiny_llama.tokenizer, t) for t in TEXTS]
    encode_items(tiny_llama, tokenized, 2, cache=EncodingCache(tmp_path, fp, 2))
    _, _, computed = encode_items(tiny_llama, tokenized, 1, cache=EncodingCache(tmp_path, fp, 1))
    assert computed == 3


def test_a_changed_weight_changes_the_fingerprint(tiny_llama):
    from mindset.models import load

    before = model_fingerprint(tiny_llama)
    assert model_fingerprint(load("tiny-llama", device="cpu", dtype="float32")) == before
    with torch.no_grad():
        tiny_llama.model.model.layers[1].mlp.down_proj.weight[0, 0] += 1e-3
    assert model_fingerprint(tiny_llama) != before
    assert model_fingerprint(load("tiny-llama@1", device="cpu", dtype="float32")) != before


def test_item_keys_depend_on_tokens_only():
    assert item_key([1, 2, 3]) == item_key((1, 2, 3)) != item_key([1, 2, 4])


def test_encoding_progress_goes_through_mindset_progress(tiny_llama, monkeypatch):
    """The map has no progress display of its own (its rich bar printed blank lines into pipes and logs): it uses
    mindset.progress, the project's one, which knows what to print when stderr is not a terminal."""
    import mindset.progress

    calls = []

    def track(items, total, description, enabled=True, unit=""):
        calls.append((total, description, enabled, unit))
        yield from items

    monkeypatch.setattr(mindset.progress, "track", track)
    tokenized = [tokenize_item(tiny_llama.tokenizer, t) for t in TEXTS]
    encode_items(tiny_llama, tokenized, 2, batch_tokens=16, progress=True)
    assert calls == [(3, "encoding 3 items", True, "batches")]  # 16 tokens a batch: one item each
    encode_items(tiny_llama, tokenized, 2, progress=False)
    assert calls[-1][2] is False


def test_the_map_command_prints_no_blank_lines_into_a_pipe(cli, tmp_path, map_home, labelled_jsonl, monkeypatch):
    import mindset.progress

    monkeypatch.setattr(mindset.progress, "track", lambda items, total, description, enabled=True, unit="": iter(items))  # progress aside
    code, stdout, stderr = cli("map", "tiny-llama", "--data", str(labelled_jsonl), "-o", str(tmp_path / "m"), "--method", "pca")
    assert code == 0, stderr
    lines = (stdout + stderr).splitlines()
    assert lines and "" not in [line.strip() for line in lines], lines
