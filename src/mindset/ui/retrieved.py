"""Which memory entries each token of a reply was predicted with: the Chat view's per-token retrieval.

A store keeps counters (hits, last access), not which query read which entry, and the engine that generated
the reply records nothing either. So the reply is re-read: one forward over the prompt and the reply's
tokens, during which every memory store's `query` is watched and its answer (the top-k entries the layer
actually reads, with the layer's own k) kept per position. Token i of the reply was chosen from the logits
of position len(prompt) + i - 1, so its entries are the hits there. The hidden states are those of the
incremental decode up to float rounding, so the entries are the same but for near-ties.

The re-read is not a use of the memory: its queries do not count as accesses (hits, LRFU scores stay as they
were), and queries from other threads (an engine decoding on the same model) are left alone and unrecorded.
Featural memories (FFN slots, no store) are not covered.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import torch

from mindset.errors import MindsetError


def memories(model) -> dict[str, Any]:
    """{module path: module} of the memories that read a store: associative layers and a kNN-LM head."""
    from mindset.memory.associative import AssociativeMemory
    from mindset.memory.knn_lm import KnnLMHead

    return {path: m for path, m in model.named_modules() if isinstance(m, (AssociativeMemory, KnnLMHead))}


@lru_cache(maxsize=4)
def _ids_by_bytes(tokenizer) -> dict[bytes, int]:
    """Each token's UTF-8 bytes (as serve's logprobs write them) -> its id; the first id wins a tie."""
    from mindset.serve.logprobs import TokenText

    text = TokenText(tokenizer)
    special = set(tokenizer.all_special_ids)
    out: dict[bytes, int] = {}
    for token in range(len(tokenizer)):
        if token not in special:
            out.setdefault(text.piece(token)[1], token)
    return out


def token_ids(tokenizer, tokens: list[bytes]) -> list[int]:
    """The ids of a reply given as its tokens' bytes (the `bytes` of /v1's logprobs.content entries)."""
    table = _ids_by_bytes(tokenizer)
    ids = []
    for i, raw in enumerate(tokens):
        if raw not in table:
            raise MindsetError(f"token {i} of the reply, bytes {list(raw)}, is no token of this model; send logprobs.content[i].bytes of its reply")
        ids.append(table[raw])
    return ids


@contextmanager
def _watching(stores: dict[str, Any], seen: dict[str, Any]):
    """While inside: this thread's queries of `stores` don't touch them, and their Hits land in seen[path]."""
    me = threading.get_ident()

    def watch(path, query):
        def watched(queries, k, *, touch: bool = True):
            if threading.get_ident() != me:
                return query(queries, k, touch=touch)
            hits = seen[path] = query(queries, k, touch=False)
            return hits

        return watched

    for path, store in stores.items():
        store.query = watch(path, store.query)  # an instance attribute over the class's method
    try:
        yield
    finally:
        for store in stores.values():
            del store.query


@torch.no_grad()
def retrieved(loaded, messages: list[dict], tokens: list[bytes], top: int = 3) -> dict[str, Any]:
    """{"stores": [{path, kind}], "tokens": [{index, token, entries: {path: [{id, score, source}]}}]} for the reply `tokens`
    (bytes) of `loaded` to `messages`: the `top` best of the entries each store was read for while predicting each token."""
    from mindset.chat.generation import encode_prompt
    from mindset.memory.knn_lm import KnnLMHead

    found = memories(loaded.model)
    kinds = [{"path": p, "kind": "knn_lm" if isinstance(m, KnnLMHead) else "associative"} for p, m in found.items()]
    if not found or not tokens:
        return {"stores": kinds, "tokens": []}
    prompt = encode_prompt(loaded.tokenizer, messages)
    reply = token_ids(loaded.tokenizer, tokens)
    ids = prompt + reply[:-1]
    if len(ids) > loaded.context_length:
        raise MindsetError(f"the conversation and reply take {len(ids)} tokens; this model's context is {loaded.context_length}")
    seen: dict[str, Any] = {}
    with _watching({p: m.store for p, m in found.items()}, seen):
        loaded.model(input_ids=torch.tensor([ids], device=loaded.device))
    rows = []
    for i, token in enumerate(reply):
        position = len(prompt) - 1 + i
        entries = {p: _entries(found[p].store, seen[p], position, top) if p in seen else [] for p in found}
        rows.append({"index": i, "token": loaded.tokenizer.decode([token]), "entries": entries})
    return {"stores": kinds, "tokens": rows}


def _entries(store, hits, position: int, top: int) -> list[dict[str, Any]]:
    """The `top` best valid entries of one position's hits, with the text each was written from."""
    slots = hits.slots[position, :top]
    scores = hits.scores[position, :top].tolist()
    meta = {row["slot"]: row for row in store.entries(slots.cpu())}
    return [{"id": meta[s]["id"], "score": score, "source": meta[s]["source"]} for s, score in zip(slots.tolist(), scores) if s in meta]
