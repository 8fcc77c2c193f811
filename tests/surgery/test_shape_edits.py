"""Architecture edits: function-preserving at their preserving inits, live (not short-cut) otherwise,
generation with a KV cache equal to re-running the sequence, and bad input as one-line errors."""

from __future__ import annotations

import pytest
import torch

from mindset import surgery
from mindset.errors import MindsetError
from mindset.models.anatomy import blocks
from mindset.models.shapes import set_projection, weight_oi

IDS = torch.tensor([[5, 17, 99, 3, 42, 8, 150, 77, 23, 64]])

PRESERVING = {
    "widen zero": lambda m: surgery.widen_ffn(m, "0", add=7),
    "widen random": lambda m: surgery.widen_ffn(m, [1], width=300, init="random"),
    "widen split": lambda m: surgery.widen_ffn(m, None, add=200, init="split", seed=3),
    "add_heads zero": lambda m: surgery.add_heads(m, [0], 2),
    "add_heads random": lambda m: surgery.add_heads(m, None, 4, init="random"),
    "insert identity": lambda m: surgery.insert_layers(m, after=0, n=2),
}
CHANGING = {
    "widen split noise": lambda m: surgery.widen_ffn(m, [0], add=50, init="split", noise=0.5),
    "widen random noise": lambda m: surgery.widen_ffn(m, [1], add=50, init="random", noise=1.0),  # output columns drawn too
    "insert copy": lambda m: surgery.insert_layers(m, after=1, init="copy"),
    "narrow": lambda m: surgery.narrow_ffn(m, [1], width=40),
    "remove_heads": lambda m: surgery.remove_heads(m, {0: [1, 3]}),
    "drop": lambda m: surgery.drop_layers(m, [0]),
    "duplicate": lambda m: surgery.duplicate_layers(m, "1"),
    "move": lambda m: surgery.move_layer(m, 1, 0),
}


def logits(loaded, ids=IDS):
    with torch.no_grad():
        return loaded.model(ids).logits


@pytest.mark.parametrize("op", PRESERVING)
def test_preserving_edits_keep_logits(tiny, op):
    before = logits(tiny)
    edited = PRESERVING[op](tiny)
    assert edited.model is not tiny.model  # a pure function: the original is untouched
    assert torch.allclose(logits(tiny), before)
    assert (logits(edited) - before).abs().max() < 1e-5


@pytest.mark.parametrize("op", CHANGING)
def test_changing_edits_change_logits(tiny, op):
    before = logits(tiny)
    edited = CHANGING[op](tiny)
    assert (logits(edited) - before).abs().max() > 1e-3


def test_widened_neurons_are_live(tiny):
    """The zero-initialized neurons are in the forward pass: giving them weights changes the logits."""
    edited = surgery.widen_ffn(tiny, [0], add=8)
    ffn = blocks(edited.model)[0].ffn
    assert ffn.d_ff == blocks(tiny.model)[0].ffn.d_ff + 8
    before = logits(edited)
    with torch.no_grad():
        for proj in ffn.inputs:
            w = weight_oi(proj).clone()
            w[-8:] = torch.randn(8, w.shape[1], generator=torch.Generator().manual_seed(1))  # not constant: LN output sums to 0
            set_projection(proj, w, None if proj.bias is None else proj.bias.detach())
        down = weight_oi(ffn.down).clone()
        down[:, -8:] = torch.randn(down.shape[0], 8, generator=torch.Generator().manual_seed(2))
        set_projection(ffn.down, down, None if ffn.down.bias is None else ffn.down.bias.detach())
    assert (logits(edited) - before).abs().max() > 1e-3


def test_added_heads_are_live(tiny):
    edited = surgery.add_heads(tiny, [1], 2 if "gpt2" in tiny.name else 4, init="random")
    att = blocks(edited.model)[1].attention
    assert att.n_heads == blocks(tiny.model)[1].n_heads + (2 if "gpt2" in tiny.name else 4)
    before = logits(edited)
    with torch.no_grad():
        o = weight_oi(att.o).clone()
        o[:, -att.head_dim:] = torch.randn(o.shape[0], att.head_dim, generator=torch.Generator().manual_seed(3))
        set_projection(att.o, o, None if att.o.bias is None else att.o.bias.detach())
    assert (logits(edited) - before).abs().max() > 1e-3


def test_split_keeps_each_neuron_sum(tiny_llama):
    edited = surgery.widen_ffn(tiny_llama, [0], width=320, init="split")
    old, new = blocks(tiny_llama.model)[0].ffn, blocks(edited.model)[0].ffn
    assert new.d_ff == 320  # 160 doubled: every neuron once copied, each half
    assert torch.allclose(weight_oi(new.down)[:, :160] * 2, weight_oi(old.down))


def test_narrow_keeps_the_highest_scored_neurons(tiny):
    d_ff = blocks(tiny.model)[0].ffn.d_ff
    scores = torch.zeros(d_ff)
    scores[[3, 10, 7]] = 1.0
    edited = surgery.narrow_ffn(tiny, [0], width=3, scores={0: scores})
    old, new = blocks(tiny.model)[0].ffn, blocks(edited.model)[0].ffn
    assert torch.equal(weight_oi(new.down), weight_oi(old.down)[:, [3, 7, 10]])
    assert blocks(edited.model)[1].ffn.d_ff == d_ff  # per layer: layer 1 keeps its width


def test_narrow_reads_circuits_scores_objects(tiny_llama):
    class Scores:  # the shape of circuits.prune.Scores
        heads = [torch.ones(4), torch.ones(4)]
        neurons = [torch.arange(160.0), torch.arange(160.0)]

    edited = surgery.narrow_ffn(tiny_llama, None, width=10, scores=Scores())
    assert torch.equal(weight_oi(blocks(edited.model)[1].ffn.down), weight_oi(blocks(tiny_llama.model)[1].ffn.down)[:, 150:])


def test_remove_heads_is_per_layer(tiny_llama):
    edited = surgery.remove_heads(tiny_llama, {0: [1, 3], "L1": [2, 3]})
    shapes = [(b.n_heads, b.attention.n_kv_heads) for b in blocks(edited.model)]
    assert shapes == [(2, 2), (2, 1)]  # layer 0 keeps one head per group, layer 1 drops a whole group


def test_depth_edits_renumber_layers_and_cache_slots(tiny_llama):
    edited = surgery.insert_layers(tiny_llama, after=1, n=2)
    assert edited.model.config.num_hidden_layers == 4
    assert [b.attn.layer_idx for b in blocks(edited.model)] == [0, 1, 2, 3]
    moved = surgery.move_layer(edited, 3, 0)
    assert [b.attn.layer_idx for b in blocks(moved.model)] == [0, 1, 2, 3]
    assert [b.attn.layer_idx for b in blocks(edited.model)] == [0, 1, 2, 3]  # the input is left as it was


def test_layer_types_follow_the_layers(tiny_llama):
    tiny_llama.model.config.layer_types = ["full_attention", "sliding_attention"]
    edited = surgery.duplicate_layers(tiny_llama, [1])
    assert edited.model.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]


EDITS_FOR_GENERATION = {
    "widen": lambda m: surgery.widen_ffn(m, [1], add=30, init="random"),
    "narrow": lambda m: surgery.narrow_ffn(m, [0], width=32),
    "add_heads": lambda m: surgery.add_heads(m, [0], 2),
    "remove_heads": lambda m: surgery.remove_heads(m, {1: [0, 2]}),
    "insert copy": lambda m: surgery.insert_layers(m, after=0, init="copy"),
    "duplicate+move": lambda m: surgery.move_layer(surgery.duplicate_layers(m, [0, 1]), 3, 0),
}


@pytest.mark.parametrize("op", EDITS_FOR_GENERATION)
def test_cached_generation_equals_full_reforward(tiny, op):
    edited = EDITS_FOR_GENERATION[op](tiny)
    prompt = IDS[:, :5]
    with torch.no_grad():
        out = edited.model.generate(prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False, use_cache=True,
                                    pad_token_id=0)
        for t in range(prompt.shape[1], out.shape[1]):
            assert edited.model(out[:, :t]).logits[0, -1].argmax() == out[0, t]


# --- bad input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda m: surgery.widen_ffn(m, [0], width=0), r"width=0: an FFN width must be 1 or more"),
    (lambda m: surgery.widen_ffn(m, [0], width=100), r"width=100: layer 0's FFN already has 160 neurons; widen to 161 or more"),
    (lambda m: surgery.widen_ffn(m, [0], add=-2), r"add=-2"),
    (lambda m: surgery.widen_ffn(m, [0], add=2, width=200), r"exactly one of add"),
    (lambda m: surgery.widen_ffn(m, [0], add=2, init="net2net"), r"unknown init 'net2net'.*zero, split, random"),
    (lambda m: surgery.widen_ffn(m, [5], add=2), r"layer index 5 is out of range: this model has 2 layers \(0-1\)"),
    (lambda m: surgery.narrow_ffn(m, [0], width=160), r"width=160: layer 0's FFN has 160 neurons; narrow to 1-159"),
    (lambda m: surgery.narrow_ffn(m, [0], width=0), r"narrow to 1-159"),
    (lambda m: surgery.narrow_ffn(m, [0, 1], width=10, scores={0: torch.ones(160)}), r"no entry for layer 1"),
    (lambda m: surgery.narrow_ffn(m, [0], width=10, scores={0: torch.ones(7)}), r"have 7 entries; its FFN has 160"),
    (lambda m: surgery.narrow_ffn(m, [0], width=10, scores="attribution"), r"attribution_scores"),
    (lambda m: surgery.add_heads(m, [0], 1), r"n=1: layer 0 groups 2 query heads per kv head.*multiple of 2"),
    (lambda m: surgery.add_heads(m, [0], 0), r"n=0"),
    (lambda m: surgery.remove_heads(m, {0: [0, 1, 2, 3]}), r"without heads"),
    (lambda m: surgery.remove_heads(m, {0: [0]}), r"leaves kv groups of \[1, 2\] query heads"),
    (lambda m: surgery.remove_heads(m, {0: [4]}), r"head 4 is out of range: layer 0 has 4 heads \(0-3\)"),
    (lambda m: surgery.remove_heads(m, {2: [0]}), r"layer index 2 is out of range"),
    (lambda m: surgery.remove_heads(m, {"0-1": [0]}), r"one layer per key"),
    (lambda m: surgery.remove_heads(m, {0: ["a"]}), r"cannot read heads \['a'\] for layer 0"),
    (lambda m: surgery.remove_heads(m, {}), r"needs heads=\{layer: \[head, ...\]\}"),
    (lambda m: surgery.insert_layers(m, after=2), r"after=2 is out of range: insert after a layer 0-1"),
    (lambda m: surgery.insert_layers(m, after=0, n=0), r"n=0"),
    (lambda m: surgery.insert_layers(m, after=0, init="zero"), r"unknown init 'zero'.*identity, copy"),
    (lambda m: surgery.drop_layers(m, "0-1"), r"would leave no layers"),
    (lambda m: surgery.move_layer(m, 0, 2), r"layer index 2 is out of range"),
])  # fmt: skip
def test_bad_input_is_a_one_line_error(tiny_llama, call, message):
    before = logits(tiny_llama)
    with pytest.raises(MindsetError, match=message) as info:
        call(tiny_llama)
    assert "\n" not in str(info.value)
    assert torch.equal(logits(tiny_llama), before)  # nothing half-done to the original


def test_inplace_edits_change_the_given_model(tiny_llama):
    model = tiny_llama.model
    assert surgery.widen_ffn(model, [0], add=3, inplace=True) is model
    assert surgery.insert_layers(model, after=0, inplace=True) is model
    assert [b.ffn.d_ff for b in blocks(model)] == [163, 163, 160]


def test_narrow_takes_circuits_attribution_scores_of_an_edited_model(tiny_llama):
    """Attribution comes from circuits (surgery may not import it); its Scores plug straight into narrow_ffn,
    also on a model whose layers already differ."""
    from mindset.circuits.prune import attribution_scores

    uneven = surgery.widen_ffn(tiny_llama, [0], add=6, init="random")
    scores = attribution_scores(uneven, text_ids=list(range(40)), window=16)
    narrowed = surgery.narrow_ffn(uneven, None, width=100, scores=scores)
    keep = torch.topk(scores.neurons[0].float(), 100).indices.sort().values
    assert torch.equal(weight_oi(blocks(narrowed.model)[0].ffn.down), weight_oi(blocks(uneven.model)[0].ffn.down)[:, keep])
