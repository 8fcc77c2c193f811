import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from mindset.errors import MindsetError
from mindset.models import load
from mindset.train import DistillConfig, distill
from mindset.train.checkpoint_io import load_tree, save_tree
from mindset.train.losses import kl_to_teacher
from mindset.train.module import lr_factor

SMALL = {"steps": 12, "batch_size": 4, "seq_len": 32, "checkpoint_every": 3, "max_train_tokens": 4000, "warmup_steps": 2}


def pair(student_seed=0, teacher_seed=1, kind="tiny-llama"):
    return load(kind, seed=student_seed), load(kind, seed=teacher_seed)


def run(tmp_path, name, resume=False, callbacks=(), **overrides):
    student, teacher = pair()
    result = distill(student, teacher, DistillConfig(name=name, **{**SMALL, **overrides}), runs_dir=tmp_path, resume=resume, callbacks=callbacks, progress=False)
    return result, student


def weights_of(student):
    return {k: v.clone() for k, v in student.model.state_dict().items()}


def test_distillation_moves_the_student_toward_the_teacher(tmp_path):
    student, teacher = pair()
    ids = student.tokenizer("It is a truth universally acknowledged, that a single man", return_tensors="pt")["input_ids"]

    def kl():
        with torch.no_grad():
            return kl_to_teacher(student.model(ids).logits, teacher.model(ids).logits, 1.0).item()

    before = kl()
    config = DistillConfig(name="d", **{**SMALL, "steps": 30, "lr": 3e-3, "alpha": 1.0, "beta": 0.0})  # the teacher alone
    result = distill(student, teacher, config, runs_dir=tmp_path, progress=False)
    assert kl() < 0.7 * before
    assert result.steps == 30 and result.trainable_params == result.total_params
    saved = load(result.student_dir)
    torch.testing.assert_close(saved.model(ids).logits, student.model(ids).logits)
    record = json.loads((tmp_path / "d" / "distill.json").read_text())
    assert record["tokens_seen"] == 30 * 4 * 32
    assert list((tmp_path / "d" / "tb").glob("events.out.tfevents.*"))


def test_only_matching_parameters_train(tmp_path):
    student, teacher = pair()
    before = weights_of(student)
    result = distill(student, teacher, DistillConfig(name="p", trainable=["model.layers.1.mlp.*"], **SMALL), runs_dir=tmp_path, progress=False)
    after = weights_of(student)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"model.layers.1.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
    assert result.trainable_params == 3 * 64 * 160
    checkpoint = load_tree(max((tmp_path / "p" / "checkpoints").iterdir()))
    assert set(checkpoint["state_dict"]) == {f"student.{k}" for k in changed}  # checkpoints hold only what trains


def test_resume_after_an_exception_equals_an_uninterrupted_run(tmp_path):
    class Crash(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 7:
                raise RuntimeError("simulated crash")

    _, reference = run(tmp_path, "whole")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, "broken", callbacks=[Crash()])
    assert sorted(p.name for p in (tmp_path / "broken" / "checkpoints").iterdir()) == ["step=000003.ckpt", "step=000006.ckpt"]
    result, resumed = run(tmp_path, "broken", resume=True)
    assert json.loads((tmp_path / "broken" / "distill.json").read_text())["resumed_from_step"] == 6
    want, got = weights_of(reference), weights_of(resumed)
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6


def cli_distill(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mindset", "distill", "tiny-llama@0", "--teacher", "tiny-llama@1",
        "-o", str(run_dir), "--steps", "150", "--batch-size", "4", "--seq-len", "32",
        "--checkpoint-every", "10", "--max-train-tokens", "20000", "--device", "cpu", *extra,
    ]  # fmt: skip


def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(cli_distill(tmp_path / "whole"), check=True, capture_output=True, env=env, timeout=600)
    victim = subprocess.Popen(cli_distill(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while not any(p.name >= "step=000020.ckpt" for p in checkpoints.glob("step=*.ckpt")):
        assert victim.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)  # let it get somewhere between checkpoints
    assert victim.poll() is None, "the run ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "student").exists()
    subprocess.run(cli_distill(tmp_path / "killed", "--resume"), check=True, capture_output=True, env=env, timeout=600)
    want = load_file(tmp_path / "whole" / "student" / "model.safetensors")
    got = load_file(tmp_path / "killed" / "student" / "model.safetensors")
    assert want.keys() == got.keys()
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6
    assert json.loads((tmp_path / "killed" / "distill.json").read_text())["resumed_from_step"] >= 20


def test_non_finite_losses_are_skipped_then_stop_the_run(tmp_path, monkeypatch):
    import mindset.train.module as module

    original, calls = module.distill_loss, iter(range(1000))
    poisoned = {4, 5, 9, 10, 11}  # two bad steps in a row are skipped; three in a row stop the run

    def distill_loss(*args, **kwargs):
        loss, parts = original(*args, **kwargs)
        return (loss * float("nan"), parts) if next(calls) in poisoned else (loss, parts)

    monkeypatch.setattr(module, "distill_loss", distill_loss)
    with pytest.warns(UserWarning, match="skipping this step"):
        with pytest.raises(MindsetError, match="3 non-finite losses in a row at step 11"):
            run(tmp_path, "nan", max_bad_steps=3, steps=20)
    kept = sorted(p.name for p in (tmp_path / "nan" / "checkpoints").iterdir())
    assert kept[-1] == "step=000009.ckpt"
    assert all(torch.isfinite(t).all() for t in load_tree(tmp_path / "nan" / "checkpoints" / kept[-1])["state_dict"].values())


def test_lr_schedule_warms_up_then_decays():
    factors = [lr_factor(s, warmup=4, total=20, min_ratio=0.1) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[3:], factors[4:]))
    assert math.isclose(lr_factor(20, 4, 20, 0.1), 0.1)


def test_checkpoint_tree_round_trip(tmp_path):
    tree = {"state_dict": {"w": torch.randn(3, 2), "tied": torch.ones(2)}, "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"betas": (0.9, 0.99), "lr": 1e-3}]}], "global_step": 7, "x": None}
    save_tree(tree, tmp_path / "c.ckpt")
    back = load_tree(tmp_path / "c.ckpt")
    assert back["global_step"] == 7 and back["x"] is None
    assert back["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert torch.equal(back["optimizer_states"][0]["state"][0]["step"], torch.tensor(3.0))
    assert torch.equal(back["state_dict"]["w"], tree["state_dict"]["w"])


# --- bad input ---------------------------------------------------------------------------------


def test_different_vocabularies_are_refused(tmp_path):
    student = load("tiny-llama")
    teacher = load("tiny-llama", seed=1)
    teacher.tokenizer.add_tokens(["<extra>"])
    with pytest.raises(MindsetError, match="different vocabularies"):
        distill(student, teacher, DistillConfig(**SMALL), runs_dir=tmp_path, progress=False)


def test_a_pattern_that_matches_nothing(tmp_path):
    student, teacher = pair()
    with pytest.raises(MindsetError, match=r"'\*memory\*' matches no parameter"):
        distill(student, teacher, DistillConfig(trainable=["*memory*"], **SMALL), runs_dir=tmp_path, progress=False)


def test_empty_data(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    student, teacher = pair()
    with pytest.raises(MindsetError, match="fewer than one block"):
        distill(student, teacher, DistillConfig(data=str(tmp_path / "empty.txt"), **SMALL), runs_dir=tmp_path, progress=False)


def test_bad_jsonl_names_the_line(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    student, teacher = pair()
    with pytest.raises(MindsetError, match=r"d.jsonl:2: each line must be a JSON object with a 'text' field"):
        distill(student, teacher, DistillConfig(data=str(tmp_path / "d.jsonl"), **SMALL), runs_dir=tmp_path, progress=False)


def test_corrupt_checkpoint_on_resume(tmp_path):
    run(tmp_path, "c")
    latest = max((tmp_path / "c" / "checkpoints").iterdir())
    data = (latest / "tensors.safetensors").read_bytes()
    (latest / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(MindsetError, match="corrupt or incomplete"):
        run(tmp_path, "c", resume=True)


def test_resume_needs_a_checkpoint_and_a_fresh_run_needs_a_fresh_folder(tmp_path):
    with pytest.raises(MindsetError, match="nothing to resume"):
        run(tmp_path, "none", resume=True)
    run(tmp_path, "once")
    with pytest.raises(MindsetError, match="already holds checkpoints"):
        run(tmp_path, "once")


def test_resume_with_a_different_student_is_refused(tmp_path):
    run(tmp_path, "s", trainable=["model.layers.0.*"])
    other = load("tiny-llama", seed=5)
    with pytest.raises(MindsetError, match="frozen weights differ"):
        distill(other, load("tiny-llama", seed=1), DistillConfig(name="s", trainable=["model.layers.0.*"], **SMALL), runs_dir=tmp_path, resume=True, progress=False)


def test_a_config_that_cannot_fit_in_memory(tmp_path):
    student, teacher = pair()
    with pytest.raises(MindsetError, match="needs at least .* GiB for activations"):
        distill(student, teacher, DistillConfig(**{**SMALL, "batch_size": 200_000, "seq_len": 4096}), runs_dir=tmp_path, progress=False)


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="nothing to learn from"):
        DistillConfig(alpha=0, beta=0, gamma=0)
    with pytest.raises(ValueError):
        DistillConfig(temperature=0)


def test_progress_counts_optimizer_steps_not_epochs(tmp_path, capsys, monkeypatch):
    """Lightning's own bar said `Epoch 0/-2` (max_epochs=-1 when training by steps); the bar counts steps."""
    monkeypatch.setattr("mindset.train.progress_bar.stderr_is_terminal", lambda: True)  # the rich bar: a terminal's
    student, teacher = pair()
    distill(student, teacher, DistillConfig(name="bar", **{**SMALL, "steps": 3}), runs_dir=tmp_path, progress=True)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "Epoch" not in text
    assert "step 3/3" in text


def test_trainable_takes_component_names_and_globs(tiny_gpt2):
    from mindset.train import select_trainable

    model = tiny_gpt2.model
    by_name = select_trainable(model, ["L1.mlp", "embed"])
    assert by_name == {n for n, _ in model.named_parameters() if n.startswith("transformer.h.1.mlp.")} | {"transformer.wte.weight"}
    assert by_name == select_trainable(model, ["transformer.h.1.mlp.*", "transformer.wte.*"])
    assert {n for n, p in model.named_parameters() if p.requires_grad} == by_name
    with pytest.raises(MindsetError, match="the model has 2 layers"):
        select_trainable(model, ["L2.mlp"])
