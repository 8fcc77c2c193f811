"""Head gates ("hydra attention"): a trainable gate on each attention head's output, and the edits they drive.

A gated layer multiplies head h's output (its head_dim slice of the attention output projection's input)
by g_h = 2·sigmoid(c_h), one trainable scalar c_h per head, initialised to c = 0, i.e. g = 1: the layer
computes exactly what it did (logits unchanged to 1e-5). Why 2·sigmoid: the gate stays in (0, 2), so a head
can be switched off (g → 0) or amplified up to twice its output, never sign-flipped or blown up; it starts
in the middle of its range, where sigmoid's slope is largest, so the gates move from the first step; and
its two ends have a meaning the edits read:
- saturated: g near 2 (sigmoid(c) ≥ threshold) — the head wants more than it can give; when every head of
  a layer is saturated, the layer wants more heads: `grow_saturated` adds them;
- closed: g near 0 (sigmoid(c) ≤ threshold) — the layer works without the head: `prune_closed` removes it.
The loop "train with gates → grow where saturated, prune where closed → train again" is then a recipe.

The gate lives in the output projection itself: `head_gates` swaps o_proj (GPT-2: the attention's c_proj)
for a GatedLinear / GatedConv1D, a subclass of the projection's own class that keeps its weight and bias
under their original names, scales its input per head and then projects. Being a Linear / Conv1D still, the
anatomy (mindset.models.anatomy) reads a gated layer's head layout as before, and heads.py's add_heads /
remove_heads edit it in place; they tell the gate (`mindset_reindex_heads`), so gates follow the heads:
removed heads lose their gates, new heads get c = 0. Saved models keep only the original tensors in the
weights file; the gate values go in the surgery record (mindset.models.custom), and `mindset_fold()` gives
the plain projection with each gate multiplied into its head's input columns (exact), for GGUF export.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from mindset.errors import MindsetError
from mindset.models.anatomy import Block, blocks, is_conv1d
from mindset.models.custom import get_module, note_edit, set_module
from mindset.models.names import parse_layers
from mindset.models.shapes import sync_config
from mindset.surgery.heads import HEAD_INITS, _check_removal, _grow, _shrink
from mindset.surgery.layers import unwrap, working_copy

GATE_KEY = "gate_logits"


class HeadGate:
    """What both gated projections share: the per-head logits c, the gated input, persistence, folding."""

    mindset_restorer = "head_gates"
    head_dim: int
    plain_class: type

    @property
    def n_heads(self) -> int:
        return self.gate_logits.numel()

    def gates(self) -> torch.Tensor:
        """g = 2·sigmoid(c) per head, detached."""
        return 2 * torch.sigmoid(self.gate_logits.detach().float())

    def gated_input(self, x: torch.Tensor) -> torch.Tensor:
        n, hd = self.n_heads, self.head_dim
        if x.shape[-1] != n * hd:  # a head edit that did not go through heads.py (a bug, not a user error)
            raise RuntimeError(f"head gate holds {n} heads of {hd} but its input has {x.shape[-1]} features")
        g = (2 * torch.sigmoid(self.gate_logits)).to(x.dtype)
        return (x.unflatten(-1, (n, hd)) * g[:, None]).flatten(-2)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, heads={self.n_heads}, head_dim={self.head_dim}"

    # ---- heads.py tells the gate when heads change --------------------------------------------------
    def mindset_reindex_heads(self, source: list[int | None]) -> None:
        """New head i takes old head source[i]'s gate; None: a new head, gate c = 0 (g = 1)."""
        old = self.gate_logits.detach()
        new = torch.stack([old[s] if s is not None else old.new_zeros(()) for s in source])
        self.gate_logits = nn.Parameter(new, requires_grad=self.gate_logits.requires_grad)

    # ---- persistence (see mindset.models.custom) ------------------------------------------------------
    def mindset_config(self) -> dict:
        # float32 (or narrower) values as Python floats: exact through JSON
        return {"head_dim": self.head_dim, "logits": self.gate_logits.detach().float().tolist()}

    def mindset_extra_keys(self) -> list[str]:
        return [GATE_KEY]

    def mindset_save_extra(self, folder: Path) -> None:
        pass  # the logits are in the config

    def mindset_fold(self) -> nn.Module:
        """The plain projection with head h's input columns multiplied by g_h: the same function, no gate."""
        plain = _adopt(self.plain_class, self)
        with torch.no_grad():
            g = self.gates().to(self.weight.dtype).repeat_interleave(self.head_dim)
            scaled = self.weight * (g[:, None] if is_conv1d(self) else g[None, :])  # Conv1D stores (in, out)
        plain.weight = nn.Parameter(scaled, requires_grad=self.weight.requires_grad)
        if plain.bias is not None:
            plain.bias = nn.Parameter(self.bias.detach().clone(), requires_grad=self.bias.requires_grad)
        return plain


class GatedLinear(HeadGate, nn.Linear):
    plain_class = nn.Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.gated_input(x), self.weight, self.bias)


class GatedConv1D(HeadGate, Conv1D):
    plain_class = Conv1D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Conv1D.forward(self, self.gated_input(x))

    def __repr__(self) -> str:  # Conv1D's own repr ignores extra_repr
        return f"GatedConv1D(nf={self.nf}, nx={self.nx}, heads={self.n_heads}, head_dim={self.head_dim})"


def _adopt(cls: type, proj: nn.Module) -> nn.Module:
    """An instance of `cls` holding proj's attributes, parameters and buffers (the same tensors, the same
    names, so the state-dict keys stay the original model's); the gate's logits are not carried over."""
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    for name, value in vars(proj).items():
        if not name.startswith("_") and name not in ("head_dim", "forward"):  # an instance forward (accelerate's hook) would skip the gate
            setattr(new, name, value)
    for name, param in proj._parameters.items():
        if name != GATE_KEY:
            new.register_parameter(name, param)
    for name, buffer in proj._buffers.items():
        new.register_buffer(name, buffer)
    return new


def gate_projection(proj: nn.Module, head_dim: int, logits: list[float] | None = None) -> HeadGate:
    """A gated copy-free wrapper of an output projection (nn.Linear or Conv1D); logits None: all c = 0."""
    cls = GatedConv1D if is_conv1d(proj) else GatedLinear
    gated = _adopt(cls, proj)
    gated.head_dim = head_dim
    n = (proj.weight.shape[0] if is_conv1d(proj) else proj.weight.shape[1]) // head_dim
    values = torch.zeros(n) if logits is None else torch.tensor(logits, dtype=torch.float32)
    if values.numel() != n:
        raise MindsetError(f"{len(logits)} gate values for a projection of {n} heads of {head_dim}; the surgery record disagrees with the weights")
    gated.register_parameter(GATE_KEY, nn.Parameter(values.to(device=proj.weight.device, dtype=proj.weight.dtype)))
    return gated


def restore_head_gates(model: nn.Module, path: str, config: dict, folder: Path) -> None:
    """`load`'s restorer: gate the plain projection transformers built at `path` with the saved logits."""
    if "head_dim" not in config or "logits" not in config:
        raise MindsetError(f"the saved head gates at {path} lack head_dim or logits in mindset-surgery.json")
    set_module(model, path, gate_projection(get_module(model, path), int(config["head_dim"]), list(config["logits"])))


# --- finding gates --------------------------------------------------------------------------------------

def _o_path(b: Block) -> str:
    name = next(n for n, child in b.attn.named_children() if child is b.attention.o)
    return f"{b.attn_path}.{name}"


def gated_blocks(model: nn.Module) -> list[Block]:
    """The decoder layers whose output projection carries head gates."""
    return [b for b in blocks(model) if isinstance(b.attention.o, HeadGate)]


def _require_gates(model: nn.Module, op: str) -> list[Block]:
    found = gated_blocks(model)
    if not found:
        raise MindsetError(f"{op} needs head gates, and this model has none; add them first with head_gates(model, layers)")
    return found


def _check_threshold(threshold, op: str) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise MindsetError(f"threshold={threshold!r} for {op}: it compares sigmoid(c) = g/2, so it must be between 0 and 1 (exclusive)")
    return float(threshold)


def _openness(b: Block) -> torch.Tensor:
    """sigmoid(c) = g/2 per head of a gated layer: 1 fully saturated, 0 fully closed."""
    return b.attention.o.gates() / 2


# --- the edits ------------------------------------------------------------------------------------------

def head_gates(model, layers=None, *, inplace: bool = False):
    """Gate every head of `layers` (None: all): head h's output is multiplied by 2·sigmoid(c_h), c_h = 0
    (logits unchanged). The logits are trainable parameters (`gate_logits` in each o_proj). Gating a layer
    twice is a MindsetError naming it."""
    hf, rewrap = unwrap(model)
    found = blocks(hf)
    wanted = sorted(set(range(len(found)) if layers is None else parse_layers(layers, len(found))))
    for i in wanted:
        if isinstance(found[i].attention.o, HeadGate):
            raise MindsetError(f"layer {i} already has head gates ({_o_path(found[i])}); gate each layer once")
    out = working_copy(hf, inplace)
    for b in (blocks(out)[i] for i in wanted):
        set_module(out, _o_path(b), gate_projection(b.attention.o, b.head_dim))
    note_edit(out, "head_gates", layers=wanted)
    return rewrap(out)


def gate_report(model) -> list[dict]:
    """One row per gated head: layer, head, gate g = 2·sigmoid(c) in (0, 2), and its logit c."""
    hf, _ = unwrap(model)
    rows = []
    for b in _require_gates(hf, "gate_report"):
        logits = b.attention.o.gate_logits.detach().float()
        for h, (g, c) in enumerate(zip(b.attention.o.gates().tolist(), logits.tolist(), strict=True)):
            rows.append({"layer": b.index, "head": h, "gate": g, "logit": c})
    return rows


def gate_summary(model, saturated: float = 0.95, closed: float = 0.05) -> list[dict]:
    """One row per gated layer: heads, min/mean/max gate, and how many heads are saturated (sigmoid(c) ≥
    `saturated`) and closed (sigmoid(c) ≤ `closed`) by the thresholds grow_saturated / prune_closed use."""
    hf, _ = unwrap(model)
    saturated, closed = _check_threshold(saturated, "gate_summary"), _check_threshold(closed, "gate_summary")
    rows = []
    for b in _require_gates(hf, "gate_summary"):
        g, s = b.attention.o.gates(), _openness(b)
        rows.append({
            "layer": b.index, "heads": b.n_heads, "min": g.min().item(), "mean": g.mean().item(), "max": g.max().item(),
            "saturated": int((s >= saturated).sum()), "closed": int((s <= closed).sum()),
        })  # fmt: skip
    return rows


def saturated_layers(model, threshold: float = 0.95) -> list[int]:
    """Gated layers in which every head is saturated: sigmoid(c_h) = g_h/2 ≥ threshold for all h."""
    hf, _ = unwrap(model)
    threshold = _check_threshold(threshold, "saturated_layers")
    return [b.index for b in _require_gates(hf, "saturated_layers") if bool((_openness(b) >= threshold).all())]


def grow_saturated(model, threshold: float = 0.95, n: int | None = None, *, init: str = "random", seed: int = 0, inplace: bool = False):
    """Add `n` heads to each gated layer whose heads are ALL saturated, i.e. sigmoid(c_h) = g_h/2 ≥ threshold
    for every head h (g_h ≥ 1.9 at the default 0.95). n None: one kv group's worth (the layer's query heads
    per kv head; 1 without grouped-query attention). With GQA, n must be a multiple of that group size.

    The new heads come from add_heads' code: their output-projection columns are zero, so logits are
    unchanged with either init, and their gates start at c = 0 (g = 1). `random` (the default) draws their
    q/k/v rows from the layer's weight statistics; `zero` leaves those zero too, and then the new heads get
    no gradient at all (their output columns and value rows are both zero): use it only to stage shapes.
    Layers not saturated are left as they are; the edit is recorded with the layers it grew."""
    hf, rewrap = unwrap(model)
    threshold = _check_threshold(threshold, "grow_saturated")
    if init not in HEAD_INITS:
        raise MindsetError(f"unknown init {init!r} for grow_saturated; choose one of {', '.join(HEAD_INITS)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise MindsetError(f"n={n!r}: the number of heads to add must be 1 or more (or None: one kv group)")
    _require_gates(hf, "grow_saturated")
    wanted = set(saturated_layers(hf, threshold))
    counts = {}
    for b in (b for b in blocks(hf) if b.index in wanted):
        group = b.attention.n_heads // b.attention.n_kv_heads
        if n is not None and n % group:
            raise MindsetError(f"n={n}: layer {b.index} groups {group} query heads per kv head, so heads come in whole groups; add a multiple of {group}")
        counts[b.index] = group if n is None else n
    out = working_copy(hf, inplace)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in (b for b in blocks(out) if b.index in counts):
            _grow(b, counts[b.index], init, generator)
    sync_config(out)
    note_edit(out, "grow_saturated", threshold=threshold, layers=sorted(counts), added=counts, init=init, seed=seed)
    return rewrap(out)


def _closed_plan(b: Block, threshold: float) -> tuple[list[int], list[int]]:
    """(heads to remove, closed heads kept) of one gated layer: whole kv groups whose heads all closed."""
    att = b.attention
    size = att.n_heads // att.n_kv_heads
    s = _openness(b)
    groups = [list(range(g * size, (g + 1) * size)) for g in range(att.n_kv_heads)]
    shut = [grp for grp in groups if all(s[h] <= threshold for h in grp)]
    if len(shut) == len(groups):  # never empty a layer: its most open group stays
        shut.remove(max(shut, key=lambda grp: float(s[grp].mean())))
    remove = sorted(h for grp in shut for h in grp)
    kept_closed = [h for h in range(att.n_heads) if s[h] <= threshold and h not in remove]
    return remove, kept_closed


def prune_closed(model, threshold: float = 0.05, *, inplace: bool = False):
    """Remove the heads whose gates closed: sigmoid(c_h) = g_h/2 ≤ threshold (g_h ≤ 0.1 at the default).

    Grouped-query attention: a kv group goes only when ALL its query heads closed (then its kv head goes
    too); a partly closed group is kept whole — its closed heads stay, gated near zero, and are listed as
    `kept_closed` in the edit record. Without grouping every head is its own group. A layer never loses
    all its heads: when every group closed, the most open one stays (drop the layer with drop_layers)."""
    hf, rewrap = unwrap(model)
    threshold = _check_threshold(threshold, "prune_closed")
    plans, kept_closed = {}, {}
    for b in _require_gates(hf, "prune_closed"):
        remove, kept = _closed_plan(b, threshold)
        if remove:
            plans[b.index] = (remove, _check_removal(b, remove))
        if kept:
            kept_closed[b.index] = kept
    out = working_copy(hf, inplace)
    with torch.no_grad():
        new_blocks = blocks(out)
        for index, (_, (kept, kept_kv)) in plans.items():
            _shrink(new_blocks[index], kept, kept_kv)
    sync_config(out)
    note_edit(out, "prune_closed", threshold=threshold, heads={i: p[0] for i, p in plans.items()}, kept_closed=kept_closed)
    return rewrap(out)
