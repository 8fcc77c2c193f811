"""Sharded safetensors written one tensor at a time, in any order, without holding a shard in memory.

Every output tensor's name, shape and dtype is known before any is computed, so each shard's header
(and therefore every tensor's byte offset) is fixed up front; a tensor is written to its place with
`pwrite` as soon as it exists and can be freed right after. The result is byte-for-byte the format
`safetensors` reads: an 8-byte little-endian header length, a JSON header padded with spaces to a
multiple of 8, then the tensors' bytes back to back in header order.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}
INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count * self.dtype.itemsize


@dataclass
class _Shard:
    filename: str
    specs: list[TensorSpec]
    header: bytes = b""
    offsets: dict[str, int] = field(default_factory=dict)  # absolute file offset of each tensor's bytes
    size: int = 0
    fd: int = -1


def plan_shards(specs: list[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    """Split tensors, in order, into shards of at most `max_shard_bytes` (a larger tensor gets its own)."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def shard_filenames(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def encode_header(specs: list[TensorSpec], metadata: dict[str, str]) -> tuple[bytes, dict[str, int]]:
    """(the 8-byte length + padded JSON header, each tensor's offset relative to the data start)."""
    entries: dict[str, object] = {"__metadata__": metadata}
    relative: dict[str, int] = {}
    offset = 0
    for spec in specs:
        entries[spec.name] = {"dtype": SAFETENSORS_DTYPES[spec.dtype], "shape": list(spec.shape), "data_offsets": [offset, offset + spec.nbytes]}
        relative[spec.name] = offset
        offset += spec.nbytes
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, relative


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes without a copy (after making it contiguous on the CPU)."""
    tensor = tensor.detach().to("cpu").contiguous()
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy())


class ShardedWriter:
    """Writes the planned tensors into `folder`; `close()` checks that every one was written."""

    def __init__(self, folder: Path, specs: list[TensorSpec], max_shard_bytes: int, metadata: dict[str, str] | None = None):
        self.folder = Path(folder)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("duplicate output tensor names")
        groups = plan_shards(specs, max_shard_bytes)
        self.shards = [_Shard(name, group) for name, group in zip(shard_filenames(len(groups)), groups)]
        self._where: dict[str, tuple[_Shard, TensorSpec]] = {}
        self._written: set[str] = set()
        self._lock = threading.Lock()
        meta = {"format": "pt", **(metadata or {})}
        for shard in self.shards:
            shard.header, relative = encode_header(shard.specs, meta)
            shard.offsets = {name: len(shard.header) + off for name, off in relative.items()}
            shard.size = len(shard.header) + sum(s.nbytes for s in shard.specs)
            shard.fd = os.open(self.folder / shard.filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            _pwrite_all(shard.fd, memoryview(shard.header), 0)
            for spec in shard.specs:
                self._where[spec.name] = (shard, spec)

    @property
    def total_bytes(self) -> int:
        return sum(s.nbytes for shard in self.shards for s in shard.specs)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        shard, spec = self._where[name]
        if tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
            raise ValueError(f"{name}: planned {spec.shape} {spec.dtype}, got {tuple(tensor.shape)} {tensor.dtype}")
        with self._lock:
            if name in self._written:
                raise ValueError(f"{name} written twice")
            self._written.add(name)
        _pwrite_all(shard.fd, tensor_bytes(tensor), shard.offsets[name])

    def close(self) -> None:
        """Flush and close every shard, write the index when sharded; raises if a tensor is missing."""
        missing = [name for name in self._where if name not in self._written]
        for shard in self.shards:
            if shard.fd >= 0:
                os.close(shard.fd)
                shard.fd = -1
        if missing:
            raise ValueError(f"{len(missing)} planned tensors were never written, e.g. {missing[0]}")
        if len(self.shards) > 1:
            index = {
                "metadata": {"total_size": self.total_bytes},
                "weight_map": {spec.name: shard.filename for shard in self.shards for spec in shard.specs},
            }
            (self.folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")

    def abort(self) -> None:
        for shard in self.shards:
            if shard.fd >= 0:
                os.close(shard.fd)
                shard.fd = -1


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    data = data.cast("B") if data.format != "B" else data
    while len(data):
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


def write_safetensors(folder: Path, tensors: dict[str, torch.Tensor], max_shard_bytes: int = 5 * 10**9) -> None:
    """Write a dict of tensors as (possibly sharded) safetensors into an existing folder."""
    specs = [TensorSpec(name, tuple(t.shape), t.dtype) for name, t in tensors.items()]
    writer = ShardedWriter(folder, specs, max_shard_bytes)
    try:
        for name, tensor in tensors.items():
            writer.write(name, tensor)
    except BaseException:
        writer.abort()
        raise
    writer.close()
