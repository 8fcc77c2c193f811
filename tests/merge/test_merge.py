"""Whole merges on tiny models: stitching, sharding, tokenizers, the published config's shape, and the output
folder that mindset, transformers and `mindset chat` open."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from mindset.merge import merge, plan_merge

PROFESSOR = Path(__file__).resolve().parents[2] / "recipes" / "merges" / "professor-mini.yaml"
STACK = """\
merge_method: passthrough
slices:
  - sources: [{model: {base}, layer_range: [0, 2]}]
  - sources: [{model: {ft1}, layer_range: [1, 2]}]
"""


def test_passthrough_stacks_and_renumbers_layers(tensors_in, family, write_config, tmp_path):
    result = merge(write_config(STACK, family), tmp_path / "out")
    out, base, ft1 = tensors_in(tmp_path / "out"), tensors_in(family["base"]), tensors_in(family["ft1"])
    for suffix in ("self_attn.q_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight"):
        assert torch.equal(out[f"model.layers.0.{suffix}"], base[f"model.layers.0.{suffix}"])
        assert torch.equal(out[f"model.layers.1.{suffix}"], base[f"model.layers.1.{suffix}"])
        assert torch.equal(out[f"model.layers.2.{suffix}"], ft1[f"model.layers.1.{suffix}"])
    assert torch.equal(out["model.embed_tokens.weight"], base["model.embed_tokens.weight"])  # embeddings: first slice
    assert torch.equal(out["model.norm.weight"], ft1["model.norm.weight"])  # final norm: last slice
    assert "lm_head.weight" not in out  # tied, as in the inputs
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["num_hidden_layers"] == 3 and config["tie_word_embeddings"] is True
    assert result.tensors == len(out) == 1 + 3 * 9 + 1
    card = (tmp_path / "out" / "README.md").read_text()
    assert "passthrough" in card and "layer_range: [1, 2]" in card
    assert (tmp_path / "out" / "mergekit_config.yml").read_text() == (tmp_path / "merge.yaml").read_text()


def test_the_output_opens_in_mindset_transformers_and_chat(family, write_config, tmp_path, cli):
    from transformers import AutoModelForCausalLM

    from mindset.chat import SamplingParams, generate
    from mindset.models import load

    merge(write_config(STACK, family), tmp_path / "out")
    loaded = load(tmp_path / "out", device="cpu")
    assert loaded.model.config.num_hidden_layers == 3
    assert generate(loaded, "Hello", SamplingParams(temperature=0, max_new_tokens=4)).tokens
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(hf(ids).logits, loaded.model(ids).logits)
    code, out, _ = cli("chat", str(tmp_path / "out"), "-p", "Hi", "--temperature", "0", "--max-new-tokens", "3")
    assert code == 0 and out.strip()


def test_sharded_output_has_an_index_and_loads(tensors_in, family, write_config, tmp_path):
    from mindset.models import load

    config = write_config("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 0.5}}\n  - {model: {ft1}, parameters: {weight: 0.5}}\n", family)
    result = merge(config, tmp_path / "sharded", shard_bytes=40_000)
    single = merge(config, tmp_path / "single")
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert result.shards > 3 and len(set(index["weight_map"].values())) == result.shards
    assert index["metadata"]["total_size"] == result.bytes == single.bytes
    a, b = tensors_in(tmp_path / "sharded"), tensors_in(tmp_path / "single")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load(tmp_path / "sharded", device="cpu").model.config.num_hidden_layers == 2


def test_lazy_and_eager_reading_give_the_same_bytes(family, write_config, tmp_path):
    config = write_config("merge_method: ties\nbase_model: {base}\nmodels:\n  - {model: {ft1}, parameters: {weight: 1, density: 0.4}}\n  - {model: {ft2}, parameters: {weight: 1, density: 0.6}}\n", family)
    merge(config, tmp_path / "lazy", lazy=True)
    merge(config, tmp_path / "eager", lazy=False)
    assert (tmp_path / "lazy" / "model.safetensors").read_bytes() == (tmp_path / "eager" / "model.safetensors").read_bytes()


def test_dare_is_reproducible_from_its_seed(family, write_config, tmp_path):
    config = write_config("merge_method: dare_ties\nbase_model: {base}\nmodels:\n  - {model: {ft1}, parameters: {weight: 0.5, density: 0.5}}\n  - {model: {ft2}, parameters: {weight: 0.5, density: 0.5}}\n", family)
    merge(config, tmp_path / "a", seed=3)
    merge(config, tmp_path / "b", seed=3)
    merge(config, tmp_path / "c", seed=4)
    read = lambda name: (tmp_path / name / "model.safetensors").read_bytes()  # noqa: E731
    assert read("a") == read("b") and read("a") != read("c")


def test_gradients_follow_the_layers(tensors_in, family, write_config, tmp_path):
    config = write_config("merge_method: linear\nparameters: {normalize: false}\nmodels:\n  - {model: {base}, parameters: {weight: [0, 1]}}\n", family)
    merge(config, tmp_path / "out")
    out, base = tensors_in(tmp_path / "out"), tensors_in(family["base"])
    assert torch.equal(out["model.layers.0.mlp.up_proj.weight"], torch.zeros_like(base["model.layers.0.mlp.up_proj.weight"]))  # t = 0
    assert torch.equal(out["model.layers.1.mlp.up_proj.weight"], base["model.layers.1.mlp.up_proj.weight"])  # t = 1
    assert torch.equal(out["model.embed_tokens.weight"], torch.zeros_like(base["model.embed_tokens.weight"]))  # embeddings: t = 0


def test_union_vocabulary_has_no_zero_rows(tensors_in, family, write_config, tmp_path):
    """A token only `extra` has, in a slice whose sources lack it, borrows extra's row instead of zeros."""
    config = write_config(
        "merge_method: linear\nbase_model: {base}\ntokenizer_source: union\nparameters: {weight: 1.0}\nslices:\n"
        "  - sources: [{model: {base}, layer_range: [0, 1]}, {model: {ft1}, layer_range: [0, 1]}]\n"
        "  - sources: [{model: {extra}, layer_range: [1, 2]}, {model: {ft2}, layer_range: [1, 2], parameters: {weight: 0}}]\n",
        family,
    )
    merge(config, tmp_path / "out")
    out, extra = tensors_in(tmp_path / "out"), tensors_in(family["extra"])
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(tmp_path / "out").get_vocab()
    embed = out["model.embed_tokens.weight"]
    assert embed.shape[0] == len(vocab) == 261
    assert torch.isfinite(embed).all() and (embed.abs().sum(dim=1) > 0).all()
    tool = vocab["<|tool_call|>"]
    assert torch.equal(embed[tool], extra["model.embed_tokens.weight"][tool])  # neither base nor ft1 has it
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 261


def test_the_published_config_runs_as_published(tensors_in, professor_models, tmp_path, monkeypatch):
    """TheProfessor's config (the `model:` tokenizer prefix, weight-0 second sources, float16) on 80-layer minis."""
    from mindset.models import load

    monkeypatch.chdir(professor_models)
    shutil.copy(PROFESSOR, professor_models / "professor-mini.yaml")
    plan = plan_merge("professor-mini.yaml")
    assert plan.num_layers == 180 and len(plan.slices) == 11
    result = merge("professor-mini.yaml", tmp_path / "professor")
    out = tensors_in(tmp_path / "professor")
    dolphin, synthia = tensors_in(professor_models / "models" / "dolphin-mini"), tensors_in(professor_models / "models" / "synthia-mini")
    assert all(t.dtype == torch.float16 for t in out.values())
    # weight 0 for the second source: the embeddings and head are dolphin's (261 rows; synthia has 259)
    assert torch.equal(out["model.embed_tokens.weight"], dolphin["model.embed_tokens.weight"].half())
    assert torch.equal(out["lm_head.weight"], dolphin["lm_head.weight"].half())
    assert torch.equal(out["model.layers.20.mlp.up_proj.weight"], synthia["model.layers.10.mlp.up_proj.weight"].half())
    assert torch.equal(out["model.layers.179.self_attn.o_proj.weight"], dolphin["model.layers.79.self_attn.o_proj.weight"].half())
    loaded = load(tmp_path / "professor", device="cpu")
    assert loaded.model.config.num_hidden_layers == 180 and len(loaded.tokenizer) == 261
    assert result.parameters == sum(t.numel() for t in out.values())


def test_dry_run_prints_the_plan(professor_models, cli, monkeypatch):
    monkeypatch.chdir(professor_models)
    shutil.copy(PROFESSOR, professor_models / "professor-mini.yaml")
    code, out, _ = cli("merge", "professor-mini.yaml", "--dry-run")
    text = " ".join(out.split())
    assert code == 0 and "180 (from models/dolphin-mini" in text and "20–39" in text and "10–29" in text
    assert not (professor_models / "out").exists()


def test_cli_merges_and_reports(family, write_config, tmp_path, cli):
    code, out, _ = cli("merge", str(write_config(STACK, family)), "-o", str(tmp_path / "out"), "--no-progress", "--shard-size", "100KB")
    assert code == 0 and "merged" in out and "3 layers" in " ".join(out.split())
    code, _, err = cli("merge", str(write_config(STACK, family)), "-o", str(tmp_path / "out"))
    assert code == 2 and "exists" in err
    code, _, err = cli("merge", str(write_config(STACK, family)))
    assert code == 2 and "give the output folder with -o OUT" in err
    code, _, err = cli("merge", str(write_config(STACK, family)), "-o", str(tmp_path / "x"), "--shard-size", "big")
    assert code == 2 and "--shard-size: cannot read 'big'" in err


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_and_out_dtype(tensors_in, family, write_config, tmp_path, dtype):
    config = write_config(f"merge_method: linear\nout_dtype: {dtype}\nmodels:\n  - {{model: {{base}}, parameters: {{weight: 1}}}}\n", family)
    merge(config, tmp_path / "out")
    assert all(t.dtype == getattr(torch, dtype) for t in tensors_in(tmp_path / "out").values())
    assert json.loads((tmp_path / "out" / "config.json").read_text())["dtype"] == dtype


def test_reducing_methods_run_with_torchs_default_threads(family, write_config, tmp_path, monkeypatch):
    """Whole-tensor sums round differently across thread counts: SLERP keeps mergekit's (the default)."""
    from mindset.merge.methods import basic

    seen = []
    real = basic.slerp
    monkeypatch.setattr(basic, "slerp", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    default = torch.get_num_threads()
    config = "merge_method: slerp\nbase_model: {base}\nparameters: {t: 0.3}\nmodels: [{model: {base}}, {model: {ft1}}]\n"
    merge(write_config(config, family), tmp_path / "out")
    assert seen and set(seen) == {default} and torch.get_num_threads() == default
