"""Every architecture edit as a `mindset surgery` command and a recipe step, from one table: the saved folder
gives the logits the Python function gives (the original's at preserving inits), bad input is one line and
exit code 2 with nothing written, and a recipe chains edits."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from mindset import surgery
from mindset.errors import MindsetError
from mindset.models import load, save
from mindset.models.anatomy import blocks
from mindset.models.custom import SURGERY_FILE
from mindset.recipes import run_recipe
from mindset.recipes.registry import EDIT_STEPS, STEPS, resolve_step
from mindset.surgery.edit_params import RemoveHeadsParams, WidenFfnParams
from mindset.surgery.edit_steps import EDITS

IDS = torch.tensor([[5, 17, 99, 3, 42, 8, 150, 77, 23, 64]])

# command: (its options, the same edit in Python, whether it keeps logits)
COMMANDS = {
    "widen-ffn": (["--layers", "0", "--add", "8", "--init", "random"], lambda m: surgery.widen_ffn(m, [0], add=8, init="random"), True),
    "narrow-ffn": (["--layers", "1", "--width", "40"], lambda m: surgery.narrow_ffn(m, [1], width=40), False),
    "add-heads": (["--layers", "0,1", "--n", "2", "--init", "random", "--seed", "3"], lambda m: surgery.add_heads(m, [0, 1], 2, init="random", seed=3), True),
    "remove-heads": (["--heads", "0:1,3;1:0,1"], lambda m: surgery.remove_heads(m, {0: [1, 3], 1: [0, 1]}), False),
    "insert-layers": (["--after", "0", "--n", "2"], lambda m: surgery.insert_layers(m, after=0, n=2), True),
    "drop-layers": (["--layers", "0"], lambda m: surgery.drop_layers(m, [0]), False),
    "duplicate-layers": (["--layers", "L1"], lambda m: surgery.duplicate_layers(m, [1]), False),
    "move-layer": (["--src", "1", "--dst", "0"], lambda m: surgery.move_layer(m, 1, 0), False),
    "embedding-shim": (["--rank", "4"], lambda m: surgery.embedding_shim(m, 4), True),
    "head-gates": (["--layers", "1"], lambda m: surgery.head_gates(m, [1]), True),
    "layerwise-feedback": (["--pairs", "0:1", "--rank", "4"], lambda m: surgery.layerwise_feedback(m, [(0, 1)], rank=4), True),
}
# edits that need gates that trained: run on a gated folder whose layer 0 saturated and layer 1 has closed heads
GATED_COMMANDS = {
    "grow-saturated": (["--threshold", "0.9"], lambda m: surgery.grow_saturated(m, 0.9)),
    "prune-closed": (["--threshold", "0.1"], lambda m: surgery.prune_closed(m, 0.1)),
}


def logits(loaded):
    with torch.no_grad():
        return loaded.model(IDS).logits


def test_every_edit_has_a_command_here():
    assert set(COMMANDS) | set(GATED_COMMANDS) == {name.replace("_", "-") for name in EDITS}


def test_the_registry_lists_every_edit_of_the_table():
    assert set(EDIT_STEPS) == set(EDITS)


@pytest.fixture
def trained_gates(tiny_llama, tmp_path):
    """A gated tiny-llama folder as if training had saturated layer 0's gates and closed layer 1's first kv group."""
    gated = surgery.head_gates(tiny_llama)
    layers = gated.model.model.layers
    att = layers[1].self_attn
    per_group = gated.model.config.num_attention_heads // gated.model.config.num_key_value_heads
    with torch.no_grad():
        layers[0].self_attn.o_proj.gate_logits.fill_(4.0)  # sigmoid 0.982
        att.o_proj.gate_logits[:per_group] = -4.0  # sigmoid 0.018
    folder = tmp_path / "gated"
    save(gated, folder)
    return folder


@pytest.mark.parametrize("command", GATED_COMMANDS)
def test_a_gate_command_saves_the_edit_the_function_makes(cli, trained_gates, tmp_path, command):
    options, edit = GATED_COMMANDS[command]
    code, out, err = cli("surgery", command, str(trained_gates), *options, "-o", str(tmp_path / "out"), "--device", "cpu", "--dtype", "float32")
    assert code == 0, err
    saved = load(tmp_path / "out", device="cpu", dtype="float32")
    expected = edit(load(trained_gates, device="cpu", dtype="float32"))
    assert (logits(saved) - logits(expected)).abs().max() < 1e-5
    assert [b.attention.n_heads for b in blocks(saved.model)] == [b.attention.n_heads for b in blocks(expected.model)]
    assert [b.attention.n_heads for b in blocks(saved.model)] != [b.attention.n_heads for b in blocks(load(trained_gates).model)]
    assert f"{command.replace('-', '_')}: " in out and "saved to" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_saves_the_edit_the_function_makes(cli, tiny_llama, tmp_path, command):
    options, edit, preserving = COMMANDS[command]
    code, out, err = cli("surgery", command, "tiny-llama", *options, "-o", str(tmp_path / "out"), "--device", "cpu", "--dtype", "float32")
    assert code == 0, err
    saved = load(tmp_path / "out", device="cpu", dtype="float32")
    expected = logits(edit(tiny_llama))
    assert (logits(saved) - expected).abs().max() < 1e-5
    original = logits(tiny_llama)
    assert ((logits(saved) - original).abs().max() < 1e-5) == preserving  # kept where the init preserves, changed where not
    name = command.replace("-", "_")
    assert json.loads((tmp_path / "out" / SURGERY_FILE).read_text())["edits"][-1]["op"] == name
    assert f"{name}: " in out and "parameters 102,912 → " in out and " s\n" in out and "saved to" in out


def test_shape_changes_are_listed_per_layer(cli, tmp_path):
    code, out, _ = cli("surgery", "widen-ffn", "tiny-llama", "--layers", "1", "--width", "200", "-o", str(tmp_path / "w"))
    assert code == 0
    assert "d_ff 160" in out and "d_ff 200" in out and "(+7,680)" in out  # 40 neurons x 64 x 3 projections


BAD = {
    "add and width": (["widen-ffn", "--add", "3", "--width", "9"], "--width: give exactly one of add"),
    "a layer out of range": (["widen-ffn", "--layers", "7", "--add", "1"], "out of range"),
    "add zero": (["widen-ffn", "--add", "0"], "--add: Input should be greater than or equal to 1"),
    "unreadable heads": (["remove-heads", "--heads", "x"], "--heads: cannot read 'x'"),
    "heads that break the kv groups": (["remove-heads", "--heads", "0:1"], "leaves kv groups"),
    "heads not a whole group": (["add-heads", "--n", "1"], "add a multiple of 2"),
    "insert after a missing layer": (["insert-layers", "--after", "2"], "insert after a layer 0-1"),
    "drop every layer": (["drop-layers", "--layers", "0-1"], "would leave no layers"),
    "move from a missing layer": (["move-layer", "--src", "5", "--dst", "0"], "out of range"),
    "narrow to more than it has": (["narrow-ffn", "--width", "500"], "narrow to 1-159"),
    "a shim as wide as the model": (["embedding-shim", "--rank", "64"], "1 ≤ rank < 64"),
    "feedback from a lower layer": (["layerwise-feedback", "--pairs", "1:0"], "feedback pair (1, 0): j must come after i"),
    "unreadable feedback pairs": (["layerwise-feedback", "--pairs", "1-0"], "--pairs: cannot read '1-0'"),
    "grow an ungated model": (["grow-saturated"], "grow_saturated needs head gates"),
    "prune with a threshold of 1": (["prune-closed", "--threshold", "1"], "--threshold: Input should be less than 1"),
    "an unknown option": (["move-layer", "--src", "1", "--dst", "0", "--after", "1"], "No such option"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_exit_code_2(cli, tmp_path, case):
    args, message = BAD[case]
    code, _, err = cli("surgery", args[0], "tiny-llama", *args[1:], "-o", str(tmp_path / "out"))
    assert code == 2 and message in err
    if "No such option" not in message:  # click's own usage error has its usage lines
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_remove_heads_reads_a_mapping_or_the_cli_string():
    assert RemoveHeadsParams(heads="3:0,1;5:2").heads == {3: [0, 1], 5: [2]}
    assert RemoveHeadsParams(heads="L3:0; L3:2").heads == {3: [0, 2]}
    assert RemoveHeadsParams(heads={"L3": [0], 5: 2}).heads == {3: [0], 5: [2]}
    for bad in ("3", "3:", "x:1", {}, {True: [0]}):
        with pytest.raises(ValueError):
            RemoveHeadsParams(heads=bad)
    with pytest.raises(ValueError, match="exactly one of add"):
        WidenFfnParams()


def test_every_edit_is_a_recipe_step_with_its_parameters_model():
    for name, edit in EDITS.items():
        assert name in STEPS
        function, params_model = resolve_step(name)
        assert params_model is edit.params and function.__name__ == f"{name}_step"
        assert params_model.model_fields["save"].default is None


def test_a_recipe_runs_two_edits_and_saves_the_result(tmp_path, tiny_llama):
    recipe = tmp_path / "edits.yaml"
    recipe.write_text(textwrap.dedent("""\
        name: two-edits
        model: tiny-llama
        device: cpu
        dtype: float32
        steps:
          - widen_ffn: {layers: [0], add: 8, init: random}
          - remove_heads:
              heads: {L1: [0, 1]}
              save: edited
        """))
    metrics = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False).metrics
    run_dir = tmp_path / "runs" / "two-edits"
    assert metrics["widen_ffn"]["parameters"] == [102_912, 104_448]
    assert metrics["widen_ffn"]["changed_layers"] == [[0, "4 heads / 2 kv, d_ff 160", "4 heads / 2 kv, d_ff 168"]]
    assert metrics["remove_heads"]["edit"] == {"op": "remove_heads", "heads": {"1": [0, 1]}}
    assert metrics["remove_heads"]["saved"] == str(run_dir / "edited")
    expected = surgery.remove_heads(surgery.widen_ffn(tiny_llama, [0], add=8, init="random"), {1: [0, 1]})
    assert (logits(load(run_dir / "edited", device="cpu", dtype="float32")) - logits(expected)).abs().max() < 1e-5
    report = (run_dir / "report.md").read_text()
    assert "## Surgery: widen_ffn" in report and "### Layers remove_heads changed" in report


def test_a_recipe_with_a_bad_edit_fails_before_any_step_runs(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model: tiny-llama\nsteps:\n  - ppl: {max_tokens: 50}\n  - widen_ffn: {add: 4, width: 9}\n")
    with pytest.raises(MindsetError, match="exactly one of add"):
        run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs" / "bad" / "metrics.json").exists()


def test_every_field_of_an_edit_is_an_option_of_its_command():
    """One source of truth: a field added to an edit's parameters model is a CLI option without editing the CLI."""
    import typer

    from mindset.cli import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    group = root.get_command(ctx, "surgery")
    for name, edit in EDITS.items():
        command = group.get_command(ctx, name.replace("_", "-"))
        options = {o for p in command.params for o in p.opts}
        assert {f"--{f.replace('_', '-')}" for f in edit.params.model_fields if f != "save"} <= options, name
        assert all((p.help or "").strip() for p in command.params), name


def test_an_existing_output_is_refused_unless_overwrite(cli, tmp_path):
    args = ("surgery", "move-layer", "tiny-llama", "--src", "1", "--dst", "0", "-o", str(tmp_path / "out"))
    assert cli(*args)[0] == 0
    code, _, err = cli(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--overwrite" in err
    assert cli(*args, "--overwrite")[0] == 0


def test_a_uniform_change_is_one_row(tiny_llama):
    from mindset.surgery.edit_params import InsertLayersParams
    from mindset.surgery.edit_steps import apply_edit

    outcome = apply_edit("widen_ffn", tiny_llama, WidenFfnParams(add=4))
    assert outcome.rows == [["0-1", "4 heads / 2 kv, d_ff 160", "4 heads / 2 kv, d_ff 164"]]
    deeper = apply_edit("insert_layers", outcome.loaded, InsertLayersParams(after=1, n=2))
    assert deeper.layers == (2, 4) and deeper.rows == [["2-3", "—", "4 heads / 2 kv, d_ff 164"]]
    before, after = deeper.parameters
    per_block = (before - 259 * 64 - 64) // 2  # all but the (tied) embeddings and the final norm, over 2 blocks
    assert after - before == 2 * per_block


def test_the_gates_loop_runs_as_one_recipe(tmp_path):
    """head_gates → distill (gates at a high learning rate) → grow_saturated → prune_closed → distill: the
    loop recipes/gates-grow-prune.yaml runs on SmolLM2, here on tiny-llama with a few steps."""
    recipe = tmp_path / "loop.yaml"
    train = "alpha: 0.0, beta: 1.0, gamma: 0.0, steps: 6, batch_size: 2, seq_len: 32, max_train_tokens: 2000, warmup_steps: 0, lr: 1.0e-3, lr_multipliers: {'*gate_logits': 2000}"
    recipe.write_text(textwrap.dedent(f"""\
        name: loop
        model: tiny-llama
        device: cpu
        dtype: float32
        steps:
          - head_gates: {{}}
          - distill: {{name: gated, {train}}}
          - grow_saturated: {{threshold: 0.6}}
          - prune_closed: {{threshold: 0.4}}
          - distill: {{name: grown, {train}}}
        """))
    metrics = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False).metrics
    grown, pruned = metrics["grow_saturated"]["edit"], metrics["prune_closed"]["edit"]
    # the gates moved past a threshold (at the plain lr of 1e-3, 6 steps move c by < 0.01: sigmoid stays near 0.5)
    assert grown["layers"] or pruned["heads"] or pruned["kept_closed"], (grown, pruned)
    assert metrics["grow_saturated"]["parameters"][1] >= metrics["grow_saturated"]["parameters"][0]


def test_gates_command_shows_what_grow_and_prune_will_act_on(cli, trained_gates):
    code, out, err = cli("surgery", "gates", str(trained_gates), "--saturated", "0.9", "--closed", "0.1")
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert "1.964" in rows[0] and rows[0].split("│")[6].strip() == "4" and rows[1].split("│")[7].strip() == "2"
    code, out, _ = cli("surgery", "gates", str(trained_gates), "--heads")
    assert code == 0 and out.count("1.964") == 4 and out.count("0.036") == 2


def test_gates_command_on_an_ungated_model_is_one_line(cli):
    code, _, err = cli("surgery", "gates", "tiny-llama")
    assert code == 2 and "needs head gates" in err and len(err.strip().splitlines()) == 1
