"""Lightning checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

A Lightning checkpoint is a tree (weights, optimizer state, scheduler, loop counters, callback state)
whose leaves are tensors or plain Python values. `save_tree` puts every tensor in `tensors.safetensors`
and the tree, with tensors replaced by references, in `tree.json`; int dict keys and tuples are kept.
A checkpoint is a folder that appears under its name only when both files are complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import CheckpointIO

from mindset.errors import MindsetError
from mindset.fileio import atomic_folder

TENSORS, TREE = "tensors.safetensors", "tree.json"


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()  # clone: tied tensors become separate entries
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"a checkpoint can hold tensors and plain values, not {type(obj).__name__}: {obj!r}")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
    return obj


def save_tree(tree: dict[str, Any], folder: Path) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, tensors)
    with atomic_folder(folder, replace=True) as tmp:
        save_file(tensors, str(tmp / TENSORS))
        (tmp / TREE).write_text(json.dumps(encoded))


def load_tree(folder: Path, map_location: Any = None) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        encoded = json.loads((folder / TREE).read_text())
        tensors = load_file(str(folder / TENSORS), device=str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu")
        return _decode(encoded, tensors)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise MindsetError(f"the checkpoint {folder} is corrupt or incomplete ({err}); delete it to resume from an earlier one") from None


def is_complete(folder: Path) -> bool:
    return folder.is_dir() and (folder / TREE).is_file() and (folder / TENSORS).is_file()


class SafetensorsCheckpointIO(CheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        save_tree(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_tree(Path(path), map_location)

    def remove_checkpoint(self, path) -> None:
        shutil.rmtree(path, ignore_errors=True)
