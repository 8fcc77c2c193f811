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


def _two_students(tmp_path):
    from mindset.models import load, save

    for parent, seed in (("a", 0), ("b", 1)):
        save(load("tiny-llama", seed=seed), tmp_path / parent / "student")
    return str(tmp_path / "a" / "student"), str(tmp_path / "b" / "student")


def test_models_with_the_same_folder_name_keep_their_own_results(cli, tmp_path):
    first, second = _two_students(tmp_path)
    out = tmp_path / "e3"
    code, stdout, stderr = cli("eval", first, second, "--tasks", "capitals", "--limit", "3", "--out", str(out))
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "comparison.md", "student", "student-2", "tasks"]
    sources = [json.loads((out / name / "results.json").read_text())["source"] for name in ("student", "student-2")]
    assert "a/student" in sources[0] and "b/student" in sources[1]
    table = json.loads((out / "comparison.json").read_text())
    assert table["models"] == ["student", "student (2)"]
    code, _, stderr = cli("compare", str(out / "student"), str(out / "student-2"), "--out", str(tmp_path))
    assert code == 0, stderr
    assert json.loads((tmp_path / "comparison.json").read_text()) == table
    assert (tmp_path / "comparison.md").read_text() == (out / "comparison.md").read_text()


def test_an_existing_output_folder_is_refused_unless_overwrite(cli, tmp_path):
    out = tmp_path / "ev"
    assert cli("eval", "tiny-llama", "tiny-gpt2", "--tasks", "counting", "--limit", "2", "--out", str(out))[0] == 0
    before = (out / "comparison.md").read_text()
    code, _, err = cli("eval", "tiny-gpt2", "--tasks", "counting", "--limit", "2", "--out", str(out))
    assert code == 2 and "exists; choose another output path or pass --overwrite" in err
    assert (out / "comparison.md").read_text() == before and (out / "tiny-llama").is_dir()
    code, _, err = cli("compare", str(out / "tiny-llama"), str(out / "tiny-gpt2"))
    assert code == 2 and "comparison.md exists" in err
    code, _, err = cli("eval", "tiny-gpt2", "--tasks", "counting", "--limit", "2", "--out", str(out), "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "comparison.md", "tasks", "tiny-gpt2"]


def test_ctrl_c_leaves_no_half_written_output(cli, tmp_path, monkeypatch):
    import mindset.evaluate.evaluation as evaluation

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "evaluate_task", interrupted)
    code, _, err = cli("eval", "tiny-llama", "--tasks", "counting", "--limit", "2", "--out", str(tmp_path / "ev"))
    assert calls and code == 130
    assert err == "interrupted; nothing was written\n"
    assert list(tmp_path.iterdir()) == []
