"""causal_trace's invariants, the CLI commands and the recipe step."""

import json

import pytest

from mindset.circuits.trace import causal_trace
from mindset.errors import MindsetError


def test_trace_invariants(tiny):
    trace = causal_trace(tiny, "The capital of France is", "France", " Paris", samples=3, window=2)
    resid = trace.grids["resid"]
    n_layers, n_tokens = len(resid), len(trace.tokens)
    assert n_layers == 2 and n_tokens == len("The capital of France is")  # byte-level tokenizer
    assert (trace.subject_start, trace.subject_end) == (15, 21)
    # the last layer's state at the last position decides the prediction: restoring it restores p_clean
    assert resid[-1][-1] == pytest.approx(trace.p_clean, rel=1e-4)
    # positions before the subject never see the noise (causal attention): restoring them changes nothing
    for layer in range(n_layers):
        for t in range(trace.subject_start):
            assert resid[layer][t] == pytest.approx(trace.p_corrupted, rel=1e-4)
    assert trace.p_clean != pytest.approx(trace.p_corrupted)
    assert set(trace.grids) == {"resid", "mlp", "attn"}


def test_trace_errors(tiny_llama):
    with pytest.raises(MindsetError, match="does not occur in the prompt"):
        causal_trace(tiny_llama, "The capital of France is", "Spain", " Paris")
    with pytest.raises(MindsetError, match="unknown trace kind"):
        causal_trace(tiny_llama, "The capital of France is", "France", " Paris", kinds=("residual",))


def test_cli_map_and_trace(cli, tmp_path):
    code, out, err = cli("circuits", "map", "tiny-gpt2", "--suite", "ordering", "-g", "layer", "--limit", "4", "-o", str(tmp_path / "map"))
    assert code == 0, err
    assert "warning:" in err and "chance" in err
    data = json.loads((tmp_path / "map" / "importance.json").read_text())
    assert [s["name"] for s in data["scores"]] == ["L0", "L1"]
    assert (tmp_path / "map" / "importance.png").is_file()
    code, out, err = cli("circuits", "trace", "tiny-llama", "--prompt", "ab cd", "--subject", "ab", "--answer", " e",
                         "--kinds", "resid", "--samples", "2", "-o", str(tmp_path / "trace"))
    assert code == 0, err
    assert (tmp_path / "trace" / "trace.png").read_bytes()[:4] == b"\x89PNG"
    code, out, err = cli("circuits", "map", "tiny-llama", "--suite", "ordering", "-c", "L9.H0", "--limit", "2")
    assert code == 2 and "has 2 layers" in err
    code, out, err = cli("circuits", "map", "tiny-llama", "--suite", "ordering", "--method", "shuffle", "--limit", "2")
    assert code == 2 and "--method: Input should be 'zero', 'mean', 'resample' or 'attribution', not 'shuffle'" in err  # the option's choices, checked first


def test_recipe_step(tmp_path, monkeypatch):
    from mindset.recipes.runner import run_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: circ\nmodel: tiny-llama\nsteps:\n"
        "  - circuits: {suite: ordering, granularity: mlp, limit: 3,"
        " trace: {prompt: 'ab cd', subject: ab, answer: ' e', samples: 2}}\n"
    )
    monkeypatch.chdir(tmp_path)
    result = run_recipe(recipe, progress=False)
    report = (result.run_dir / "report.md").read_text()
    assert "![importance heatmap](circuits/ordering-mlp-zero/importance.png)" in report
    assert (result.run_dir / "circuits" / "ordering-mlp-zero" / "importance.png").is_file()
    assert (result.run_dir / "circuits" / "trace" / "trace.png").is_file()
    assert "L0.mlp" in report and "Causal trace" in report


def test_cli_map_defaults_to_capitals_by_layer_and_keeps_existing_maps(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("circuits", "map", "tiny-llama", "--limit", "2")
    assert code == 0, err
    folder = tmp_path / "runs" / "circuits" / "tiny-llama" / "capitals-layer-zero"
    data = json.loads((folder / "importance.json").read_text())
    assert data["granularity"] == "layer" and [s["name"] for s in data["scores"]] == ["L0", "L1"]
    assert "Δ log-prob" not in out  # rich wraps the header in a narrow terminal; the markdown has it whole
    header = (folder / "importance.md").read_text().splitlines()[2]
    assert header.startswith("| rank | component | log-prob drop (nats, clean − ablated) | ± se | accuracy drop |")
    code, _, err = cli("circuits", "map", "tiny-llama", "--limit", "2")
    assert code == 2 and "capitals-layer-zero exists; choose another output path or pass --overwrite" in err
    assert cli("circuits", "map", "tiny-llama", "--limit", "2", "--overwrite")[0] == 0
