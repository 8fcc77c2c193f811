"""Sharded safetensors streamed to disk one tensor at a time, in plan order, never a shard in memory.

Every output tensor's name, shape and dtype is known before any is computed, so the shards and their
headers are fixed up front and each tensor's bytes can follow the previous ones as soon as it exists.
The format is what `safetensors` reads: an 8-byte little-endian header length, a JSON header padded
with spaces to a multiple of 8, then the tensors' bytes back to back in header order.

Bytes go through a page-aligned staging buffer to the file opened with O_DIRECT, when the file system
allows it: the output then never passes through the page cache, whose allocation and reclaim on a
busy machine cost more than the disk itself (measured here: 1.5 GB in 0.6 s direct against 1.4 to
5 s buffered). The file's blocks are reserved first (fallocate), which helps buffered writes too.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass
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
BLOCK = 4096  # O_DIRECT writes start, end and live at multiples of this
STAGE = 32 << 20  # bytes staged before each write


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


def encode_header(specs: list[TensorSpec], metadata: dict[str, str]) -> bytes:
    """The 8-byte length and the JSON header (space-padded to a multiple of 8) of a shard."""
    entries: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for spec in specs:
        entries[spec.name] = {"dtype": SAFETENSORS_DTYPES[spec.dtype], "shape": list(spec.shape), "data_offsets": [offset, offset + spec.nbytes]}
        offset += spec.nbytes
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes without a copy (after making it contiguous on the CPU)."""
    tensor = tensor.detach().to("cpu").contiguous()
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy())


class _Stream:
    """Appends bytes to one file through an aligned staging buffer; direct I/O when available."""

    def __init__(self, path: Path, size: int, stage: mmap.mmap):
        self.path, self.size, self.stage = path, size, stage
        self.fill = 0  # bytes staged
        self.offset = 0  # file offset of the staging buffer's first byte
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            self.fd = os.open(path, flags | getattr(os, "O_DIRECT", 0), 0o644)
            self.direct = hasattr(os, "O_DIRECT")
        except OSError:  # e.g. tmpfs: no direct I/O
            self.fd = os.open(path, flags, 0o644)
            self.direct = False
        try:
            os.posix_fallocate(self.fd, 0, size)
        except OSError:
            pass

    def append(self, data: memoryview) -> None:
        while len(data):
            count = min(len(data), len(self.stage) - self.fill)
            self.stage[self.fill : self.fill + count] = data[:count]
            self.fill += count
            data = data[count:]
            if self.fill == len(self.stage):
                self._flush(self.fill)

    def _flush(self, length: int) -> None:
        view = memoryview(self.stage)[:length]
        offset = self.offset
        while len(view):
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written
        self.offset += self.fill
        self.fill = 0

    def close(self) -> None:
        if self.fill:
            padded = -(-self.fill // BLOCK) * BLOCK if self.direct else self.fill
            self.stage[self.fill : padded] = bytes(padded - self.fill)
            self._flush(padded)
        os.ftruncate(self.fd, self.size)  # drop the last block's padding
        os.close(self.fd)

    def abort(self) -> None:
        os.close(self.fd)


class ShardedWriter:
    """Writes the planned tensors, in plan order, into `folder`; `close()` checks that all arrived."""

    def __init__(self, folder: Path, specs: list[TensorSpec], max_shard_bytes: int, metadata: dict[str, str] | None = None):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("duplicate output tensor names")
        self.folder = Path(folder)
        self.specs = specs
        self.shards = plan_shards(specs, max_shard_bytes)
        self.filenames = shard_filenames(len(self.shards))
        self._meta = {"format": "pt", **(metadata or {})}
        self._stage = mmap.mmap(-1, STAGE)  # anonymous memory is page-aligned, as direct I/O needs
        self._next = 0  # index of the next tensor to arrive
        self._shard = -1
        self._stream: _Stream | None = None

    @property
    def total_bytes(self) -> int:
        return sum(s.nbytes for s in self.specs)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if self._next >= len(self.specs) or self.specs[self._next].name != name:
            expected = self.specs[self._next].name if self._next < len(self.specs) else "nothing"
            raise ValueError(f"tensors must arrive in plan order: got {name}, expected {expected}")
        spec = self.specs[self._next]
        if tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
            raise ValueError(f"{name}: planned {spec.shape} {spec.dtype}, got {tuple(tensor.shape)} {tensor.dtype}")
        if self._stream is None or self._starts_shard(self._next):
            self._open_next_shard()
        self._stream.append(tensor_bytes(tensor))
        self._next += 1

    def _starts_shard(self, index: int) -> bool:
        return sum(len(s) for s in self.shards[: self._shard + 1]) == index

    def _open_next_shard(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._shard += 1
        specs = self.shards[self._shard]
        header = encode_header(specs, self._meta)
        self._stream = _Stream(self.folder / self.filenames[self._shard], len(header) + sum(s.nbytes for s in specs), self._stage)
        self._stream.append(memoryview(header))

    def close(self) -> None:
        """Finish the last shard and write the index when sharded; raises if a tensor is missing."""
        if self._next != len(self.specs):
            self.abort()
            raise ValueError(f"{len(self.specs) - self._next} planned tensors were never written, e.g. {self.specs[self._next].name}")
        if self._stream is None:  # no tensors at all: still one (empty) shard
            self._open_next_shard()
        self._stream.close()
        self._stream = None
        if len(self.shards) > 1:
            index = {
                "metadata": {"total_size": self.total_bytes},
                "weight_map": {spec.name: filename for filename, shard in zip(self.filenames, self.shards) for spec in shard},
            }
            (self.folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        self._stage.close()

    def abort(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._stream = None


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
