"""Finding a model's decoder layers and their feed-forward blocks, from its modules and config."""

from __future__ import annotations

import copy
import dataclasses

from torch import nn

from mindset.errors import MindsetError

FFN_NAMES = ("mlp", "feed_forward", "ffn")


def unwrap(model):
    """(HF model, rewrap): surgery takes an HF model or a LoadedModel and returns the same kind."""
    if hasattr(model, "tokenizer") and hasattr(model, "model"):
        return model.model, lambda new: dataclasses.replace(model, model=new)
    return model, lambda new: new


def working_copy(model: nn.Module, inplace: bool) -> nn.Module:
    """Surgery is a pure function by default: it changes a deep copy (tied weights stay tied in it)."""
    return model if inplace else copy.deepcopy(model)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks: the ModuleList under the base model with num_hidden_layers items."""
    count = getattr(model.config, "num_hidden_layers", None)
    base = getattr(model, "base_model", model)
    for _, module in base.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise MindsetError(f"cannot find the decoder layers of this {type(model).__name__} (no list of {count} blocks)")


def ffn_name(layer: nn.Module) -> str:
    for name in FFN_NAMES:
        if isinstance(getattr(layer, name, None), nn.Module):
            return name
    raise MindsetError(f"{type(layer).__name__} has no feed-forward block (looked for {', '.join(FFN_NAMES)})")


def ffn_paths(model: nn.Module, layers) -> dict[int, str]:
    """{layer index: module path of its FFN block}; layers None means all. Bad indices are user errors."""
    blocks = decoder_layers(model)
    count = len(blocks)
    if layers is None:
        wanted = list(range(count))
    else:
        wanted = parse_layers(layers)
        bad = [i for i in wanted if not 0 <= i < count]
        if bad:
            raise MindsetError(f"layer index {bad[0]} is out of range: this model has {count} layers (0-{count - 1})")
    prefix = next(name for name, m in model.named_modules() if m is blocks)
    return {i: f"{prefix}.{i}.{ffn_name(blocks[i])}" for i in sorted(set(wanted))}


def parse_layers(layers) -> list[int]:
    """Accepts a list of ints or a string like '4,12,20' or '0-3,8'."""
    if isinstance(layers, int) and not isinstance(layers, bool):
        return [layers]
    if isinstance(layers, str):
        out: list[int] = []
        try:
            for part in filter(None, (p.strip() for p in layers.split(","))):
                if "-" in part[1:]:
                    lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                    out.extend(range(int(lo), int(hi) + 1))
                else:
                    out.append(int(part))
        except ValueError:
            raise MindsetError(f"cannot read layers {layers!r}; write them like 4,12,20 or 0-3") from None
        if not out:
            raise MindsetError("no layers given")
        return out
    try:
        out = [int(i) for i in layers]
    except (TypeError, ValueError):
        raise MindsetError(f"cannot read layers {layers!r}; give layer indices like [4, 12, 20]") from None
    if not out:
        raise MindsetError("no layers given")
    return out
