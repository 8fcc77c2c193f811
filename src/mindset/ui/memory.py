"""The memory view ("view the database"): a model's memory stores and their entries, for GET /api/memory.

Three kinds, read through the memory package's own objects:
- associative layers (surgery ffn_to_memory kind=associative): a store of (key = the layer's input,
  value = its FFN's output) with the text each entry was written from, accesses, age and LRFU score;
- a kNN-LM head: a store of (final hidden state, next token id);
- featural layers (ffn_to_memory kind=featural): no store, the FFN's own d_ff slots (value = a row of the
  down projection); listed by slot with the value vector's norm.
A value vector is shown by its top tokens through the unembedding (lm_head · v, the "logit lens" of the entry):
what writing that entry pushes the next-token distribution toward. Age is in store clock ticks (one per
insert, query or merge call) since the entry was written.
"""

from __future__ import annotations

from typing import Any

import torch

from mindset.errors import MindsetError

SORTS = ("id", "hits", "age", "score", "norm")


def stores(loaded) -> list[dict[str, Any]]:
    """[{path, kind, layer, entries, capacity, fill, stats}] for every memory in the model."""
    from mindset.memory.associative import AssociativeMemory
    from mindset.memory.featural import FeaturalMemory
    from mindset.memory.knn_lm import KnnLMHead
    from mindset.models.anatomy import blocks

    layer_of = {b.mlp_path: b.index for b in blocks(loaded.model)}
    out = []
    for path, module in loaded.model.named_modules():
        if isinstance(module, (AssociativeMemory, KnnLMHead)):
            stats = module.store.stats()
            kind = "associative" if isinstance(module, AssociativeMemory) else "knn_lm"
            out.append({"path": path, "kind": kind, "layer": layer_of.get(path), "entries": stats["entries"], "capacity": stats["capacity"],
                        "fill": stats["fill"], "k": module.k, "stats": stats})  # fmt: skip
        elif isinstance(module, FeaturalMemory):
            slots = int(module.value_rows().shape[0])
            out.append({"path": path, "kind": "featural", "layer": layer_of.get(path), "entries": slots, "capacity": slots, "fill": 1.0,
                        "k": module.k, "stats": {"slots": slots, "read_per_token": module.k}})  # fmt: skip
    return out


def module_of(loaded, path: str):
    """The memory at module `path`, or of layer `path` when it is a number."""
    known = {s["path"]: s for s in stores(loaded)}
    by_layer = {str(s["layer"]): s["path"] for s in known.values() if s["layer"] is not None}
    path = by_layer.get(str(path), path)
    if path not in known:
        raise MindsetError(f"no memory at {path!r}; memories: {', '.join(known) or 'none (Edit → ffn_to_memory converts a layer)'}")
    return loaded.model.get_submodule(path), known[path]


@torch.no_grad()
def top_tokens(loaded, vector: torch.Tensor, k: int = 5) -> list[dict[str, Any]]:
    head = loaded.model.get_output_embeddings()
    logits = vector.to(head.weight.dtype) @ head.weight.T
    values, ids = torch.topk(logits.float(), k)
    return [{"id": int(i), "token": loaded.tokenizer.decode([int(i)]), "logit": float(v)} for v, i in zip(values, ids)]


def entries(loaded, path: str, offset: int = 0, limit: int = 20, sort: str = "id", descending: bool = True) -> dict[str, Any]:
    """One page of a memory's entries, sorted by `sort` (id, hits, age, score; norm for featural slots)."""
    if sort not in SORTS:
        raise MindsetError(f"sort {sort!r}: sort by one of {', '.join(SORTS)}")
    if offset < 0 or not 1 <= limit <= 500:
        raise MindsetError(f"offset {offset} and limit {limit}: offset is at least 0, limit between 1 and 500")
    module, info = module_of(loaded, path)
    if info["kind"] == "featural":
        return _featural(loaded, module, info, offset, limit, descending)
    store = module.store
    slots = torch.nonzero(store.occupied).flatten()
    key = {"id": store.entry_ids, "hits": store.access_count, "age": -store.inserted_at, "score": store.crf, "norm": store.entry_ids}[sort]
    order = torch.argsort(key[slots].double(), descending=descending, stable=True)
    page = slots[order][offset : offset + limit]
    return {"path": path, "kind": info["kind"], "total": int(slots.numel()), "offset": offset, "limit": limit, "sort": sort,
            "entries": [_entry(loaded, store, info["kind"], row) for row in store.entries(page)]}  # fmt: skip


def _entry(loaded, store, kind: str, row: dict[str, Any]) -> dict[str, Any]:
    value = store.values[row["slot"]]
    row = {**row, "hits": row["access_count"], "age": store.clock - row["inserted_at"], "eviction_score": float(store.crf[row["slot"]])}
    if kind == "knn_lm":
        row["next_token"] = {"id": int(value), "token": loaded.tokenizer.decode([int(value)])}
    else:
        row["value_norm"] = float(value.float().norm())
        row["top_tokens"] = top_tokens(loaded, value.float())
    return row


@torch.no_grad()
def _featural(loaded, module, info, offset: int, limit: int, descending: bool) -> dict[str, Any]:
    rows = module.value_rows().detach()
    norms = rows.float().norm(dim=-1)
    order = torch.argsort(norms, descending=descending)[offset : offset + limit]
    return {"path": info["path"], "kind": "featural", "total": int(rows.shape[0]), "offset": offset, "limit": limit, "sort": "norm",
            "entries": [{"slot": int(s), "id": int(s), "value_norm": float(norms[s]), "top_tokens": top_tokens(loaded, rows[s].float())}
                        for s in order.tolist()]}  # fmt: skip


@torch.no_grad()
def search(loaded, text: str, k: int = 5) -> list[dict[str, Any]]:
    """For each store: the entries nearest to the last position of `text` (the query each store sees there)."""
    from mindset.memory.knn_lm import KnnLMHead
    from mindset.memory.queries import store_queries

    if not text.strip():
        raise MindsetError("search: the text is empty; give the text whose last position is the query")
    out = []
    for name, (store, query, module) in store_queries(loaded, text).items():
        kind = "knn_lm" if isinstance(module, KnnLMHead) else "associative"
        if len(store) == 0:
            out.append({"path": name, "kind": kind, "hits": []})
            continue
        hits = store.query(query.float(), min(k, len(store)), touch=False)
        rows = [{**_entry(loaded, store, kind, e), "similarity": s} for s, e in zip(hits.scores[0].tolist(), store.entries(hits.slots[0]))]
        out.append({"path": name, "kind": kind, "hits": rows})
    return out
