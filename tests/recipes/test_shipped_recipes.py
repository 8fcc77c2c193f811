"""Every recipe in recipes/ parses and plans (step names and parameters valid) without running a step."""

from pathlib import Path

import pytest

from mindset.configfile import load_yaml, validate
from mindset.recipes.config import RecipeConfig, plan_steps

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_plans(path):
    doc = load_yaml(path)
    steps = plan_steps(validate(RecipeConfig, doc.data, doc), doc)
    assert steps and all(step.params is not None for step in steps)


def test_memory_distill_measures_before_and_after_surgery_and_after_distillation():
    path = next(p for p in RECIPES if p.stem == "memory-distill")
    doc = load_yaml(path)
    steps = plan_steps(validate(RecipeConfig, doc.data, doc), doc)
    assert [s.name for s in steps] == ["ppl", "ffn_to_memory", "ppl", "distill", "ppl"]
    assert [s.params.label for s in steps if s.name == "ppl"] == ["before surgery", "after surgery", "after distillation"]
    distill = steps[3].params
    assert all(p.startswith(("model.layers.4.mlp", "model.layers.12.mlp", "model.layers.20.mlp")) for p in distill.trainable)


def test_gates_recipe_trains_gates_then_grows_and_prunes_then_trains_again():
    path = next(p for p in RECIPES if p.stem == "gates-grow-prune")
    doc = load_yaml(path)
    steps = plan_steps(validate(RecipeConfig, doc.data, doc), doc)
    names = [s.name for s in steps]
    assert names.index("head_gates") < names.index("distill") < names.index("grow_saturated") < names.index("prune_closed")
    assert names[names.index("prune_closed") + 1] == "distill"
    assert all(s.params.lr_multipliers == {"*gate_logits": 500.0} for s in steps if s.name == "distill")
