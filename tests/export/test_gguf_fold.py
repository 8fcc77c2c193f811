"""Custom modules at export: folded into plain modules when they say how (`mindset_fold`), refused by name
otherwise. The modules here are small stand-ins written for the test (a per-head gate on o_proj's input,
a linear shim after the embeddings), following the custom-module contract of mindset.models.custom."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mindset.errors import MindsetError
from mindset.export import export_gguf
from mindset.models import load

IDS = [5, 17, 99, 3, 42, 8, 150, 77, 23, 64]


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


class HeadGate(nn.Module):
    """o_proj reading gated heads: o(x * g), g repeated over each head's features."""

    mindset_restorer = "test_gate"

    def __init__(self, o_proj: nn.Linear, gates: torch.Tensor, head_dim: int):
        super().__init__()
        self.o_proj, self.head_dim = o_proj, head_dim
        self.gates = nn.Parameter(gates)

    def forward(self, x):
        return self.o_proj(x * self.gates.repeat_interleave(self.head_dim))

    def mindset_fold(self):
        plain = nn.Linear(self.o_proj.in_features, self.o_proj.out_features, bias=False)
        plain.weight = nn.Parameter(self.o_proj.weight.detach() * self.gates.detach().repeat_interleave(self.head_dim))
        return plain


class EmbeddingShim(nn.Module):
    """Embeddings followed by a square linear map (identity at start); folds into one embedding table."""

    mindset_restorer = "test_shim"

    def __init__(self, embed: nn.Embedding, matrix: torch.Tensor):
        super().__init__()
        self.embed = embed
        self.matrix = nn.Parameter(matrix)

    def forward(self, ids):
        return self.embed(ids) @ self.matrix.T

    def mindset_fold(self):
        return nn.Embedding.from_pretrained(self.embed.weight.detach() @ self.matrix.detach().T, freeze=False)


class Unfoldable(nn.Module):
    """Wraps a module and adds a nonlinearity no weight can absorb."""

    mindset_restorer = "test_unfoldable"

    def __init__(self, inner: nn.Module, fold_returns_none: bool = False):
        super().__init__()
        self.inner = inner
        if fold_returns_none:
            self.mindset_fold = lambda: None

    def forward(self, x):
        return torch.tanh(self.inner(x))


def gated(loaded, layer: int = 1):
    attn = loaded.model.model.layers[layer].self_attn
    gates = torch.tensor([1.0, 0.25, 1.5, 0.0])
    attn.o_proj = HeadGate(attn.o_proj, gates, attn.head_dim)
    return loaded


def shimmed(loaded, seed: int = 0):
    inner = loaded.model.model.embed_tokens
    size = inner.weight.shape[1]
    matrix = torch.eye(size) + 0.05 * torch.randn(size, size, generator=torch.Generator().manual_seed(seed))
    loaded.model.model.embed_tokens = EmbeddingShim(inner, matrix)
    return loaded


def test_gates_and_shim_fold_into_the_exported_weights(tiny_llama, tmp_path, private_home):
    original = logits(tiny_llama.model)
    edited = shimmed(gated(tiny_llama))
    expected = logits(edited.model)
    assert (expected - original).abs().max() > 1e-3  # the custom modules change the function
    back = load(export_gguf(edited, tmp_path / "f.gguf", "f32", modelfile=False)["gguf"], device="cpu", dtype="float32")
    torch.testing.assert_close(logits(back.model), expected, rtol=0, atol=1e-4)
    assert not back.model.config.tie_word_embeddings  # the shim changed the embedding, not the tied head: output.weight is written


def test_folding_leaves_the_model_untouched(tiny_llama, tmp_path):
    edited = gated(tiny_llama)
    before = logits(edited.model)
    export_gguf(edited, tmp_path / "g.gguf", "f32", modelfile=False)
    assert isinstance(edited.model.model.layers[1].self_attn.o_proj, HeadGate)
    torch.testing.assert_close(logits(edited.model), before, rtol=0, atol=0)


def test_modules_that_cannot_fold_are_refused_by_name(tiny_llama, tmp_path):
    gated(tiny_llama, layer=0)  # foldable: not named
    layers = tiny_llama.model.model.layers
    layers[0].mlp = Unfoldable(layers[0].mlp)
    layers[1].mlp = Unfoldable(layers[1].mlp, fold_returns_none=True)
    with pytest.raises(MindsetError) as err:
        export_gguf(tiny_llama, tmp_path / "r.gguf", "f32", modelfile=False)
    message = str(err.value)
    assert "\n" not in message
    assert "model.layers.0.mlp (test_unfoldable), model.layers.1.mlp (test_unfoldable)" in message
    assert "o_proj" not in message and "no exact fold" in message
    assert not list(tmp_path.iterdir())


def test_memories_are_refused_with_the_way_back(tiny_llama, tmp_path):
    layer = tiny_llama.model.model.layers[1]
    layer.mlp = Unfoldable(layer.mlp)
    layer.mlp.mindset_restorer = "featural_memory"
    with pytest.raises(MindsetError, match=r"model\.layers\.1\.mlp \(featural_memory\).*memory_to_ffn"):
        export_gguf(tiny_llama, tmp_path / "m.gguf")
