"""Pretraining data: a text tokenized once into a memory-mapped token file, cached by content hash.

The cache key is sha256 of the text, the tokenizer's serialized definition and this format's version,
so the same corpus with the same tokenizer is tokenized once per machine (MINDSET_HOME/tokens/<key>.bin,
uint16 when the vocabulary fits, else uint32; written to a temp name and renamed). Training reads
fixed-length blocks out of the map: nothing larger than a batch is ever in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from mindset.errors import MindsetError

FORMAT = "mindset-tokens-1"
CHUNK_CHARS = 1 << 20  # tokenize ~1 MB of paragraphs per call: bounded memory, the fast tokenizer's batch speed


def load_tokenizer(name: str):
    """'byte' (tiny runs: 259 ids, lossless) or 'smollm2' (SmolLM2-135M's own tokenizer, from its shipped package)."""
    if name == "byte":
        from mindset.models.tiny import byte_tokenizer

        return byte_tokenizer()
    from transformers import AutoTokenizer

    from mindset.models.gguf_cache import gguf_to_folder
    from mindset.models.loading import locate_embedded

    return AutoTokenizer.from_pretrained(gguf_to_folder(locate_embedded("smollm2-135m")), local_files_only=True)


def split_texts(data) -> tuple[str, str]:
    """(train, valid) text: the shipped corpus's own split, two .txt files (corpus and valid), or a .txt
    file's paragraphs with the last fraction as valid."""
    from mindset.configfile import read_text

    if data.corpus == "austen" and data.valid is None:
        from mindset.data import corpus_text

        return corpus_text("train"), corpus_text("valid")
    if Path(data.corpus).suffix != ".txt":
        wanted = "with data.valid, give the train split as a UTF-8 .txt file" if data.valid else "give 'austen' or a UTF-8 .txt file"
        raise MindsetError(f"data.corpus {data.corpus!r}: {wanted}")
    path = Path(data.corpus)
    if data.valid is not None:
        if Path(data.valid).suffix != ".txt":
            raise MindsetError(f"data.valid {data.valid!r}: give a UTF-8 .txt file (the valid split whole)")
        return read_text(path, "text file"), read_text(Path(data.valid), "text file")
    paragraphs = [p for p in read_text(path, "text file").split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        raise MindsetError(f"{path} has {len(paragraphs)} paragraph(s); a train/valid split needs at least 2 (separated by blank lines)")
    cut = min(len(paragraphs) - 1, max(1, round(len(paragraphs) * (1 - data.valid_fraction))))
    return "\n\n".join(paragraphs[:cut]), "\n\n".join(paragraphs[cut:])


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_dir() -> Path:
    from mindset.models.gguf_cache import mindset_home

    return mindset_home() / "tokens"


def token_file(text: str, tokenizer) -> np.memmap:
    """The token ids of `text` as a read-only memmap, from the cache or tokenized now and cached."""
    key = hashlib.sha256(f"{FORMAT}\n{tokenizer_fingerprint(tokenizer)}\n".encode() + text.encode()).hexdigest()[:32]
    dtype = np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32
    path = cache_dir() / f"{key}.{np.dtype(dtype).name}.bin"
    if not path.exists():
        _write_tokens(path, text, tokenizer, dtype)
    if path.stat().st_size == 0:
        raise MindsetError("the data has no tokens; give a corpus with text in it")
    return np.memmap(path, dtype=dtype, mode="r")


def _write_tokens(path: Path, text: str, tokenizer, dtype) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        for chunk in _chunks(text):
            ids = tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]
            out.write(np.asarray(ids, dtype=dtype).tobytes())
    tmp.replace(path)


def _chunks(text: str):
    """~CHUNK_CHARS pieces cut at paragraph breaks (the break stays with the piece before it)."""
    start = 0
    while start < len(text):
        end = text.find("\n\n", start + CHUNK_CHARS)
        end = len(text) if end < 0 else end + 2
        yield text[start:end]
        start = end


class TokenBlocks:
    """(n_blocks, seq_len) of a token memmap, indexed with a tensor of block numbers (what StepBatches asks)."""

    def __init__(self, tokens: np.memmap, seq_len: int, max_tokens: int | None = None, what: str = "train"):
        usable = len(tokens) if max_tokens is None else min(len(tokens), max_tokens)
        self.n = usable // seq_len
        if self.n == 0:
            raise MindsetError(f"the {what} split has {usable} tokens, fewer than one sequence of {seq_len}; give more text or a shorter seq_len")
        self.tokens, self.seq_len = tokens, seq_len

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        rows = np.asarray(index, dtype=np.int64)[:, None] * self.seq_len + np.arange(self.seq_len)
        return torch.from_numpy(self.tokens[rows].astype(np.int64))  # (B, T)

    def first(self, n_tokens: int) -> torch.Tensor:
        """The first blocks holding about n_tokens (at least one): the fixed validation set."""
        count = max(1, min(self.n, n_tokens // self.seq_len))
        return self[torch.arange(count)]
