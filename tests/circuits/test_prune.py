"""Structured pruning: the smaller model computes what the ablated original computes, and saves and loads."""

import copy

import pytest
import torch

from benchmarks.toy import letter_map, letter_map_suite
from mindset.circuits.ablation import ablated
from mindset.circuits.components import Component, blocks
from mindset.circuits.prune import Scores, attribution_scores, magnitude_scores, mlp_projections, prune
from mindset.errors import MindsetError

IDS = torch.tensor([[3, 44, 101, 7, 9, 200, 15, 61, 62, 63]])


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _zero_neurons(model, removed):
    """Hooks zeroing the given neurons' activations (the input of each MLP's output projection)."""
    handles = []
    for b, gone in zip(blocks(model), removed):
        def hook(module, args, gone=gone):
            x = args[0].clone()
            x[..., gone] = 0
            return (x,)
        handles.append(mlp_projections(b.mlp)[1].register_forward_pre_hook(hook))
    return handles


def test_pruned_llama_equals_the_ablated_original_and_round_trips(tiny_llama, tmp_path):
    from mindset.models import load, save

    original = copy.deepcopy(tiny_llama.model)
    scores = Scores([torch.tensor([0.3, 0.1, 0.9, 0.2]), torch.tensor([0.5, 0.6, 0.1, 0.2])],
                    [torch.linspace(0, 1, 160), torch.linspace(1, 0, 160)])
    before = sum(p.numel() for p in tiny_llama.model.parameters())
    prune(tiny_llama, scores, head_fraction=0.5, neuron_fraction=0.25)
    after = sum(p.numel() for p in tiny_llama.model.parameters())
    assert tiny_llama.model.config.num_attention_heads == 2 and tiny_llama.model.config.intermediate_size == 120
    assert after == before - 2 * 2 * (2 * 64 * 16) - 2 * (3 * 64 * 40)  # per layer: 2 heads (q rows + o cols), 40 neurons
    # layer 0 keeps heads 0 (group 0: 0.3 > 0.1) and 2 (group 1: 0.9 > 0.2); layer 1 keeps 1 and 3
    removed_heads = [Component("", "head", 0, 1), Component("", "head", 0, 3), Component("", "head", 1, 0), Component("", "head", 1, 2)]
    removed_neurons = [torch.arange(40), torch.arange(120, 160)]
    handles = _zero_neurons(original, removed_neurons)
    with ablated(original, removed_heads, "zero"):
        expected = _logits(original)
    for h in handles:
        h.remove()
    torch.testing.assert_close(_logits(tiny_llama.model), expected, atol=1e-5, rtol=1e-4)
    folder = save(tiny_llama, tmp_path / "pruned")
    again = load(str(folder), device="cpu", dtype="float32")
    assert sum(p.numel() for p in again.model.parameters()) == after
    torch.testing.assert_close(_logits(again.model), expected, atol=1e-5, rtol=1e-4)


def test_gpt2_prunes_neurons_not_heads(tiny_gpt2):
    scores = magnitude_scores(tiny_gpt2.model)
    original = copy.deepcopy(tiny_gpt2.model)
    prune(tiny_gpt2, scores, neuron_fraction=0.5)
    assert tiny_gpt2.model.config.n_inner == 128
    removed = [torch.sort(torch.topk(-s, 128).indices).values for s in scores.neurons]
    handles = _zero_neurons(original, removed)
    expected = _logits(original)
    for h in handles:
        h.remove()
    torch.testing.assert_close(_logits(tiny_gpt2.model), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(MindsetError, match="fuses them"):
        prune(tiny_gpt2, scores, head_fraction=0.5)


def test_bad_fractions(tiny_llama):
    scores = magnitude_scores(tiny_llama.model)
    with pytest.raises(MindsetError, match="removes no head"):
        prune(tiny_llama, scores, head_fraction=0.1)
    with pytest.raises(MindsetError, match=r"\[0, 1\)"):
        prune(tiny_llama, scores, neuron_fraction=1.0)


def test_attribution_scores_follow_the_suite(tiny_llama):
    suite = letter_map_suite(letter_map(0))
    ids = list(range(40, 140))
    scores = attribution_scores(tiny_llama, [suite], ids, window=50)
    assert [s.shape for s in scores.heads] == [torch.Size([4])] * 2
    assert [s.shape for s in scores.neurons] == [torch.Size([160])] * 2
    total = sum(float(s.sum()) for s in scores.heads)
    assert total == pytest.approx(1.0, rel=1e-5) and all((s >= 0).all() for s in scores.neurons)
    only_text = attribution_scores(tiny_llama, [], ids, window=50)
    assert not torch.allclose(only_text.neurons[0], scores.neurons[0])


def test_pruning_a_gated_model_keeps_each_head_with_its_gate(tiny_llama, tmp_path):
    """circuits.prune removes heads from an o_proj that carries head gates: the gates follow (a defect: the
    gated forward used to fail on the shrunk input), and the result equals the gated original with the
    removed heads zeroed."""
    from mindset.models import load, save
    from mindset.surgery import head_gates

    gated = head_gates(tiny_llama)
    with torch.no_grad():
        for i, b in enumerate(blocks(gated.model)):
            b.out_proj.gate_logits.copy_(torch.tensor([0.5, -1.0, 1.5, -0.2]) * (i + 1))
    original = copy.deepcopy(gated.model)
    scores = Scores([torch.tensor([0.3, 0.1, 0.9, 0.2]), torch.tensor([0.5, 0.6, 0.1, 0.2])], [torch.ones(160), torch.ones(160)])
    prune(gated, scores, head_fraction=0.5)
    assert [b.out_proj.gate_logits.tolist() for b in blocks(gated.model)] == [[0.5, 1.5], pytest.approx([-2.0, -0.4])]
    removed = [Component("", "head", 0, 1), Component("", "head", 0, 3), Component("", "head", 1, 0), Component("", "head", 1, 2)]
    with ablated(original, removed, "zero"):
        expected = _logits(original)
    torch.testing.assert_close(_logits(gated.model), expected, atol=1e-5, rtol=1e-4)
    again = load(str(save(gated, tmp_path / "pruned")), device="cpu", dtype="float32")
    torch.testing.assert_close(_logits(again.model), expected, atol=1e-5, rtol=1e-4)
