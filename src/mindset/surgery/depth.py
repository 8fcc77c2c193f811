"""Change a model's depth: `insert_layers` (LLaMA Pro block expansion), `drop_layers`, `duplicate_layers`
(mergekit passthrough on one model) and `move_layer`.

Every edit is a new order of existing blocks (repeats deep-copied), after which the config's layer count,
its per-layer `layer_types` list when there is one, and each attention's `layer_idx` (its slot in the
KV cache) are renumbered, so generation with a cache stays right.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mindset.errors import MindsetError
from mindset.models.anatomy import blocks, check_layer, layers_path, n_layers, text_config
from mindset.models.custom import note_edit, set_module
from mindset.models.names import parse_layers
from mindset.surgery.layers import unwrap, working_copy

INSERT_INITS = ("identity", "copy")


def _reorder(model: nn.Module, order: list[int]) -> list[int]:
    """Make the decoder layers `order` (old indices; a repeat is a deep copy). Returns the positions of copies."""
    feedback = getattr(model, "mindset_feedback", None)
    if feedback is not None and order != list(range(len(order))):
        from mindset.surgery.feedback import feedback_pairs

        raise MindsetError(
            f"depth edits renumber layers, and this model's layerwise feedback names layers by index (pairs {feedback_pairs(model)}); "
            "make depth edits before adding feedback"
        )
    old = list(model.get_submodule(layers_path(model)))
    config = text_config(model.config)
    types = getattr(config, "layer_types", None)
    seen: set[int] = set()
    new, copies = [], []
    for position, i in enumerate(order):
        new.append(copy.deepcopy(old[i]) if i in seen else old[i])
        if i in seen:
            copies.append(position)
        seen.add(i)
    path = layers_path(model)
    set_module(model, path, nn.ModuleList(new))
    config.num_hidden_layers = len(new)
    if isinstance(types, list) and len(types) == len(old):
        config.layer_types = [types[i] for i in order]
    for b in blocks(model):
        for module in (b.layer, b.attn):
            if hasattr(module, "layer_idx"):
                module.layer_idx = b.index
        _rescale_by_depth(b.attn)
    return copies


def _rescale_by_depth(attn: nn.Module) -> None:
    """GPT-2 with scale_attn_by_inverse_layer_idx divides its attention scale by layer_idx + 1 at build
    time: recompute it as transformers would build the layer at its new index, so a saved folder loads the same."""
    if getattr(attn, "scale_attn_by_inverse_layer_idx", False):
        attn.scaling = (attn.head_dim**-0.5 if attn.scale_attn_weights else 1.0) / float(attn.layer_idx + 1)


def _zero_outputs(model: nn.Module, positions: list[int]) -> None:
    """Zero a block's attention and FFN output projections: its residual branches add nothing."""
    found = blocks(model)
    for position in positions:
        b = found[position]
        for proj in (b.attention.o, b.ffn.require_projections().down):
            proj.weight.zero_()
            if proj.bias is not None:
                proj.bias.zero_()


def insert_layers(model, after: int, n: int = 1, *, init: str = "identity", inplace: bool = False):
    """Insert `n` copies of block `after` right after it (LLaMA Pro block expansion).

    init `identity`: the copies' attention and FFN output projections are zero, so the residual stream
    passes through and logits are unchanged (train only them to add capacity); `copy`: exact copies,
    which apply the block twice and change the function."""
    hf, rewrap = unwrap(model)
    if init not in INSERT_INITS:
        raise MindsetError(f"unknown init {init!r} for insert_layers; choose one of {', '.join(INSERT_INITS)}")
    count = n_layers(hf)
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < count:
        raise MindsetError(f"after={after!r} is out of range: insert after a layer 0-{count - 1}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MindsetError(f"n={n!r}: the number of layers to insert must be 1 or more")
    out = working_copy(hf, inplace)
    order = list(range(after + 1)) + [after] * n + list(range(after + 1, count))
    with torch.no_grad():
        copies = _reorder(out, order)
        if init == "identity":
            _zero_outputs(out, copies)
    note_edit(out, "insert_layers", after=after, n=n, init=init)
    return rewrap(out)


def drop_layers(model, layers, *, inplace: bool = False):
    """Remove the decoder layers `layers`; at least one layer must stay."""
    hf, rewrap = unwrap(model)
    count = n_layers(hf)
    gone = set(parse_layers(layers, count))
    if len(gone) == count:
        raise MindsetError(f"dropping layers {sorted(gone)} would leave no layers; keep at least one of 0-{count - 1}")
    out = working_copy(hf, inplace)
    _reorder(out, [i for i in range(count) if i not in gone])
    note_edit(out, "drop_layers", layers=sorted(gone))
    return rewrap(out)


def duplicate_layers(model, layers, *, inplace: bool = False):
    """Repeat each of `layers` right after itself (mergekit passthrough's effect on one model): changes the function."""
    hf, rewrap = unwrap(model)
    count = n_layers(hf)
    twice = set(parse_layers(layers, count))
    out = working_copy(hf, inplace)
    _reorder(out, [j for i in range(count) for j in ([i, i] if i in twice else [i])])
    note_edit(out, "duplicate_layers", layers=sorted(twice))
    return rewrap(out)


def move_layer(model, src: int, dst: int, *, inplace: bool = False):
    """Move layer `src` so that it becomes layer `dst` (the others keep their order)."""
    hf, rewrap = unwrap(model)
    count = n_layers(hf)
    for name, value in (("src", src), ("dst", dst)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MindsetError(f"{name}={value!r}: give a layer index 0-{count - 1}")
        check_layer(value, count)
    order = [i for i in range(count) if i != src]
    order.insert(dst, src)
    out = working_copy(hf, inplace)
    _reorder(out, order)
    note_edit(out, "move_layer", src=src, dst=dst)
    return rewrap(out)

