import json

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from mindset.errors import MindsetError
from mindset.memory import FeaturalMemory
from mindset.models import load, save, summarize
from mindset.models.custom import SURGERY_FILE
from mindset.surgery import ffn_to_memory, memory_layers, memory_to_ffn

TEXT = "It is a truth universally acknowledged"


def logits(model, tokenizer, text=TEXT):
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        return model(ids).logits


def test_surgery_is_pure_and_returns_the_same_kind(tiny_llama):
    converted = ffn_to_memory(tiny_llama, layers=[1], k=8)
    assert memory_layers(converted) == {1: "featural"} and memory_layers(tiny_llama) == {}
    assert converted.tokenizer is tiny_llama.tokenizer
    hf = ffn_to_memory(tiny_llama.model, layers="0", k=8)  # an HF model in, an HF model out
    assert isinstance(hf.model.layers[0].mlp, FeaturalMemory)
    assert hf.model.embed_tokens.weight is hf.lm_head.weight  # the copy keeps its tie


def test_round_trip_to_dense_gives_the_original_model(tiny):
    converted = ffn_to_memory(tiny, k=8)
    back = memory_to_ffn(converted)
    assert memory_layers(back) == {}
    assert type(back.model.get_submodule(next(iter(_mlp_paths(back))))).__name__ in ("LlamaMLP", "GPT2MLP")
    assert torch.equal(logits(back.model, tiny.tokenizer), logits(tiny.model, tiny.tokenizer))


def _mlp_paths(loaded):
    return [n for n, m in loaded.model.named_modules() if n.endswith("mlp")]


def test_saved_featural_model_loads_back_and_plain_transformers_sees_the_dense_one(tiny, tmp_path):
    converted = ffn_to_memory(tiny, layers=[0, 1], k=8, score="exact")
    folder = save(converted, tmp_path / "featural")
    record = json.loads((folder / SURGERY_FILE).read_text())
    assert [m["restorer"] for m in record["modules"]] == ["featural_memory"] * 2
    assert record["modules"][0]["config"] == {"k": 8, "score": "exact", "path": "auto"}
    again = load(folder)
    assert memory_layers(again) == {0: "featural", 1: "featural"}
    assert torch.equal(logits(again.model, tiny.tokenizer), logits(converted.model, tiny.tokenizer))
    plain = AutoModelForCausalLM.from_pretrained(folder)  # the weights keep their names: the dense model
    assert torch.allclose(logits(plain, tiny.tokenizer), logits(tiny.model, tiny.tokenizer), atol=1e-6)


def test_memory_parameters_are_their_own_component(tiny_llama):
    summary = summarize(ffn_to_memory(tiny_llama, layers=[0], k=8).model)
    assert summary["parameters"]["memory"]["params"] == 3 * 64 * 160
    assert summary["parameters"]["mlp"]["params"] == 3 * 64 * 160


@pytest.mark.parametrize("layers, match", [([2], "layer index 2 is out of range: this model has 2 layers"), ([-1], "layer index -1 is out of range"), ("4,x", "cannot read layers"), ([], "no layers given")])
def test_bad_layers_are_errors(tiny_llama, layers, match):
    with pytest.raises(MindsetError, match=match):
        ffn_to_memory(tiny_llama, layers=layers, k=8)


def test_bad_k_and_kind_are_errors(tiny_gpt2):
    with pytest.raises(MindsetError, match="k must be between 1 and the block's 256 slots, got 0"):
        ffn_to_memory(tiny_gpt2, k=0)
    with pytest.raises(MindsetError, match="k must be between 1 and the block's 256 slots, got 257"):
        ffn_to_memory(tiny_gpt2, k=257)
    with pytest.raises(MindsetError, match="unknown memory kind"):
        ffn_to_memory(tiny_gpt2, kind="episodic")
    with pytest.raises(MindsetError, match="already a memory"):
        ffn_to_memory(ffn_to_memory(tiny_gpt2, layers=[0], k=4), layers=[0], k=4)
    with pytest.raises(MindsetError, match="not a memory layer"):
        memory_to_ffn(tiny_gpt2, layers=[0])


class OddFFN(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))

    def forward(self, x):
        return self.net(x)


def test_an_architecture_without_a_supported_ffn_is_an_error(tiny_llama):
    model = tiny_llama.model
    model.model.layers[1].mlp = OddFFN(64)
    with pytest.raises(MindsetError, match=r"layer 1's feed-forward block \(OddFFN\) is not a supported layout"):
        ffn_to_memory(model, layers=[1], k=4)
    del model.model.layers[0].mlp
    model.model.layers[0].feed = OddFFN(64)
    with pytest.raises(MindsetError, match="has no feed-forward block"):
        ffn_to_memory(model, layers=[0], k=4)


def test_recipe_step_converts_and_saves(tmp_path):
    from mindset.recipes import run_recipe

    recipe = tmp_path / "memory.yaml"
    recipe.write_text(
        "model: tiny-llama\nsteps:\n  - ffn_to_memory: {layers: [0, 1], k: 16, save: converted}\n  - ppl: {max_tokens: 200, context: 128}\n"
    )
    result = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)
    assert result.metrics["ffn_to_memory"]["layers"] == [0, 1]
    assert memory_layers(load(result.run_dir / "converted")) == {0: "featural", 1: "featural"}
    assert "### Memory layers" in (result.run_dir / "report.md").read_text()


def test_recipe_step_rejects_unknown_fields(tmp_path):
    from mindset.recipes import run_recipe

    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model: tiny-llama\nsteps:\n  - ffn_to_memory: {layer: [0]}\n")
    with pytest.raises(MindsetError, match="layer"):
        run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)


def test_a_saved_model_with_a_mismatched_or_corrupt_record_is_an_error(tiny_llama, tmp_path):
    from mindset.memory import make_store
    from mindset.models.custom import SURGERY_FOLDER
    from mindset.surgery import attach_knn_lm

    folder = save(attach_knn_lm(tiny_llama, capacity=64, k=4), tmp_path / "knn")
    make_store("torch", 32, 64, metric="l2", value_shape=(), value_dtype=torch.long).save(folder / SURGERY_FOLDER / "lm_head" / "store")
    with pytest.raises(MindsetError, match="32-dimensional keys, but this layer's hidden size is 64"):
        load(folder)
    (folder / SURGERY_FILE).write_text('{"modules": [{"path": "lm_head", "restorer": "teleporter"}]}')
    with pytest.raises(MindsetError, match="unknown custom module kind 'teleporter'"):
        load(folder)
    (folder / SURGERY_FILE).write_text("{oops")
    with pytest.raises(MindsetError, match="not a valid surgery record"):
        load(folder)


def test_stores_follow_the_protocol():
    from mindset.memory import Store, make_store

    assert isinstance(make_store("torch", 8, 4), Store) and isinstance(make_store("faiss:HNSW8", 8, 4), Store)
    with pytest.raises(MindsetError, match="faiss cannot build an index from 'Nonsense12'"):
        make_store("faiss:Nonsense12", 8, 4)
