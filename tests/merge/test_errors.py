"""Bad input: one clear line naming the YAML line, before any output exists."""

import json
import shutil

import pytest

from mindset.errors import MindsetError
from mindset.merge import merge

TWO = "merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 1}}\n  - {model: {ft1}, parameters: {weight: 1}}\n"


def fails(config, out, message):
    with pytest.raises(MindsetError, match=message):
        merge(config, out)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no half-written temp folder either


@pytest.mark.parametrize(
    "text,message",
    [
        ("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 1}}\n  - {model: ./no-such-model, parameters: {weight: 1}}\n",
         r"merge.yaml:4: models\[1\].model: model './no-such-model': no such model folder .*mindset never downloads"),
        ("merge_method: passthrough\nslices:\n  - sources: [{model: {base}, layer_range: [0, 2]}]\n  - sources:\n      - model: {ft1}\n        layer_range: [1, 3]\n",
         r"merge.yaml:6: slices\[1\].sources\[0\].layer_range: layer_range \[1, 3\] is outside '.*ft1', which has layers 0 to 1"),
        ("merge_method: passthrough\nslices:\n  - sources: [{model: {base}, layer_range: [1, 1]}]\n", r"merge.yaml:3: .*layer_range \[1, 1\] is outside"),
        ("merge_method: linera\nmodels: [{model: {base}}]\n", r"merge.yaml:1: merge_method: unknown merge method 'linera'; did you mean 'linear'\?"),
        ("merge_method: della\nmodels: [{model: {base}}]\n", r"merge.yaml:1: merge_method: merge method 'della' is mergekit's, not implemented in mindset"),
        ("merge_method: linear\nparameters: {wieght: 1}\nmodels: [{model: {base}}]\n", r"merge.yaml:2: parameters.wieght: unknown parameter 'wieght' for linear \(did you mean 'weight'\?\)"),
        ("merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {ft1}\n    parameters: {weight: 1, density: 1.5}\n",
         r"merge.yaml:5: models\[0\].parameters.density: density must be between 0.0 and 1.0, not 1.5"),
        ("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: heavy}}\n", r"merge.yaml:3: models\[0\].parameters.weight: weight must be a number, not 'heavy'"),
        ("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 1, normalize: false}}\n",
         r"merge.yaml:3: models\[0\].parameters.normalize: 'normalize' applies to all inputs of a tensor"),
        ("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 0.5}}\n  - {model: {ft1}, parameters: {weight: -0.5}}\n",
         r"merge.yaml:2: models: the weights of model.embed_tokens.weight sum to 0 and normalize is on"),
        ("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 1}}\n  - model: {ft1}\n",
         r"merge.yaml:4: models\[1\]: linear needs 'weight' for '.*ft1' \(tensor model.embed_tokens.weight\)"),
        ("merge_method: passthrough\nslices:\n  - sources: [{model: {base}, layer_range: [0, 2]}, {model: {ft1}, layer_range: [0, 2]}]\n",
         r"merge.yaml:3: slices\[0\]: passthrough takes exactly 1 model per slice; this one has 2 \(to stack layers"),
        ("merge_method: slerp\nparameters: {t: 0.5}\nslices:\n  - sources: [{model: {base}, layer_range: [0, 2]}, {model: {ft1}, layer_range: [0, 2]}]\n",
         r"merge.yaml:4: slices\[0\]: slerp needs a base_model"),
        ("merge_method: slerp\nbase_model: {base}\nslices:\n  - sources: [{model: {base}, layer_range: [0, 2]}, {model: {ft1}, layer_range: [0, 2]}]\n",
         r"merge.yaml:4: slices\[0\]: slerp needs 't'"),
        ("merge_method: linear\nslices:\n  - sources: [{model: {base}, layer_range: [0, 2]}, {model: {ft1}, layer_range: [0, 1]}]\nparameters: {weight: 1}\n",
         r"merge.yaml:3: slices\[0\]: every source of a slice must cover the same number of layers"),
        ("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 1}}\n  - {model: {extra}, parameters: {weight: 1}}\n",
         r"merge.yaml:2: models: mismatched shapes for model.embed_tokens.weight: .*\[259, 64\], .*\[261, 64\]; the vocabularies differ: set tokenizer_source"),
        ("merge_method: linear\nchat_template: nonsense\nmodels: [{model: {base}, parameters: {weight: 1}}]\n", r"merge.yaml:2: chat_template: chat_template 'nonsense' is neither"),
    ],
)  # fmt: skip
def test_bad_merges_fail_before_any_output(family, write_config, tmp_path, text, message):
    fails(write_config(text, family), tmp_path / "out", message)


def test_mismatched_architectures(family, write_config, tmp_path):
    from mindset.models import load, save

    gpt2 = save(load("tiny-gpt2", device="cpu"), tmp_path / "gpt2")
    config = write_config("merge_method: linear\nmodels:\n  - {model: {base}, parameters: {weight: 1}}\n  - {model: {gpt2}, parameters: {weight: 1}}\n", {**family, "gpt2": gpt2})
    fails(config, tmp_path / "out", r"merge.yaml:4: models\[1\]: mismatched architectures: '.*gpt2' is gpt2 \(GPT2LMHeadModel\) but '.*base' is llama")


def test_mismatched_hidden_sizes(family, write_config, tmp_path):
    from mindset.merge.fixtures import llama_config, tiny_tokenizer, write_random_model

    tokenizer = tiny_tokenizer()
    wide = write_random_model(tmp_path / "wide", llama_config(layers=2, hidden=96, intermediate=160, heads=4, kv_heads=2, vocab=len(tokenizer), tied=True), tokenizer)
    config = write_config(TWO.replace("{ft1}", str(wide)), family)
    fails(config, tmp_path / "out", r"merge.yaml:2: models: mismatched shapes for model.embed_tokens.weight: .*\[259, 64\], .*\[259, 96\]")


def test_pickle_only_input_is_refused(family, write_config, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(family["ft1"], pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04.")
    fails(write_config(TWO.replace("{ft1}", str(pickled)), family), tmp_path / "out", r"merge.yaml:4: models\[1\].model: .*holds only pickle weights .*never unpickles")


def test_truncated_safetensors_is_refused(family, write_config, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(family["ft1"], broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    fails(write_config(TWO.replace("{ft1}", str(broken)), family), tmp_path / "out", r"merge.yaml:4: .*not a valid safetensors file")


def test_a_folder_without_config(family, write_config, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    fails(write_config(TWO.replace("{ft1}", str(bare)), family), tmp_path / "out", r"merge.yaml:4: .*is not a model folder: it has no config.json")


def test_an_existing_output_is_kept(family, write_config, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(MindsetError, match="exists; choose another output path or pass --overwrite"):
        merge(write_config(TWO, family), out)
    assert (out / "keep.txt").read_text() == "mine"


def test_an_interrupted_merge_leaves_no_output(family, write_config, tmp_path, monkeypatch):
    from mindset.merge import execute

    calls = {"n": 0}
    real = execute.merge_tensor

    def interrupted(plan, tensor, reader, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(plan, tensor, reader, **kwargs)

    monkeypatch.setattr(execute, "merge_tensor", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        merge(write_config(TWO, family), out)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["merge.yaml"]


def test_a_tied_model_without_head_merges_with_an_untied_one(family, write_config, tmp_path):
    """An input that ties its head provides lm_head.weight from its embeddings (mergekit's tied_names)."""
    from mindset.merge import plan_merge

    untied = tmp_path / "untied"
    shutil.copytree(family["ft1"], untied)
    config = json.loads((untied / "config.json").read_text())
    (untied / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    from safetensors.torch import load_file, save_file

    tensors = load_file(untied / "model.safetensors")
    save_file({**tensors, "lm_head.weight": tensors["model.embed_tokens.weight"].clone()}, untied / "model.safetensors")
    plan = plan_merge(write_config(TWO.replace("{base}", str(untied)), family))
    head = next(t for t in plan.tensors if t.name == "lm_head.weight")
    assert [i.stored for i in head.inputs] == ["lm_head.weight", "model.embed_tokens.weight"]


def test_a_donor_without_tokenizer(family, write_config, tmp_path):
    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(family["base"] / name, bare / name)
    config = write_config(TWO.replace("{base}", str(bare)), family)
    fails(config, tmp_path / "out", r"merge.yaml:3: models\[0\]: the merged model takes its tokenizer from '.*no-tokenizer', which has none")
