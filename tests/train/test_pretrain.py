import json
import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import yaml
from safetensors.torch import load_file

from mindset.errors import MindsetError
from mindset.models import load
from mindset.train.pretrain import pretrain, read_config
from mindset.train.pretrain_config import PretrainConfig

TINY = {"layers": 3, "hidden": 32, "heads": 4, "kv_heads": 2, "d_ff": 64}
FAST = {"tokens": 24 * 4 * 32, "batch_size": 4, "seq_len": 32, "lr": 1e-2, "warmup_steps": 3, "eval_every": 8, "eval_tokens": 512, "checkpoint_every": 4}


def config(name="p", surgery=(), train=None, data=None, **extra) -> PretrainConfig:
    return PretrainConfig(name=name, model=TINY, surgery=list(surgery), train={**FAST, **(train or {})}, data=data or {"max_train_tokens": 40_000}, **extra)


def rows_of(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())["rows"]


VARIANTS = {
    "dense": [],
    "featural-memory": [{"ffn_to_memory": {"layers": "0,2", "k": 8}}],
    "associative-memory": [{"ffn_to_memory": {"layers": [1], "kind": "associative", "k": 4, "capacity": 64}}],
    "head-gates": [{"head_gates": {}}],
    "feedback": [{"layerwise_feedback": {"pairs": [[0, 2]]}}],
    "deeper": [{"insert_layers": {"after": 1, "n": 1}}],
    "shallower": [{"drop_layers": {"layers": [2]}}],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_learns(variant, tmp_path, mindset_home):
    result = pretrain(config(variant, VARIANTS[variant], variant=variant), runs_dir=tmp_path, progress=False)
    rows = rows_of(result.run_dir)
    assert [r["step"] for r in rows] == [0, 8, 16, 24]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 1.0  # from ~ln(259) = 5.56 nats: it learned the bytes' statistics
    record = json.loads((result.run_dir / "pretrain.json").read_text())
    assert [e["step"] for e in record["edits"]] == [next(iter(s)) for s in VARIANTS[variant]]
    assert record["tokens"] == 24 * 4 * 32 and rows[-1]["flops"] == record["tokens"] * record["flops_per_token"]
    back = load(result.model_dir)  # the surgery's modules save and load like any edited model
    assert sum(p.numel() for p in back.model.parameters()) == record["parameters"]


def test_variant_shapes_change_the_model(tmp_path, mindset_home):
    from mindset.surgery import feedback_pairs, memory_layers
    from mindset.train.tokens import load_tokenizer
    from mindset.train.variants import build_model

    tokenizer = load_tokenizer("byte")
    dense, _ = build_model(config(), tokenizer)
    memory, edits = build_model(config(surgery=VARIANTS["featural-memory"] + VARIANTS["feedback"]), tokenizer)
    assert memory_layers(memory.model) == {0: "featural", 2: "featural"} and feedback_pairs(memory.model) == [(0, 2)]
    assert edits[1]["parameters"][1] - edits[1]["parameters"][0] == 32 * 32  # one zero-initialised hidden x hidden projection
    deeper, _ = build_model(config(surgery=VARIANTS["deeper"]), tokenizer)
    assert deeper.model.config.num_hidden_layers == 4 and dense.model.config.num_hidden_layers == 3
    again, _ = build_model(config(), tokenizer)
    assert all((a == b).all() for a, b in zip(dense.model.parameters(), again.model.parameters()))  # same config, same init
    other, _ = build_model(config(seed=1), tokenizer)
    assert not (next(other.model.parameters()) == next(dense.model.parameters())).all()


def test_resume_after_an_exception_equals_an_uninterrupted_run_with_surgery(tmp_path, mindset_home):
    class Crash(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 10:
                raise RuntimeError("simulated crash")

    variant = VARIANTS["featural-memory"] + VARIANTS["feedback"] + VARIANTS["head-gates"]
    whole = pretrain(config("whole", variant), runs_dir=tmp_path, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(config("broken", variant), runs_dir=tmp_path, progress=False, callbacks=[Crash()])
    resumed = pretrain(config("broken", variant), runs_dir=tmp_path, resume=True, progress=False)
    assert json.loads((resumed.run_dir / "pretrain.json").read_text())["resumed_from_step"] == 8
    want, got = load_file(whole.model_dir / "model.safetensors"), load_file(resumed.model_dir / "model.safetensors")
    assert want.keys() == got.keys() and max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6
    want_rows, got_rows = rows_of(whole.run_dir), rows_of(resumed.run_dir)
    assert [(r["step"], r["tokens"]) for r in got_rows] == [(r["step"], r["tokens"]) for r in want_rows] == [(0, 0), (8, 1024), (16, 2048), (24, 3072)]
    assert [r["val_loss"] for r in got_rows] == pytest.approx([r["val_loss"] for r in want_rows], abs=1e-6)


KILL_CONFIG = {
    "name": "k", "model": TINY,
    "train": {"tokens": 90 * 4 * 32, "batch_size": 4, "seq_len": 32, "checkpoint_every": 10, "eval_every": 30, "eval_tokens": 512, "device": "cpu"},
    "data": {"max_train_tokens": 40_000},
}  # fmt: skip


def cli_pretrain(config_path, run_dir, *extra):
    return [sys.executable, "-m", "mindset", "pretrain", str(config_path), "-o", str(run_dir), *extra]


def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path, mindset_home):
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(KILL_CONFIG))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(cli_pretrain(path, tmp_path / "whole"), check=True, capture_output=True, env=env, timeout=600)
    victim = subprocess.Popen(cli_pretrain(path, tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while not any(p.name >= "step=000030.ckpt" for p in checkpoints.glob("step=*.ckpt")):
        assert victim.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere between checkpoints
    assert victim.poll() is None, "the run ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "model").exists()
    subprocess.run(cli_pretrain(path, tmp_path / "killed", "--resume"), check=True, capture_output=True, env=env, timeout=600)
    want = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    got = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert want.keys() == got.keys()
    assert max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6
    record = json.loads((tmp_path / "killed" / "pretrain.json").read_text())
    assert record["resumed_from_step"] >= 30 and record["steps_done"] == 90
    whole_rows, killed_rows = rows_of(tmp_path / "whole"), rows_of(tmp_path / "killed")
    assert [r["step"] for r in killed_rows] == [0, 30, 60, 90]
    assert [r["val_loss"] for r in killed_rows] == pytest.approx([r["val_loss"] for r in whole_rows], abs=1e-6)


# --- bad input: one line each, before a weight is built ------------------------------------------------


def write(tmp_path, data) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("data, message", [
    ({"modle": {}}, r"c.yaml:1: top level: unknown field 'modle' \(did you mean 'model'\?\)"),
    ({"model": {"hiden": 64}}, r"unknown field 'hiden'"),
    ({"train": {"batch_sise": 4}}, r"unknown field 'batch_sise'"),
    ({"model": {"layers": 0}}, r"model.layers.*greater than or equal to 1"),
    ({"model": {"hidden": 100, "heads": 8}}, r"c.yaml:\d: model.heads 8 must divide model.hidden 100 \(head_dim = hidden / heads\)$"),
    ({"model": {"hidden": 64, "heads": 4, "kv_heads": 3}}, r"c.yaml:\d: model.kv_heads 3 must divide model.heads 4$"),
    ({"model": {"context": 64}, "train": {"seq_len": 128}}, r"train.seq_len 128 is longer than model.context 64"),
    ({"surgery": [{"ffn_to_memroy": {}}]}, r"c.yaml:\d: surgery\[0\]: unknown step 'ffn_to_memroy'; did you mean 'ffn_to_memory'\? steps: ffn_to_memory, widen_ffn"),
    ({"surgery": [{"ffn_to_memory": {"k": 0}}]}, r"surgery\[0\].ffn_to_memory.k: Input should be greater than or equal to 1"),
    ({"surgery": [{"head_gates": {}, "drop_layers": {"layers": [1]}}]}, r"surgery\[0\] must be one mapping"),
    ({"tokenizer": "gpt4"}, r"tokenizer"),
])  # fmt: skip
def test_config_errors_are_one_line(tmp_path, data, message):
    with pytest.raises(MindsetError, match=message) as caught:
        read_config(write(tmp_path, data))
    assert "\n" not in str(caught.value)


def test_the_cli_prints_one_line_and_exits_2(tmp_path, cli):
    code, out, err = cli("pretrain", write(tmp_path, {"model": {"hidden": 100, "heads": 8}}))
    assert code == 2 and err.count("\n") == 1 and "model.heads 8 must divide model.hidden 100" in err


def test_a_surgery_step_that_does_not_fit_the_model_is_refused_before_training(tmp_path, mindset_home):
    with pytest.raises(MindsetError, match="layer"):
        pretrain(config(surgery=[{"drop_layers": {"layers": [7]}}]), runs_dir=tmp_path, progress=False)
    assert not (tmp_path / "p" / "checkpoints").exists()


def test_too_little_data_for_one_sequence(tmp_path, mindset_home):
    text = tmp_path / "t.txt"
    text.write_text("one short paragraph.\n\nand another.\n")
    with pytest.raises(MindsetError, match="fewer than one sequence of 32"):
        pretrain(config(data={"corpus": str(text)}), runs_dir=tmp_path, progress=False)


# --- surgery during training: grow and prune on a schedule ---------------------------------------------

SCHEDULE = [{"at": 6, "grow_saturated": {"threshold": 0.01}}, {"at": 12, "prune_closed": {"threshold": 0.99}}]  # every head grows, then most go


def heads_of(model):
    from mindset.models.anatomy import blocks

    return [b.n_heads for b in blocks(model)]


def test_scheduled_grow_and_prune_change_the_heads_and_keep_learning(tmp_path, mindset_home):
    result = pretrain(config("g", VARIANTS["head-gates"], schedule=SCHEDULE), runs_dir=tmp_path, progress=False)
    record = json.loads((result.run_dir / "pretrain.json").read_text())
    assert [s["at"] for s in record["scheduled"]] == [6, 12]
    grown = load(tmp_path / "g" / "structure" / "step=000006")
    assert heads_of(grown.model) == [6, 6, 6]  # one kv group (2 query heads) added to each of the 4-head layers
    assert heads_of(load(result.model_dir).model) == [2, 2, 2]  # all closed: one group kept per layer
    rows = rows_of(result.run_dir)
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 1.0 and rows[-1]["parameters"] < rows[0]["parameters"]
    assert record["parameters_final"] == rows[-1]["parameters"]


@pytest.mark.parametrize("crash_at", [10, 14])  # after the first edit only, after both
def test_resume_after_scheduled_edits_equals_an_uninterrupted_run(tmp_path, mindset_home, crash_at):
    class Crash(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == crash_at:
                raise RuntimeError("simulated crash")

    run = lambda name, **kw: pretrain(config(name, VARIANTS["head-gates"], schedule=SCHEDULE), runs_dir=tmp_path, progress=False, **kw)  # noqa: E731
    whole = run("whole")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run("broken", callbacks=[Crash()])
    resumed = run("broken", resume=True)
    want, got = load_file(whole.model_dir / "model.safetensors"), load_file(resumed.model_dir / "model.safetensors")
    assert want.keys() == got.keys() and max((want[k] - got[k]).abs().max().item() for k in want) <= 1e-6
    assert [r["val_loss"] for r in rows_of(resumed.run_dir)] == pytest.approx([r["val_loss"] for r in rows_of(whole.run_dir)], abs=1e-6)
    assert [r["flops"] for r in rows_of(resumed.run_dir)] == pytest.approx([r["flops"] for r in rows_of(whole.run_dir)])


def test_schedule_errors(tmp_path):
    with pytest.raises(MindsetError, match=r"schedule\[0\] needs at"):
        read_config(write(tmp_path, {"schedule": [{"grow_saturated": {}}]}))
    with pytest.raises(MindsetError, match=r"schedule\[0\]: unknown step 'grow'; did you mean 'grow_saturated'"):
        read_config(write(tmp_path, {"schedule": [{"at": 3, "grow": {}}]}))
    with pytest.raises(MindsetError, match=r"schedule: step 900 is not before the run's last step"):
        read_config(write(tmp_path, {"train": {"tokens": 4096, "batch_size": 4, "seq_len": 32}, "schedule": [{"at": 900, "prune_closed": {}}]}))


def test_lr_multipliers_move_gates_faster(tmp_path, mindset_home):
    def gate_spread(name, **train):
        result = pretrain(config(name, VARIANTS["head-gates"], train={"tokens": 8 * 4 * 32, **train}), runs_dir=tmp_path, progress=False)
        from mindset.surgery import gate_report

        return max(abs(row["logit"]) for row in gate_report(load(result.model_dir).model))

    assert gate_spread("fast", lr_multipliers={"*gate_logits": 100}) > 10 * gate_spread("plain")
    with pytest.raises(MindsetError, match="matches no trainable parameter"):
        pretrain(config("typo", train={"lr_multipliers": {"*gate_logit": 100}}), runs_dir=tmp_path, progress=False)


def test_head_dim_lets_a_model_start_with_fewer_full_width_heads(mindset_home):
    from mindset.train.tokens import load_tokenizer
    from mindset.train.variants import build_model

    loaded, _ = build_model(PretrainConfig(model={**TINY, "heads": 2, "kv_heads": 1, "head_dim": 8}), load_tokenizer("byte"))
    attention = loaded.model.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (16, 32) and attention.o_proj.weight.shape == (32, 16)


def test_bf16_autocast_runs_on_cpu_too(tmp_path, mindset_home):
    """The GPU's precision path (autocast, validation under the same context) is device-agnostic."""
    result = pretrain(config("bf16", VARIANTS["featural-memory"], train={"tokens": 8 * 4 * 32, "precision": "bf16-mixed", "eval_every": 4}),
                      runs_dir=tmp_path, progress=False)
    rows = rows_of(result.run_dir)
    assert json.loads((result.run_dir / "metrics.json").read_text())["precision"] == "bf16-mixed"
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 0.5


@pytest.mark.gpu
def test_gpu_bf16_compile_reports_mfu(tmp_path, mindset_home):
    result = pretrain(config("gpu", train={"tokens": 16 * 4 * 32, "device": "cuda", "compile": True}), runs_dir=tmp_path, progress=False)
    record = json.loads((result.run_dir / "pretrain.json").read_text())
    assert record["precision"] == "bf16-mixed" and record["peak_flops"] and 0 < record["mfu"] < 1
    assert rows_of(result.run_dir)[-1]["val_loss"] < rows_of(result.run_dir)[0]["val_loss"]


def test_ctrl_c_says_how_to_resume_and_the_hint_works(cli, tmp_path, monkeypatch, mindset_home):
    import shlex

    from mindset.train.pretrain_module import PretrainModule

    original = PretrainModule.training_step

    def training_step(self, batch, batch_idx):
        if self.trainer.global_step == 5:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(PretrainModule, "training_step", training_step)
    path = write(tmp_path, {"model": TINY, "train": {**FAST, "tokens": 8 * 4 * 32}, "data": {"max_train_tokens": 40_000}})
    code, _, err = cli("pretrain", path, "-o", str(tmp_path / "cut"), "--overwrite")
    last = err.strip().splitlines()[-1]
    assert code == 130 and last.startswith("interrupted; run `mindset pretrain") and "--overwrite" not in last
    monkeypatch.setattr(PretrainModule, "training_step", original)
    code, _, err = cli(*shlex.split(last.split("`")[1])[1:])
    assert code == 0, err
    assert json.loads((tmp_path / "cut" / "pretrain.json").read_text())["resumed_from_step"] == 4
    from mindset.cli.interrupt import message

    assert "again continues" in message(["experiment", "run", "e.yaml"]) and message(["experiment", "compare", "a"]) == "interrupted"
