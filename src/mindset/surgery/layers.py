"""What surgery needs around a model's anatomy: unwrapping a LoadedModel, a working copy, FFN paths.

Where the blocks are is `mindset.models.anatomy`'s business; this module only adapts it to surgery's
calling conventions (layers given as 3, [4, 12], '0-3,8' or 'L4,L12', None meaning all).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable

import torch
from torch import nn

from mindset.models.anatomy import blocks, decoder_layers
from mindset.models.names import parse_layers

__all__ = ["decoder_layers", "ffn_paths", "parse_layers", "settle", "unwrap", "working_copy"]


def unwrap(model):
    """(HF model, rewrap): surgery takes an HF model or a LoadedModel and returns the same kind."""
    if hasattr(model, "tokenizer") and hasattr(model, "model"):
        return model.model, lambda new: dataclasses.replace(model, model=new)
    return model, lambda new: new


def working_copy(model: nn.Module, inplace: bool, replaced: Iterable[nn.Module] = ()) -> nn.Module:
    """Surgery is a pure function by default: it changes a deep copy (tied weights stay tied in it).

    Cloning every tensor is most of an edit's cost on a real model (SmolLM2: 540 MB), so the copy avoids it
    twice over. Its tensors are copy-on-write clones where torch can make them (`_lazy_clone`: memory
    shared until either side writes; an edited model's tensors qualify, weights memory-mapped from a file
    do not and are cloned). And `replaced` names projections of `model` whose weight the caller replaces
    with a new tensor (as `set_projection` does) before it calls `settle(copy)`: until then the copy reads
    the original's weight there instead of a clone, and `settle` clones any weight still shared. Purity is
    kept: a write to either model never shows in the other.
    """
    if inplace:
        return model
    memo: dict[int, torch.Tensor] = {}
    shared = []
    for proj in replaced:
        weight = proj.weight
        if id(weight) not in memo:
            memo[id(weight)] = nn.Parameter(weight.detach(), requires_grad=weight.requires_grad)  # same memory
            shared.append(memo[id(weight)])
    for module in model.modules():
        for tensor in (*module._parameters.values(), *module._buffers.values()):
            if tensor is not None and id(tensor) not in memo:  # a tied tensor is cloned once, so it stays tied
                memo[id(tensor)] = _lazy_clone(tensor)
    out = copy.deepcopy(model, memo)
    if shared:
        out.__dict__["_mindset_shared"] = {id(t): t for t in shared}  # by identity: data_ptr() would materialize COW clones
    return out


def settle(model: nn.Module) -> nn.Module:
    """End a working copy's sharing: clone each weight `working_copy(replaced=...)` lent it and the caller did
    not replace (a no-op for a copy that shares nothing)."""
    lent = model.__dict__.pop("_mindset_shared", None)
    if not lent:
        return model
    clones: dict[int, nn.Parameter] = {}  # one clone per lent weight, so a weight held twice stays tied
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and lent.get(id(param)) is param:
                if id(param) not in clones:
                    clones[id(param)] = nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)
                module._parameters[name] = clones[id(param)]
    return model


def _lazy_clone(tensor: torch.Tensor) -> torch.Tensor:
    """A copy-on-write clone where torch can make one, else a clone; a Parameter stays one, as
    Parameter.__deepcopy__ would make it (same requires_grad, no grad). torch shares only memory its own
    allocator owns: weights memory-mapped from a safetensors file (a folder just loaded) are cloned, and
    the tensors of an edited model (fresh allocations) are shared, so edits after the first are cheap."""
    data = tensor.detach()
    try:
        data = torch._lazy_clone(data)
    except (AttributeError, RuntimeError):  # no COW in this torch, or storage it cannot share (mmap'd weights)
        data = data.clone()
    if isinstance(tensor, nn.Parameter):
        return type(tensor)(data, tensor.requires_grad)
    return data.requires_grad_(tensor.requires_grad) if tensor.is_leaf else data


def ffn_paths(model: nn.Module, layers) -> dict[int, str]:
    """{layer index: module path of its FFN block}; layers None means all. Bad indices are user errors."""
    found = blocks(model)
    wanted = range(len(found)) if layers is None else parse_layers(layers, len(found))
    return {i: found[i].mlp_path for i in sorted(set(wanted))}
