"""The exact store: preallocated slot tables on the model's device, scored by one matmul + top-k.

Keys and values are buffers of a fixed capacity (they move with `model.to(...)`, and are not part of
the model's state dict: stores save themselves). New entries take the lowest free slots; when none is
free the eviction policy picks victims (FIFO turns the tables into a ring buffer). Per-entry metadata
(entry id, source text, insert step, last access, access count, merges, LRFU value) lives on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mindset.errors import MindsetError
from mindset.memory.eviction import LRFU_LAMBDA, lrfu_touch, victims
from mindset.memory.store import EVICTIONS, METRICS, Hits

SCORE_CHUNK = 1 << 24  # score at most this many (query, slot) pairs at once


class TorchStore(nn.Module):
    backend = "torch"

    def __init__(
        self,
        dim: int,
        capacity: int,
        *,
        metric: str = "l2",
        value_shape: tuple[int, ...] | None = None,
        value_dtype: torch.dtype = torch.float32,
        eviction: str = "lrfu",
        lrfu_lambda: float = LRFU_LAMBDA,
        device: str | torch.device = "cpu",
        key_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if dim <= 0 or capacity <= 0:
            raise MindsetError(f"a store needs a positive key dimension and capacity, got dim={dim}, capacity={capacity}")
        if metric not in METRICS:
            raise MindsetError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        if eviction not in EVICTIONS:
            raise MindsetError(f"unknown eviction policy {eviction!r}; use one of {', '.join(EVICTIONS)}")
        if not 0.0 <= lrfu_lambda <= 1.0:
            raise MindsetError(f"the LRFU lambda must be between 0 (LFU) and 1 (LRU), got {lrfu_lambda}")
        self.dim, self.capacity, self.metric = int(dim), int(capacity), metric
        self.value_shape = tuple(value_shape) if value_shape is not None else (self.dim,)
        self.eviction, self.lrfu_lambda = eviction, float(lrfu_lambda)
        self.register_buffer("keys", torch.zeros(capacity, dim, dtype=key_dtype, device=device), persistent=False)
        self.register_buffer("values", torch.zeros(capacity, *self.value_shape, dtype=value_dtype, device=device), persistent=False)
        self.register_buffer("key_sq_norms", torch.zeros(capacity, dtype=key_dtype, device=device), persistent=False)
        cpu = dict(device="cpu")
        self.occupied = torch.zeros(capacity, dtype=torch.bool, **cpu)
        self.entry_ids = torch.full((capacity,), -1, dtype=torch.long, **cpu)
        self.inserted_at = torch.zeros(capacity, dtype=torch.long, **cpu)
        self.last_access = torch.zeros(capacity, dtype=torch.long, **cpu)
        self.access_count = torch.zeros(capacity, dtype=torch.long, **cpu)
        self.merges = torch.zeros(capacity, dtype=torch.long, **cpu)
        self.crf = torch.zeros(capacity, dtype=torch.float64, **cpu)
        self.sources: list[str | None] = [None] * capacity
        self.clock = 0  # ticks once per insert / query / merge call
        self.next_id = 0
        self.high_water = 0  # slots at or past this were never used: queries skip them
        self.counters = {"inserts": 0, "merges": 0, "evictions": 0, "removals": 0, "queries": 0, "query_rows": 0}

    # ---- the protocol -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.occupied.sum())

    def insert(self, keys: torch.Tensor, values: torch.Tensor, sources: list[str] | None = None) -> torch.Tensor:
        """Add entries; returns their ids. When full, evicts by policy (or refuses, with eviction 'none')."""
        keys = self._check_keys(keys, "insert")
        n = keys.shape[0]
        if tuple(values.shape) != (n, *self.value_shape):
            raise MindsetError(f"insert: expected values of shape {(n, *self.value_shape)}, got {tuple(values.shape)}")
        if sources is not None and len(sources) != n:
            raise MindsetError(f"insert: {n} keys but {len(sources)} source texts")
        if n > self.capacity:
            raise MindsetError(f"insert: {n} entries do not fit a store of capacity {self.capacity}")
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        self.clock += 1
        slots = self._allocate(n)
        ids = torch.arange(self.next_id, self.next_id + n, dtype=torch.long)
        self.next_id += n
        self._write(slots, keys, values.to(self.values))
        self.occupied[slots] = True
        self.entry_ids[slots] = ids
        self.inserted_at[slots] = self.clock
        self.last_access[slots] = self.clock
        self.access_count[slots] = 0
        self.merges[slots] = 0
        self.crf[slots] = 1.0
        for slot, source in zip(slots.tolist(), sources or [None] * n):
            self.sources[slot] = source
        self.high_water = max(self.high_water, int(slots.max()) + 1)
        self.counters["inserts"] += n
        return ids

    def query(self, queries: torch.Tensor, k: int, *, touch: bool = True) -> Hits:
        """The k best entries for each query row (best first), by the store's metric.

        touch=False looks without counting it as an access (for writes that check novelty).
        """
        queries = self._check_keys(queries, "query")
        self._check_k(k)
        if touch:
            self.clock += 1
            self.counters["queries"] += 1
            self.counters["query_rows"] += queries.shape[0]
        n = queries.shape[0]
        scores = torch.full((n, k), float("-inf"), device=queries.device, dtype=torch.float32)
        slots = torch.full((n, k), -1, dtype=torch.long, device=queries.device)
        if len(self):
            found_scores, found_slots = self._search(queries, min(k, len(self)))
            found_slots = torch.where(torch.isfinite(found_scores), found_slots, -1)
            scores[:, : found_scores.shape[1]] = found_scores.float()
            slots[:, : found_slots.shape[1]] = found_slots
        cpu_slots = slots.cpu()
        if touch:
            hit = cpu_slots[cpu_slots >= 0]
            self.access_count.index_add_(0, hit, torch.ones_like(hit))
            lrfu_touch(self.crf, self.last_access, hit, self.clock, self.lrfu_lambda)
        ids = torch.where(cpu_slots >= 0, self.entry_ids[cpu_slots.clamp(min=0)], -1)
        return Hits(scores, slots, ids.to(slots.device))

    def remove(self, ids) -> int:
        """Forget entries by id; returns how many were found."""
        ids = torch.as_tensor(ids, dtype=torch.long).flatten()
        slots = torch.nonzero(self.occupied & torch.isin(self.entry_ids, ids)).flatten()
        self._clear(slots)
        self.counters["removals"] += slots.numel()
        return slots.numel()

    def save(self, folder: str | Path) -> Path:
        from mindset.memory.persistence import save_store

        return save_store(self, Path(folder))

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu"):
        from mindset.memory.persistence import load_store

        return load_store(Path(folder), device=device)

    # ---- beyond the protocol -------------------------------------------------------------------
    def merge(self, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Fold new pairs into existing entries as a running mean weighted by how many pairs each holds."""
        keys = self._check_keys(keys, "merge")
        slots = torch.as_tensor(slots, dtype=torch.long).cpu()
        if slots.numel() and not bool(self.occupied[slots].all()):
            raise MindsetError("merge: some slots hold no entry")
        self.clock += 1
        for slot, key, value in zip(slots.tolist(), keys, values):  # repeats of a slot fold in turn
            held = float(self.merges[slot] + 1)
            mean_key = (self.keys[slot].float() * held + key.float()) / (held + 1)
            mean_value = (self.values[slot].to(value.dtype) * held + value) / (held + 1)
            self._write(torch.tensor([slot]), mean_key[None], mean_value[None].to(self.values))
            self.merges[slot] += 1
        lrfu_touch(self.crf, self.last_access, slots, self.clock, self.lrfu_lambda)
        self.counters["merges"] += slots.numel()

    def entries(self, slots) -> list[dict]:
        """Metadata of the entries in these slots (for inspection tools)."""
        rows = []
        for slot in torch.as_tensor(slots, dtype=torch.long).flatten().tolist():
            if slot < 0 or not self.occupied[slot]:
                continue
            rows.append({
                "id": int(self.entry_ids[slot]), "slot": slot, "source": self.sources[slot],
                "inserted_at": int(self.inserted_at[slot]), "last_access": int(self.last_access[slot]),
                "access_count": int(self.access_count[slot]), "merges": int(self.merges[slot]),
            })
        return rows

    def stats(self) -> dict:
        n = len(self)
        used = int((self.access_count[self.occupied] > 0).sum())
        writes = self.counters["inserts"] + self.counters["merges"]
        return {
            "backend": self.describe(), "entries": n, "capacity": self.capacity, "fill": n / self.capacity,
            "dim": self.dim, "metric": self.metric, "eviction": self.eviction, "lrfu_lambda": self.lrfu_lambda,
            **self.counters,
            "entries_retrieved": used, "retrieved_share": used / n if n else 0.0,
            "write_hit_rate": self.counters["merges"] / writes if writes else 0.0,
            "mean_accesses": float(self.access_count[self.occupied].float().mean()) if n else 0.0,
        }

    def describe(self) -> str:
        return "torch (exact)"

    # ---- internals ---------------------------------------------------------------------------
    def _check_keys(self, keys: torch.Tensor, what: str) -> torch.Tensor:
        if not isinstance(keys, torch.Tensor) or keys.dim() != 2:
            shape = tuple(keys.shape) if isinstance(keys, torch.Tensor) else type(keys).__name__
            raise MindsetError(f"{what}: keys must be a (n, {self.dim}) tensor, got {shape}")
        if keys.shape[1] != self.dim:
            raise MindsetError(f"{what}: wrong key dimension {keys.shape[1]}; this store holds {self.dim}-dimensional keys")
        return keys

    def _check_k(self, k) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise MindsetError(f"k must be a positive whole number, got {k!r}")
        if k > self.capacity:
            raise MindsetError(f"k={k} is more than the store's {self.capacity} slots")

    def _allocate(self, n: int) -> torch.Tensor:
        free = torch.nonzero(~self.occupied).flatten()[:n]
        missing = n - free.numel()
        if missing <= 0:
            return free
        if self.eviction == "none":
            raise MindsetError(
                f"the store is full ({len(self)} of {self.capacity} entries) and eviction is off; "
                "raise its capacity, remove entries, or choose eviction 'lrfu' or 'fifo'"
            )
        evicted = victims(self.eviction, missing, self.occupied, self.crf, self.last_access, self.entry_ids, self.clock, self.lrfu_lambda)
        self._clear(evicted)
        self.counters["evictions"] += missing
        return torch.cat([free, evicted])

    def _write(self, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        keys = keys.to(device=self.keys.device, dtype=torch.float32)
        if self.metric == "cosine":
            keys = torch.nn.functional.normalize(keys, dim=-1)
        device_slots = slots.to(self.keys.device)
        self.keys[device_slots] = keys.to(self.keys.dtype)
        self.key_sq_norms[device_slots] = keys.square().sum(-1).to(self.key_sq_norms.dtype)
        self.values[device_slots] = values.to(self.values.device)

    def _clear(self, slots: torch.Tensor) -> None:
        self.occupied[slots] = False
        self.entry_ids[slots] = -1
        for slot in slots.tolist():
            self.sources[slot] = None

    def prepare_queries(self, queries: torch.Tensor) -> torch.Tensor:
        queries = queries.to(device=self.keys.device, dtype=self.keys.dtype)
        return torch.nn.functional.normalize(queries, dim=-1) if self.metric == "cosine" else queries

    def score(self, queries: torch.Tensor, begin: int, end: int) -> torch.Tensor:
        """(N, end-begin) scores against slots [begin, end): higher is better; empty slots are -inf."""
        s = queries @ self.keys[begin:end].T
        if self.metric == "l2":
            s = 2 * s - self.key_sq_norms[begin:end] - queries.square().sum(-1, keepdim=True)
        empty = ~self.occupied[begin:end].to(s.device)
        return s.masked_fill(empty, float("-inf"))

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        queries = self.prepare_queries(queries)
        chunk = max(k, SCORE_CHUNK // max(queries.shape[0], 1))
        best_scores, best_slots = None, None
        for begin in range(0, self.high_water, chunk):
            end = min(begin + chunk, self.high_water)
            s = self.score(queries, begin, end)
            top = torch.topk(s, min(k, end - begin), dim=1)
            slots = top.indices + begin
            if best_scores is None:
                best_scores, best_slots = top.values, slots
            else:
                merged = torch.cat([best_scores, top.values], 1)
                order = torch.topk(merged, k, dim=1).indices
                best_scores, best_slots = merged.gather(1, order), torch.cat([best_slots, slots], 1).gather(1, order)
        return best_scores, best_slots
