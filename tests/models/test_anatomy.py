"""models.anatomy, tested once: layers, projections and layouts, heads, names <-> paths, bad input.

Each architecture's expected facts are what its config says (tiny models: mindset.models.tiny; SmolLM2-135M:
its published config); the tests check that anatomy finds the modules that carry them, and that the
numbers agree with the weights' shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaModel, PretrainedConfig

from mindset.errors import MindsetError
from mindset.models import anatomy
from mindset.models.anatomy import blocks, decoder_layers, in_features, is_conv1d, layers_path, n_layers, out_features
from mindset.models.names import component_at, component_parameters, component_path, list_components, parse_component, parse_layers, select_parameters


@dataclass
class Expected:
    layers: int
    layers_path: str
    attn: str  # child name of the attention block in a layer
    mlp: str
    embed: str
    head: str
    layout: str
    conv1d: bool
    fused: bool
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    hidden: int


EXPECTED = {
    "tiny-llama": Expected(2, "model.layers", "self_attn", "mlp", "model.embed_tokens", "lm_head", "gated", False, False, 4, 2, 16, 160, 64),
    "tiny-gpt2": Expected(2, "transformer.h", "attn", "mlp", "transformer.wte", "lm_head", "ungated", True, True, 4, 4, 16, 256, 64),
    "smollm2": Expected(30, "model.layers", "self_attn", "mlp", "model.embed_tokens", "lm_head", "gated", False, False, 9, 3, 64, 1536, 576),
}


@pytest.fixture(params=["tiny-llama", "tiny-gpt2", pytest.param("smollm2", marks=pytest.mark.slow)])
def case(request):
    """(HF model, expected facts) for each architecture."""
    if request.param == "smollm2":
        loaded = request.getfixturevalue("smollm2")
    else:
        from mindset.models import load

        loaded = load(request.param, device="cpu", dtype="float32")
    return loaded.model, EXPECTED[request.param]


def test_layers_are_found(case):
    model, want = case
    assert n_layers(model) == want.layers
    assert layers_path(model) == want.layers_path
    assert len(decoder_layers(model)) == want.layers
    found = blocks(model)
    assert [b.index for b in found] == list(range(want.layers))
    assert [b.path for b in found] == [f"{want.layers_path}.{i}" for i in range(want.layers)]
    modules = dict(model.named_modules())
    for b in found:
        assert modules[b.path] is b.layer
        assert modules[b.attn_path] is b.attn and b.attn_path == f"{b.path}.{want.attn}"
        assert modules[b.mlp_path] is b.mlp and b.mlp_path == f"{b.path}.{want.mlp}"


def test_projections_layouts_and_heads(case):
    model, want = case
    for b in blocks(model):
        a, f = b.attention, b.ffn
        assert (a.n_heads, a.n_kv_heads, a.head_dim) == (want.n_heads, want.n_kv_heads, want.head_dim)
        assert a.fused == want.fused
        assert in_features(a.o) == a.n_heads * a.head_dim and out_features(a.o) == want.hidden
        if a.fused:
            assert a.q is None and out_features(a.qkv) == 3 * a.n_heads * a.head_dim
        else:
            assert out_features(a.q) == a.n_heads * a.head_dim
            assert out_features(a.k) == out_features(a.v) == a.n_kv_heads * a.head_dim
        assert f.layout == want.layout and f.conv1d == want.conv1d and is_conv1d(f.up) == want.conv1d
        assert f.d_ff == want.d_ff == out_features(f.up) == in_features(f.down)
        assert (f.gate is not None) == (want.layout == "gated")
        assert f.inputs == ([f.gate, f.up] if f.gate is not None else [f.up])
        # the weights' shapes say the same: Linear stores (out, in), Conv1D (in, out)
        assert tuple(f.down.weight.shape) == ((want.d_ff, want.hidden) if want.conv1d else (want.hidden, want.d_ff))


def test_names_and_paths_round_trip(case):
    model, want = case
    assert component_path(model, "embed") == want.embed and component_path(model, "head") == want.head
    for name in ("embed", "head"):
        assert component_at(model, component_path(model, name)).name == name
    for granularity in ("layer", "attn", "mlp"):
        for comp in list_components(model, granularity):
            path = component_path(model, comp.name)
            assert component_at(model, path) == comp
            assert parse_component(model, comp.name) == comp
    last = want.layers - 1
    assert component_path(model, f"L{last}") == f"{want.layers_path}.{last}"
    assert component_path(model, f"L{last}.mlp") == f"{want.layers_path}.{last}.{want.mlp}"
    # a head lives in its attention block: its path is the block's, and the block's path names the block
    head = f"L{last}.H{want.n_heads - 1}"
    assert component_path(model, head) == component_path(model, f"L{last}.attn")
    assert component_at(model, component_path(model, head)).name == f"L{last}.attn"
    assert [c.name for c in list_components(model, "head")][:2] == ["L0.H0", "L0.H1"]
    assert len(list_components(model, "head")) == want.layers * want.n_heads


def test_component_parameters_and_selection(case):
    model, want = case
    names = [n for n, _ in model.named_parameters()]
    mlp = component_parameters(model, "L0.mlp")
    assert mlp and all(n.startswith(f"{want.layers_path}.0.{want.mlp}.") for n in mlp)
    assert set(component_parameters(model, "L0.H1")) == set(component_parameters(model, "L0.attn"))
    assert set(component_parameters(model, "L0")) == {n for n in names if n.startswith(f"{want.layers_path}.0.")}
    chosen = select_parameters(model, ["L0.mlp", f"{want.layers_path}.*.{want.attn}.*"])
    assert chosen == set(mlp) | {n for n in names if f".{want.attn}." in n}
    assert component_parameters(model, "embed") == [f"{want.embed}.weight"]
    # all three are tied: training the head trains the embedding matrix it shares
    assert model.config.tie_word_embeddings and component_parameters(model, "head") == [f"{want.embed}.weight"]
    assert select_parameters(model, ["head"]) == {f"{want.embed}.weight"}


@pytest.mark.parametrize("name, match", [
    ("L2", r"the model has 2 layers \(L0 to L1\)"),
    ("L0.H4", r"layer 0 has 4 heads \(H0 to H3\)"),
    ("layer3.head2", "is not a component name"),
    ("L1.ffn", "is not a component name"),
    ("", "is not a component name"),
])  # fmt: skip
def test_bad_component_names(tiny_llama, name, match):
    with pytest.raises(MindsetError, match=match):
        parse_component(tiny_llama.model, name)


def test_bad_selections_and_paths(tiny_llama):
    model = tiny_llama.model
    with pytest.raises(MindsetError, match=r"'\*memory\*' matches no parameter"):
        select_parameters(model, ["*memory*"])
    with pytest.raises(MindsetError, match="the model has 2 layers"):
        select_parameters(model, ["L5.mlp"])
    with pytest.raises(MindsetError, match="is not the path of a layer"):
        component_at(model, "model.layers.0.mlp.up_proj")
    with pytest.raises(MindsetError, match="unknown granularity"):
        list_components(model, "neurons")  # "neuron" is one since issue 18: L0.mlp.N17
    assert component_path(model, "L0.mlp.N17") == "model.layers.0.mlp" and len(list_components(model, "neuron")) == 2 * 160
    with pytest.raises(MindsetError, match="has 160 neurons"):
        parse_component(model, "L1.mlp.N160")


@pytest.mark.parametrize("spec, want", [
    (3, [3]), ([4, 1], [4, 1]), ("0-3,8", [0, 1, 2, 3, 8]), ("L4,L12", [4, 12]), ("L0-L2", [0, 1, 2]),
    (" 5 , 6 ", [5, 6]), (["L1", 2], [1, 2]), ("10-12", [10, 11, 12]),
])  # fmt: skip
def test_layer_specs(spec, want):
    assert parse_layers(spec) == want


@pytest.mark.parametrize("spec, match", [
    ("0-5", r"layer index 4 is out of range: this model has 4 layers \(0-3\)"),
    ([-1], r"layer index -1 is out of range"),
    ("4,x", "cannot read layers '4,x'"),
    ("3-1", "runs backwards"),
    ([], "no layers given"),
    ("", "no layers given"),
    (True, "cannot read layers True"),
    ([1.5j], "cannot read layers"),
])  # fmt: skip
def test_bad_layer_specs(spec, match):
    with pytest.raises(MindsetError, match=match) as info:
        parse_layers(spec, 4)
    assert "\n" not in str(info.value)


class _VisionTower(nn.Module):
    """Two blocks without attention, before the language model in module order: not the decoder layers."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])


class _Multimodal(nn.Module):
    """A wrapper the way multimodal models are built: config.text_config describes the language model."""

    def __init__(self):
        super().__init__()
        text = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1)
        self.config = PretrainedConfig()
        self.config.text_config = text
        self.vision_tower = _VisionTower()
        self.language_model = LlamaModel(text)


def test_a_multimodal_config_reads_its_text_config():
    model = _Multimodal()
    assert anatomy.text_config(model.config) is model.config.text_config
    assert n_layers(model) == 2
    assert layers_path(model) == "language_model.layers"
    b = blocks(model)[1]
    assert (b.n_heads, b.attention.n_kv_heads, b.head_dim, b.ffn.d_ff, b.ffn.layout) == (4, 1, 8, 48, "gated")
    assert component_path(model, "L1.mlp") == "language_model.layers.1.mlp"


def test_a_pruned_layer_reports_the_heads_it_has(tiny_llama):
    """Head counts come from the weights: a layer narrowed to 2 heads says 2, whatever the config says."""
    model = tiny_llama.model
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        attn.o_proj = nn.Linear(2 * 16, 64, bias=False)
    assert blocks(model)[0].n_heads == 2 and blocks(model)[1].n_heads == 4


def test_a_model_without_decoder_layers_is_an_error(tiny_llama):
    model = tiny_llama.model
    model.config.num_hidden_layers = 3
    with pytest.raises(MindsetError, match="cannot find the decoder layers of this LlamaForCausalLM"):
        blocks(model)


def test_an_untied_head_owns_its_own_matrix():
    from transformers import LlamaForCausalLM

    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=4, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    assert component_parameters(model, "head") == ["lm_head.weight"]
    assert component_parameters(model, "embed") == ["model.embed_tokens.weight"]
