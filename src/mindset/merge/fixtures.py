"""Random Llama models written straight to HF folders, for merge tests, demos and benchmarks.

The tensors are generated one at a time from a seed and streamed to disk, so a 370M-parameter model
costs one tensor of memory, not the model. `perturbed_copy` makes a "fine-tune" of a folder: the same
tensors plus seeded noise, the situation task arithmetic, TIES and DARE are designed for.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from mindset.fileio import atomic_folder
from mindset.merge.writer import ShardedWriter, TensorSpec

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "tokenizer.model")


def llama_config(*, layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int, vocab: int, tied: bool, context: int = 256, **special):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=context,
        tie_word_embeddings=tied,
        architectures=["LlamaForCausalLM"],
        **special,
    )


def parameter_specs(config, dtype: torch.dtype = torch.float32) -> list[tuple[TensorSpec, bool]]:
    """(spec, is_norm) for every parameter the architecture has (tied ones once), built on the meta device."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    specs = []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(prefix=module_name, recurse=False):
            specs.append((TensorSpec(name, tuple(param.shape), dtype), "norm" in type(module).__name__.lower()))
    seen: set[str] = set()
    unique = []
    for spec, is_norm in specs:  # named_modules can reach a tied parameter twice
        if spec.name not in seen:
            seen.add(spec.name)
            unique.append((spec, is_norm))
    tied = {name for name, _ in model.named_parameters(remove_duplicate=False)} - {name for name, _ in model.named_parameters()}
    return [(spec, is_norm) for spec, is_norm in unique if spec.name not in tied]


def write_random_model(folder: str | Path, config, tokenizer=None, *, seed: int = 0, std: float = 0.02, dtype: torch.dtype = torch.float32) -> Path:
    """An HF folder (config, safetensors, tokenizer) holding a randomly initialised model."""
    folder = Path(folder)
    generator = torch.Generator().manual_seed(seed)
    specs = parameter_specs(config, dtype)
    with atomic_folder(folder, replace=True) as tmp:
        writer = ShardedWriter(tmp, [spec for spec, _ in specs], max_shard_bytes=5 * 10**9)
        try:
            for spec, is_norm in specs:
                values = torch.randn(spec.shape, generator=generator) * std
                writer.write(spec.name, (values + 1 if is_norm else values).to(dtype))
        except BaseException:
            writer.abort()
            raise
        writer.close()
        config.dtype = dtype
        config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return folder


def perturbed_copy(source: str | Path, folder: str | Path, *, seed: int, scale: float = 0.002) -> Path:
    """A copy of `source` with seeded Gaussian noise of std `scale` added to every floating tensor."""
    from safetensors import safe_open

    from mindset.models.files import weight_files

    source, folder = Path(source), Path(folder)
    generator = torch.Generator().manual_seed(seed)
    files = weight_files(source)
    specs = []
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                piece = f.get_slice(name)
                specs.append((file, TensorSpec(name, tuple(piece.get_shape()), _torch_dtype(piece.get_dtype()))))
    with atomic_folder(folder, replace=True) as tmp:
        writer = ShardedWriter(tmp, [spec for _, spec in specs], max_shard_bytes=5 * 10**9)
        try:
            for file, spec in specs:
                with safe_open(str(file), framework="pt") as f:
                    tensor = f.get_tensor(spec.name)
                if tensor.is_floating_point():
                    noise = torch.randn(spec.shape, generator=generator) * scale
                    tensor = (tensor.float() + noise).to(spec.dtype)
                writer.write(spec.name, tensor)
                del tensor
        except BaseException:
            writer.abort()
            raise
        writer.close()
        for path in source.iterdir():
            if path.suffix == ".json" and path.name not in ("model.safetensors.index.json",) or path.name in TOKENIZER_FILES:
                shutil.copy(path, tmp / path.name)
    return folder


def _torch_dtype(name: str) -> torch.dtype:
    from mindset.merge.writer import SAFETENSORS_DTYPES

    by_name = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    aliases = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}
    return by_name[aliases.get(name, name)]


def tiny_tokenizer(extra_tokens: tuple[str, ...] = ()):
    """mindset's byte-level tiny tokenizer (259 tokens, ChatML), with optional extra special tokens."""
    from mindset.models.tiny import byte_tokenizer

    tokenizer = byte_tokenizer()
    if extra_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_tokens)})
    return tokenizer


# The published 155B frankenmerge interleaves four 80-layer Llama-2-70B fine-tunes; its miniature keeps
# the 80 layers (so the config's layer ranges are the published ones) at a width of 32.
PROFESSOR_MODELS = {
    "dolphin-mini": ("<|tool_call|>", "<|tool_result|>"),  # like dolphin's two extra ChatML tokens: a bigger vocabulary
    "synthia-mini": (),
    "wizardmath-mini": (),
    "meditron-mini": (),
}


def write_professor_models(folder: str | Path, *, layers: int = 80, hidden: int = 32, seed: int = 0) -> dict[str, Path]:
    """Four tiny random Llamas named after the published frankenmerge's inputs, in `folder`/<name>."""
    folder = Path(folder)
    paths = {}
    for index, (name, extra) in enumerate(PROFESSOR_MODELS.items()):
        tokenizer = tiny_tokenizer(extra)
        config = llama_config(layers=layers, hidden=hidden, intermediate=2 * hidden, heads=4, kv_heads=2, vocab=len(tokenizer), tied=False, **_special(tokenizer))
        paths[name] = write_random_model(folder / name, config, tokenizer, seed=seed + index, std=0.1)
    return paths


def write_finetune_family(root: str | Path, *, hidden: int | None = None) -> dict[str, Path]:
    """base, ft1-ft3 ("fine-tunes": base plus seeded noise) and extra (two more tokens), as HF folders.

    base is mindset's `tiny-llama` from seed 1, saved with `mindset.models.save`; with `hidden`, a
    smaller model of the same architecture (4 layers) instead, small enough for committed fixtures.
    """
    from mindset.models import load, save

    root = Path(root)
    paths: dict[str, Path] = {}
    if hidden is None:
        paths["base"] = save(load("tiny-llama", device="cpu", dtype="float32", seed=1), root / "base", overwrite=True)
    else:
        tokenizer = tiny_tokenizer()
        config = llama_config(layers=4, hidden=hidden, intermediate=2 * hidden, heads=2, kv_heads=1, vocab=len(tokenizer), tied=True, **_special(tokenizer))
        paths["base"] = write_random_model(root / "base", config, tokenizer, seed=1, std=0.1)
    for k in (1, 2, 3):
        paths[f"ft{k}"] = perturbed_copy(paths["base"], root / f"ft{k}", seed=10 + k, scale=0.01)
    base = json.loads((paths["base"] / "config.json").read_text())
    tokenizer = tiny_tokenizer(("<|tool_call|>", "<|tool_result|>"))
    config = llama_config(
        layers=base["num_hidden_layers"], hidden=base["hidden_size"], intermediate=base["intermediate_size"], heads=base["num_attention_heads"],
        kv_heads=base["num_key_value_heads"], vocab=len(tokenizer), tied=True, **_special(tokenizer),
    )  # fmt: skip
    paths["extra"] = write_random_model(root / "extra", config, tokenizer, seed=7, std=0.1)
    return paths


def _special(tokenizer) -> dict[str, int]:
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
