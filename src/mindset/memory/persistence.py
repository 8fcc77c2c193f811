"""A store on disk: a folder with tensors in safetensors, per-entry metadata in SQLite, settings in JSON.

    store.json          format, backend, dim, capacity, metric, value shape/dtype, eviction, clock, counters
    tensors.safetensors keys, values (one row per entry, in slot order), faiss_index (serialized, if any)
    entries.sqlite      one row per entry: id, slot, row, source text, insert step, last access,
                        access count, merges, LRFU value
The folder is written under a temporary name and renamed into place, so an interrupted save leaves the
previous store (or nothing), never a half-written one. Loading checks that the three files agree.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import torch

from mindset.errors import MindsetError
from mindset.fileio import atomic_folder

FORMAT = "mindset-store"
VERSION = 1
SETTINGS, TENSORS, ENTRIES = "store.json", "tensors.safetensors", "entries.sqlite"
COLUMNS = ("id", "slot", "row", "source", "inserted_at", "last_access", "access_count", "merges", "crf")
DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32)}


def save_store(store, folder: Path) -> Path:
    from safetensors.torch import save_file

    slots = torch.nonzero(store.occupied).flatten()
    device_slots = slots.to(store.keys.device)
    tensors = {
        "keys": store.keys[device_slots].float().cpu().contiguous(),
        "values": store.values[device_slots].cpu().contiguous(),
    }
    tensors.update(store.extra_tensors() if hasattr(store, "extra_tensors") else {})
    settings = {
        "format": FORMAT, "version": VERSION, "backend": store.backend, "dim": store.dim, "capacity": store.capacity,
        "metric": store.metric, "value_shape": list(store.value_shape), "value_dtype": str(store.values.dtype).removeprefix("torch."),
        "eviction": store.eviction, "lrfu_lambda": store.lrfu_lambda, "clock": store.clock, "next_id": store.next_id,
        "counters": store.counters, "entries": slots.numel(), **(store.extra_settings() if hasattr(store, "extra_settings") else {}),
    }
    with atomic_folder(folder, replace=True) as tmp:
        save_file(tensors, str(tmp / TENSORS))
        _write_entries(store, slots, tmp / ENTRIES)
        (tmp / SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
    return folder


def _write_entries(store, slots: torch.Tensor, path: Path) -> None:
    rows = [
        (int(store.entry_ids[s]), s, row, store.sources[s], int(store.inserted_at[s]), int(store.last_access[s]),
         int(store.access_count[s]), int(store.merges[s]), float(store.crf[s]))
        for row, s in enumerate(slots.tolist())
    ]
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, slot INTEGER UNIQUE NOT NULL, row INTEGER UNIQUE NOT NULL, "
            "source TEXT, inserted_at INTEGER, last_access INTEGER, access_count INTEGER, merges INTEGER, crf REAL)"
        )
        db.executemany(f"INSERT INTO entries VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    db.close()


def load_store(folder: Path, *, device: str | torch.device = "cpu"):
    settings = _read_settings(folder)
    tensors = _read_tensors(folder)
    rows = _read_entries(folder)
    from mindset.memory.store import make_store

    n, dim = settings["entries"], settings["dim"]
    value_shape = tuple(settings["value_shape"])
    keys, values = tensors.get("keys"), tensors.get("values")
    if keys is None or values is None:
        raise MindsetError(f"the store in {folder} is corrupt: {TENSORS} lacks keys or values")
    if tuple(keys.shape) != (n, dim) or tuple(values.shape) != (n, *value_shape) or len(rows) != n:
        raise MindsetError(
            f"the store in {folder} is corrupt or mismatched: {SETTINGS} says {n} entries of dim {dim}, but "
            f"{TENSORS} holds keys {tuple(keys.shape)}, values {tuple(values.shape)} and {ENTRIES} {len(rows)} rows"
        )
    slots = torch.tensor([r[1] for r in rows], dtype=torch.long)
    if sorted(r[2] for r in rows) != list(range(n)) or (n and (int(slots.min()) < 0 or int(slots.max()) >= settings["capacity"])):
        raise MindsetError(f"the store in {folder} is corrupt: {ENTRIES} has rows or slots out of range")
    backend = settings["backend"] if settings["backend"] == "torch" else f"faiss:{settings.get('factory', 'Flat')}"
    if backend == "torch":
        options = {"device": device}
    else:
        options = {"nprobe": settings.get("nprobe", 16), "ef_search": settings.get("ef_search", 64)}
    store = make_store(
        backend, dim, settings["capacity"], metric=settings["metric"], value_shape=value_shape,
        value_dtype=DTYPES[settings["value_dtype"]], eviction=settings["eviction"], lrfu_lambda=settings["lrfu_lambda"], **options,
    )
    order = torch.tensor([r[2] for r in rows], dtype=torch.long)  # entry i of `rows` lives at tensor row order[i]
    store._write(slots, keys[order], values[order])
    store.occupied[slots] = True
    for column, name in ((0, "entry_ids"), (4, "inserted_at"), (5, "last_access"), (6, "access_count"), (7, "merges")):
        getattr(store, name)[slots] = torch.tensor([r[column] for r in rows], dtype=torch.long)
    store.crf[slots] = torch.tensor([r[8] for r in rows], dtype=torch.float64)
    for r in rows:
        store.sources[r[1]] = r[3]
    store.clock, store.next_id = int(settings["clock"]), int(settings["next_id"])
    store.counters.update(settings.get("counters", {}))
    store.high_water = int(slots.max()) + 1 if n else 0
    if hasattr(store, "restore_index"):
        store.restore_index(tensors.get("faiss_index"))
    return store


def _read_settings(folder: Path) -> dict:
    if not folder.is_dir():
        raise MindsetError(f"{folder}: no such store folder")
    path = folder / SETTINGS
    if not path.exists():
        raise MindsetError(f"{folder} is not a store (no {SETTINGS})")
    try:
        settings = json.loads(path.read_text())
    except ValueError as err:
        raise MindsetError(f"{path} is corrupt ({err})") from None
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        raise MindsetError(f"{path} is not a mindset store description")
    if settings.get("version") != VERSION:
        raise MindsetError(f"{path} has store format version {settings.get('version')}; this mindset reads version {VERSION}")
    required = ("backend", "dim", "capacity", "metric", "value_shape", "value_dtype", "eviction", "lrfu_lambda", "clock", "next_id", "entries")
    missing = [k for k in required if k not in settings]
    if missing or settings["value_dtype"] not in DTYPES:
        raise MindsetError(f"{path} is incomplete or corrupt (missing or bad: {', '.join(missing) or 'value_dtype'})")
    return settings


def _read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / TENSORS
    if not path.exists():
        raise MindsetError(f"the store in {folder} is incomplete: {TENSORS} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise MindsetError(f"{path} is not a valid safetensors file ({err}); the store is corrupt") from None


def _read_entries(folder: Path) -> list[tuple]:
    path = folder / ENTRIES
    if not path.exists():
        raise MindsetError(f"the store in {folder} is incomplete: {ENTRIES} is missing")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY slot").fetchall()
        db.close()
    except sqlite3.DatabaseError as err:
        raise MindsetError(f"{path} is not a valid entries database ({err}); the store is corrupt") from None
    return rows
