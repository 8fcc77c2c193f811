"""Training text as fixed-length token blocks, in an order fixed by the seed and the step alone.

Batch b of a run is always the same blocks, whatever happened before: that is what lets a resumed
run continue exactly where the interrupted one stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import IterableDataset

from mindset.errors import MindsetError


def read_training_text(source: str) -> str:
    if source == "austen":
        from mindset.data import corpus_text

        return corpus_text("train")
    path = Path(source)
    if not path.is_file():
        raise MindsetError(f"{source}: no such data file (give 'austen', a .txt file or a .jsonl file)")
    if path.suffix == ".jsonl":
        texts = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                texts.append(str(json.loads(line)["text"]))
            except (ValueError, KeyError, TypeError):
                raise MindsetError(f"{path}:{number}: each line must be a JSON object with a 'text' field") from None
        return "\n\n".join(texts)
    return path.read_text(encoding="utf-8")


def token_blocks(tokenizer, text: str, seq_len: int, max_tokens: int | None = None) -> torch.Tensor:
    """(n_blocks, seq_len) of token ids from the start of `text` (at most max_tokens of them)."""
    if max_tokens is not None:
        # no tokenizer makes a token of more than ~12 characters of prose: tokenize only the prefix needed
        ids = tokenizer(text[: max_tokens * 12], add_special_tokens=False, verbose=False)["input_ids"][:max_tokens]
    else:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    n_blocks = len(ids) // seq_len
    if n_blocks == 0:
        raise MindsetError(f"the data has {len(ids)} tokens, fewer than one block of {seq_len}; give more text or a shorter seq_len")
    return torch.tensor(ids[: n_blocks * seq_len]).view(n_blocks, seq_len)


class StepBatches(IterableDataset):
    """Yields micro-batches from `start` on: micro-batch i takes blocks from a permutation of all blocks
    drawn from (seed, epoch), so batch i depends only on i and the seed."""

    def __init__(self, blocks: torch.Tensor, batch_size: int, seed: int, start: int = 0):
        if batch_size > len(blocks):
            raise MindsetError(f"a batch of {batch_size} blocks is more than the data holds ({len(blocks)} blocks)")
        self.blocks, self.batch_size, self.seed, self.start = blocks, batch_size, seed, start
        self.per_epoch = len(blocks) // batch_size

    def batch(self, i: int) -> torch.Tensor:
        epoch, position = divmod(i, self.per_epoch)
        order = torch.randperm(len(self.blocks), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        return self.blocks[order[position * self.batch_size : (position + 1) * self.batch_size]]

    def __iter__(self):
        i = self.start
        while True:
            yield self.batch(i)
            i += 1
