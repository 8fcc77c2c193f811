"""The store protocol every memory layer talks to, and how to make or open one by name.

A store holds (key, value) entries in a fixed number of slots. Layers only use this surface:
    insert(keys, values, sources=None) -> ids     query(queries, k) -> Hits
    remove(ids)    len(store)    save(folder)     Store.load(folder)
plus `keys` / `values` (the slot tables, for retrieval that needs gradients) and `stats()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from mindset.errors import MindsetError

METRICS = ("l2", "ip", "cosine")  # score = -squared distance, inner product, cosine similarity
EVICTIONS = ("lrfu", "fifo", "none")


@dataclass
class Hits:
    """Top-k results, best first. Rows with fewer than k entries are padded with slot -1 and score -inf."""

    scores: torch.Tensor  # (N, k) float
    slots: torch.Tensor  # (N, k) long: rows of store.keys / store.values
    ids: torch.Tensor  # (N, k) long: entry ids, stable for the life of an entry

    @property
    def valid(self) -> torch.Tensor:
        return self.slots >= 0


@runtime_checkable
class Store(Protocol):
    dim: int
    capacity: int
    metric: str
    keys: torch.Tensor
    values: torch.Tensor

    def insert(self, keys: torch.Tensor, values: torch.Tensor, sources: list[str] | None = None) -> torch.Tensor: ...

    def query(self, queries: torch.Tensor, k: int) -> Hits: ...

    def remove(self, ids: torch.Tensor | list[int]) -> int: ...

    def __len__(self) -> int: ...

    def save(self, folder: str | Path) -> Path: ...

    def stats(self) -> dict: ...


def make_store(
    backend: str,
    dim: int,
    capacity: int,
    *,
    metric: str = "l2",
    value_shape: tuple[int, ...] | None = None,
    value_dtype: torch.dtype = torch.float32,
    eviction: str = "lrfu",
    device: str | torch.device = "cpu",
    **options,
):
    """A new, empty store. backend: 'torch' (exact, on `device`) or 'faiss:<factory>' (e.g. 'faiss:HNSW32',
    'faiss:IVF1024,Flat', 'faiss:Flat'; CPU)."""
    from mindset.memory.torch_store import TorchStore

    if backend == "torch":
        return TorchStore(dim, capacity, metric=metric, value_shape=value_shape, value_dtype=value_dtype, eviction=eviction, device=device, **options)
    if backend.startswith("faiss"):
        from mindset.memory.faiss_store import FaissStore

        factory = backend.partition(":")[2] or "Flat"
        return FaissStore(dim, capacity, factory=factory, metric=metric, value_shape=value_shape, value_dtype=value_dtype, eviction=eviction, **options)
    raise MindsetError(f"unknown store backend {backend!r}; use 'torch' or 'faiss:<factory string>' (e.g. faiss:HNSW32)")


def open_store(folder: str | Path, *, device: str | torch.device = "cpu", expect_dim: int | None = None):
    """Load a saved store of any backend; `expect_dim` checks it fits the layer that will query it."""
    from mindset.memory.persistence import load_store

    store = load_store(Path(folder), device=device)
    if expect_dim is not None and store.dim != expect_dim:
        raise MindsetError(f"the store in {folder} holds {store.dim}-dimensional keys, but this layer's hidden size is {expect_dim}")
    return store
