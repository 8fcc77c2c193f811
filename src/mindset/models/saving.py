"""Save any loaded model as a plain HF folder: config, safetensors weights, tokenizer."""

from __future__ import annotations

from pathlib import Path

from mindset.fileio import atomic_folder, check_output


def strip_quantization(model) -> None:
    """Forget that weights came from a quantized file: they are plain dense tensors once loaded.

    transformers refuses save_pretrained on a model "quantized with gguf" although its weights are already
    dequantized fp32; clearing the quantizer and its config entry makes it an ordinary model again.
    """
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for attr in ("is_quantized", "quantization_method"):
        if attr in model.__dict__:
            del model.__dict__[attr]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def save_folder(model, tokenizer, folder: Path) -> None:
    """Write into an existing (empty) folder; callers choose atomicity."""
    from mindset.models.custom import save_custom
    from mindset.models.int8 import refuse_int8

    refuse_int8(model, "saving")
    strip_quantization(model)
    state_dict = save_custom(model, folder)  # None for a model without custom modules
    model.save_pretrained(folder, state_dict=state_dict)
    tokenizer.save_pretrained(folder)


def save(loaded, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Save a LoadedModel as an HF folder, atomically; `mindset.models.load(folder)` reads it back."""
    folder = check_output(folder, overwrite)
    with atomic_folder(folder, replace=True) as tmp:
        save_folder(loaded.model, loaded.tokenizer, tmp)
    return folder
