"""Surgery between feed-forward blocks and memories: pure functions, model -> model.

    ffn_to_memory(model, layers=[4, 12, 20], kind="featural", k=32)       # top-k over the block's slots
    ffn_to_memory(model, layers=[4], kind="associative", k=32, store="torch", capacity=4096)
    memory_to_ffn(model)                                                    # back to dense blocks
    attach_knn_lm(model, store) / detach_knn_lm(model)                      # kNN-LM on the LM head

Each takes an HF model or a LoadedModel and returns the same kind; the input is left untouched
(a deep copy is changed) unless inplace=True.
"""

from __future__ import annotations

from typing import Literal

from mindset.errors import MindsetError
from mindset.models.custom import get_module, set_module
from mindset.surgery.layers import decoder_layers, ffn_paths, unwrap, working_copy

KINDS = ("featural", "associative")


def ffn_to_memory(
    model,
    layers=None,
    *,
    kind: Literal["featural", "associative"] = "featural",
    k: int = 32,
    store=None,
    score: str = "exact",
    path: str = "auto",
    capacity: int = 4096,
    temperature: float = 0.1,
    threshold: float = 0.9,
    eviction: str = "lrfu",
    inplace: bool = False,
):
    """Turn the FFN blocks of `layers` (None: all) into memories of `kind`.

    featural: k of the block's d_ff slots per token, chosen by `score` ("exact" or "bound"; see
    mindset.memory.featural). associative: the block plus a gated store read; `store` is a backend name
    ('torch', 'faiss:HNSW32', ...) used to make one empty store of `capacity` entries per layer.
    """
    from mindset.memory.associative import AssociativeMemory
    from mindset.memory.featural import FeaturalMemory
    from mindset.memory.ffn import AdoptedFFN, ffn_layout
    from mindset.memory.store import make_store

    if kind not in KINDS:
        raise MindsetError(f"unknown memory kind {kind!r}; use one of {', '.join(KINDS)}")
    if store is not None and not isinstance(store, str):
        raise MindsetError("store: give a backend name such as 'torch' or 'faiss:HNSW32'; each layer gets its own store")
    hf, rewrap = unwrap(model)
    paths = ffn_paths(hf, layers)  # checks indices before anything is copied
    for index, module_path in paths.items():
        block = get_module(hf, module_path)
        if isinstance(block, AdoptedFFN):
            raise MindsetError(f"layer {index}'s feed-forward block is already a memory ({type(block).__name__}); convert it back first")
        if ffn_layout(block) is None:
            raise MindsetError(
                f"layer {index}'s feed-forward block ({type(block).__name__}) is not a supported layout: memory layers need a "
                "gated block (gate_proj, up_proj, down_proj) or GPT-2's (c_fc, c_proj)"
            )
    hf = working_copy(hf, inplace)
    for module_path in paths.values():
        block = get_module(hf, module_path)
        if kind == "featural":
            new = FeaturalMemory(block, k, score=score, path=path)
        else:
            hidden = hf.config.hidden_size
            device = next(block.parameters()).device
            layer_store = make_store(store or "torch", hidden, capacity, metric="cosine", eviction=eviction, device=device)
            new = AssociativeMemory(block, layer_store, k=k, temperature=temperature, threshold=threshold)
        set_module(hf, module_path, new)
    return rewrap(hf)


def memory_to_ffn(model, layers=None, *, inplace: bool = False):
    """Dense FFN blocks again in `layers` (None: every memory layer), with the weights the memories hold."""
    from mindset.memory.ffn import AdoptedFFN

    hf, rewrap = unwrap(model)
    paths = ffn_paths(hf, layers)
    if layers is not None:
        plain = [i for i, p in paths.items() if not isinstance(get_module(hf, p), AdoptedFFN)]
        if plain:
            raise MindsetError(f"layer {plain[0]}'s feed-forward block is not a memory layer")
    hf = working_copy(hf, inplace)
    for module_path in paths.values():
        block = get_module(hf, module_path)
        if isinstance(block, AdoptedFFN):
            set_module(hf, module_path, block.to_dense())
    return rewrap(hf)


def memory_layers(model) -> dict[int, str]:
    """{layer index: kind} of the layers whose FFN block is a memory."""
    from mindset.memory.associative import AssociativeMemory
    from mindset.memory.featural import FeaturalMemory

    hf, _ = unwrap(model)
    found = {}
    for index, module_path in ffn_paths(hf, None).items():
        block = get_module(hf, module_path)
        if isinstance(block, FeaturalMemory):
            found[index] = "featural"
        elif isinstance(block, AssociativeMemory):
            found[index] = "associative"
    return found


def attach_knn_lm(model, store=None, *, k: int = 16, lam: float = 0.25, temperature: float = 20.0, fallback: float | None = 100.0, capacity: int = 65536, eviction: str = "lrfu", inplace: bool = False):
    """Replace the LM head with a kNN-LM head over `store` (a store object, a backend name, or None: an empty torch store)."""
    import torch

    from mindset.memory.knn_lm import KnnLMHead
    from mindset.memory.store import make_store

    hf, rewrap = unwrap(model)
    head = hf.get_output_embeddings()
    if isinstance(head, KnnLMHead):
        raise MindsetError("this model already has a kNN-LM head; detach it first")
    hf = working_copy(hf, inplace)
    head = hf.get_output_embeddings()
    if store is None or isinstance(store, str):
        device = head.weight.device
        store = make_store(store or "torch", head.in_features, capacity, metric="l2", value_shape=(), value_dtype=torch.long, eviction=eviction, device=device)
    hf.set_output_embeddings(KnnLMHead(head, store, k=k, lam=lam, temperature=temperature, fallback=fallback))
    return rewrap(hf)


def detach_knn_lm(model, *, inplace: bool = False):
    from mindset.memory.knn_lm import knn_head

    hf, rewrap = unwrap(model)
    knn_head(hf)
    hf = working_copy(hf, inplace)
    hf.set_output_embeddings(knn_head(hf).to_linear())
    return rewrap(hf)


__all__ = ["attach_knn_lm", "decoder_layers", "detach_knn_lm", "ffn_to_memory", "memory_layers", "memory_to_ffn"]
