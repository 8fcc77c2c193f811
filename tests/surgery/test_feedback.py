"""Layerwise feedback: zero-initialised it keeps the logits; trained, it is exactly the two-pass definition
(pass 1 without feedback and without grad, pass 2 with rms(x_i) W u_j(t - 1), u_j = h_j / rms(h_j), added to layer i's input x_i), and cached
generation (HF generate, mindset.chat's decode loop, chunked prefill, cache edits) equals re-running the
full sequence."""

from __future__ import annotations

import time

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from mindset import surgery
from mindset.chat.generation import stream_tokens
from mindset.chat.sampling import SamplingParams
from mindset.errors import MindsetError
from mindset.models import load, save
from mindset.models.anatomy import decoder_layers
from mindset.models.custom import SURGERY_FILE, custom_modules
from mindset.surgery.feedback import LayerwiseFeedback

IDS = torch.tensor([[5, 17, 99, 3, 42, 8, 150, 77, 23, 64, 9, 31]])
FOUR_LAYER_PAIRS = [(0, 3), (1, 2), (0, 2)]


def logits(model, ids=IDS, **kwargs):
    with torch.no_grad():
        return model(ids, **kwargs).logits


def randomize(edited, scale=0.3, seed=1):
    """Non-zero projections: what training would leave, drawn at random."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in edited.model.mindset_feedback.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
    return edited


def four_layers(tiny):
    return surgery.duplicate_layers(tiny, "0-1")  # a real 4-layer model, so pairs can span and share layers


def rms(v):
    return (v.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()


def two_pass_by_hand(plain, pairs, projections, ids, relative=True):
    """The definition, computed on the model without feedback with hooks of its own: pass 1's layer-j
    outputs, shifted one position (zeros at t = 0), normalised, projected, scaled to rms(layer i's input)
    and added to it (relative=False: the raw W h_j(t - 1) of folders saved before the scaling)."""
    layers = decoder_layers(plain)
    states, handles = {}, []
    for j in {j for _, j in pairs}:
        handles.append(layers[j].register_forward_hook(lambda m, a, out, j=j: states.__setitem__(j, out[0] if isinstance(out, tuple) else out)))
    logits(plain, ids, use_cache=False)
    for h in handles:
        h.remove()
    shifted = {j: torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1) for j, h in states.items()}
    unit = {j: h / rms(h) if relative else h for j, h in shifted.items()}  # u_j = h_j / rms(h_j), 0 at t = 0
    for i in {i for i, _ in pairs}:
        add = sum(projections[f"{i}_{j}"](unit[j]) for ii, j in pairs if ii == i)
        scale = rms if relative else (lambda x: 1.0)
        handles.append(layers[i].register_forward_pre_hook(lambda m, args, add=add, scale=scale: (args[0] + scale(args[0]) * add, *args[1:])))
    try:
        return logits(plain, ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()


# --- function preserved at zero init, changed otherwise ----------------------------------------------------

def test_zero_init_keeps_logits(tiny):
    edited = surgery.layerwise_feedback(tiny, [(0, 1)])
    assert torch.allclose(logits(edited.model), logits(tiny.model), atol=1e-5, rtol=0)
    assert surgery.feedback_pairs(edited) == [(0, 1)] and surgery.feedback_pairs(tiny) == []  # the input is untouched


@pytest.mark.parametrize("rank", [None, 8])
def test_zero_init_keeps_logits_with_several_pairs(tiny, rank):
    base = four_layers(tiny)
    edited = surgery.layerwise_feedback(base, FOUR_LAYER_PAIRS, rank=rank)
    assert torch.allclose(logits(edited.model), logits(base.model), atol=1e-5, rtol=0)


def test_nonzero_projections_change_logits_but_not_the_first_position(tiny):
    edited = randomize(surgery.layerwise_feedback(tiny, [(0, 1)]))
    before, after = logits(tiny.model), logits(edited.model)
    assert (after[:, 1:] - before[:, 1:]).abs().max() > 1e-2
    assert torch.allclose(after[:, 0], before[:, 0], atol=1e-5, rtol=0)  # h_j(-1) = 0: nothing fed back at t = 0


@pytest.mark.parametrize("rank", [None, 8])
def test_forward_is_the_two_pass_definition(tiny, rank):
    base = four_layers(tiny)
    edited = randomize(surgery.layerwise_feedback(base, FOUR_LAYER_PAIRS, rank=rank))
    expected = two_pass_by_hand(base.model, FOUR_LAYER_PAIRS, edited.model.mindset_feedback.projections, IDS)
    assert torch.allclose(logits(edited.model, use_cache=False), expected, atol=1e-5, rtol=0)
    assert torch.allclose(logits(edited.model), expected, atol=1e-5, rtol=0)  # with the cache the model builds itself


def scaled_output(layer, factor):
    """A forward hook multiplying a decoder layer's output by `factor` (in pass 1 and pass 2 alike)."""
    def hook(module, args, out):
        return (out[0] * factor, *out[1:]) if isinstance(out, tuple) else out * factor
    return layer.register_forward_hook(hook)


def test_the_fed_term_does_not_grow_with_layer_js_output(tiny):
    """The defect behind the first feedback sweep: W h_j(t - 1) grew with h_j (the residual stream of a late
    layer, 30-100x the embedding layer 0 reads) until it drowned layer i's input. Now layer j = the last layer
    scaled by 1000 changes nothing (the final norm and u_j = h_j / rms(h_j) both ignore the scale); under the
    raw definition the same scaling moves the logits."""
    base = four_layers(tiny)
    edited = randomize(surgery.layerwise_feedback(base, [(0, 3)]))
    last = decoder_layers(edited.model)[3]
    before = logits(edited.model)
    handle = scaled_output(last, 1000.0)
    try:
        assert torch.allclose(logits(edited.model), before, atol=1e-4, rtol=1e-4)
        handle.remove()
        edited.model.mindset_feedback.relative = False  # the old, raw fed term
        raw = logits(edited.model)
        handle = scaled_output(last, 1000.0)
        assert (logits(edited.model) - raw).abs().max() > 1.0
    finally:
        handle.remove()


def test_copies_keep_their_own_projections(tiny):
    """inplace=False deep-copies the model; the copy's hooks must drive the copy's projections, not the original's."""
    base = four_layers(tiny)
    first = surgery.layerwise_feedback(base, [(0, 3)])
    second = randomize(surgery.layerwise_feedback(first, [(1, 2)]))
    assert surgery.feedback_pairs(first) == [(0, 3)] and surgery.feedback_pairs(second) == [(0, 3), (1, 2)]
    assert torch.allclose(logits(first.model), logits(base.model), atol=1e-5, rtol=0)
    assert not torch.allclose(logits(second.model), logits(base.model), atol=1e-3)


# --- cached generation equals the full re-forward -----------------------------------------------------------

def full_reforward_greedy(model, ids, n):
    for _ in range(n):
        ids = torch.cat([ids, logits(model, ids, use_cache=False)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def test_hf_greedy_generation_with_cache_equals_full_reforward(tiny):
    edited = randomize(surgery.layerwise_feedback(tiny, [(0, 1)]))
    with torch.no_grad():
        cached = edited.model.generate(IDS, max_new_tokens=10, do_sample=False, use_cache=True)
    assert torch.equal(cached, full_reforward_greedy(edited.model, IDS, 10))
    assert not torch.equal(cached, full_reforward_greedy(tiny.model, IDS, 10))  # the feedback shapes what is generated


def test_each_cached_step_has_the_full_forwards_logits(tiny):
    base = four_layers(tiny)
    edited = randomize(surgery.layerwise_feedback(base, FOUR_LAYER_PAIRS))
    cache, ids = DynamicCache(config=edited.model.config), IDS[:, :5]
    step = logits(edited.model, ids, past_key_values=cache, use_cache=True)[:, -1]
    for _ in range(8):
        assert torch.allclose(step, logits(edited.model, ids, use_cache=False)[:, -1], atol=1e-4, rtol=0)
        token = step.argmax(-1, keepdim=True)
        ids = torch.cat([ids, token], dim=1)
        step = logits(edited.model, token, past_key_values=cache, use_cache=True)[:, -1]


def test_mindset_chat_decode_loop_equals_full_reforward(tiny):
    edited = randomize(surgery.layerwise_feedback(tiny, [(0, 1)]))
    prompt = IDS[0].tolist()
    tokens = list(stream_tokens(edited.model, prompt, SamplingParams(max_new_tokens=9), stop_ids=[], max_new_tokens=9))
    assert tokens == full_reforward_greedy(edited.model, IDS, 9)[0, len(prompt) :].tolist()


def test_chunked_prefill_cropped_and_repeated_caches_stay_exact(tiny):
    edited = randomize(surgery.layerwise_feedback(tiny, [(0, 1)]))
    whole = logits(edited.model, use_cache=False)
    cache = DynamicCache(config=edited.model.config)
    first = logits(edited.model, IDS[:, :7], past_key_values=cache, use_cache=True)
    rest = logits(edited.model, IDS[:, 7:], past_key_values=cache, use_cache=True)
    assert torch.allclose(torch.cat([first, rest], dim=1), whole, atol=1e-5, rtol=0)
    cache.crop(-3)  # assisted decoding's rollback: the fed-back states roll back with it
    again = logits(edited.model, IDS[:, 9:], past_key_values=cache, use_cache=True)
    assert torch.allclose(again, whole[:, 9:], atol=1e-5, rtol=0)
    cache.crop(-5)
    cache.batch_repeat_interleave(2)  # mindset.evaluate's shared-context scoring
    pair = torch.cat([IDS[:, 7:], IDS[:, 7:].flip(1)])
    both = logits(edited.model, pair, past_key_values=cache, use_cache=True)
    assert torch.allclose(both[0], whole[0, 7:], atol=1e-5, rtol=0)
    flipped = logits(edited.model, torch.cat([IDS[:, :7], IDS[:, 7:].flip(1)], dim=1), use_cache=False)
    assert torch.allclose(both[1], flipped[0, 7:], atol=1e-5, rtol=0)


def test_reordered_and_selected_caches_stay_exact(tiny):
    """Beam search reorders the cache's rows; the fed-back states must follow them."""
    edited = randomize(surgery.layerwise_feedback(tiny, [(0, 1)]))
    rows = torch.cat([IDS, IDS.flip(1)])  # (2, 12)
    whole = logits(edited.model, rows, use_cache=False)
    cache = DynamicCache(config=edited.model.config)
    logits(edited.model, rows[:, :8], past_key_values=cache, use_cache=True)
    cache.reorder_cache(torch.tensor([1, 0]))
    swapped = logits(edited.model, rows.flip(0)[:, 8:10], past_key_values=cache, use_cache=True)
    assert torch.allclose(swapped, whole.flip(0)[:, 8:10], atol=1e-5, rtol=0)
    cache.batch_select_indices(torch.tensor([1]))  # the row that started as IDS
    last = logits(edited.model, IDS[:, 10:], past_key_values=cache, use_cache=True)
    assert torch.allclose(last[0], whole[0, 10:], atol=1e-5, rtol=0)


def test_left_padding_feeds_back_nothing_from_the_pad(tiny):
    edited = randomize(surgery.layerwise_feedback(tiny, [(0, 1)]))
    short = IDS[:, :6]
    filler = torch.full((1, 6), 7)  # masked out: what it holds must not matter (the pad id embeds to zeros in Llama)
    mask = torch.cat([torch.zeros(1, 6, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], dim=1)
    padded = logits(edited.model, torch.cat([filler, short], dim=1), attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=False)
    assert torch.allclose(padded[:, 6:], logits(edited.model, short, use_cache=False), atol=1e-5, rtol=0)
    batch, mask = torch.cat([torch.cat([filler, short], dim=1), IDS]), torch.cat([mask, torch.ones_like(IDS)])
    with torch.no_grad():
        together = edited.model.generate(batch, attention_mask=mask, max_new_tokens=8, do_sample=False)
        alone = edited.model.generate(short, max_new_tokens=8, do_sample=False)
    assert torch.equal(together[0, 12:], alone[0, 6:])
    assert torch.equal(together[1], full_reforward_greedy(edited.model, IDS, 8)[0])


def test_a_cache_filled_without_feedback_is_refused(tiny):
    edited = surgery.layerwise_feedback(tiny, [(0, 1)])
    cache = DynamicCache(config=tiny.model.config)
    logits(tiny.model, IDS, past_key_values=cache, use_cache=True)
    with pytest.raises(MindsetError, match="computed without the model's layerwise feedback states"):
        logits(edited.model, IDS[:, :1], past_key_values=cache, use_cache=True)


# --- training: the projections learn, the fed-back state gets no gradient -----------------------------------

def test_training_moves_the_projections_and_not_through_the_fed_state(tiny):
    edited = surgery.layerwise_feedback(tiny, [(0, 1)])
    model = edited.model.train()
    feedback = model.mindset_feedback
    seen = []  # (input requires grad, output requires grad) of each projection call
    feedback.projections["0_1"].register_forward_hook(lambda m, args, out: seen.append((args[0].requires_grad, out.requires_grad)))
    layer1_outputs = []
    decoder_layers(model)[1].register_forward_hook(lambda m, a, out: layer1_outputs.append(out[0] if isinstance(out, tuple) else out))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        ids = torch.randint(0, 256, (2, 16), generator=generator)
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        assert feedback.projections["0_1"].weight.grad.abs().sum() > 0
        optimizer.step()
    assert feedback.projections["0_1"].weight.abs().max() > 1e-3  # moved from zero
    assert seen and all(inp is False and out is True for inp, out in seen)  # W learns; the state it reads is detached
    pass_1, pass_2 = layer1_outputs[0::2], layer1_outputs[1::2]  # each step: pass 1, then pass 2
    assert all(h.grad_fn is None for h in pass_1) and all(h.grad_fn is not None for h in pass_2)


# --- saved, loaded, refused by GGUF --------------------------------------------------------------------------

def test_save_load_round_trip_gives_identical_logits(tiny, tmp_path):
    base = four_layers(tiny)
    edited = randomize(surgery.layerwise_feedback(base, [(0, 3), (1, 2)], rank=4))
    edited = surgery.layerwise_feedback(edited, [(0, 2)])
    randomize(edited, seed=2)
    save(edited, tmp_path / "m")
    back = load(tmp_path / "m", device="cpu", dtype="float32")
    assert surgery.feedback_pairs(back) == [(0, 3), (1, 2), (0, 2)]
    assert torch.equal(logits(back.model), logits(edited.model))
    with torch.no_grad():
        assert torch.equal(back.model.generate(IDS, max_new_tokens=8, do_sample=False), edited.model.generate(IDS, max_new_tokens=8, do_sample=False))
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()  # plain transformers: the model without feedback
    assert torch.allclose(logits(plain), logits(base.model), atol=1e-5, rtol=0)
    record = (tmp_path / "m" / SURGERY_FILE).read_text()
    assert '"layerwise_feedback"' in record and '"op": "layerwise_feedback"' in record


def test_a_folder_saved_before_the_scaling_loads_with_the_raw_definition(tiny, tmp_path):
    """Folders written before the fed term was scaled have no "relative" in their config: they keep their function."""
    import json

    base = four_layers(tiny)
    edited = randomize(surgery.layerwise_feedback(base, [(0, 3), (1, 2)]))
    save(edited, tmp_path / "m")
    record_file = tmp_path / "m" / SURGERY_FILE
    record = json.loads(record_file.read_text())
    [entry] = [m for m in record["modules"] if m["restorer"] == "layerwise_feedback"]
    assert entry["config"].pop("relative") is True
    record_file.write_text(json.dumps(record))
    back = load(tmp_path / "m", device="cpu", dtype="float32")
    assert back.model.mindset_feedback.relative is False
    raw = two_pass_by_hand(base.model, [(0, 3), (1, 2)], edited.model.mindset_feedback.projections, IDS, relative=False)
    assert torch.allclose(logits(back.model), raw, atol=1e-5, rtol=0)
    assert not torch.allclose(logits(back.model), logits(edited.model), atol=1e-3)


def test_feedback_cannot_be_folded_for_gguf(tiny):
    edited = surgery.layerwise_feedback(tiny, [(0, 1)])
    [(path, module)] = custom_modules(edited.model)
    assert path == "mindset_feedback" and isinstance(module, LayerwiseFeedback)
    assert module.mindset_fold() is None


# --- bad input --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([(1, 0)], r"pair \(1, 0\): j must come after i .* j for i=1: none"),
        ([(0, 0)], r"pair \(0, 0\): j must come after i .* j for i=0: 1-1"),
        ([(0, 2)], r"pair \(0, 2\): layer 2 is out of range; this model has 2 layers \(0-1\)"),
        ([(-1, 1)], r"layer -1 is out of range"),
        ([(0, 1), (0, 1)], r"pair \(0, 1\) is given twice"),
        ([(0, 1, 2)], r"not two layer indices"),
        ([(0, "1")], r"not two layer indices"),
        ("0,1", r"give \(i, j\) layer pairs"),
        ([], r"no feedback pairs given"),
    ],
)
def test_bad_pairs_are_one_line_errors(tiny, pairs, message):
    with pytest.raises(MindsetError, match=message) as err:
        surgery.layerwise_feedback(tiny, pairs)
    assert "\n" not in str(err.value)


def test_a_pair_the_model_already_has_is_refused(tiny):
    edited = surgery.layerwise_feedback(tiny, [(0, 1)])
    with pytest.raises(MindsetError, match=r"already feeds layer 1 back into layer 0"):
        surgery.layerwise_feedback(edited, [(0, 1)])


@pytest.mark.parametrize("rank", [0, 65, 2.0, True])
def test_bad_rank_is_refused(tiny, rank):
    with pytest.raises(MindsetError, match=r"rank=.*a rank 1-64"):
        surgery.layerwise_feedback(tiny, [(0, 1)], rank=rank)


# --- the real model ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_zero_init_keeps_smollm2_logits(smollm2):
    ids = smollm2.tokenizer("The capital of France is Paris, and the capital of Italy is", return_tensors="pt").input_ids
    start = time.perf_counter()
    edited = surgery.layerwise_feedback(smollm2, [(2, 10), (5, 20), (0, 29)])
    took = time.perf_counter() - start
    drift = (logits(edited.model, ids) - logits(smollm2.model, ids)).abs().max().item()
    print(f"SmolLM2 with 3 zero-initialised feedback pairs: edit {took:.2f} s, max logit change {drift:.1e}")
    assert drift < 1e-5


@pytest.mark.parametrize("edit", ["insert", "drop", "duplicate", "move"])
def test_depth_edits_after_feedback_are_refused_and_change_nothing(tiny_llama, edit):
    from mindset import surgery

    fed = surgery.layerwise_feedback(tiny_llama, [(0, 1)])
    run = {"insert": lambda m: surgery.insert_layers(m, after=0, inplace=True), "drop": lambda m: surgery.drop_layers(m, [0], inplace=True),
           "duplicate": lambda m: surgery.duplicate_layers(m, [1], inplace=True), "move": lambda m: surgery.move_layer(m, 1, 0, inplace=True)}[edit]
    with pytest.raises(MindsetError, match=r"pairs \[\(0, 1\)\]\); make depth edits before adding feedback"):
        run(fed)
    assert len(fed.model.model.layers) == 2
