"""Encodings: the hidden state at the last token of each item, at one layer, in batches.

An item's tokens are its prompt's (with the tokenizer's special tokens) followed by its completion's
(without): exactly the sequence a model generating that completion has read. The hidden state at position
t of that sequence is the last-token state of its first t+1 tokens (the model is causal), so one forward
pass over a prompt + completion gives both the item's encoding (its last position) and its generation
path (every position from the prompt's last token on).

Layers count as `output_hidden_states` counts them: 0 is the embeddings, n (or -1, the default) the last
layer's output after the final norm.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mindset.errors import MindsetError
from mindset.models.anatomy import n_layers, text_config

DEFAULT_BATCH_TOKENS = 8192  # padded tokens per forward pass: bounds memory (all layers' states are kept)


@dataclass
class TokenizedItem:
    ids: list[int]
    path_start: int  # index of the prompt's last token: where a generation path begins
    truncated: int = 0  # tokens cut from the left to fit the context


def resolve_layer(model, layer: int | None) -> int:
    """-1/None is the last; 0..n as output_hidden_states counts them (0: embeddings)."""
    n = n_layers(model)
    if layer is None:
        return n
    if not -n - 1 <= layer <= n:
        raise MindsetError(f"layer {layer} does not exist: this model has layers 0 (embeddings) to {n} (or -1 for the last)")
    return layer % (n + 1)


def tokenize_item(tokenizer, prompt: str, completion: str = "", max_length: int | None = None) -> TokenizedItem:
    prompt_ids = list(tokenizer(prompt)["input_ids"]) if prompt else []
    completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"]) if completion else []
    ids = prompt_ids + completion_ids
    if not ids:
        raise MindsetError("an item encodes to no tokens (empty prompt and completion)")
    path_start = max(len(prompt_ids) - 1, 0)
    truncated = 0
    if max_length and len(ids) > max_length:  # keep the end: the last token is what is encoded
        truncated = len(ids) - max_length
        ids = ids[truncated:]
        path_start = max(path_start - truncated, 0)
    return TokenizedItem(ids, path_start, truncated)


def _batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Indices grouped by similar length (sorted), each group at most `batch_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and lengths[i] * (len(batch) + 1) > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@torch.inference_mode()
def hidden_states(model, id_lists: Sequence[Sequence[int]], layer: int, *, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                  paths_from: Sequence[int | None] | None = None, progress: bool = False) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(last-token states (N, H) float32, {i: path states (T_i, H)} for items with a `paths_from` index).

    Right padding with an attention mask: real tokens keep positions 0..len-1, so padding changes nothing.
    The base model runs without the LM head (logits for every position would cost more than the layers).
    Progress (one step a batch) goes through mindset.progress, the project's one progress display.
    """
    from mindset.progress import track

    device = next(model.parameters()).device
    base = model.base_model
    lengths = [len(ids) for ids in id_lists]
    hidden = int(text_config(model.config).hidden_size)
    out = np.zeros((len(id_lists), hidden), dtype=np.float32)
    paths: dict[int, np.ndarray] = {}
    pad = 0
    batches = list(_batches(lengths, batch_tokens))
    for batch in track(batches, len(batches), f"encoding {len(id_lists)} items", enabled=progress, unit="batches"):
        width = max(lengths[i] for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, : lengths[i]] = torch.tensor(id_lists[i])
            mask[row, : lengths[i]] = 1
        result = base(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True, use_cache=False)
        states = result.hidden_states[layer].float()  # (B, T, H)
        last = torch.tensor([lengths[i] - 1 for i in batch], device=states.device)
        out[batch] = states[torch.arange(len(batch), device=states.device), last].cpu().numpy()
        if paths_from is not None:
            for row, i in enumerate(batch):
                start = paths_from[i]
                if start is not None:
                    paths[i] = states[row, start : lengths[i]].cpu().numpy()
    return out, paths


def encode_items(loaded, tokenized: Sequence[TokenizedItem], layer: int, *, cache=None, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                 paths_for: Sequence[int] = (), progress: bool = False) -> tuple[np.ndarray, dict[int, np.ndarray], int]:
    """(encodings (N, H), paths {item index: (T, H)}, how many were computed rather than read from `cache`).

    Items in `paths_for` are always run (their paths are not cached); the rest only when missing.
    """
    from mindset.map.cache import item_key

    keys = [item_key(t.ids) for t in tokenized]
    wanted_paths = set(paths_for)
    todo = sorted(set(cache.missing(keys) if cache is not None else range(len(keys))) | wanted_paths)
    hidden = int(text_config(loaded.model.config).hidden_size)
    out = np.zeros((len(keys), hidden), dtype=np.float32)
    paths: dict[int, np.ndarray] = {}
    if todo:
        id_lists = [tokenized[i].ids for i in todo]
        starts = [tokenized[i].path_start if i in wanted_paths else None for i in todo]
        states, found = hidden_states(loaded.model, id_lists, layer, batch_tokens=batch_tokens, paths_from=starts, progress=progress)
        out[todo] = states
        paths = {todo[j]: p for j, p in found.items()}
        if cache is not None:
            fresh = [j for j, i in enumerate(todo) if keys[i] not in cache.rows]
            unique: dict[str, int] = {}
            for j in fresh:
                unique.setdefault(keys[todo[j]], j)
            cache.add(list(unique), states[list(unique.values())])
    computed = set(todo)
    done = [i for i in range(len(keys)) if i not in computed]
    if done:
        out[done] = cache.get([keys[i] for i in done])
    return out, paths, len(todo)
