"""`mindset inspect` on heterogeneous models, and `inspect A --diff B`: per-layer shapes, parameter counts,
changed tensors with their relative change, added and removed tensors, and bad input as one line."""

from __future__ import annotations

import json

import pytest
import torch

from mindset import surgery
from mindset.models import save
from mindset.models.diff import diff_models, heterogeneous, layer_rows, relative_change
from mindset.models.summary import summarize, summary_tables
from mindset.recipes import run_recipe


def perturbed(loaded, name: str, scale: float = 1e-2):
    """A copy of `loaded` with one tensor moved by `scale` times its norm (a one-step update's size)."""
    import copy

    other = copy.deepcopy(loaded)
    param = other.model.get_parameter(name)
    with torch.no_grad():
        step = torch.randn(param.shape, generator=torch.Generator().manual_seed(0))
        param += scale * param.norm() * step / step.norm()
    return other


def test_uniform_model_keeps_todays_tables(tiny):
    summary = summarize(tiny.model)
    assert "layers" not in summary
    assert [t[0] for t in summary_tables(summary)] == ["Architecture", "Parameters by component"]


def test_widened_layer_shows_in_the_layer_table(tiny):
    edited = surgery.widen_ffn(tiny, "1", add=8)
    rows = layer_rows(edited.model)
    base = layer_rows(tiny.model)[1]["d_ff"]
    assert [r["d_ff"] for r in rows] == [base, base + 8] and heterogeneous(rows)
    title, headers, body = summary_tables(summarize(edited.model))[1]
    assert title == "Layers" and headers[:4] == ["layer", "heads", "kv heads", "d_ff"]
    assert body[1][3] == str(base + 8) and body[0][3] == str(base)


def test_removed_heads_show_per_layer(tiny_llama):
    edited = surgery.remove_heads(tiny_llama, {0: [0, 1]})  # one kv group of two query heads
    rows = layer_rows(edited.model)
    assert [(r["n_heads"], r["n_kv_heads"]) for r in rows] == [(2, 1), (4, 2)]


def test_diff_against_widened_copy_names_layer_and_shapes(tiny_llama):
    edited = surgery.widen_ffn(tiny_llama, "0", add=8)
    diff = diff_models(tiny_llama.model, edited.model)
    assert diff["shapes"] == [{"layer": 0, "key": "d_ff", "a": 160, "b": 168}]
    assert diff["parameters"]["b"] - diff["parameters"]["a"] == 3 * 8 * 64
    assert [r["layer"] for r in diff["parameters"]["layers"]] == [0]
    assert {r["name"] for r in diff["reshaped"]} == {f"model.layers.0.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
    assert diff["changed"] == [] and diff["added"] == [] and diff["removed"] == []


def test_diff_against_perturbed_copy_lists_the_changed_tensor(tiny_llama):
    name = "model.layers.1.mlp.up_proj.weight"
    other = perturbed(tiny_llama, name)
    diff = diff_models(tiny_llama.model, other.model)
    assert [c["name"] for c in diff["changed"]] == [name]
    assert diff["changed"][0]["relative_change"] == pytest.approx(1e-2, rel=1e-4)
    assert diff["shapes"] == [] and diff["reshaped"] == [] and diff["parameters"]["layers"] == []


def test_diff_sorts_and_caps_changed_tensors(tiny_llama):
    other = perturbed(perturbed(tiny_llama, "model.layers.0.self_attn.q_proj.weight", 1e-3), "model.norm.weight", 0.5)
    diff = diff_models(tiny_llama.model, other.model, top=1)
    assert diff["changed_total"] == 2 and [c["name"] for c in diff["changed"]] == ["model.norm.weight"]


def test_inserted_layer_is_added_tensors(tiny_llama):
    diff = diff_models(tiny_llama.model, surgery.insert_layers(tiny_llama, after=1).model)
    assert diff["layers"] == {"a": 2, "b": 3}
    assert diff["shapes"][0]["layer"] == 2 and diff["shapes"][0]["a"] is None
    assert all(r["name"].startswith("model.layers.2.") for r in diff["added"]) and len(diff["added"]) == 9
    reverse = diff_models(surgery.insert_layers(tiny_llama, after=1).model, tiny_llama.model)
    assert len(reverse["removed"]) == 9 and reverse["added"] == []


def test_relative_change_of_a_zero_tensor_is_the_change():
    assert relative_change(torch.zeros(3), torch.tensor([3.0, 4.0, 0.0])) == pytest.approx(5.0)
    assert relative_change(torch.ones(4), torch.ones(4)) == 0.0


def test_cli_inspect_shows_layers_of_a_saved_heterogeneous_folder(tiny_llama, tmp_path, cli):
    folder = save(surgery.widen_ffn(tiny_llama, "0", add=8), tmp_path / "wide")
    code, out, _ = cli("inspect", str(folder))
    assert code == 0 and "Layers" in out and "168" in out and "per layer below" in out


def test_cli_diff_of_widened_copy(tiny_llama, tmp_path, cli):
    folder = save(surgery.widen_ffn(tiny_llama, "0", add=8), tmp_path / "wide")
    code, out, _ = cli("inspect", "tiny-llama", "--diff", str(folder), "-o", str(tmp_path / "diff.json"))
    assert code == 0
    assert "Layer shapes" in out and "d_ff" in out and "160" in out and "168" in out
    assert "model.layers.0.mlp.up_proj.weight" in out
    written = json.loads((tmp_path / "diff.json").read_text())
    assert written["shapes"] == [{"layer": 0, "key": "d_ff", "a": 160, "b": 168}]


def test_cli_diff_of_perturbed_copy_prints_relative_change(tiny_llama, tmp_path, cli):
    name = "model.layers.0.self_attn.v_proj.weight"
    folder = save(perturbed(tiny_llama, name, 0.25), tmp_path / "moved")
    code, out, _ = cli("inspect", "tiny-llama", "--diff", str(folder), "--top", "5")
    assert code == 0 and name in out and "2.500e-01" in out


def test_cli_diff_of_identical_models(cli):
    code, out, _ = cli("inspect", "tiny-gpt2", "--diff", "tiny-gpt2")
    assert code == 0 and "no differences" in out


def test_cli_diff_with_missing_model_is_one_line(cli, tmp_path):
    code, _, err = cli("inspect", "tiny-llama", "--diff", str(tmp_path / "nothing"))
    assert code == 2 and "no such file or folder" in err and len(err.strip().splitlines()) == 1


def test_inspect_step_reports_per_layer_shapes(tiny_llama, tmp_path):
    folder = save(surgery.remove_heads(tiny_llama, {1: [2, 3]}), tmp_path / "narrow")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: shapes\nmodel: {folder}\ndevice: cpu\nsteps:\n  - inspect\n")
    run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)
    metrics = json.loads((tmp_path / "runs" / "shapes" / "metrics.json").read_text())
    assert [r["n_heads"] for r in metrics["inspect"]["layer_shapes"]] == [4, 2]
    assert "### Layers" in (tmp_path / "runs" / "shapes" / "report.md").read_text()


def test_custom_module_shows_at_its_layer(tiny_llama):
    edited = surgery.ffn_to_memory(tiny_llama, [1], k=8)
    rows = layer_rows(edited.model)
    assert rows[0]["custom"] == [] and len(rows[1]["custom"]) == 1 and heterogeneous(rows)
    diff = diff_models(tiny_llama.model, edited.model)
    assert [(s["layer"], s["key"]) for s in diff["shapes"] if s["key"] == "custom"] == [(1, "custom")]
