"""A store searched by a faiss index (CPU): flat, IVF or HNSW, named by a faiss factory string.

It keeps the same slot tables and metadata as the exact store (so saving, eviction and retrieval with
gradients work alike) and mirrors the occupied slots in the index, with the slot as the faiss id.
Indexes that cannot remove entries (HNSW) or are not trained yet (IVF before its first query) are
rebuilt from the tables at the next query: HNSW suits stores that mostly grow.
"""

from __future__ import annotations

import numpy as np
import torch

from mindset.errors import MindsetError
from mindset.memory.torch_store import TorchStore


def _faiss():
    try:
        import faiss
    except ImportError:
        raise MindsetError("the faiss store backend needs faiss-cpu: pip install faiss-cpu") from None
    return faiss


class FaissStore(TorchStore):
    backend = "faiss"

    def __init__(self, dim: int, capacity: int, *, factory: str = "Flat", nprobe: int = 16, ef_search: int = 64, **options) -> None:
        options.pop("device", None)  # faiss-cpu searches host memory
        super().__init__(dim, capacity, device="cpu", **options)
        self.factory, self.nprobe, self.ef_search = factory, int(nprobe), int(ef_search)
        self.index = self._new_index()
        self._dirty = False  # the index no longer mirrors the tables: rebuild before searching

    def describe(self) -> str:
        return f"faiss {self.factory}"

    def _apply(self, fn, recurse=True):
        return self  # `model.to(...)` leaves it in host memory and fp32, where faiss-cpu reads it

    def _new_index(self):
        faiss = _faiss()
        metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        try:
            index = faiss.IndexIDMap2(faiss.index_factory(self.dim, self.factory, metric))
        except RuntimeError as err:
            raise MindsetError(f"faiss cannot build an index from {self.factory!r}: {str(err).strip().splitlines()[-1]}") from None
        parameters = faiss.ParameterSpace()
        for name, value in (("nprobe", self.nprobe), ("efSearch", self.ef_search)):
            try:
                parameters.set_index_parameter(index, name, value)
            except RuntimeError:
                pass  # this index type has no such knob
        return index

    def _write(self, slots: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        overwritten = slots[self.occupied[slots]]
        super()._write(slots, keys, values)
        if overwritten.numel():
            self._unindex(overwritten)
        if not self._dirty and self.index.is_trained:
            self.index.add_with_ids(self._rows(slots), slots.numpy().astype(np.int64))
        else:
            self._dirty = True

    def _clear(self, slots: torch.Tensor) -> None:
        super()._clear(slots)
        if slots.numel():
            self._unindex(slots)

    def _unindex(self, slots: torch.Tensor) -> None:
        if self._dirty:
            return
        try:
            self.index.remove_ids(slots.numpy().astype(np.int64))
        except RuntimeError:
            self._dirty = True

    def _rows(self, slots: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(self.keys[slots].float().numpy())

    def rebuild(self) -> None:
        """Train (if the index needs it) and fill a fresh index from the occupied slots."""
        slots = torch.nonzero(self.occupied).flatten()
        index = self._new_index()
        rows = self._rows(slots)
        if not index.is_trained:
            try:
                index.train(rows)
            except RuntimeError as err:
                raise MindsetError(f"faiss cannot train {self.factory!r} on {len(slots)} entries: {str(err).strip().splitlines()[-1]}") from None
        index.add_with_ids(rows, slots.numpy().astype(np.int64))
        self.index, self._dirty = index, False

    def _search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._dirty or not self.index.is_trained:
            self.rebuild()
        q = np.ascontiguousarray(self.prepare_queries(queries).float().cpu().numpy())
        distances, labels = self.index.search(q, k)
        scores = torch.from_numpy(-distances if self.metric == "l2" else distances)
        slots = torch.from_numpy(labels)
        scores = scores.masked_fill(slots < 0, float("-inf"))
        return scores.to(queries.device), slots.to(queries.device)

    # ---- persistence hooks -------------------------------------------------------------------
    def extra_settings(self) -> dict:
        return {"factory": self.factory, "nprobe": self.nprobe, "ef_search": self.ef_search}

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        blob = self.serialized_index()
        return {} if blob is None else {"faiss_index": torch.from_numpy(blob)}

    def serialized_index(self) -> np.ndarray | None:
        """The faiss index as bytes (uint8), for restore_index; None while it does not mirror the tables."""
        if self._dirty or not self.index.is_trained:
            return None
        return _faiss().serialize_index(self.index)

    def restore_index(self, blob: torch.Tensor | None) -> None:
        if blob is None:
            self._dirty = True
            return
        try:
            index = _faiss().deserialize_index(blob.numpy())
        except RuntimeError as err:
            raise MindsetError(f"the saved faiss index is corrupt ({str(err).strip().splitlines()[-1]})") from None
        if index.ntotal != len(self) or index.d != self.dim:
            raise MindsetError(f"the saved faiss index holds {index.ntotal} vectors of dim {index.d}, the store {len(self)} of dim {self.dim}")
        self.index, self._dirty = index, False
