"""A cache of encodings per (model, layer, item), so a re-run only computes what is new.

Layout on disk, under `$MINDSET_HOME/map-cache/<model fingerprint>/layer-<L>/`:
  shard-<n>.safetensors   one tensor "encodings" (rows, hidden) float32, written once, never changed
  index.json              {"hidden": H, "rows": {item key: [shard name, row]}}, rewritten atomically
An item's key hashes its token ids, so the same text tokenized the same way hits the cache, whatever
source it came from. The fingerprint hashes every parameter's bytes, the module classes and the
tokenizer, so a modified or fine-tuned model never reads another model's encodings. Safetensors and
JSON only: nothing here is ever unpickled. Two processes adding to one layer at once may leave an unlisted
shard (the last index written wins); the entries stay correct.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mindset.fileio import atomic_write_text

FORMAT = 1  # bump when what an encoding means changes (tokenization rule, padding, dtype)


def model_fingerprint(loaded) -> str:
    """A hash of what determines the model's hidden states: weights, module classes, config, tokenizer."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"mindset-map-encodings v{FORMAT}".encode())
    model = loaded.model
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    h.update("|".join(type(m).__qualname__ for m in model.modules()).encode())
    h.update(model.config.to_json_string(use_diff=False).encode())
    tok = loaded.tokenizer
    h.update(f"{type(tok).__name__}|{len(tok)}|{tok.bos_token}|{tok.eos_token}".encode())
    h.update(json.dumps(tok.get_vocab(), sort_keys=True).encode())
    return h.hexdigest()


def item_key(ids: Sequence[int]) -> str:
    return hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=12).hexdigest()


def default_cache_root() -> Path:
    from mindset.models.gguf_cache import mindset_home

    return mindset_home() / "map-cache"


class EncodingCache:
    def __init__(self, root: str | Path, fingerprint: str, layer: int):
        self.folder = Path(root) / fingerprint / f"layer-{layer}"
        self.index_path = self.folder / "index.json"
        self.rows: dict[str, list] = {}
        self.hidden: int | None = None
        if self.index_path.exists():
            try:
                data = json.loads(self.index_path.read_text())
                self.rows, self.hidden = dict(data["rows"]), data["hidden"]
            except (ValueError, KeyError):  # a damaged index is only a lost cache: start again
                self.rows, self.hidden = {}, None

    def __len__(self) -> int:
        return len(self.rows)

    def missing(self, keys: Sequence[str]) -> list[int]:
        return [i for i, k in enumerate(keys) if k not in self.rows]

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Rows for keys that are all cached, in order."""
        from safetensors.numpy import load_file

        out = np.zeros((len(keys), self.hidden or 0), dtype=np.float32)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for i, key in enumerate(keys):
            shard, row = self.rows[key]
            by_shard.setdefault(shard, []).append((i, row))
        for shard, pairs in by_shard.items():
            table = load_file(str(self.folder / shard))["encodings"]
            idx, rows = zip(*pairs)
            out[list(idx)] = table[list(rows)]
        return out

    def add(self, keys: Sequence[str], encodings: np.ndarray) -> None:
        from safetensors.numpy import save_file

        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        n = len(list(self.folder.glob("shard-*.safetensors")))
        name = f"shard-{n:05d}-{os.getpid()}.safetensors"
        tmp = self.folder / f".{name}.tmp"
        save_file({"encodings": np.ascontiguousarray(encodings, dtype=np.float32)}, str(tmp))
        os.replace(tmp, self.folder / name)
        for row, key in enumerate(keys):
            self.rows[key] = [name, row]
        self.hidden = int(encodings.shape[1])
        atomic_write_text(self.index_path, json.dumps({"format": FORMAT, "hidden": self.hidden, "rows": self.rows}, separators=(",", ":")))
