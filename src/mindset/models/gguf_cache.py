"""GGUF → plain HF folder, once: dequantizing costs seconds and memory on every load, reading safetensors does not."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from mindset.fileio import atomic_folder
from mindset.models.files import check_gguf

SOURCE_RECORD = "mindset-source.json"  # written last: a folder without it is not a finished cache entry


def mindset_home() -> Path:
    return Path(os.environ.get("MINDSET_HOME", "~/.cache/mindset")).expanduser()


def cache_folder(gguf_path: Path) -> Path:
    """Where the dequantized copy of this GGUF file lives; a changed file (size or mtime) gets a new entry."""
    import transformers

    stat = gguf_path.stat()
    key = f"{gguf_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|transformers {transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return mindset_home() / "models" / f"{gguf_path.stem}-{digest}"


def is_cached(gguf_path: Path) -> bool:
    return (cache_folder(gguf_path) / SOURCE_RECORD).exists()


def dequantize_gguf(gguf_path: Path):
    """(model, tokenizer) straight from the GGUF file via transformers, in fp32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf(gguf_path)
    kwargs = {"gguf_file": gguf_path.name}
    with _mindset_progress():
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    return model.eval(), tokenizer


@contextmanager
def _mindset_progress() -> Iterator[None]:
    """One progress style: transformers' own tqdm bars (dequantizing, loading weights) go through mindset.progress.

    transformers draws the dequantization bar with tqdm directly, which its `disable_progress_bar` does not
    reach, so its module's `tqdm` is swapped for `track` while the file is read; its other bars are off.
    """
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from mindset.progress import track

    def bar(iterable, desc=None, **kwargs):
        items = list(iterable)
        return track(items, len(items), "dequantizing GGUF", unit="tensors")

    original, bars_were_on = gguf_utils.tqdm, hf_logging.is_progress_bar_enabled()
    gguf_utils.tqdm = bar
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        gguf_utils.tqdm = original
        if bars_were_on:
            hf_logging.enable_progress_bar()


def gguf_to_folder(gguf_path: Path) -> Path:
    """The cached HF folder for a GGUF file, writing it first if needed."""
    from mindset.models.saving import save_folder

    folder = cache_folder(gguf_path)
    if (folder / SOURCE_RECORD).exists():
        return folder
    model, tokenizer = dequantize_gguf(gguf_path)
    with atomic_folder(folder) as tmp, _mindset_progress():
        save_folder(model, tokenizer, tmp)
        record = {"gguf": str(gguf_path.resolve()), "size": gguf_path.stat().st_size, "sha256": _sha256(gguf_path)}
        (tmp / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
