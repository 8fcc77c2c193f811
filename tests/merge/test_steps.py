"""The recipe steps `merge` and `merge_fixtures`, and the shipped merge recipes."""

import json
from pathlib import Path

import pytest

from mindset.errors import MindsetError
from mindset.recipes import run_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_a_recipe_merges_inline_and_continues_on_the_merged_model(family, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: m\nmodel: tiny-llama\ndevice: cpu\nsteps:\n"
        "  - merge:\n      output: stacked\n      config:\n        merge_method: passthrough\n        slices:\n"
        f"          - sources: [{{model: {family['base']}, layer_range: [0, 2]}}]\n"
        f"          - sources: [{{model: {family['ft1']}, layer_range: [0, 2]}}]\n"
        "  - inspect\n  - generate: {prompts: [Hi], max_new_tokens: 3}\n"
    )
    metrics = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False).metrics
    assert metrics["merge"]["layers"] == 4 and metrics["inspect"]["architecture"]["layers"] == 4
    assert (tmp_path / "runs" / "m" / "stacked" / "model.safetensors").exists()
    report = (tmp_path / "runs" / "m" / "report.md").read_text()
    assert "## Merge: passthrough" in report and "### Output layers" in report


def test_a_bad_inline_merge_config_fails_before_any_step(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: tiny-llama\nsteps:\n  - inspect\n  - merge:\n      config:\n        merge_method: linear\n        modles: []\n")
    with pytest.raises(MindsetError, match=r"r.yaml:7: steps\[1\].merge.config: unknown field 'modles' \(did you mean 'models'\?\)"):
        run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_the_professor_recipe_plumbing(tmp_path, monkeypatch):
    """The shipped recipe's first two steps: fixtures written in code, then the published config merged."""
    monkeypatch.chdir(ROOT)
    recipe = tmp_path / "professor.yaml"
    steps = (ROOT / "recipes" / "professor-mini.yaml").read_text().split("  - inspect")[0]
    recipe.write_text(steps.replace("name: professor-mini", "name: professor-test") + "  - inspect\n")
    metrics = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False).metrics
    assert metrics["merge"]["layers"] == 180 and metrics["inspect"]["architecture"]["layers"] == 180
    config = json.loads((tmp_path / "runs" / "professor-test" / "professor-mini-180L" / "config.json").read_text())
    assert config["dtype"] == "float16" and config["vocab_size"] == 261


@pytest.mark.slow
def test_smollm2_self_stack(smollm2, tmp_path):
    """SmolLM2's layers 0-19 then 10-29: 40 layers that still answer, and perplexity that stays finite."""
    import torch

    from mindset.chat import SamplingParams, generate
    from mindset.data import corpus_text
    from mindset.evaluate import perplexity
    from mindset.merge import merge, parse_merge_config
    from mindset.models import load

    config = parse_merge_config(
        "merge_method: passthrough\nslices:\n  - sources: [{model: smollm2-135m, layer_range: [0, 20]}]\n"
        "  - sources: [{model: smollm2-135m, layer_range: [10, 30]}]\n"
    )
    merge(config, tmp_path / "stack")
    stacked = load(tmp_path / "stack", device="cpu", dtype="float32")
    layers = stacked.model.model.layers
    assert len(layers) == 40
    original = smollm2.model.model.layers
    assert torch.equal(layers[20].self_attn.q_proj.weight, original[10].self_attn.q_proj.weight)
    assert torch.equal(layers[39].mlp.down_proj.weight, original[29].mlp.down_proj.weight)
    text = corpus_text("valid")[:6000]
    base_ppl = perplexity(smollm2, text, max_tokens=1024).perplexity
    stacked_ppl = perplexity(stacked, text, max_tokens=1024).perplexity
    assert 1 < stacked_ppl < 10 * base_ppl
    answer = generate(stacked, "What is the capital of France?", SamplingParams(temperature=0, max_new_tokens=12)).text
    assert "Paris" in answer
