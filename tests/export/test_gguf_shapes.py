"""GGUF export of edited models: per-layer head counts and FFN widths, uniform edits read back by transformers.

transformers' GGUF loader maps `attention.head_count` & co. onto one config value (a per-layer array
becomes a list that LlamaConfig cannot use, and it has no `deci` model), so heterogeneous files are read
back here with gguf.GGUFReader into a Llama resized per layer (mindset.models.shapes.apply_shapes), Q/K
rows un-permuted by transformers' own LlamaTensorProcessor, and compared with the edited model's logits.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

from mindset import surgery
from mindset.errors import MindsetError
from mindset.export import export_gguf
from mindset.export.gguf_writer import GLOBAL_TENSORS, LAYER_TENSORS
from mindset.models import load
from mindset.models.anatomy import blocks
from mindset.models.shapes import apply_shapes, block_shape

IDS = [5, 17, 99, 3, 42, 8, 150, 77, 23, 64]


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def heterogeneous(tiny_llama):
    """Layer 0 wider (zero init), layer 1 one GQA group fewer, an identity layer inserted after layer 0."""
    edited = surgery.widen_ffn(tiny_llama, [0], add=8)
    edited = surgery.remove_heads(edited, {1: [2, 3]})  # heads 2 and 3 share kv head 1: a whole group
    return surgery.insert_layers(edited, after=0)


def field(reader: gguf.GGUFReader, key: str):
    value = reader.fields[key].contents()
    return value


def per_layer(value, count: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, list) else [int(value)] * count


def read_back(path) -> tuple[LlamaForCausalLM, gguf.GGUFReader]:
    """A transformers Llama built from the GGUF's metadata alone, each layer at its recorded shape."""
    reader = gguf.GGUFReader(str(path))
    arch = field(reader, "general.architecture")
    n = int(field(reader, f"{arch}.block_count"))
    heads = per_layer(field(reader, f"{arch}.attention.head_count"), n)
    kv = per_layer(field(reader, f"{arch}.attention.head_count_kv"), n)
    d_ff = per_layer(field(reader, f"{arch}.feed_forward_length"), n)
    config = LlamaConfig(
        vocab_size=int(field(reader, f"{arch}.vocab_size")), hidden_size=int(field(reader, f"{arch}.embedding_length")),
        num_hidden_layers=n, num_attention_heads=heads[0], num_key_value_heads=kv[0], intermediate_size=d_ff[0],
        head_dim=int(field(reader, f"{arch}.attention.key_length")), rms_norm_eps=float(field(reader, f"{arch}.attention.layer_norm_rms_epsilon")),
        rope_theta=float(field(reader, f"{arch}.rope.freq_base")), max_position_embeddings=int(field(reader, f"{arch}.context_length")),
        tie_word_embeddings=all(t.name != "output.weight" for t in reader.tensors),
    )
    model = LlamaForCausalLM(config).eval()
    shapes = {str(i): {"n_heads": heads[i], "n_kv_heads": kv[i], "d_ff": d_ff[i]} for i in range(n)}
    apply_shapes(model, shapes, str(path))
    names = {v: k for k, v in GLOBAL_TENSORS.items()} | {f"blk.{i}.{g}.weight": f"model.layers.{i}.{h}.weight" for i in range(n) for h, g in LAYER_TENSORS.items()}
    state, unpermute = {}, LlamaTensorProcessor()
    for tensor in reader.tensors:
        weights = np.array(tensor.data, dtype=np.float32)
        layer = int(tensor.name.split(".")[1]) if tensor.name.startswith("blk.") else None
        if ".attn_q." in tensor.name:
            weights = unpermute._reverse_permute_weights(weights, heads[layer], heads[layer])
        elif ".attn_k." in tensor.name:
            weights = unpermute._reverse_permute_weights(weights, heads[layer], kv[layer])
        state[names[tensor.name]] = torch.from_numpy(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    return model, reader


def test_heterogeneous_layers_are_written_as_per_layer_arrays(tiny_llama, tmp_path):
    edited = heterogeneous(tiny_llama)
    shapes = [block_shape(b) for b in blocks(edited.model)]
    assert len({(s["n_heads"], s["n_kv_heads"], s["d_ff"]) for s in shapes}) == 2  # the layers really differ
    path = export_gguf(edited, tmp_path / "het.gguf", "f32", modelfile=False)["gguf"]
    back, reader = read_back(path)
    assert field(reader, "general.architecture") == "deci"  # llama.cpp's arch that sizes each layer on its own
    assert field(reader, "deci.attention.head_count") == [s["n_heads"] for s in shapes] == [4, 4, 2]
    assert field(reader, "deci.attention.head_count_kv") == [s["n_kv_heads"] for s in shapes] == [2, 2, 1]
    assert field(reader, "deci.feed_forward_length") == [s["d_ff"] for s in shapes] == [168, 168, 160]
    tensors = {t.name: t for t in reader.tensors}
    assert tuple(tensors["blk.2.attn_q.weight"].data.shape) == (2 * 16, 64)
    assert tuple(tensors["blk.2.attn_k.weight"].data.shape) == (1 * 16, 64)
    assert tuple(tensors["blk.0.ffn_down.weight"].data.shape) == (64, 168)
    np.testing.assert_array_equal(tensors["blk.1.ffn_up.weight"].data, blocks(edited.model)[1].ffn.up.weight.detach().numpy())
    torch.testing.assert_close(logits(back), logits(edited.model), rtol=0, atol=1e-5)


def test_heterogeneous_export_keeps_the_non_preserving_edit(tiny_llama, tmp_path):
    """remove_heads changes the function: the export carries the edited model, not the original."""
    edited = heterogeneous(tiny_llama)
    back, _ = read_back(export_gguf(edited, tmp_path / "h.gguf", "f32", modelfile=False)["gguf"])
    assert (logits(back) - logits(tiny_llama.model)).abs().max() > 1e-3


def test_uniform_shapes_stay_llama_with_scalars(tiny_llama, tmp_path):
    edited = surgery.widen_ffn(tiny_llama, None, add=8)
    reader = gguf.GGUFReader(export_gguf(edited, tmp_path / "u.gguf", "f32", modelfile=False)["gguf"])
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.feed_forward_length") == 168
    assert field(reader, "llama.attention.head_count") == 4 and field(reader, "llama.attention.key_length") == 16


@pytest.mark.parametrize("edit", ["insert identity", "widen all", "insert + widen"])
def test_uniform_edits_read_back_by_transformers(tiny_llama, tmp_path, private_home, edit):
    ops = {
        "insert identity": lambda m: surgery.insert_layers(m, after=1, n=2),
        "widen all": lambda m: surgery.widen_ffn(m, None, add=24, init="random", seed=1),
        "insert + widen": lambda m: surgery.insert_layers(surgery.widen_ffn(m, None, add=8, init="split", noise=0.1), after=0, init="copy"),
    }
    edited = ops[edit](tiny_llama)
    path = export_gguf(edited, tmp_path / "t.gguf", "f32", modelfile=False)["gguf"]
    back = load(path, device="cpu", dtype="float32")  # transformers' GGUF reader underneath
    assert back.model.config.num_hidden_layers == len(blocks(edited.model))
    torch.testing.assert_close(logits(back.model), logits(edited.model), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_heterogeneous_smollm2_reads_back_exactly(smollm2, tmp_path):
    edited = surgery.remove_heads(surgery.widen_ffn(smollm2, "0,7", add=64, init="random"), {3: [3, 4, 5]})
    back, reader = read_back(export_gguf(edited, tmp_path / "s.gguf", "f32", modelfile=False)["gguf"])
    assert field(reader, "deci.attention.head_count")[2:5] == [9, 6, 9]
    ids = smollm2.tokenizer("It is a truth universally acknowledged, that a single man")["input_ids"]
    torch.testing.assert_close(logits(back, ids), logits(edited.model, ids), rtol=0, atol=1e-4)


def test_layers_with_different_head_sizes_are_refused(tiny_llama, tmp_path):
    tiny_llama.model.model.layers[1].self_attn.head_dim = 8  # layer 1 now reads its 64 features as 8 heads of 8
    with pytest.raises(MindsetError, match=r"one head size for all layers; this model's layers have head sizes \[8, 16\]"):
        export_gguf(tiny_llama, tmp_path / "x.gguf")
    assert not list(tmp_path.iterdir())
