"""The pure parts of benchmarks/grow_vs_finetune.py (made-up facts, the comparison's arithmetic) and its
growth path on tiny-llama: no SmolLM2 here."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from benchmarks.facts import (
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    choose,
    expansion_points,
    fact_suite,
    forgetting,
    goal,
    make_facts,
    matched,
    ratio,
    split_prompt,
    training_sentences,
)
from mindset.evaluate.suites.capitals import CAPITALS


def test_facts_are_distinct_seeded_and_made_up():
    facts = make_facts(40, seed=3)
    names = [n.lower() for f in facts for n in (f.country, f.capital)]
    assert len(set(names)) == 80
    assert make_facts(40, seed=3) == facts and make_facts(40, seed=4) != facts
    real = {n.lower() for pair in CAPITALS.items() for n in pair}
    assert not set(names) & real


def test_heldout_prompts_are_never_trained_on():
    facts = make_facts(5)
    sentences = training_sentences(facts)
    assert len(sentences) == 5 * len(TRAIN_TEMPLATES)
    for template in HELDOUT_TEMPLATES:
        for fact in facts:
            prompt, answer = split_prompt(template, fact)
            assert answer == " " + fact.capital and fact.capital not in prompt
            assert prompt + answer == template.format(c=fact.country, a=fact.capital)
            assert not any(s.startswith(prompt) for s in sentences)
    suite = fact_suite(facts, HELDOUT_TEMPLATES, "heldout")
    assert suite.greedy and len(suite.items) == 5 * len(HELDOUT_TEMPLATES)
    assert all(it.gold == (0,) and it.choices[0].startswith(" ") for it in suite.items)


def test_forgetting_ratio_and_rule():
    before = {"ppl": 10.0, "canaries": {"a": 0.9, "b": 0.5}}
    lost = forgetting(before, {"ppl": 12.0, "canaries": {"a": 0.7, "b": 0.5}})
    assert lost["ppl_rise"] == pytest.approx(0.2) and lost["canary_drop"] == pytest.approx(0.1)
    assert ratio(0.05, 0.2) == pytest.approx(0.25) and ratio(0.1, 0.0) is None and ratio(0.1, -0.1) is None
    runs = [{"gain_em": 0.5, "gain_logprob": 3.0, "forgetting": {"ppl_rise": 0.1}, "lr": 1},
            {"gain_em": 0.5, "gain_logprob": 4.0, "forgetting": {"ppl_rise": 0.3}, "lr": 2},
            {"gain_em": 0.25, "gain_logprob": 9.0, "forgetting": {"ppl_rise": 0.0}, "lr": 3}]
    assert choose(runs)["lr"] == 2


def test_goal_needs_equal_gain_and_a_quarter_of_the_forgetting():
    full = {"gain_em": 0.8, "forgetting": {"ppl_rise": 0.4, "canary_drop": 0.2}}
    good = {"gain_em": 0.75, "forgetting": {"ppl_rise": 0.1, "canary_drop": -0.05}}
    assert goal(full, good)["holds"]
    assert not goal(full, {**good, "gain_em": 0.5})["holds"]  # learned less: not at equal gain
    assert not goal(full, {**good, "forgetting": {"ppl_rise": 0.11, "canary_drop": 0.0}})["holds"]
    nothing_lost = {"gain_em": 0.8, "forgetting": {"ppl_rise": 0.4, "canary_drop": 0.0}}
    assert goal(nothing_lost, good)["quarter"]["canary_drop"] is None and goal(nothing_lost, good)["holds"]


def test_expansion_points_spread_like_llama_pro():
    assert expansion_points(30, 4) == ([6, 14, 21, 29], [7, 16, 24, 33])
    assert expansion_points(32, 8)[0] == [3, 7, 11, 15, 19, 23, 27, 31]  # LLaMA Pro: one new block per 4
    with pytest.raises(ValueError, match="between 1 and 2"):
        expansion_points(2, 3)


def test_grow_trains_only_the_new_identity_blocks(tiny_llama):
    from benchmarks.grow_vs_finetune import make_batches, prepare, projection_names, train

    base, tok = tiny_llama.model.eval(), tiny_llama.tokenizer
    assert projection_names(base) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    grown, trainable = prepare("grow", base, SimpleNamespace(new_blocks=2))
    assert grown.config.num_hidden_layers == 4
    assert trainable and all(n.startswith(("model.layers.1.", "model.layers.3.")) for n in trainable)
    ids = torch.tensor([tok("The capital of Vopurstan is")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(grown(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-5)
    start = {n: p.detach().clone() for n, p in grown.named_parameters()}
    batches = make_batches(tok, training_sentences(make_facts(2)), steps=3, batch=2, seed=0, device="cpu")
    train(grown, tok, trainable, 1e-2, batches)
    moved = {n for n, p in grown.named_parameters() if not torch.equal(p, start[n])}
    assert moved and moved <= trainable
    with torch.no_grad():
        assert not torch.allclose(grown(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-5)


def test_growth_is_held_against_the_full_ft_run_of_equal_gain():
    def run(lr, gain, rise):
        return {"lr": lr, "gain_em": gain, "forgetting": {"ppl_rise": rise}}

    full = [run(1, 0.5, 0.08), run(2, 1.0, 1.0), run(3, 0.95, 0.5)]
    assert matched(full, run(9, 1.0, 0.0))["lr"] == 3  # 0.95 is equal within 0.1, and forgot less than lr 2
    assert matched(full, run(9, 0.4, 0.0))["lr"] == 1
    assert matched(full[:1], run(9, 1.0, 0.0))["lr"] == 1  # nothing gained as much: the best there is
