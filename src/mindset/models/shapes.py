"""Per-layer shapes: what surgery may make differ between layers (heads, kv heads, FFN width), how the
config states them when every layer agrees, and how `load` rebuilds layers that differ.

transformers' configs hold one head count and one FFN width for all layers. After a per-layer edit the
layers that differ from what the config builds are listed in the surgery record (`layer_shapes` in
mindset-surgery.json); `load` lets transformers build the model from the config, resizes those layers'
projections (`apply_shapes`) and then reads every tensor from the weights files.

Projections are handled as (out, in) matrices whatever their storage: nn.Linear keeps (out, in),
GPT-2's Conv1D keeps (in, out).
"""

from __future__ import annotations

import torch
from torch import nn

from mindset.errors import MindsetError
from mindset.models.anatomy import Block, blocks, is_conv1d, text_config

# --- projections as (out, in) matrices -----------------------------------------------------------------

def weight_oi(proj: nn.Module) -> torch.Tensor:
    """The projection's weight as (out, in), detached (a copy-free view for Linear, a transpose for Conv1D)."""
    return proj.weight.detach().t() if is_conv1d(proj) else proj.weight.detach()


def drawn_like(w: torch.Tensor, rows: int, generator: torch.Generator) -> torch.Tensor:
    """`rows` new rows drawn from a normal with the mean and std of the (out, in) matrix `w`."""
    std, mean = torch.std_mean(w)
    return (torch.randn(rows, w.shape[1], generator=generator) * std.item() + mean.item()).to(w)


def bias_of(proj: nn.Module) -> torch.Tensor | None:
    return None if proj.bias is None else proj.bias.detach()


def set_projection(proj: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """Give `proj` a new (out, in) weight (and bias, required when it has one), keeping the module object:
    hooks, the anatomy and any references still see it. Shape attributes follow the weight. The tensors
    are used as given (no copy: callers pass fresh ones from cat/indexing), so edits stay fast on real models."""
    out, inp = weight.shape
    if proj.bias is not None:
        if bias is None or bias.shape != (out,):
            raise ValueError(f"projection with bias needs a bias of shape ({out},)")
        proj.bias = nn.Parameter(bias.contiguous(), requires_grad=proj.bias.requires_grad)
    grad = proj.weight.requires_grad
    if is_conv1d(proj):
        proj.weight = nn.Parameter(weight.t().contiguous(), requires_grad=grad)
        proj.nf = out
    else:
        proj.weight = nn.Parameter(weight.contiguous(), requires_grad=grad)
        proj.in_features, proj.out_features = inp, out


# --- qkv as three matrices, fused or not -----------------------------------------------------------------

def qkv_parts(block: Block) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """[(W, b)] for q, k and v as (out, in) matrices; a fused projection (GPT-2's c_attn) is split in three."""
    att = block.attention
    if not att.fused:
        return [(weight_oi(p), bias_of(p)) for p in (att.q, att.k, att.v)]
    w, b = weight_oi(att.qkv), bias_of(att.qkv)
    sizes = [att.n_heads * att.head_dim, att.n_kv_heads * att.head_dim, att.n_kv_heads * att.head_dim]
    ws = torch.split(w, sizes, dim=0)
    bs = torch.split(b, sizes) if b is not None else (None, None, None)
    return list(zip(ws, bs, strict=True))


def set_qkv(block: Block, parts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> None:
    att = block.attention
    if not att.fused:
        for proj, (w, b) in zip((att.q, att.k, att.v), parts, strict=True):
            set_projection(proj, w, b)
        return
    w = torch.cat([p[0] for p in parts], dim=0)
    b = torch.cat([p[1] for p in parts]) if parts[0][1] is not None else None
    set_projection(att.qkv, w, b)


def set_head_counts(attn: nn.Module, n_heads: int, n_kv_heads: int, head_dim: int) -> None:
    """The per-instance attributes attention forwards read (Llama: num_key_value_groups; GPT-2:
    num_heads and split_size); others reshape with -1 and need nothing."""
    if hasattr(attn, "num_key_value_groups"):
        attn.num_key_value_groups = n_heads // n_kv_heads
    if hasattr(attn, "num_heads"):
        attn.num_heads = n_heads
    if hasattr(attn, "num_key_value_heads"):
        attn.num_key_value_heads = n_kv_heads
    if hasattr(attn, "split_size"):
        attn.split_size = n_heads * head_dim
    if hasattr(attn, "embed_dim") and hasattr(attn, "split_size"):
        attn.embed_dim = n_heads * head_dim


# --- what the config builds, and the record of what differs ----------------------------------------------

def config_shape(model: nn.Module) -> dict[str, int]:
    """The (n_heads, n_kv_heads, d_ff) every layer gets when transformers builds the model from its config."""
    config = text_config(model.config)
    n_heads = int(config.num_attention_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
    d_ff = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * config.hidden_size
    return {"n_heads": n_heads, "n_kv_heads": n_kv, "d_ff": int(d_ff)}


def block_shape(b: Block) -> dict[str, int]:
    """A layer's head counts and FFN width (no d_ff when its FFN is not one mindset reads, e.g. a memory)."""
    shape = {"n_heads": b.attention.n_heads, "n_kv_heads": b.attention.n_kv_heads}
    return shape if b.ffn.d_ff is None else {**shape, "d_ff": b.ffn.d_ff}


def sync_config(model: nn.Module) -> None:
    """When every layer has the same shape and the config can say it, say it in the config, so the folder
    loads in plain transformers. Head counts need a config with an explicit head_dim (Llama's); GPT-2
    derives head_dim from the head count, so its changed head counts stay in the surgery record."""
    config = text_config(model.config)
    shapes = [block_shape(b) for b in blocks(model)]
    first = shapes[0]
    if "d_ff" in first and all(s.get("d_ff") == first["d_ff"] for s in shapes):
        if hasattr(config, "intermediate_size"):
            config.intermediate_size = first["d_ff"]
        elif hasattr(config, "n_inner"):
            config.n_inner = first["d_ff"]
    heads_agree = all(s["n_heads"] == first["n_heads"] and s["n_kv_heads"] == first["n_kv_heads"] for s in shapes)
    expressible = getattr(config, "head_dim", None) and hasattr(config, "num_key_value_heads") and config.hidden_size % first["n_heads"] == 0
    if heads_agree and expressible:  # transformers' Llama config insists hidden_size is a multiple of the heads
        config.num_attention_heads, config.num_key_value_heads = first["n_heads"], first["n_kv_heads"]


def shape_record(model: nn.Module) -> dict[str, dict[str, int]]:
    """{layer index (str): shape} for each layer whose shape differs from what the config builds."""
    built = config_shape(model)
    differs = (b for b in blocks(model) if any(built[k] != v for k, v in block_shape(b).items()))
    return {str(b.index): block_shape(b) for b in differs}


def resize_block(b: Block, shape: dict[str, int]) -> None:
    """Give a freshly built layer the recorded shape (zero weights; `load` reads the real ones next)."""
    att, ffn = b.attention, b.ffn
    hd, n_heads, n_kv, d_ff = att.head_dim, int(shape["n_heads"]), int(shape["n_kv_heads"]), int(shape.get("d_ff", 1))
    if n_heads < 1 or n_kv < 1 or n_heads % n_kv or d_ff < 1:
        raise MindsetError(f"layer {b.index}: recorded shape {shape} is impossible (heads must be a positive multiple of kv heads, d_ff > 0)")
    hidden = weight_oi(att.o).shape[0]
    parts = qkv_parts(b)
    sizes = [n_heads * hd, n_kv * hd, n_kv * hd]
    set_qkv(b, [(p[0].new_zeros(s, hidden), None if p[1] is None else p[1].new_zeros(s)) for p, s in zip(parts, sizes, strict=True)])
    set_projection(att.o, weight_oi(att.o).new_zeros(hidden, n_heads * hd), bias_of(att.o))
    set_head_counts(att.module, n_heads, n_kv, hd)
    if "d_ff" not in shape or ffn.layout is None:
        return
    for proj in ffn.inputs:
        set_projection(proj, weight_oi(proj).new_zeros(d_ff, hidden), None if proj.bias is None else proj.bias.new_zeros(d_ff))
    set_projection(ffn.down, weight_oi(ffn.down).new_zeros(hidden, d_ff), bias_of(ffn.down))


def apply_shapes(model: nn.Module, record: dict, where: str) -> None:
    """Resize the layers a surgery record lists; a record naming a layer the model lacks is a MindsetError."""
    found = blocks(model)
    for key, shape in record.items():
        try:
            index = int(key)
            target = found[index]
        except (ValueError, IndexError):
            raise MindsetError(f"{where} lists layer {key!r}, but the model has layers 0-{len(found) - 1}") from None
        try:
            resize_block(target, shape)
        except (KeyError, TypeError, ValueError) as err:
            raise MindsetError(f"{where}: layer {key} has an unreadable shape {shape!r} ({err})") from None
