"""Associative memory: an FFN block plus a growing store it reads from, through a gate that starts shut.

    out = ffn(x) + gate * sum_j softmax_j(cos(x, key_j) / temperature) * value_j     (top-k of the store)

Keys are the hidden states entering the block, values what the block should add there. The gate is
a parameter initialised to 0, so converting a model changes nothing until the gate is trained or set.
Writes are insert-if-novel: a pair whose best cosine similarity to the stored keys is below
`threshold` becomes a new entry; otherwise it is folded into its nearest entry as a running mean
weighted by how many pairs that entry already holds (`merges` counts them).
`memorize` (mindset.memory.knn_lm) fills the store with the block's own outputs on a text: a
cache of what this layer added in those contexts, which training (gate, values) can then put to use.
"""

from __future__ import annotations

import torch
from torch import nn

from mindset.errors import MindsetError
from mindset.memory.ffn import AdoptedFFN, ffn_layout
from mindset.memory.retrieval import retrieve
from mindset.models.anatomy import describe_ffn, in_features


class AssociativeMemory(AdoptedFFN):
    mindset_component = "memory"
    mindset_restorer = "associative_memory"

    def __init__(self, mlp, store, *, k: int = 32, temperature: float = 0.1, threshold: float = 0.9) -> None:
        if ffn_layout(mlp) is None:
            raise MindsetError(f"{type(mlp).__name__} is not a feed-forward layout associative memory supports")
        if store.metric != "cosine":
            raise MindsetError(f"associative memory needs a store with the cosine metric, this one uses {store.metric!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= store.capacity:
            raise MindsetError(f"k must be between 1 and the store's {store.capacity} slots, got {k!r}")
        if temperature <= 0 or not -1.0 <= threshold <= 1.0:
            raise MindsetError(f"temperature must be positive and threshold a cosine in [-1, 1], got {temperature}, {threshold}")
        super().__init__(mlp)
        hidden = self.hidden_size if hasattr(self, "hidden_size") else _hidden_of(mlp)
        if store.dim != hidden or tuple(store.value_shape) != (hidden,):
            raise MindsetError(f"the store holds {store.dim}-dimensional keys and values of shape {store.value_shape}; this layer needs {hidden}")
        weight = next(mlp.parameters())
        self.store = store
        self.memory_gate = nn.Parameter(torch.zeros((), dtype=weight.dtype, device=weight.device))
        self.k, self.temperature, self.threshold = k, float(temperature), float(threshold)

    def extra_repr(self) -> str:
        return f"k={self.k}, temperature={self.temperature}, threshold={self.threshold}, entries={len(self.store)}"

    def mindset_config(self) -> dict:
        return {"k": self.k, "temperature": self.temperature, "threshold": self.threshold, "gate": float(self.memory_gate.detach())}

    def mindset_extra_keys(self) -> list[str]:
        return ["memory_gate"]

    def mindset_save_extra(self, folder) -> None:
        self.store.save(folder / "store")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dense_forward(x)
        if len(self.store) == 0:
            return out
        flat = x.reshape(-1, x.shape[-1])
        hits = self.store.query(flat.detach(), min(self.k, len(self.store)))
        query = torch.nn.functional.normalize(flat, dim=-1).to(self.store.keys.dtype)
        read = retrieve(query, self.store.keys, self.store.values, hits.slots, 1.0 / self.temperature)
        return out + self.memory_gate * read.to(out.dtype).reshape(out.shape)

    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor, sources: list[str] | None = None, chunk: int = 256) -> dict:
        """Insert-if-novel, in order: returns {"inserted": n, "merged": m}."""
        inserted = merged = 0
        for begin in range(0, keys.shape[0], chunk):
            part_keys, part_values = keys[begin : begin + chunk], values[begin : begin + chunk]
            part_sources = sources[begin : begin + chunk] if sources else None
            for i in range(part_keys.shape[0]):  # in order: a pair can match one written just before it
                key, value = part_keys[i : i + 1], part_values[i : i + 1]
                nearest = self.store.query(key, 1, touch=False) if len(self.store) else None
                if nearest is not None and float(nearest.scores[0, 0]) >= self.threshold:
                    self.store.merge(nearest.slots[0].cpu(), key, value)
                    merged += 1
                else:
                    self.store.insert(key, value, [part_sources[i]] if part_sources else None)
                    inserted += 1
        return {"inserted": inserted, "merged": merged}


def _hidden_of(mlp) -> int:
    return in_features(describe_ffn(mlp).up)
