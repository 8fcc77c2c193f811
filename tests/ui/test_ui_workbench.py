"""The workbench session: edits through the recipe steps, undo/redo, a failed edit changing nothing, the
autosaved history, and the recipe that `mindset run` turns into the same tensors."""

import pytest
import torch
import yaml
from ui_helpers import logits, same_tensors

from mindset.errors import MindsetError
from mindset.ui import Workbench


def test_add_heads_keeps_logits_and_undo_redo_move_between_states(bench, tiny_llama):
    before = logits(tiny_llama)
    bench.apply("add_heads", {"layers": [1], "n": 2})
    from mindset.models.anatomy import blocks

    assert blocks(bench.current.model)[1].n_heads == 6
    assert blocks(bench.original.model)[1].n_heads == 4  # the original is never edited
    torch.testing.assert_close(logits(bench.current), before, atol=1e-5, rtol=0)
    bench.undo()
    assert bench.current is bench.original
    bench.redo()
    assert blocks(bench.current.model)[1].n_heads == 6
    assert bench.history()["cursor"] == 1 and not bench.history()["can_redo"]


def test_nothing_to_undo_or_redo_is_a_user_error(bench):
    with pytest.raises(MindsetError, match="nothing to undo"):
        bench.undo()
    with pytest.raises(MindsetError, match="nothing to redo"):
        bench.redo()


def test_a_failed_edit_leaves_the_model_and_history(bench):
    bench.apply("widen_ffn", {"add": 8})
    current, version = bench.current, bench.version
    state = {k: v.clone() for k, v in current.model.state_dict().items()}
    with pytest.raises(MindsetError, match="layer"):
        bench.apply("add_heads", {"layers": [7]})  # tiny-llama has layers 0-1
    with pytest.raises(MindsetError, match="exactly one of add"):
        bench.apply("widen_ffn", {"add": 8, "width": 300})
    assert bench.current is current and bench.version == version and len(bench.history()["steps"]) == 1
    for name, tensor in current.model.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_unknown_op_names_the_ops_with_a_suggestion(bench):
    with pytest.raises(MindsetError, match="did you mean 'add_heads'.*widen_ffn"):
        bench.apply("add_head", {})


def test_save_is_not_a_ui_parameter(bench):
    with pytest.raises(MindsetError, match="/api/save"):
        bench.apply("head_gates", {"save": "x"})


def test_undo_past_the_kept_snapshots_replays_from_the_original(tiny_llama, tmp_path):
    bench = Workbench(tiny_llama, tmp_path, snapshots=1)
    for seed in range(3):
        bench.apply("widen_ffn", {"layers": [0], "add": 4, "init": "random", "seed": seed})
    kept = set(bench._states)
    assert 1 not in kept  # only the newest states are held
    reference = Workbench(tiny_llama, tmp_path / "ref", autosave=False)
    reference.apply("widen_ffn", {"layers": [0], "add": 4, "init": "random", "seed": 0})
    bench.undo()
    bench.undo()  # state 1 was dropped: rebuilt by replaying step 0 on the original
    same_tensors(bench.current, reference.current)


def test_a_new_edit_after_undo_drops_the_redo_tail(bench):
    bench.apply("head_gates", {})
    bench.undo()
    bench.apply("insert_layers", {"after": 0})
    history = bench.history()
    assert [s["op"] for s in history["steps"]] == ["insert_layers"] and not history["can_redo"]


def test_history_autosaves_as_a_recipe_after_every_change(bench):
    bench.apply("add_heads", {"layers": "1", "n": 2})
    saved = yaml.safe_load(bench.history_path.read_text())
    assert saved["model"] == "tiny-llama" and list(saved["steps"][0]) == ["add_heads"]
    bench.undo()
    assert yaml.safe_load(bench.history_path.read_text())["steps"] == ["inspect"]


def test_replaying_the_autosaved_history_gives_the_same_model(bench, tiny_llama, tmp_path):
    bench.apply("widen_ffn", {"add": 8, "init": "random", "seed": 3})
    bench.apply("insert_layers", {"after": 1})
    again = Workbench(tiny_llama, tmp_path / "again")
    assert again.replay(bench.history_path) == 2
    same_tensors(again.current, bench.current)


def test_the_recipe_run_by_mindset_run_rebuilds_the_same_tensors(bench, tmp_path):
    from rich.console import Console

    from mindset.models import load
    from mindset.recipes.runner import run_recipe

    bench.apply("add_heads", {"layers": [0], "n": 2, "init": "random", "seed": 1})
    bench.apply("widen_ffn", {"layers": "1", "add": 16, "init": "random", "seed": 2})
    bench.apply("insert_layers", {"after": 0})
    bench.apply("head_gates", {"layers": [2]})
    path = tmp_path / "edits.yaml"
    path.write_text(bench.recipe(save="model"))
    result = run_recipe(path, runs_dir=tmp_path / "runs", console=Console(quiet=True), progress=False)
    rebuilt = load(result.run_dir / "model", device="cpu", dtype="float32")
    same_tensors(rebuilt, bench.current)
    torch.testing.assert_close(logits(rebuilt), logits(bench.current), atol=1e-5, rtol=0)


def test_save_confines_paths_to_root_and_writes_a_loadable_folder(bench):
    from mindset.models import load
    from mindset.ui.paths import OutsideRoot

    bench.apply("widen_ffn", {"add": 8, "init": "random", "seed": 5})
    for bad in ("../escape", "/tmp/elsewhere", "a/../../b", "."):
        with pytest.raises(OutsideRoot):
            bench.save(bad)
    saved = bench.save("edited")
    again = load(saved["path"], device="cpu", dtype="float32")
    torch.testing.assert_close(logits(again), logits(bench.current), atol=1e-5, rtol=0)
    with pytest.raises(MindsetError, match="exists|overwrite"):
        bench.save("edited")


def test_heal_by_distillation_is_one_more_step_and_the_recipe_repeats_it(bench, tmp_path):
    from rich.console import Console

    from mindset.models import load
    from mindset.recipes.runner import run_recipe
    from mindset.ui.measure import Measurer

    measurer = Measurer(bench.original)
    bench.apply("widen_ffn", {"add": 32, "init": "split", "noise": 2.0})
    broken = measurer.quick(bench.current)["kl"]["mean"]
    bench.apply("distill", {"steps": 6, "batch_size": 2, "seq_len": 32, "lr": 1e-3, "warmup_steps": 1})  # teacher: the original
    assert measurer.quick(bench.current)["kl"]["mean"] < broken
    path = tmp_path / "healed.yaml"
    path.write_text(bench.recipe(save="model"))
    run = run_recipe(path, runs_dir=tmp_path / "runs", console=Console(quiet=True), progress=False)
    assert "runs/ui-edits/distill/student" in path.read_text()
    same_tensors(load(run.run_dir / "distill" / "student", device="cpu", dtype="float32"), bench.current)
    bench.undo()
    assert measurer.quick(bench.current)["kl"]["mean"] == broken
