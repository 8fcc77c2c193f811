import json

from mindset.recipes import run_recipe


def test_eval_two_models_then_compare_the_runs(cli, tmp_path):
    out = tmp_path / "ev"
    code, stdout, stderr = cli("eval", "tiny-llama", "tiny-gpt2", "--tasks", "capitals,negation", "--limit", "3", "--out", str(out))
    assert code == 0, stderr
    assert "tiny-llama" in stdout and "Δ tiny-gpt2" in stdout and "capitals" in stdout
    results = json.loads((out / "tiny-llama" / "results.json").read_text())
    assert results["tasks"]["mindset_capitals"]["n"] == 3 and "acc" in results["tasks"]["mindset_capitals"]["metrics"]
    assert (out / "tiny-gpt2" / "samples.jsonl").read_text().count("\n") == 6
    assert (out / "tasks" / "capitals" / "capitals.yaml").is_file()
    table = json.loads((out / "comparison.json").read_text())
    assert table["models"] == ["tiny-llama", "tiny-gpt2"] and {r["task"] for r in table["rows"]} == {"mindset_capitals", "mindset_negation"}
    code, stdout, _ = cli("compare", str(out / "tiny-gpt2"), str(out / "tiny-llama"), "--out", str(tmp_path))
    assert code == 0 and "Δ tiny-llama" in stdout
    assert (tmp_path / "comparison.md").read_text().startswith("| task | metric | chance | n | tiny-gpt2 | tiny-llama | Δ tiny-llama |")


def test_eval_bad_input_is_one_line(cli, tmp_path):
    code, _, err = cli("eval", "tiny-llama", "--tasks", "capitols", "--out", str(tmp_path))
    assert code == 2 and "did you mean 'capitals'" in err and "Traceback" not in err
    code, _, err = cli("eval", "tiny-llama", "--tasks", "missing/task.yaml", "--out", str(tmp_path))
    assert code == 2 and "no such task file" in err
    code, _, err = cli("compare", str(tmp_path))
    assert code == 2 and "no results.json" in err
    code, _, err = cli("compare")
    assert code == 2 and "needs run folders" in err


def test_recipe_step_eval_writes_a_run_that_compare_reads(tmp_path, cli):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: ev\nmodel: tiny-llama\nsteps:\n  - eval: {tasks: [counting], limit: 2}\n")
    result = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)
    metrics = result.metrics["eval"]["mindset_counting"]
    assert metrics["n"] == 2 and 0.0 <= metrics["acc"] <= 1.0 and "acc_stderr" in metrics
    assert "Evaluation of tiny-llama" in (result.run_dir / "report.md").read_text()
    code, stdout, _ = cli("compare", str(result.run_dir))
    assert code == 0 and "counting" in stdout
