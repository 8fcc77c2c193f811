"""What surgery needs around a model's anatomy: unwrapping a LoadedModel, a working copy, FFN paths.

Where the blocks are is `mindset.models.anatomy`'s business; this module only adapts it to surgery's
calling conventions (layers given as 3, [4, 12], '0-3,8' or 'L4,L12', None meaning all).
"""

from __future__ import annotations

import copy
import dataclasses

from torch import nn

from mindset.models.anatomy import blocks, decoder_layers
from mindset.models.int8 import refuse_int8
from mindset.models.names import parse_layers

__all__ = ["decoder_layers", "ffn_paths", "parse_layers", "unwrap", "working_copy"]


def unwrap(model):
    """(HF model, rewrap): surgery takes an HF model or a LoadedModel and returns the same kind."""
    if hasattr(model, "tokenizer") and hasattr(model, "model"):
        return model.model, lambda new: dataclasses.replace(model, model=new)
    return model, lambda new: new


def working_copy(model: nn.Module, inplace: bool) -> nn.Module:
    """Surgery is a pure function by default: it changes a deep copy (tied weights stay tied in it). On
    SmolLM2 a copy takes about 0.13 s on 2 idle cores (benchmarks/edit_cost.py), so nothing cleverer pays."""
    refuse_int8(model, "surgery")
    return model if inplace else copy.deepcopy(model)


def ffn_paths(model: nn.Module, layers) -> dict[int, str]:
    """{layer index: module path of its FFN block}; layers None means all. Bad indices are user errors."""
    found = blocks(model)
    wanted = range(len(found)) if layers is None else parse_layers(layers, len(found))
    return {i: found[i].mlp_path for i in sorted(set(wanted))}
