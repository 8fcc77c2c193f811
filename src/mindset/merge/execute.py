"""Run a checked plan: one output tensor at a time, inputs read lazily, shards written as results appear.

Peak memory stays near the inputs and result of the tensor being merged (plus the one being written):
inputs are memory-mapped views (`safetensors.safe_open`), mapped only while their tensor is merged
(`lazy`, the default) so the pages leave the process as soon as the result is written, and the output
goes straight to its place in a pre-planned shard. The folder appears under its name only when
everything is written (`mindset.fileio.atomic_folder`), so an interrupted merge leaves nothing that
looks complete.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import torch

from mindset.errors import MindsetError
from mindset.fileio import atomic_folder
from mindset.merge.methods import MergeInputs
from mindset.merge.plan import MergePlan, OutputTensor
from mindset.merge.report import model_card
from mindset.merge.tokenizer import remap_rows
from mindset.merge.writer import ShardedWriter, TensorSpec
from mindset.progress import track

DEFAULT_SHARD_BYTES = 5 * 10**9  # mergekit's default ("5B")
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

    def get(self, file: Path, name: str) -> torch.Tensor:
        from safetensors import safe_open

        if self.lazy:
            with safe_open(str(file), framework="pt") as handle:
                return handle.get_tensor(name)  # the view keeps its mapping until it is freed
        if file not in self._open:
            self._open[file] = self._stack.enter_context(safe_open(str(file), framework="pt"))
        return self._open[file].get_tensor(name)

    def close(self) -> None:
        self._stack.close()
        self._open.clear()


def merge_tensor(plan: MergePlan, tensor: OutputTensor, reader: TensorReader) -> torch.Tensor:
    """The merged value of one output tensor, in its output dtype."""
    tensors = []
    for source in tensor.inputs:
        model = plan.models[source.model]
        value = reader.get(model.tensors[source.stored].file, source.stored)
        if plan.dtype is not None and value.dtype != plan.dtype:  # the config's dtype applies as inputs are read
            value = value.to(plan.dtype)
        tensors.append(value)
    if tensor.vocab_axis is not None:
        group = {source.model: value for source, value in zip(tensor.inputs, tensors)}
        borrowed = _borrowed_rows(plan, tensor, reader)
        remapped = remap_rows(plan.vocabulary, group, tensor.vocab_axis, borrowed)
        tensors = [remapped[source.model] for source in tensor.inputs]
    dtype = reduce(torch.promote_types, [t.dtype for t in tensors])
    tensors = [t.to(dtype) for t in tensors]
    generator = torch.Generator().manual_seed(tensor.seed) if tensor.seed is not None else None
    inputs = MergeInputs(tensors, tensor.base, [source.params for source in tensor.inputs], tensor.name, generator)
    return plan.method(inputs, tensor.shared).to(tensor.dtype)


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


def execute_plan(
    plan: MergePlan,
    out: str | Path,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    lazy: bool = True,
    progress: bool = True,
    overwrite: bool = False,
) -> MergeResult:
    out = Path(out)
    if out.exists() and not overwrite:
        raise MindsetError(f"{out} exists; choose another output folder or allow overwriting it (--overwrite)")
    began = time.perf_counter()
    specs = [TensorSpec(t.name, t.shape, t.dtype) for t in plan.tensors]
    with atomic_folder(out, replace=overwrite) as tmp:
        writer = ShardedWriter(tmp, specs, shard_bytes, {"merged_by": "mindset"})
        reader = TensorReader(lazy)
        pending: list[Future] = []
        try:
            # one thread writes while the next tensor is merged; at most two results wait for it
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge-writer") as pool:
                for tensor in track(plan.tensors, len(plan.tensors), f"merging ({plan.method.name})", enabled=progress):
                    result = merge_tensor(plan, tensor, reader)
                    pending.append(pool.submit(writer.write, tensor.name, result))
                    del result
                    while len(pending) > 2:
                        pending.pop(0).result()
                for future in pending:
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


def write_metadata(plan: MergePlan, folder: Path, name: str) -> None:
    """config.json, the tokenizer, the model card and the config as written (mergekit_config.yml)."""
    (folder / "config.json").write_text(json.dumps(plan.out_config, indent=2, sort_keys=True) + "\n")
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
