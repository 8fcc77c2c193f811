"""Grow and remove attention heads, per layer: `add_heads` and `remove_heads`.

Head h is rows h*head_dim ... (h+1)*head_dim of q and columns of the same range of o. With grouped-query
attention, kv head g serves query heads g*G ... (g+1)*G - 1 (G = heads per kv head); every layer keeps one
G for all its groups, since transformers' attention repeats each kv head G times.
An output projection that keeps per-head state (head gates, mindset.surgery.gates) is told which old head
each new head is (`mindset_reindex_heads`), so that state follows the heads.
"""

from __future__ import annotations

import torch

from mindset.errors import MindsetError
from mindset.models.anatomy import Block, blocks
from mindset.models.custom import note_edit
from mindset.models.names import parse_layers
from mindset.models.shapes import bias_of, drawn_like, qkv_parts, set_head_counts, set_projection, set_qkv, sync_config, weight_oi
from mindset.surgery.layers import unwrap, working_copy

HEAD_INITS = ("zero", "random")


def _rows(head_index: list[int], head_dim: int, device) -> torch.Tensor:
    return torch.tensor([h * head_dim + d for h in head_index for d in range(head_dim)], dtype=torch.long, device=device)


def _new_rows(w: torch.Tensor, count: int, init: str, generator: torch.Generator) -> torch.Tensor:
    if init == "random":  # from this projection's own weight statistics
        return drawn_like(w, count, generator)
    return w.new_zeros(count, w.shape[1])


def _follow_heads(o, source: list[int | None]) -> None:
    """Tell a projection with per-head state which old head each of its heads now is (None: a new head)."""
    follow = getattr(o, "mindset_reindex_heads", None)
    if follow is not None:
        follow(source)


def _grow(b: Block, n: int, init: str, generator: torch.Generator) -> None:
    att = b.attention
    hd, groups = att.head_dim, att.n_heads // att.n_kv_heads
    new_kv = n // groups
    parts = []
    for (w, bias), count in zip(qkv_parts(b), (n * hd, new_kv * hd, new_kv * hd), strict=True):
        rows = _new_rows(w, count, init, generator)
        parts.append((torch.cat([w, rows]), None if bias is None else torch.cat([bias, bias.new_zeros(count)])))
    set_qkv(b, parts)
    o = weight_oi(att.o)
    set_projection(att.o, torch.cat([o, o.new_zeros(o.shape[0], n * hd)], dim=1), bias_of(att.o))
    _follow_heads(att.o, [*range(att.n_heads), *[None] * n])
    set_head_counts(att.module, att.n_heads + n, att.n_kv_heads + new_kv, hd)


def add_heads(model, layers=None, n: int = 1, *, init: str = "zero", seed: int = 0, inplace: bool = False):
    """Add `n` query heads to each of `layers` (None: all), appended after the existing ones.

    With grouped-query attention heads come in whole groups: n must be a multiple of the layer's heads per
    kv head (G), and n / G new kv heads come with them, so G stays. The new heads' output-projection
    columns are zero, so logits are unchanged with either init: `zero` (their q/k/v rows zero too) or
    `random` (q/k/v rows drawn from each projection's weight mean and std, so gradients reach them).
    """
    hf, rewrap = unwrap(model)
    if init not in HEAD_INITS:
        raise MindsetError(f"unknown init {init!r} for add_heads; choose one of {', '.join(HEAD_INITS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MindsetError(f"n={n!r}: the number of heads to add must be 1 or more")
    found = blocks(hf)
    wanted = sorted(set(range(len(found)) if layers is None else parse_layers(layers, len(found))))
    for i in wanted:
        att = found[i].attention
        groups = att.n_heads // att.n_kv_heads
        if n % groups:
            raise MindsetError(
                f"n={n}: layer {i} groups {groups} query heads per kv head, so heads come in whole groups; add a multiple of {groups}"
            )
    out = working_copy(hf, inplace)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in (blocks(out)[i] for i in wanted):
            _grow(b, n, init, generator)
    sync_config(out)
    note_edit(out, "add_heads", layers=wanted, n=n, init=init, seed=seed)
    return rewrap(out)


def _check_removal(b: Block, heads: list[int]) -> tuple[list[int], list[int]]:
    """(kept query heads, kept kv heads); a removal that leaves groups of unequal size is a MindsetError."""
    att = b.attention
    groups = att.n_heads // att.n_kv_heads
    for h in heads:
        if not 0 <= h < att.n_heads:
            raise MindsetError(f"head {h} is out of range: layer {b.index} has {att.n_heads} heads (0-{att.n_heads - 1})")
    gone = set(heads)
    if len(gone) == att.n_heads:
        raise MindsetError(f"removing heads {sorted(gone)} would leave layer {b.index} without heads; keep at least one (drop the layer instead)")
    kept = [h for h in range(att.n_heads) if h not in gone]
    sizes = {g: sum(1 for h in kept if h // groups == g) for g in range(att.n_kv_heads)}
    nonzero = {s for s in sizes.values() if s}
    if len(nonzero) > 1:
        raise MindsetError(
            f"removing heads {sorted(gone)} from layer {b.index} leaves kv groups of {sorted(nonzero)} query heads; "
            f"remove the same number from each group of {groups} (heads g*{groups} ... g*{groups}+{groups - 1}) or whole groups"
        )
    return kept, [g for g, s in sizes.items() if s]


def _shrink(b: Block, kept: list[int], kept_kv: list[int]) -> None:
    att = b.attention
    hd = att.head_dim
    device = weight_oi(att.o).device
    parts = []
    for (w, bias), index in zip(qkv_parts(b), (kept, kept_kv, kept_kv), strict=True):
        rows = _rows(index, hd, device)
        parts.append((w[rows], None if bias is None else bias[rows]))
    set_qkv(b, parts)
    set_projection(att.o, weight_oi(att.o)[:, _rows(kept, hd, device)], bias_of(att.o))
    _follow_heads(att.o, kept)
    set_head_counts(att.module, len(kept), len(kept_kv), hd)


def remove_heads(model, heads: dict, *, inplace: bool = False):
    """Remove query heads per layer: heads={layer: [head, ...]}, any count per layer.

    With grouped-query attention every kv group of a layer must keep the same number of query heads (or
    none: a group emptied entirely loses its kv head too)."""
    hf, rewrap = unwrap(model)
    if not isinstance(heads, dict) or not heads:
        raise MindsetError("remove_heads needs heads={layer: [head, ...]}, e.g. {0: [1], 3: [0, 2]}")
    found = blocks(hf)
    plan = {}
    for layer, chosen in heads.items():
        indices = parse_layers(layer, len(found))  # 3, "3" or "L3"
        if len(indices) != 1:
            raise MindsetError(f"remove_heads takes one layer per key, not {layer!r}; write {{3: [0, 1]}}")
        index = indices[0]
        listed = [chosen] if isinstance(chosen, int) else list(chosen)
        if not listed:
            raise MindsetError(f"no heads given for layer {index}")
        try:
            numbers = [int(h) for h in listed]
        except (TypeError, ValueError):
            raise MindsetError(f"cannot read heads {chosen!r} for layer {index}; give head indices like [0, 2]") from None
        plan[index] = _check_removal(found[index], numbers)
    out = working_copy(hf, inplace)
    with torch.no_grad():
        new_blocks = blocks(out)
        for index, (kept, kept_kv) in plan.items():
            _shrink(new_blocks[index], kept, kept_kv)
    sync_config(out)
    note_edit(out, "remove_heads", heads={i: sorted(set(range(found[i].n_heads)) - set(kept)) for i, (kept, _) in plan.items()})
    return rewrap(out)

