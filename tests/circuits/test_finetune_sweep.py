"""Sweep 4: pretrain once per seed, fine-tune that model on another text with and without protection,
measure the original text's loss, the new text's loss and the corpus canaries (tiny runs)."""

import json
import random

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mindset.circuits.finetune_sweep import read_finetune_experiment, run_finetune_experiment
from mindset.errors import MindsetError

BASE = {
    "tokenizer": "byte",
    "model": {"layers": 2, "hidden": 32, "heads": 2, "d_ff": 64},
    "train": {"tokens": 16 * 4 * 64, "batch_size": 4, "seq_len": 64, "lr": 1e-2, "warmup_steps": 2, "eval_every": 8, "eval_tokens": 512, "checkpoint_every": 8},
    "data": {"max_train_tokens": 40_000},
}


def arithmetic_text(path, paragraphs=400):
    """A text nothing like Austen: sums, one paragraph each."""
    rng = random.Random(0)
    lines = [f"{a} + {b} = {a + b}; {a} * {b} = {a * b}." for a, b in ((rng.randrange(999), rng.randrange(99)) for _ in range(paragraphs))]
    path.write_text("\n\n".join(lines) + "\n")
    return path


def experiment(tmp_path, variants, finetune_extra=None):
    text = arithmetic_text(tmp_path / "sums.txt")
    spec = {
        "name": "pf", "question": "does protection keep the canaries?", "seeds": [0], "base": BASE,
        "finetune": {"data": {"corpus": str(text), "valid_fraction": 0.1},
                     "train": {"tokens": 12 * 4 * 64, "batch_size": 4, "seq_len": 64, "lr": 1e-2, "warmup_steps": 2, "eval_every": 4, "eval_tokens": 512},
                     "canaries": {"documents": 8}, **(finetune_extra or {})},
        "variants": variants,
    }
    path = tmp_path / "pf.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, mindset_home):
    """The seed-0 pretraining run of BASE, made once; each test copies it into its experiment folder."""
    from mindset.circuits.finetune_sweep import read_finetune_experiment as read
    from mindset.train.sweep import ensure_pretrained

    folder = tmp_path_factory.mktemp("pretrained")
    _, runs = read(experiment(folder, {"a": {}}))
    return ensure_pretrained(runs[0].pretrain, folder / "runs", "[pretrain]", progress=False, say=lambda _: None)


def with_pretrained(out, pretrained):
    import shutil

    shutil.copytree(pretrained, out / "pretrained-s0")
    return out


FROZEN = {"threshold": -1000.0, "lr_scale": 0.0, "rollback": False, "check_every": 4}  # every block protected and frozen


def test_finetune_sweep_pretrains_once_and_measures_retention(tmp_path, pretrained):
    path = experiment(tmp_path, {"unprotected": {}, "frozen": {"finetune": {"protect": FROZEN}}})
    out = with_pretrained(tmp_path / "out", pretrained)
    said = []
    result = run_finetune_experiment(path, out, progress=False, say=said.append)
    assert said[0] == "[pretrain] pretrained-s0: finished earlier, kept"  # one pretraining run for both variants
    assert sorted(p.name for p in out.iterdir() if (p / "pretrain.json").is_file()) == ["pretrained-s0"]
    rows = {v: json.loads((out / f"{v}-s0" / "metrics.json").read_text())["rows"] for v in ("unprotected", "frozen")}
    assert [r["step"] for r in rows["unprotected"]] == [0, 4, 8, 12]
    assert rows["unprotected"][0]["val_loss"] == rows["frozen"][0]["val_loss"]  # both start from the same pretrained model
    assert set(rows["unprotected"][0]["canaries"]) == {"austen-names", "austen-words"}
    assert rows["unprotected"][-1]["finetune_loss"] < rows["unprotected"][0]["finetune_loss"] - 0.5  # it learns the new text
    assert rows["unprotected"][-1]["val_loss"] > rows["unprotected"][0]["val_loss"]  # and forgets the old one

    # the frozen variant: every attention block and MLP kept the pretrained weights, the embeddings moved
    record = json.loads((out / "frozen-s0" / "finetune.json").read_text())
    assert sorted(record["protected"]["units"]) == ["L0.attn", "L0.mlp", "L1.attn", "L1.mlp"] and record["protected"]["rollbacks"] == 0
    before = load_file(out / "pretrained-s0" / "model" / "model.safetensors")
    after = load_file(out / "frozen-s0" / "student" / "model.safetensors")
    blocks = [k for k in before if ".self_attn." in k or ".mlp." in k]  # norms are in the "rest" unit, which trains
    assert blocks and all(torch.equal(before[k], after[k]) for k in blocks)
    assert not torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])

    summaries = {s["variant"]: s for s in result["variants"]}
    assert summaries["unprotected"]["finetune_loss"] == rows["unprotected"][-1]["finetune_loss"]
    assert summaries["frozen"]["canary_accuracy"] == rows["frozen"][-1]["canary_accuracy"]
    report = (out / "compare" / "compare.md").read_text()
    assert "fine-tune loss" in report and "canaries_vs_tokens.png" in report and (out / "compare" / "canaries_vs_tokens.png").is_file()

    said.clear()
    run_finetune_experiment(path, out, progress=False, say=said.append)  # again: everything kept
    assert all("finished earlier, kept" in line for line in said) and len(said) == 3


def test_protected_finetune_rolls_back_when_a_canary_drops(tmp_path, pretrained):
    # the tiny pretrained model is at chance on its canaries: chance_rollback lets their dips roll back here
    watch = {"threshold": 0.0, "lr_scale": 0.5, "max_drop": 0.0, "check_every": 4, "tighten": 0.1, "chance_rollback": True}
    path = experiment(tmp_path, {"protected": {"finetune": {"protect": watch}}})
    run_finetune_experiment(path, with_pretrained(tmp_path / "out", pretrained), progress=False, say=lambda _: None)
    record = json.loads((tmp_path / "out" / "protected-s0" / "finetune.json").read_text())
    history = json.loads((tmp_path / "out" / "protected-s0" / "protection.json").read_text())
    drops = [h for h in history["history"] if h["event"] == "rollback"]
    assert record["protected"]["rollbacks"] == len(drops) == len(history["events"])
    # max_drop 0: any check below the baseline rolls back, so every check that passed kept the baseline or better
    baseline = history["history"][0]["accuracy"]
    assert all(all(h["accuracy"][n] >= baseline[n] for n in baseline) for h in history["history"] if h["event"] == "pass")


def test_finetune_experiment_errors(tmp_path):
    path = experiment(tmp_path, {"a": {"finetune": {"protect": {"lr_scale": 3}}}})
    with pytest.raises(MindsetError, match="lr_scale"):
        read_finetune_experiment(path)
    path = experiment(tmp_path, {"a": {}}, {"steps": 3})
    with pytest.raises(MindsetError, match="unknown field 'steps'"):
        read_finetune_experiment(path)
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"name": "x", "base": BASE, "variants": {"a": {"finetune": {}}}}))
    with pytest.raises(MindsetError, match="has no finetune stage"):
        read_finetune_experiment(plain)


def test_variants_that_change_pretraining_get_their_own_pretrained_runs(tmp_path):
    path = experiment(tmp_path, {"a": {}, "b": {"finetune": {"protect": FROZEN}}, "wide": {"model": {"d_ff": 128}}})
    _, runs = read_finetune_experiment(path, seeds=[0, 1])
    assert [(r.name, r.pretrain.name) for r in runs] == [
        ("a-s0", "pretrained-s0"), ("a-s1", "pretrained-s1"), ("b-s0", "pretrained-s0"), ("b-s1", "pretrained-s1"),
        ("wide-s0", "pretrained1-s0"), ("wide-s1", "pretrained1-s1")]
    assert runs[2].stage.protect.lr_scale == 0.0 and runs[0].stage.protect is None
    _, short = read_finetune_experiment(path, seeds=[0], train={"tokens": 512})
    assert short[0].stage.train.tokens == 512 and short[0].pretrain.train.tokens == 512


def test_the_shipped_protected_finetune_recipe_reads_whole():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "recipes" / "experiments" / "protected-finetune.yaml"
    experiment, runs = read_finetune_experiment(path)
    assert len(experiment.seeds) >= 3 and {r.pretrain.name for r in runs} == {f"pretrained-s{s}" for s in experiment.seeds}
    protected = {r.variant: r.stage.protect for r in runs}
    assert protected["unprotected"] is None and protected["protected"].lr_scale > 0 and protected["protected-frozen"].lr_scale == 0
