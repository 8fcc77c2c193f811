import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml

from mindset.errors import MindsetError
from mindset.train.compare import compare_runs
from mindset.train.sweep import merged, read_experiment, run_experiment

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "experiments"


def fake_run(folder: Path, variant: str, seed: int, losses: list[float], parameters: int, speed: float | None = 1000.0, canary=None) -> Path:
    """A run folder as `mindset pretrain` writes it, with chosen numbers."""
    folder.mkdir(parents=True)
    rows = [{"step": 10 * i, "tokens": 1280 * i, "flops": 1280 * i * 6e5, "val_loss": loss} for i, loss in enumerate(losses)]
    (folder / "metrics.json").write_text(json.dumps({"variant": variant, "seed": seed, "parameters": parameters, "rows": rows}))
    if speed is not None:
        record = {"tokens_per_s": speed, **({"canary_accuracy": canary} if canary is not None else {})}
        (folder / "pretrain.json").write_text(json.dumps(record))
    return folder


def test_compare_groups_by_variant_and_averages_over_seeds(tmp_path):
    runs = [
        fake_run(tmp_path / "dense-s0", "dense", 0, [5.5, 3.0, 2.50], 1000, 900.0),
        fake_run(tmp_path / "dense-s1", "dense", 1, [5.5, 3.1, 2.60], 1000, 1100.0),
        fake_run(tmp_path / "memory-s0", "memory", 0, [5.5, 3.2, 2.70], 600, 500.0, canary=0.5),
        fake_run(tmp_path / "memory-s1", "memory", 1, [5.5, 3.3, 2.90, 2.0], 600, None),  # unfinished, one step further
    ]
    result = compare_runs(runs, tmp_path / "cmp")
    dense, memory = result["variants"]
    assert dense["variant"] == "dense" and dense["seeds"] == [0, 1] and dense["step"] == 20
    assert dense["val_loss"] == pytest.approx(2.55) and dense["val_loss_std"] == pytest.approx(statistics.stdev([2.5, 2.6]))
    assert dense["val_ppl"] == pytest.approx(math.exp(2.55)) and dense["tokens_per_s"] == pytest.approx(1000.0)
    assert memory["step"] == 20 and memory["val_loss"] == pytest.approx(2.8)  # the step both seeds reached
    assert memory["parameters"] == 600 and memory["tokens_per_s"] == 500.0 and memory["canary_accuracy"] == 0.5
    curve = result["curves"]["memory"]
    assert [c["step"] for c in curve] == [0, 10, 20] and (curve[1]["min"], curve[1]["max"]) == (3.2, 3.3)
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| dense | 2 | 1,000 | 2,560 | 2.5500 ± 0.0707 | 12.81 | +0.0000 | 1,000 | — |" in table
    assert "| memory | 2 | 600 | 2,560 | 2.8000 ± 0.1414 | 16.44 | +0.2500 | 500 | 0.500 |" in table
    for name in ("loss_vs_tokens.png", "loss_vs_flops.png"):
        assert (tmp_path / "cmp" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name[:-4]}]({name})" in table
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["variants"][1]["val_loss"] == pytest.approx(2.8)


def test_compare_cli(tmp_path, cli):
    a = fake_run(tmp_path / "a", "dense", 0, [5.0, 3.0], 10)
    b = fake_run(tmp_path / "b", "wide", 0, [5.0, 2.0], 20)
    code, out, _ = cli("experiment", "compare", str(a), str(b), "-o", str(tmp_path / "out"))
    assert code == 0 and "wide" in out and "compare.md" in out
    assert "| wide | 1 | 20 | 1,280 | 2.0000 | 7.39 | -1.0000 |" in (tmp_path / "out" / "compare.md").read_text()
    assert (tmp_path / "out" / "loss_vs_flops.png").is_file()
    code, out, _ = cli("experiment", "compare", str(a), str(b), "-o", str(tmp_path / "asked"), "--question", "Is wide better?")
    assert code == 0 and "Is wide better?" in out
    assert (tmp_path / "asked" / "compare.md").read_text().startswith("# Pretraining comparison\n\nIs wide better?\n")


def test_compare_errors(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("experiment", "compare", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert code == 2 and "no metrics.json" in err and err.count("\n") == 1
    fake_run(tmp_path / "x", "v", 0, [5.0, 4.0], 1)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "metrics.json").write_text(json.dumps({"variant": "v", "rows": [{"step": 5, "tokens": 1, "flops": 1, "val_loss": 1.0}], "parameters": 1}))
    with pytest.raises(MindsetError, match="share no evaluation step"):
        compare_runs([tmp_path / "x", tmp_path / "y"], tmp_path / "out2")


# --- experiments (sweeps) ----------------------------------------------------------------------------


def test_merge_is_key_by_key_and_lists_replace():
    base = {"model": {"layers": 4, "d_ff": 512}, "surgery": [{"head_gates": {}}]}
    assert merged(base, {"model": {"d_ff": 256}, "surgery": []}) == {"model": {"layers": 4, "d_ff": 256}, "surgery": []}
    assert base["model"]["d_ff"] == 512


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiments_are_valid(path):
    experiment, configs = read_experiment(path)
    assert len(experiment.seeds) >= 3 and len(configs) == len(experiment.variants) * len(experiment.seeds)
    assert len({c.name for c in configs}) == len(configs)


def test_the_shipped_experiments_cover_the_issue_questions():
    names = {p.stem for p in RECIPES.glob("*.yaml")}
    assert {"memory-vs-dense", "feedback", "head-gates", "protected-finetune", "memory-vs-dense-gpt2-small"} <= names


def test_an_experiment_error_names_the_variant(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"name": "e", "variants": {"ok": {}, "bad": {"model": {"heads": 3, "hidden": 32}}}}))
    with pytest.raises(MindsetError, match=r"e.yaml:\d+: model.heads 3 must divide model.hidden 32"):
        read_experiment(path)
    with pytest.raises(MindsetError, match="no variant 'nope'"):
        read_experiment(path, only=["nope"])


def test_run_experiment_trains_compares_and_keeps_finished_runs(tmp_path, mindset_home):
    path = tmp_path / "tiny.yaml"
    base = {"model": {"layers": 2, "hidden": 32, "heads": 4, "d_ff": 64},
            "train": {"tokens": 6 * 2 * 32, "batch_size": 2, "seq_len": 32, "eval_every": 3, "eval_tokens": 256, "warmup_steps": 1},
            "data": {"max_train_tokens": 20_000}}  # fmt: skip
    path.write_text(yaml.safe_dump({"name": "tiny", "question": "Does a tiny memory help?", "seeds": [0, 1], "base": base,
                                    "variants": {"dense": {}, "memory": {"surgery": [{"ffn_to_memory": {"k": 8}}]}}}))
    said = []
    result = run_experiment(path, tmp_path / "out", seeds=[0], progress=False, say=said.append)
    assert [v["variant"] for v in result["variants"]] == ["dense", "memory"] and result["variants"][0]["seeds"] == [0]
    assert (tmp_path / "out" / "compare" / "loss_vs_tokens.png").is_file()
    assert "Does a tiny memory help?" in (tmp_path / "out" / "compare" / "compare.md").read_text()
    before = (tmp_path / "out" / "dense-s0" / "pretrain.json").stat().st_mtime_ns
    run_experiment(path, tmp_path / "out", seeds=[0], only=["dense"], progress=False, say=said.append)
    assert said[-1] == "[1/1] dense-s0: finished earlier, kept"
    assert (tmp_path / "out" / "dense-s0" / "pretrain.json").stat().st_mtime_ns == before


# --- tokens and FLOPs --------------------------------------------------------------------------------


def test_tokens_are_cached_by_content(tmp_path, mindset_home, monkeypatch):
    from mindset.train import tokens
    from mindset.train.tokens import load_tokenizer, token_file

    tokenizer = load_tokenizer("byte")
    text = "It is a truth universally acknowledged.\n\n" * 50
    ids = token_file(text, tokenizer)
    assert ids.dtype == np.uint16 and tokenizer.decode(ids.tolist()) == text
    monkeypatch.setattr(tokens, "_write_tokens", lambda *a: pytest.fail("tokenized twice"))
    assert np.array_equal(token_file(text, tokenizer), ids)
    monkeypatch.undo()
    other = token_file(text + "x", tokenizer)
    assert len(other) == len(ids) + 1


def test_chunks_cover_the_text_at_paragraph_breaks(monkeypatch):
    from mindset.train import tokens

    monkeypatch.setattr(tokens, "CHUNK_CHARS", 10)
    text = "aaaa aaaa aaaa\n\nbb\n\ncccccccccccc cc\n\nd"
    pieces = list(tokens._chunks(text))
    assert "".join(pieces) == text and all(p.endswith("\n\n") for p in pieces[:-1])


def test_flops_per_token_is_6n_plus_attention(mindset_home):
    from mindset.train.flops import flops_per_token, matmul_parameters
    from mindset.train.pretrain_config import PretrainConfig
    from mindset.train.tokens import load_tokenizer
    from mindset.train.variants import build_model

    tokenizer = load_tokenizer("byte")
    for tied in (True, False):
        config = PretrainConfig(model={"layers": 2, "hidden": 32, "heads": 4, "d_ff": 64, "tie_embeddings": tied})
        model = build_model(config, tokenizer)[0].model
        blocks = 2 * (4 * 32 * 32 + 3 * 32 * 64 + 2 * 32) + 32  # q,k,v,o + gate,up,down + two norms per layer, final norm
        assert matmul_parameters(model) == blocks + len(tokenizer) * 32  # the head counts, the embedding lookup does not
        assert flops_per_token(model, 128) == 6 * (blocks + len(tokenizer) * 32) + 12 * 2 * 32 * 128


def test_experiment_overrides_and_cli_errors(tmp_path, cli):
    path = RECIPES / "memory-vs-dense.yaml"
    _, configs = read_experiment(path, seeds=[5], only=["memory"], train={"tokens": 8192, "eval_every": 1})
    (config,) = configs
    assert (config.name, config.variant, config.seed, config.train.steps, config.train.eval_every) == ("memory-s5", "memory", 5, 2, 1)
    assert config.train.seq_len == 256 and config.surgery == [{"ffn_to_memory": {"k": 64}}]
    code, _, err = cli("experiment", "run", str(path), "--seeds", "a,1", "-o", str(tmp_path / "x"))
    assert code == 2 and "--seeds a,1: give whole numbers" in err
    code, _, err = cli("experiment", "run", str(path), "--only", "dense,nope", "-o", str(tmp_path / "x"))
    assert code == 2 and "no variant 'nope'" in err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_smollm2_tokenizer_builds_a_model_of_its_vocabulary(mindset_home):
    from mindset.train.pretrain_config import PretrainConfig
    from mindset.train.tokens import load_tokenizer, token_file
    from mindset.train.variants import build_model

    tokenizer = load_tokenizer("smollm2")
    loaded, _ = build_model(PretrainConfig(tokenizer="smollm2", model={"layers": 1, "hidden": 32, "heads": 4, "d_ff": 64}), tokenizer)
    assert loaded.model.config.vocab_size == len(tokenizer) == 49152
    ids = token_file("It is a truth universally acknowledged.\n\n", tokenizer)
    assert ids.dtype == np.uint16 and tokenizer.decode(ids.tolist()) == "It is a truth universally acknowledged.\n\n"
