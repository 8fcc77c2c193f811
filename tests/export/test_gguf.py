import pytest
import torch

from mindset.errors import MindsetError
from mindset.export import export_gguf
from mindset.export.gguf_writer import rotary_permute
from mindset.export.modelfile import default_system_prompt, modelfile_text
from mindset.models import load

TEXT = "It is a truth universally acknowledged <|im_end|> naïve 42"


def logits(loaded, ids):
    with torch.no_grad():
        return loaded.model(torch.tensor([ids])).logits


def test_f32_round_trip_is_exact(tiny_llama, tmp_path, private_home):
    written = export_gguf(tiny_llama, tmp_path / "out" / "tiny.gguf", "f32")
    back = load(written["gguf"])
    ids = tiny_llama.tokenizer(TEXT)["input_ids"]
    assert back.tokenizer(TEXT)["input_ids"] == ids
    assert back.tokenizer.chat_template == tiny_llama.tokenizer.chat_template
    assert back.tokenizer.eos_token == "<|im_end|>"
    torch.testing.assert_close(logits(back, ids), logits(tiny_llama, ids), rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision,atol", [("f16", 0.02), ("q8_0", 0.5)])
def test_lower_precisions_round_trip_within_tolerance(tiny_llama, tmp_path, private_home, precision, atol):
    f32 = export_gguf(tiny_llama, tmp_path / "f32.gguf", "f32")["bytes"]
    written = export_gguf(tiny_llama, tmp_path / f"{precision}.gguf", precision)
    assert written["bytes"] < f32
    back = load(written["gguf"])
    ids = tiny_llama.tokenizer(TEXT)["input_ids"]
    diff = (logits(back, ids) - logits(tiny_llama, ids)).abs().max().item()
    assert 0 < diff < atol


def test_rotary_permute_is_undone_by_transformers_reader():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    weight = torch.randn(3 * 8, 5).numpy()
    permuted = rotary_permute(weight, 3)
    assert not (permuted == weight).all()
    restored = LlamaTensorProcessor()._reverse_permute_weights(permuted, 3, 3)
    assert (restored == weight).all()


def test_modelfile_beside_the_gguf(tiny_llama, tmp_path, private_home):
    written = export_gguf(tiny_llama, tmp_path / "m.gguf", "f16")
    text = open(written["modelfile"]).read()
    assert text.startswith("FROM ./m.gguf\n")
    assert 'PARAMETER stop "<|im_end|>"' in text and "{{ .Content }}<|im_end|>" in text


def test_default_system_prompt_is_read_from_a_chatml_template():
    template = "{% if loop.first %}{{ '<|im_start|>system\nYou are SmolLM.<|im_end|>\n' }}{% endif %}<|im_start|>"
    assert default_system_prompt(template) == "You are SmolLM."
    assert 'SYSTEM """You are SmolLM."""' in modelfile_text("x.gguf", template)
    assert "TEMPLATE \"\"\"" not in modelfile_text("x.gguf", "{{ bos_token }}[INST]")


def test_non_llama_models_are_refused(tiny_gpt2, tmp_path):
    with pytest.raises(MindsetError, match="supports Llama-architecture models; this one is 'gpt2'"):
        export_gguf(tiny_gpt2, tmp_path / "g.gguf")
    assert not list(tmp_path.iterdir())


def test_models_with_surgery_are_refused(tiny_llama, tmp_path):
    class MemoryBlock(torch.nn.Module):
        def __init__(self, mlp):
            super().__init__()
            self.mlp = mlp

        def forward(self, x):
            return self.mlp(x)

    layer = tiny_llama.model.model.layers[1]
    layer.mlp = MemoryBlock(layer.mlp)
    with pytest.raises(MindsetError, match=r"cannot express the module model.layers.1.mlp \(MemoryBlock\).*memory_to_ffn"):
        export_gguf(tiny_llama, tmp_path / "s.gguf")


def test_unknown_precision(tiny_llama, tmp_path):
    with pytest.raises(MindsetError, match="unknown GGUF precision"):
        export_gguf(tiny_llama, tmp_path / "x.gguf", "q2_k")


def test_export_command_and_recipe_step(cli, tmp_path, private_home):
    code, out, _ = cli("export", "tiny-llama", "-o", str(tmp_path / "cli.gguf"), "--out-type", "q8_0")
    assert code == 0 and (tmp_path / "cli.gguf").exists() and (tmp_path / "Modelfile").exists()
    code, _, err = cli("export", "tiny-llama", "-o", str(tmp_path / "x.gguf"), "--out-type", "q4")
    assert code == 2 and "--out-type" in err
    before = (tmp_path / "cli.gguf").stat().st_mtime_ns
    code, _, err = cli("export", "tiny-llama", "-o", str(tmp_path / "cli.gguf"), "--out-type", "f32")
    assert code == 2 and "cli.gguf exists; choose another output path or pass --overwrite" in err
    assert (tmp_path / "cli.gguf").stat().st_mtime_ns == before
    assert cli("export", "tiny-llama", "-o", str(tmp_path / "cli.gguf"), "--out-type", "f32", "--overwrite")[0] == 0

    from mindset.recipes import run_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: exp\nmodel: tiny-llama\nsteps:\n  - export: {dtype: f32}\n")
    result = run_recipe(recipe, runs_dir=tmp_path / "runs", progress=False)
    assert (result.run_dir / "model.gguf").exists() and result.metrics["export"]["precision"] == "f32"


def test_loading_a_new_gguf_reports_through_mindset_progress(cli, tiny_llama, tmp_path, private_home, monkeypatch):
    from mindset import progress

    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    path = export_gguf(tiny_llama, tmp_path / "t.gguf", "f32", modelfile=False)["gguf"]
    code, _, err = cli("inspect", path)
    assert code == 0, err
    assert "Converting and de-quantizing" not in err and "it/s" not in err  # transformers' own tqdm bar
    assert "dequantizing GGUF: 1/" in err and " tensors (100%) " in err
