"""Run a checked plan: tensor by tensor, inputs read lazily, shards written as results appear.

Peak memory stays near the few tensors in flight (two being merged, one being written): inputs are
memory-mapped views (`safetensors.safe_open`), mapped only while their tensor is merged (`lazy`, the
default) so their pages leave the process with it; results go into a small pool of reusable buffers
and stream to their pre-planned place in the shards. The folder appears under its name only when
everything is written (`mindset.fileio.atomic_folder`), so an interrupted merge leaves nothing that
looks complete.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import torch

from mindset.fileio import atomic_folder, check_output
from mindset.merge.methods import MergeInputs
from mindset.merge.methods.pieces import pieces, torch_threads
from mindset.merge.plan import MergePlan, OutputTensor
from mindset.merge.report import model_card
from mindset.merge.tokenizer import remap_rows
from mindset.merge.writer import ShardedWriter, TensorSpec
from mindset.progress import track

DEFAULT_SHARD_BYTES = 5 * 10**9  # mergekit's default ("5B")
WORKERS = max(1, min(4, os.cpu_count() or 1))  # tensors merged (and written) at the same time
TOKENIZER_FILES = (
    "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer.model", "added_tokens.json",
    "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json", "generation_config.json",
)  # fmt: skip


@dataclass
class MergeResult:
    folder: Path
    tensors: int
    parameters: int
    bytes: int
    shards: int
    seconds: float


class TensorReader:
    """Input tensors as memory-mapped views. Lazy: a file is mapped only while its tensor is in use."""

    def __init__(self, lazy: bool = True):
        self.lazy = lazy
        self._open: dict[Path, object] = {}
        self._stack = ExitStack()
        self._lock = threading.Lock()

    def get(self, file: Path, name: str) -> torch.Tensor:
        from safetensors import safe_open

        if self.lazy:
            with safe_open(str(file), framework="pt") as handle:
                return handle.get_tensor(name)  # the view keeps its mapping until it is freed
        with self._lock:
            if file not in self._open:
                self._open[file] = self._stack.enter_context(safe_open(str(file), framework="pt"))
            handle = self._open[file]
        return handle.get_tensor(name)

    def close(self) -> None:
        self._stack.close()
        self._open.clear()


def merge_tensor(plan: MergePlan, tensor: OutputTensor, reader: TensorReader, out: torch.Tensor | None = None) -> torch.Tensor:
    """The merged value of one output tensor, in its output dtype (written into `out` when given).

    Element-wise methods run piece by piece (see methods/pieces.py): the same operations on the same
    elements, so the same bits, with each piece's temporaries kept in cache.
    """
    tensors = [reader.get(plan.models[s.model].tensors[s.stored].file, s.stored) for s in tensor.inputs]
    if tensor.vocab_axis is not None:  # mergekit casts to the config dtype as it reads, then re-indexes
        group = {source.model: _cast(plan, value) for source, value in zip(tensor.inputs, tensors)}
        remapped = remap_rows(plan.vocabulary, group, tensor.vocab_axis, _borrowed_rows(plan, tensor, reader))
        tensors = [remapped[source.model] for source in tensor.inputs]
    dtype = reduce(torch.promote_types, [(plan.dtype or t.dtype) if t.is_floating_point() else t.dtype for t in tensors])
    params = [source.params for source in tensor.inputs]
    if out is not None and plan.method.elementwise(params, tensor.shared):
        flat_out = out.reshape(-1)
        flats = [t.reshape(-1) for t in tensors]
        for piece in pieces(flat_out.numel()):
            parts = [_cast(plan, f[piece]).to(dtype) for f in flats]
            flat_out[piece].copy_(plan.method(MergeInputs(parts, tensor.base, params, tensor.name), tensor.shared))
        return out
    tensors = [_cast(plan, t).to(dtype) for t in tensors]
    generator = torch.Generator().manual_seed(tensor.seed) if tensor.seed is not None else None
    result = plan.method(MergeInputs(tensors, tensor.base, params, tensor.name, generator, out), tensor.shared)
    if out is None:
        return result.to(tensor.dtype)
    if result.data_ptr() != out.data_ptr():  # the method did not fill the buffer itself
        out.copy_(result)
    return out


def _cast(plan: MergePlan, tensor: torch.Tensor) -> torch.Tensor:
    """The config's `dtype` applies to every floating input as it is read."""
    if plan.dtype is not None and tensor.is_floating_point() and tensor.dtype != plan.dtype:
        return tensor.to(plan.dtype)
    return tensor


def _borrowed_rows(plan: MergePlan, tensor: OutputTensor, reader: TensorReader) -> dict[int, torch.Tensor]:
    """Rows for tokens none of this tensor's inputs has, from the config's other models (mean if several)."""
    vocabulary = plan.vocabulary
    group = [source.model for source in tensor.inputs]
    absent = [token for token in vocabulary.missing(group) if all(vocabulary.permutations[m][token] < 0 for m in group)]
    if not absent:
        return {}
    rows: dict[int, list[torch.Tensor]] = {}
    for index, model in enumerate(plan.models):
        stored = model.find(tensor.name)
        if index in group or stored is None or index not in vocabulary.permutations:
            continue
        wanted = [token for token in absent if vocabulary.permutations[index][token] >= 0]
        if not wanted:
            continue
        table = reader.get(model.tensors[stored].file, stored).movedim(tensor.vocab_axis, 0)
        for token in wanted:
            rows.setdefault(token, []).append(table[int(vocabulary.permutations[index][token])].to(plan.dtype or table.dtype).clone())
    return {token: torch.stack(values).mean(dim=0) if len(values) > 1 else values[0] for token, values in rows.items()}


class BufferPool:
    """Reusable output buffers. A freshly allocated large tensor costs a page fault per 4 KiB every time;
    a buffer that was written once does not. A buffer returns to the pool once its bytes are on disk."""

    def __init__(self, nbytes: int, count: int):
        self.nbytes, self._count, self._made = nbytes, count, 0
        self._free: queue.Queue = queue.Queue()
        self._lock = threading.Lock()

    def take(self) -> torch.Tensor:
        with self._lock:
            if self._free.empty() and self._made < self._count:
                self._made += 1
                return torch.empty(self.nbytes, dtype=torch.uint8)
        return self._free.get()

    def give(self, buffer: torch.Tensor) -> None:
        self._free.put(buffer)

    @staticmethod
    def view(buffer: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
        return buffer[: spec.nbytes].view(spec.dtype).view(spec.shape)


def execute_plan(
    plan: MergePlan,
    out: str | Path,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    lazy: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    workers: int = WORKERS,
) -> MergeResult:
    """Merge every planned tensor into the HF folder `out`, `workers` tensors at a time.

    Each worker merges one tensor (torch ops release the GIL) into a pooled buffer; one writer thread
    streams the results to the shards in plan order. Element-wise work gives the same bits whatever
    the thread count, so element-wise merges run their workers with one torch thread each (small
    pieces go fastest that way). Whole-tensor reductions (SLERP's norms, Model Stock's angles, DARE's
    rescaling) round differently when torch splits them across a different number of threads, so
    merges that reduce keep torch's default thread count, as mergekit runs them.
    """
    out = Path(out)
    check_output(out, overwrite)
    began = time.perf_counter()
    specs = [TensorSpec(t.name, t.shape, t.dtype) for t in plan.tensors]
    reduces = any(plan.method.reduces([s.params for s in t.inputs], t.shared) for t in plan.tensors)
    threads = None if reduces else 1
    pool = BufferPool(max((s.nbytes for s in specs), default=0), count=workers + 2)
    with atomic_folder(out, replace=overwrite) as tmp:
        writer = ShardedWriter(tmp, specs, shard_bytes, {"merged_by": "mindset"})
        reader = TensorReader(lazy)

        def merge_into_buffer(tensor: OutputTensor, spec: TensorSpec) -> torch.Tensor:
            buffer = pool.take()
            try:
                merge_tensor(plan, tensor, reader, out=pool.view(buffer, spec))
            except BaseException:
                pool.give(buffer)
                raise
            return buffer

        def write_in_order(merged: Future, spec: TensorSpec) -> None:
            buffer = merged.result()
            try:
                writer.write(spec.name, pool.view(buffer, spec))
            finally:
                pool.give(buffer)

        writes: list[Future] = []
        try:
            with (
                torch_threads(threads),
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge") as merging,
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge-writer") as writing,
            ):
                for tensor, spec in track(zip(plan.tensors, specs), len(specs), f"merging ({plan.method.name})", enabled=progress, unit="tensors"):
                    merged = merging.submit(merge_into_buffer, tensor, spec)
                    writes.append(writing.submit(write_in_order, merged, spec))
                    while len(writes) > workers + 1:  # a bounded pipeline: memory stays at a few tensors
                        writes.pop(0).result()
                for future in writes:
                    future.result()
        except BaseException:
            writer.abort()
            raise
        finally:
            reader.close()
        writer.close()
        write_metadata(plan, tmp, out.name)
    seconds = time.perf_counter() - began
    return MergeResult(out, len(specs), plan.parameter_count, writer.total_bytes, len(writer.shards), seconds)


def write_layer_shapes(plan: MergePlan, folder: Path) -> None:
    """Heterogeneous sources (layers with their own head counts or FFN widths): the merged folder gets a
    surgery record listing its layers' shapes, so `mindset.models.load` rebuilds them."""
    from mindset.merge.stitch import output_layer_shapes
    from mindset.models.custom import SURGERY_FILE

    shapes = output_layer_shapes(plan)
    if shapes:
        (folder / SURGERY_FILE).write_text(json.dumps({"format": 1, "modules": [], "layer_shapes": shapes}, indent=2) + "\n")


def write_metadata(plan: MergePlan, folder: Path, name: str) -> None:
    """config.json, the tokenizer, the model card and the config as written (mergekit_config.yml)."""
    (folder / "config.json").write_text(json.dumps(plan.out_config, indent=2, sort_keys=True) + "\n")
    write_layer_shapes(plan, folder)
    donor = plan.models[plan.donor]
    tokenizer = plan.vocabulary.tokenizer if plan.vocabulary is not None else None
    if tokenizer is None and plan.chat_template:
        from mindset.merge.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(donor.folder, donor.ref)
    if tokenizer is not None:
        if plan.chat_template:
            tokenizer.chat_template = plan.chat_template
        tokenizer.save_pretrained(folder)
        if (donor.folder / "generation_config.json").exists():
            shutil.copy(donor.folder / "generation_config.json", folder / "generation_config.json")
    else:
        for file_name in TOKENIZER_FILES:
            if (donor.folder / file_name).exists():
                shutil.copy(donor.folder / file_name, folder / file_name)
    (folder / "README.md").write_text(model_card(plan, name))
    (folder / "mergekit_config.yml").write_text(plan.loaded.text)
