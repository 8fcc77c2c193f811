"""Modules that surgery put inside a model: saved next to the weights, rebuilt by `load`.

A custom module declares `mindset_restorer` (a name in RESTORERS) and implements
    mindset_config() -> dict                 # JSON: what its restorer needs besides the weights
    mindset_extra_keys() -> list[str]        # its state-dict keys that are not the original model's
    mindset_save_extra(folder: Path) -> None # writes those (and anything else, e.g. a store) into folder
The HF weights file keeps only the original model's tensors under their original names, so plain
transformers still loads the folder as the unconverted model. `mindset-surgery.json` lists, in order,
each module's path, restorer and config; `load` replaces those modules after transformers built the model.

Restorers are "module:function" strings imported only when a folder needs them: `models` never imports
the capabilities that define custom modules.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from mindset.errors import MindsetError

SURGERY_FILE = "mindset-surgery.json"
SURGERY_FOLDER = "mindset-surgery"  # per-module extra files, one subfolder per module path

RESTORERS: dict[str, str] = {
    "featural_memory": "mindset.surgery.restore:restore_featural",
    "associative_memory": "mindset.surgery.restore:restore_associative",
    "knn_lm": "mindset.surgery.restore:restore_knn_lm",
    "layerwise_feedback": "mindset.surgery.feedback:restore_feedback",
    "embedding_shim": "mindset.surgery.shim:restore_embedding",
    "embedding_shim_head": "mindset.surgery.shim:restore_head",
    "head_gates": "mindset.surgery.gates:restore_head_gates",
}


def custom_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every custom module, outermost first; their own children are not searched."""
    found: list[tuple[str, nn.Module]] = []

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            if getattr(child, "mindset_restorer", None):
                found.append((path, child))
            else:
                visit(child, path + ".")

    visit(model, "")
    return found


def hf_state_dict(model: nn.Module, modules: list[tuple[str, nn.Module]]) -> dict[str, Any]:
    """The model's state dict without the tensors custom modules added."""
    extra = {f"{path}.{key}" for path, module in modules for key in module.mindset_extra_keys()}
    return {k: v for k, v in model.state_dict().items() if k not in extra}


def save_custom(model: nn.Module, folder: Path) -> dict[str, Any] | None:
    """Write the surgery record and extra files into `folder`; returns the state dict for save_pretrained
    (None: the model's own). Layers whose shapes differ from the config's are listed under `layer_shapes`."""
    from mindset.models.shapes import shape_record

    modules = custom_modules(model)
    shapes = shape_record(model)
    edits = list(getattr(model, "mindset_edits", []))
    if not modules and not shapes and not edits:
        return None
    records = []
    for path, module in modules:
        module.mindset_save_extra(folder / SURGERY_FOLDER / path)
        records.append({"path": path, "restorer": module.mindset_restorer, "config": module.mindset_config()})
    record: dict[str, Any] = {"format": 1, "modules": records}
    if shapes:
        record["layer_shapes"] = shapes
    if edits:
        record["edits"] = edits
    (folder / SURGERY_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return hf_state_dict(model, modules) if modules else None


def note_edit(model: nn.Module, op: str, **params) -> None:
    """Append an architecture edit to the model's history, which the surgery record saves as `edits`
    (a new list each time: a model the edit was copied from keeps its own history)."""
    entry = {"op": op, **{k: _jsonable(v) for k, v in params.items()}}
    model.mindset_edits = [*getattr(model, "mindset_edits", []), entry]


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return f"<{type(value).__name__}>"  # a scores map's tensors: named, not stored


def recorded_shapes(folder: Path) -> dict[str, dict[str, int]]:
    """The per-layer shapes a folder's surgery record lists ({} when none: the config says them all)."""
    record_file = folder / SURGERY_FILE
    if not record_file.exists():
        return {}
    try:
        shapes = json.loads(record_file.read_text()).get("layer_shapes", {})
    except (ValueError, AttributeError) as err:
        raise MindsetError(f"{record_file} is not a valid surgery record ({err})") from None
    if not isinstance(shapes, dict):
        raise MindsetError(f"{record_file}: layer_shapes must map layer indices to shapes, not {type(shapes).__name__}")
    return shapes


def restore_shapes(model: nn.Module, folder: Path, shapes: dict[str, dict[str, int]], files: list[Path]) -> None:
    """Resize the recorded layers, then read every tensor from the weights files into the model: those
    layers were built by transformers at the config's shape and skipped. A record that disagrees with the
    weights is a MindsetError naming the tensor."""
    from safetensors.torch import load_file

    from mindset.models.shapes import apply_shapes

    apply_shapes(model, shapes, str(folder / SURGERY_FILE))
    state: dict[str, Any] = {}
    for file in files:
        state.update(load_file(str(file)))
    own = model.state_dict()
    for key, tensor in state.items():
        if key in own and own[key].shape != tensor.shape:
            raise MindsetError(
                f"{folder / SURGERY_FILE} disagrees with the weights: {key} is {tuple(tensor.shape)} in the weights "
                f"but {tuple(own[key].shape)} by the record; fix or remove the record's layer_shapes"
            )
    model.load_state_dict(state, strict=False)


def restore_custom(model: nn.Module, folder: Path) -> None:
    """Rebuild the custom modules listed in folder/mindset-surgery.json (no file: nothing to do)."""
    record_file = folder / SURGERY_FILE
    if not record_file.exists():
        return
    try:
        full = json.loads(record_file.read_text())
        records = full["modules"]
        if full.get("edits"):
            model.mindset_edits = list(full["edits"])  # later edits extend the history
        entries = [(r["path"], r["restorer"], r.get("config", {})) for r in records]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise MindsetError(f"{record_file} is not a valid surgery record ({err})") from None
    for path, name, config in entries:
        if name not in RESTORERS:
            raise MindsetError(f"{record_file} names an unknown custom module kind {name!r}; known: {', '.join(RESTORERS)}")
        module_name, function_name = RESTORERS[name].split(":")
        restore = getattr(importlib.import_module(module_name), function_name)
        restore(model, path, config, folder / SURGERY_FOLDER / path)


def get_module(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise MindsetError(f"the model has no module {path!r}") from None


def set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)
