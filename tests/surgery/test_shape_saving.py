"""Edited models saved and loaded: mindset's load restores per-layer shapes exactly; uniform results load
in plain transformers; a surgery record that disagrees with the weights is a one-line error."""

from __future__ import annotations

import json

import pytest
import torch

from mindset import surgery
from mindset.errors import MindsetError
from mindset.models import load, save
from mindset.models.anatomy import blocks
from mindset.models.custom import SURGERY_FILE

IDS = torch.tensor([[5, 17, 99, 3, 42, 8, 150, 77, 23, 64]])

EDITS = {
    "widen one layer": lambda m: surgery.widen_ffn(m, [0], add=9, init="random"),
    "narrow one layer": lambda m: surgery.narrow_ffn(m, [1], width=33),
    "add heads to one layer": lambda m: surgery.add_heads(m, [1], 2, init="random"),
    "remove heads": lambda m: surgery.remove_heads(m, {0: [1, 3]}),
    "insert": lambda m: surgery.insert_layers(m, after=0, n=2, init="copy"),
    "drop": lambda m: surgery.drop_layers(m, [1]),
    "duplicate": lambda m: surgery.duplicate_layers(m, [0]),
    "move": lambda m: surgery.move_layer(m, 0, 1),
}
UNIFORM = {  # results every layer of which has one shape the config can state
    "widen all": lambda m: surgery.widen_ffn(m, None, add=40, init="split", noise=0.1),
    "narrow all": lambda m: surgery.narrow_ffn(m, None, width=100),
    "insert": lambda m: surgery.insert_layers(m, after=1, n=1),
    "drop": lambda m: surgery.drop_layers(m, [0]),
    "duplicate": lambda m: surgery.duplicate_layers(m, "0-1"),
    "move": lambda m: surgery.move_layer(m, 1, 0),
}


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def round_trip(loaded, folder):
    save(loaded, folder)
    return load(folder, device="cpu", dtype="float32")


@pytest.mark.parametrize("op", EDITS)
def test_save_load_gives_identical_logits(tiny, tmp_path, op):
    edited = EDITS[op](tiny)
    back = round_trip(edited, tmp_path / "m")
    assert [b.n_heads for b in blocks(back.model)] == [b.n_heads for b in blocks(edited.model)]
    assert [b.ffn.d_ff for b in blocks(back.model)] == [b.ffn.d_ff for b in blocks(edited.model)]
    assert torch.equal(logits(back.model), logits(edited.model))


def test_a_chain_of_five_edits_round_trips(tiny, tmp_path):
    heads = 2 if "gpt2" in tiny.name else 4
    edited = surgery.widen_ffn(tiny, [0], add=11, init="random")
    edited = surgery.add_heads(edited, [1], heads, init="random")
    edited = surgery.insert_layers(edited, after=1, init="copy")
    edited = surgery.remove_heads(edited, {0: [0, 2]})
    edited = surgery.move_layer(edited, 2, 0)
    edited = surgery.narrow_ffn(edited, [1], width=21)
    back = round_trip(edited, tmp_path / "m")
    assert len(blocks(back.model)) == 3
    assert torch.equal(logits(back.model), logits(edited.model))
    generated = back.model.generate(IDS[:, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(generated, edited.model.generate(IDS[:, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0))


@pytest.mark.parametrize("op", UNIFORM)
def test_uniform_results_load_in_plain_transformers(tiny, tmp_path, op):
    from transformers import AutoModelForCausalLM

    edited = UNIFORM[op](tiny)
    save(edited, tmp_path / "m")
    assert "layer_shapes" not in json.loads((tmp_path / "m" / SURGERY_FILE).read_text())  # the config says it all
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.float32)
    assert torch.allclose(logits(plain), logits(edited.model), atol=1e-5)


@pytest.mark.parametrize("edit, heads", [
    (lambda m: surgery.add_heads(m, None, 4, init="random"), (8, 4)),  # 8 heads of 16, 4 kv heads
    (lambda m: surgery.remove_heads(m, {0: [1, 3], 1: [0, 2]}), (2, 2)),
])  # fmt: skip
def test_uniform_head_counts_load_in_plain_transformers(tiny_llama, tmp_path, edit, heads):
    from transformers import AutoModelForCausalLM

    edited = edit(tiny_llama)
    assert (edited.model.config.num_attention_heads, edited.model.config.num_key_value_heads) == heads
    save(edited, tmp_path / "m")
    assert "layer_shapes" not in json.loads((tmp_path / "m" / SURGERY_FILE).read_text())
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.float32)
    assert torch.allclose(logits(plain), logits(edited.model), atol=1e-5)


def test_gpt2_scaled_by_layer_index_keeps_its_scale_when_moved(tmp_path):
    """GPT-2 may scale attention by 1 / (layer_idx + 1): a moved layer must scale as its new index says."""
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=200, n_embd=32, n_layer=3, n_head=2, n_positions=64, scale_attn_by_inverse_layer_idx=True)
    model = GPT2LMHeadModel(config).eval()
    moved = surgery.move_layer(model, 2, 0)
    moved.save_pretrained(tmp_path / "m")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m", dtype=torch.float32)
    assert torch.allclose(logits(plain), logits(moved), atol=1e-5)


def test_per_layer_shapes_are_recorded(tiny_llama, tmp_path):
    edited = surgery.remove_heads(surgery.widen_ffn(tiny_llama, [1], add=5), {0: [0, 2]})
    save(edited, tmp_path / "m")
    record = json.loads((tmp_path / "m" / SURGERY_FILE).read_text())
    assert record["layer_shapes"] == {"0": {"n_heads": 2, "n_kv_heads": 2, "d_ff": 160}, "1": {"n_heads": 4, "n_kv_heads": 2, "d_ff": 165}}


def test_a_record_that_disagrees_with_the_weights_is_an_error(tiny_llama, tmp_path):
    save(surgery.widen_ffn(tiny_llama, [1], add=5), tmp_path / "m")
    record_file = tmp_path / "m" / SURGERY_FILE
    record = json.loads(record_file.read_text())
    record["layer_shapes"]["1"]["d_ff"] = 170
    record_file.write_text(json.dumps(record))
    with pytest.raises(MindsetError, match=r"disagrees with the weights: model\.layers\.1\.mlp\.\w+_proj\.weight is") as info:
        load(tmp_path / "m", device="cpu")
    assert "\n" not in str(info.value)


def test_a_record_naming_a_missing_layer_is_an_error(tiny_llama, tmp_path):
    save(surgery.widen_ffn(tiny_llama, [1], add=5), tmp_path / "m")
    record_file = tmp_path / "m" / SURGERY_FILE
    record = json.loads(record_file.read_text())
    record["layer_shapes"]["7"] = record["layer_shapes"]["1"]
    record_file.write_text(json.dumps(record))
    with pytest.raises(MindsetError, match=r"lists layer '7', but the model has layers 0-1"):
        load(tmp_path / "m", device="cpu")


def test_memory_layers_still_round_trip_next_to_shapes(tiny_llama, tmp_path):
    """The shape record and the custom-module record share one file."""
    edited = surgery.ffn_to_memory(surgery.add_heads(tiny_llama, [1], 2), layers=[0])
    back = round_trip(edited, tmp_path / "m")
    assert torch.allclose(logits(back.model), logits(edited.model), atol=1e-6)


def test_weights_without_their_shape_record_are_an_error(tiny_llama, tmp_path):
    save(surgery.widen_ffn(tiny_llama, [1], add=5), tmp_path / "m")
    (tmp_path / "m" / SURGERY_FILE).unlink()
    with pytest.raises(MindsetError, match=r"weights' shapes differ from its config.json and no surgery record"):
        load(tmp_path / "m", device="cpu")


def test_the_record_lists_every_edit_and_keeps_the_history(tiny_llama, tmp_path):
    edited = surgery.insert_layers(surgery.widen_ffn(tiny_llama, "0-1", add=4, init="split"), after=0)
    back = round_trip(edited, tmp_path / "a")
    again = round_trip(surgery.remove_heads(back, {2: [0, 1]}), tmp_path / "b")
    edits = json.loads((tmp_path / "b" / SURGERY_FILE).read_text())["edits"]
    assert edits == [
        {"op": "widen_ffn", "layers": [0, 1], "add": 4, "width": None, "init": "split", "seed": 0, "noise": 0.0},
        {"op": "insert_layers", "after": 0, "n": 1, "init": "identity"},
        {"op": "remove_heads", "heads": {"2": [0, 1]}},
    ]
    assert again.model.mindset_edits == edits
    assert not hasattr(tiny_llama.model, "mindset_edits")  # the original has no history


def test_a_chain_of_every_kind_of_module_round_trips(tiny, tmp_path):
    """Shapes, gates, a shim and feedback in one model, each moved off its start as training would: the
    folder loads with identical logits and generation."""
    heads = 2 if "gpt2" in tiny.name else 4
    edited = surgery.insert_layers(surgery.widen_ffn(tiny, [0], add=7, init="random"), after=0, init="copy")
    edited = surgery.add_heads(surgery.head_gates(edited, [1, 2]), [1], heads, init="random")
    edited = surgery.layerwise_feedback(surgery.embedding_shim(edited, rank=3), [(0, 2)], rank=4)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in edited.model.named_parameters():
            if "gate_logits" in name or "shim" in name or "mindset_feedback" in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.3)
    assert (logits(edited.model) - logits(tiny.model)).abs().max() > 1e-3
    back = round_trip(edited, tmp_path / "m")
    assert [op["op"] for op in json.loads((tmp_path / "m" / SURGERY_FILE).read_text())["edits"]] == [
        "widen_ffn", "insert_layers", "head_gates", "add_heads", "embedding_shim", "layerwise_feedback"]
    assert torch.equal(logits(back.model), logits(edited.model))
    generated = back.model.generate(IDS[:, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
    assert torch.equal(generated, edited.model.generate(IDS[:, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0))
