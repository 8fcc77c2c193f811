"""Recall's faiss index (agent.ann) kept beside the memory database, so that opening a folder of 10^5
memories reads the index back instead of training it again (the 11-30 s of every start before).

    DIR/memory.faiss   a safetensors file: tensor "index" (the serialized faiss index, uint8) and, in its
                       header's metadata, format, version, key, checksum, dtype, factory, rows, trained

key: the sha256 of the memories' ids and float32 embeddings as the database holds them, in id order (the
index's rows). Any insert, delete or new embedding, by this process, another one or any SQLite tool, changes
it; a recall's touch or an importance change does not, since the faiss index holds neither. checksum: the
sha256 of the index bytes. The file is used only when its key is the memories' key now, its checksum holds,
and faiss reads from it as many vectors of the memories' width as there are memories; a stale, truncated,
corrupt or foreign file is rebuilt and written again, never trusted. An index whose inverted lists were
trained on fewer than 1/RETRAIN_GROWTH of today's memories is trained again as well: its lists grew long.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch

from mindset.agent.ann import AnnCandidates
from mindset.errors import MindsetError
from mindset.fileio import atomic_file

FILENAME = "memory.faiss"
FORMAT, VERSION = "mindset-recall-index", "1"
RETRAIN_GROWTH = 1.5  # memories per memory the lists were trained on, beyond which they are trained again


def content_key(ids: np.ndarray, embeddings: np.ndarray) -> str:
    """What the faiss index depends on: the ids (row order) and the raw float32 embeddings, with their shape."""
    embeddings = np.ascontiguousarray(embeddings, "<f4")
    digest = hashlib.sha256(f"{embeddings.shape}".encode())
    digest.update(np.ascontiguousarray(ids, "<i8"))
    digest.update(embeddings)
    return digest.hexdigest()


def load(path: Path, key: str, unit: torch.Tensor, dtype: torch.dtype) -> AnnCandidates | None:
    """The saved index over `unit` (the recall index's unit rows) when the file is current and sound; None: build it."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if not _current(meta, key, unit, dtype):
                return None
            blob = f.get_tensor("index")
        if blob.dtype != np.uint8 or hashlib.sha256(blob).hexdigest() != meta.get("checksum"):
            return None
        return AnnCandidates(unit, meta["factory"], index=blob, trained=int(meta["trained"]))
    except (SafetensorError, OSError, ValueError, KeyError, MindsetError):
        return None


def _current(meta: dict, key: str, unit: torch.Tensor, dtype: torch.dtype) -> bool:
    expected = {"format": FORMAT, "version": VERSION, "key": key, "dtype": str(dtype), "rows": str(unit.shape[0])}
    if any(meta.get(name) != value for name, value in expected.items()):
        return False
    trained = int(meta.get("trained", "0"))
    return 0 < trained and unit.shape[0] <= RETRAIN_GROWTH * trained


def save(path: Path, ann: AnnCandidates, key: str, dtype: torch.dtype) -> bool:
    """Write the index under `key` (temp name, then rename); False when there was nothing to write or the
    folder refused it (a warning: recall works the same, the next start only trains again)."""
    from safetensors.numpy import save_file

    blob, rows = ann.store.serialized_index(), len(ann.store)
    slots = torch.nonzero(ann.store.occupied).flatten()
    if blob is None or not torch.equal(slots, torch.arange(rows)) or not torch.equal(ann.store.values[slots], slots):
        return False  # restoring gives row r slot r: an index laid out otherwise is not written
    meta = {"format": FORMAT, "version": VERSION, "key": key, "checksum": hashlib.sha256(blob).hexdigest(), "dtype": str(dtype),
            "factory": ann.factory, "rows": str(rows), "trained": str(ann.trained)}
    try:
        with atomic_file(path) as tmp:
            save_file({"index": np.ascontiguousarray(blob)}, str(tmp), metadata=meta)
    except OSError as err:
        warnings.warn(f"recall's faiss index could not be kept in {path} ({err}); the next start builds it again", stacklevel=2)
        return False
    return True
