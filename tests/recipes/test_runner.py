import json
import textwrap

import pytest
import yaml

from mindset.errors import MindsetError
from mindset.recipes import run_recipe
from mindset.recipes.registry import STEPS, resolve_step


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """\
name: tiny-check
model: tiny-llama
device: cpu
steps:
  - inspect
  - ppl:
      max_tokens: 300
      context: 128
  - generate:
      max_new_tokens: 5
      prompts: [Hello, 'What is the capital of France?']
"""


def test_a_recipe_writes_config_metrics_and_report(tmp_path):
    result = run_recipe(write(tmp_path, GOOD), runs_dir=tmp_path / "runs", progress=False)
    run_dir = tmp_path / "runs" / "tiny-check"
    assert result.run_dir == run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run"]["status"] == "completed"
    assert metrics["inspect"]["architecture"]["layers"] == 2
    assert metrics["ppl"]["tokens"] == 299 and metrics["ppl"]["perplexity"] > 1
    assert [a["prompt"] for a in metrics["generate"]["answers"]] == ["Hello", "What is the capital of France?"]
    assert all(a["new_tokens"] <= 5 for a in metrics["generate"]["answers"])
    report = (run_dir / "report.md").read_text()
    for heading in ("# tiny-check", "### Architecture", "### Parameters by component", "## Perplexity on austen/valid", "## Generations (greedy)"):
        assert heading in report
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["steps"][1]["ppl"]["stride"] is None and resolved["steps"][1]["ppl"]["split"] == "valid"
    assert resolved["steps"][0] == {"inspect": {}}


def test_repeated_steps_get_distinct_keys(tmp_path):
    recipe = write(tmp_path, "model: tiny-gpt2\nsteps:\n  - ppl: {max_tokens: 50}\n  - ppl: {max_tokens: 60, split: train, label: on train}\n")
    metrics = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False).metrics
    assert metrics["ppl"]["tokens"] == 49 and metrics["ppl_2"]["tokens"] == 59
    assert metrics["ppl_2"]["label"] == "on train" and "label" not in metrics["ppl"]
    report = (tmp_path / "runs" / "recipe" / "report.md").read_text()  # named after the file when no name is given
    assert "## Perplexity on austen/valid" in report and "## Perplexity on train" in report


def test_every_registered_step_resolves_with_a_params_model():
    for name in STEPS:
        function, params = resolve_step(name)
        assert callable(function) and params.model_config.get("extra") == "forbid"


def test_a_failing_step_keeps_what_was_done(tmp_path):
    recipe = write(tmp_path, "model: tiny-llama\nsteps:\n  - inspect\n  - ppl: {text_file: missing.txt}\n")
    with pytest.raises(MindsetError, match="missing.txt: no such file"):
        run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)
    metrics = json.loads((tmp_path / "runs" / "recipe" / "metrics.json").read_text())
    assert "inspect" in metrics and metrics["run"]["status"].startswith("failed in step 2 (ppl)")


# --- bad input: one clear line naming the file and line -----------------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        ("model: tiny-llama\nsteps: [inspect\n", r"recipe.yaml:\d+: invalid YAML"),
        ("model: tiny-llama\nsteps:\n  - inspect\n  - perplexity: {}\n", r"recipe.yaml:4: unknown recipe step 'perplexity'; did you mean 'ppl'"),
        ("model: tiny-llama\nsteps:\n  - ppl:\n      strid: 3\n", r"recipe.yaml:4: steps\[0\].ppl: unknown field 'strid' \(did you mean 'stride'\?\)"),
        ("model: tiny-llama\nstepz: [inspect]\n", r"recipe.yaml:2: top level: unknown field 'stepz' \(did you mean 'steps'\?\)"),
        ("model: tiny-llama\nsteps:\n  - ppl: {stride: many}\n", r"recipe.yaml:3: steps\[0\].ppl.stride: Input should be a valid integer"),
        ("model: tiny-llama\nsteps:\n  - generate:\n      prompts:\n        - hi\n        - '  '\n", r"recipe.yaml:6: steps\[0\].generate.prompts\[1\]: Value error, the prompt is empty"),
        ("model: tiny-llama\nsteps: []\n", r"recipe.yaml:2: steps: List should have at least 1 item"),
        ("model: tiny-llama\nmodel: tiny-gpt2\nsteps: [inspect]\n", r"recipe.yaml:2: duplicate key 'model'"),
        ("model: tiny-llama\nsteps:\n  - {ppl: {}, inspect: {}}\n", r"recipe.yaml:3: steps\[0\]: a step is a name, or a mapping with one key"),
        ("- just\n- a list\n", r"recipe.yaml: top level: Input should be a valid dictionary"),
    ],
)
def test_bad_recipes_fail_before_any_work_with_the_line(tmp_path, text, message):
    with pytest.raises(MindsetError, match=message):
        run_recipe(write(tmp_path, text), runs_dir=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_missing_recipe_file(tmp_path):
    with pytest.raises(MindsetError, match="no such file"):
        run_recipe(tmp_path / "nope.yaml", runs_dir=tmp_path / "runs")


def test_a_recipe_without_a_model(tmp_path):
    with pytest.raises(MindsetError, match="names no model"):
        run_recipe(write(tmp_path, "steps: [inspect]\n"), runs_dir=tmp_path / "runs", progress=False)
