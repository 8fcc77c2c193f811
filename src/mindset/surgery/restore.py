"""Rebuilding memory modules in a model that `mindset.models.load` read from a saved folder.

Each restorer gets the freshly loaded model (dense blocks, original weights), the module path, the
config the module saved, and its folder of extra files (see mindset.models.custom).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mindset.errors import MindsetError
from mindset.models.custom import get_module, set_module


def _config(config: dict, required: tuple[str, ...], path: str) -> dict:
    missing = [key for key in required if key not in config]
    if missing:
        raise MindsetError(f"the saved memory at {path} lacks {', '.join(missing)} in mindset-surgery.json")
    return config


def restore_featural(model, path: str, config: dict, folder: Path) -> None:
    from mindset.memory.featural import FeaturalMemory

    config = _config(config, ("k",), path)
    block = get_module(model, path)
    set_module(model, path, FeaturalMemory(block, int(config["k"]), score=config.get("score", "exact"), path=config.get("path", "auto")))


def restore_associative(model, path: str, config: dict, folder: Path) -> None:
    from mindset.memory.associative import AssociativeMemory
    from mindset.memory.store import open_store

    config = _config(config, ("k", "temperature", "threshold", "gate"), path)
    block = get_module(model, path)
    store = open_store(folder / "store", expect_dim=model.config.hidden_size)
    layer = AssociativeMemory(block, store, k=int(config["k"]), temperature=float(config["temperature"]), threshold=float(config["threshold"]))
    with torch.no_grad():
        layer.memory_gate.fill_(float(config["gate"]))
    set_module(model, path, layer)


def restore_knn_lm(model, path: str, config: dict, folder: Path) -> None:
    from mindset.memory.knn_lm import KnnLMHead
    from mindset.memory.store import open_store

    config = _config(config, ("k", "lam", "temperature"), path)
    head = get_module(model, path)
    store = open_store(folder / "store", expect_dim=head.in_features)
    new = KnnLMHead(head, store, k=int(config["k"]), lam=float(config["lam"]), temperature=float(config["temperature"]), fallback=config.get("fallback"))
    set_module(model, path, new)
