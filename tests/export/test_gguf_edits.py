"""The real edit modules at GGUF export: trained head gates fold into o_proj, a trained embedding shim into the
embedding table (and the tied head), and layerwise feedback, which GGUF cannot express, is refused by name."""

from __future__ import annotations

import pytest
import torch

from mindset import surgery
from mindset.errors import MindsetError
from mindset.export import export_gguf
from mindset.models import load

IDS = [5, 17, 99, 3, 42, 8, 150, 77, 23, 64]


def logits(loaded):
    with torch.no_grad():
        return loaded.model(torch.tensor([IDS])).logits


def trained(loaded):
    """Move every gate and shim parameter off its start, as training would (fixed seed)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if name.endswith("gate_logits") or ".shim." in name or name.startswith("shim"):
                param.add_(torch.randn(param.shape, generator=generator) * 0.5)
    return loaded


def test_trained_gates_and_shim_fold_into_the_export(tiny_llama, tmp_path, private_home):
    edited = trained(surgery.embedding_shim(surgery.head_gates(tiny_llama, [0, 1]), rank=4))
    assert (logits(edited) - logits(tiny_llama)).abs().max() > 1e-3  # the modules change the function
    back = load(export_gguf(edited, tmp_path / "e.gguf", "f32", modelfile=False)["gguf"], device="cpu", dtype="float32")
    assert (logits(back) - logits(edited)).abs().max() < 1e-4


def test_gates_on_a_grown_layer_fold_too(tiny_llama, tmp_path, private_home):
    """Per-layer head counts (deci arch, which transformers cannot open) read back with the GGUF reader."""
    from tests.export.test_gguf_shapes import read_back

    edited = trained(surgery.add_heads(surgery.head_gates(tiny_llama), [1], 2, init="random"))
    model, _ = read_back(export_gguf(edited, tmp_path / "g.gguf", "f32", modelfile=False)["gguf"])
    with torch.no_grad():
        assert (model(torch.tensor([IDS])).logits - logits(edited)).abs().max() < 1e-4


def test_feedback_is_refused_by_name(tiny_llama, tmp_path):
    edited = surgery.layerwise_feedback(tiny_llama, [(0, 1)])
    with pytest.raises(MindsetError, match="mindset_feedback"):
        export_gguf(edited, tmp_path / "f.gguf", "f32", modelfile=False)
    assert not (tmp_path / "f.gguf").exists()
