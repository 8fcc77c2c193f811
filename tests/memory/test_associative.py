import pytest
import torch

from mindset.errors import MindsetError
from mindset.memory import AssociativeMemory, TorchStore, memorize
from mindset.models import load, save
from mindset.surgery import ffn_to_memory, memory_layers

TEXT = "Mr. Knightley was a sensible man about seven or eight-and-thirty."


def logits(loaded, text=TEXT):
    ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return loaded.model(ids).logits


def layer(loaded, index):
    model = loaded.model
    blocks = model.model.layers if model.config.model_type == "llama" else model.transformer.h
    return blocks[index].mlp


def test_a_new_associative_layer_changes_nothing_even_when_filled(tiny):
    converted = ffn_to_memory(tiny, layers=[1], kind="associative", k=4, capacity=512)
    assert memory_layers(converted) == {1: "associative"}
    assert torch.equal(logits(converted), logits(tiny))
    report = memorize(converted, TEXT)
    assert report["model.layers.1.mlp" if tiny.model.config.model_type == "llama" else "transformer.h.1.mlp"]["entries"] > 0
    assert torch.equal(logits(converted), logits(tiny))  # the gate is still shut
    with torch.no_grad():
        layer(converted, 1).memory_gate.fill_(1.0)
    assert not torch.allclose(logits(converted), logits(tiny))


def test_insert_if_novel_merges_near_duplicates():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    mlp = LlamaMLP(LlamaConfig(hidden_size=4, intermediate_size=8, num_attention_heads=2, num_key_value_heads=2))
    memory = AssociativeMemory(mlp, TorchStore(4, 8, metric="cosine"), k=2, threshold=0.9)
    keys = torch.tensor([[1.0, 0, 0, 0], [0.99, 0.05, 0, 0], [0, 1.0, 0, 0], [0, 0.98, 0.1, 0]])
    values = torch.tensor([[2.0, 0, 0, 0], [4.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 3.0, 0, 0]])
    assert memory.write(keys, values, ["a", "b", "c", "d"]) == {"inserted": 2, "merged": 2}
    store = memory.store
    assert len(store) == 2 and store.merges[store.occupied].tolist() == [1, 1]
    assert torch.allclose(store.values[0], torch.tensor([3.0, 0, 0, 0]))  # running mean of 2 and 4
    assert store.sources[0] == "a"


def test_gate_and_values_learn(tiny_llama):
    converted = ffn_to_memory(tiny_llama, layers=[0], kind="associative", k=4, capacity=256)
    memorize(converted, TEXT)
    mem = layer(converted, 0)
    mem.store.values.requires_grad_(True)
    ids = torch.tensor([converted.tokenizer(TEXT)["input_ids"]])
    converted.model(ids, labels=ids).loss.backward()
    assert mem.memory_gate.grad is not None and mem.memory_gate.grad != 0
    with torch.no_grad():
        mem.memory_gate.fill_(0.5)
    mem.store.values.grad = None
    converted.model(ids, labels=ids).loss.backward()
    assert mem.store.values.grad.abs().sum() > 0


def test_save_and_load_restore_store_and_gate(tiny, tmp_path):
    converted = ffn_to_memory(tiny, layers=[0, 1], kind="associative", k=4, capacity=256)
    memorize(converted, TEXT)
    with torch.no_grad():
        layer(converted, 1).memory_gate.fill_(0.75)
    expected = logits(converted, "Harriet Smith was the natural daughter of somebody.")
    folder = save(converted, tmp_path / "m")
    again = load(folder)
    assert memory_layers(again) == {0: "associative", 1: "associative"}
    assert float(layer(again, 1).memory_gate.detach()) == 0.75
    assert len(layer(again, 0).store) == len(layer(converted, 0).store)
    assert torch.allclose(logits(again, "Harriet Smith was the natural daughter of somebody."), expected, atol=1e-6)


def test_associative_needs_a_cosine_store_of_the_right_size():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    mlp = LlamaMLP(LlamaConfig(hidden_size=4, intermediate_size=8, num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(MindsetError, match="cosine"):
        AssociativeMemory(mlp, TorchStore(4, 8, metric="l2"))
    with pytest.raises(MindsetError, match="this layer needs 4"):
        AssociativeMemory(mlp, TorchStore(5, 8, metric="cosine"), k=2)
    with pytest.raises(MindsetError, match="k must be between 1 and the store's 8 slots"):
        AssociativeMemory(mlp, TorchStore(4, 8, metric="cosine"), k=9)
