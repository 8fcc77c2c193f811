"""Protected training: the destructive fine-tune demonstration (both halves), and bad input."""

import copy
import warnings

import pytest

from benchmarks.toy import destructive_finetune_demo, letter_map, letter_map_suite
from mindset.circuits.protect import Protection, ProtectionConfig
from mindset.errors import MindsetError
from mindset.train import DistillConfig, distill


def _accuracies(history):
    return [h["accuracy"]["letter_map"] for h in history]


def test_protection_keeps_the_canary_that_an_unprotected_finetune_destroys(tmp_path):
    demo = destructive_finetune_demo(tmp_path, steps=60)
    plain, guarded = demo["unprotected"], demo["protected"]
    baseline = plain[0]["accuracy"]["letter_map"]
    assert baseline == guarded[0]["accuracy"]["letter_map"] > 0.95  # the canary was learned
    # without protection: collapses toward chance (0.25) and stays there
    assert _accuracies(plain)[-1] < 0.5 and max(_accuracies(plain)[2:]) < 0.6
    assert all(h["event"] != "rollback" for h in plain)
    # with protection: rollbacks are logged, and every state training continued from is within the threshold
    assert demo["rollbacks"] and any(h["event"] == "rollback" for h in guarded)
    kept = [h["accuracy"]["letter_map"] for h in guarded if h["event"] in ("baseline", "pass")]
    assert min(kept) >= baseline - demo["max_drop"]
    assert guarded[-1]["event"] == "pass" and guarded[-1]["step"] == 60
    assert demo["protected_components"]  # the importance maps found something to protect
    assert (tmp_path / "protected" / "protection.json").is_file()
    assert list((tmp_path / "protected" / "tb").rglob("events.out.tfevents*"))


def test_protection_over_frozen_parameters_is_refused(tiny_llama, tmp_path):
    suite = letter_map_suite(letter_map(0))
    guard = Protection(ProtectionConfig(), components=["L1.mlp"], canaries=[suite])
    text = tmp_path / "t.txt"
    text.write_text("abc " * 400)
    config = DistillConfig(name="x", steps=2, batch_size=2, seq_len=16, alpha=0, beta=1, data=str(text), trainable=["*attn*"])
    with pytest.raises(MindsetError, match="L1.mlp, whose parameters are not trainable"):
        distill(tiny_llama, None, config, runs_dir=tmp_path, progress=False, protection=guard)
    with pytest.raises(MindsetError, match="has 2 layers"):
        distill(tiny_llama, None, config.model_copy(update={"name": "y", "trainable": ["*"]}), runs_dir=tmp_path, progress=False,
                protection=Protection(components=["L4.mlp"]))


def test_frozen_components_do_not_move_and_l2_pull_is_logged(tiny_llama, tmp_path):
    """lr_scale 0 freezes a protected unit through its parameter group; other units train."""
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 50)
    before = copy.deepcopy(tiny_llama.model.state_dict())
    guard = Protection(ProtectionConfig(lr_scale=0.0, l2=0.1, check_every=100), components=["L0.H1"], canaries=[letter_map_suite(letter_map(0))])
    config = DistillConfig(name="f", steps=3, batch_size=2, seq_len=16, alpha=0, beta=1, lr=1e-2, warmup_steps=0, data=str(text))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = distill(tiny_llama, None, config, runs_dir=tmp_path, progress=False, protection=guard)
    after = tiny_llama.model.state_dict()
    assert guard.protected == ["L0.attn"]
    for name in before:
        moved = not (before[name] == after[name]).all()
        assert moved == (not name.startswith("model.layers.0.self_attn.")), name
    assert "train/l2_pull" in result.metrics or any("l2_pull" in k for k in result.metrics)


def test_teacherless_run_needs_pure_cross_entropy(tiny_llama, tmp_path):
    with pytest.raises(MindsetError, match="without a teacher"):
        distill(tiny_llama, None, DistillConfig(name="z", steps=1), runs_dir=tmp_path, progress=False)


def test_circuits_protection_meets_trains_protocol():
    """train takes any protection with these members; circuits' is one (so train never imports circuits)."""
    from mindset.train.protection import Protection as TrainProtection

    assert isinstance(Protection(ProtectionConfig()), TrainProtection)
    assert not isinstance(object(), TrainProtection)


def test_a_suite_at_chance_is_logged_but_never_rolls_back():
    """A canary the model was at chance on when mapped moves by noise: its dip must not undo training; a
    dip of a suite above chance still does."""
    from types import SimpleNamespace

    from mindset.circuits.importance import Importance
    from mindset.circuits.protect import Protection, ProtectionConfig

    def importance(suite: str, at_chance: bool) -> Importance:
        return Importance("m", suite, "mlp", "zero", 20, -1.0, 0.3, 0.1, 0.25, at_chance, 2, 4)

    protection = Protection(ProtectionConfig(max_drop=0.1), importances=[importance("noise", True), importance("names", False)])
    assert protection.watched_only() == {"noise"}
    assert Protection(ProtectionConfig(chance_rollback=True), importances=protection.importances).watched_only() == set()
    scores = iter([{"noise": 0.5, "names": 0.9}, {"noise": 0.1, "names": 0.9}, {"noise": 0.1, "names": 0.5}])
    protection.score, protection.snapshot, protection.params, protection.scales = lambda: next(scores), dict, {}, {}
    monitor = protection.callback()
    trainer = SimpleNamespace(global_step=0, optimizers=[], logger=None, lr_scheduler_configs=[])
    monitor.on_train_start(trainer, None)
    trainer.global_step = 8
    monitor.check(trainer, None)  # noise fell 0.4: logged, no rollback
    assert protection.history[-1]["event"] == "pass" and protection.history[-1]["accuracy"]["noise"] == 0.1 and not protection.events
    trainer.global_step, trainer.optimizers = 16, [SimpleNamespace(param_groups=[])]
    monitor.check(trainer, None)  # names fell 0.4: rolled back
    assert protection.history[-1]["event"] == "rollback" and list(protection.events[0]["failed"]) == ["names"]
