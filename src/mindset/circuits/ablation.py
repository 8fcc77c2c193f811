"""Ablating components with forward hooks on the model's own modules (the model is never rewritten).

Hook points, per decoder layer:
- a head: a forward pre-hook on the attention output projection, whose input is the heads concatenated
  (B, T, n_heads * head_dim); the head's slice is replaced.
- an FFN neuron: a forward pre-hook on the MLP's down projection, whose input is the neurons (B, T, d_ff);
  the neuron's feature is replaced.
- an attention block / an MLP: a forward hook replacing the module's output.
- a layer: a forward hook making the layer's output its input plus a replaced update (zero: the layer is
  skipped, the residual stream passes through).
Methods: `zero`; `mean` (the component's mean output over every token of the suite's clean run);
`resample` (at each position, its output at a random token of the suite's clean run, drawn from a seeded
bank of at most `BANK_ROWS` tokens).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from mindset.circuits.components import Block, Component, blocks
from mindset.errors import MindsetError

METHODS = ("zero", "mean", "resample")
BANK_ROWS = 256


POINTS = {"head": "heads", "neuron": "neurons"}  # kinds whose components are slices of one shared activation


def _point(component: Component) -> tuple[int, str]:
    """Which activation a component's ablation replaces: (layer, 'heads' | 'neurons' | 'attn' | 'mlp' | 'layer')."""
    return component.layer, POINTS.get(component.kind, component.kind)


def features(component: Component, b: Block) -> slice:
    """The features of its hook point's activation that a component owns: a head's slice, a neuron's one
    feature, or all of them."""
    if component.kind == "head":
        return slice(component.head * b.head_dim, (component.head + 1) * b.head_dim)
    if component.kind == "neuron":
        return slice(component.neuron, component.neuron + 1)
    return slice(None)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output, value):
    return (value, *output[1:]) if isinstance(output, tuple) else value


class ActivationStats:
    """Mean and a random bank of rows of each hook point's activation on clean runs."""

    def __init__(self):
        self.sums: dict[tuple[int, str], torch.Tensor] = {}
        self.counts: dict[tuple[int, str], int] = {}
        self.banks: dict[tuple[int, str], torch.Tensor] = {}

    def mean(self, point) -> torch.Tensor:
        return self.sums[point] / self.counts[point]

    def add(self, point, rows: torch.Tensor, generator: torch.Generator) -> None:
        rows = rows.detach().reshape(-1, rows.shape[-1]).float()
        self.sums[point] = self.sums.get(point, 0) + rows.sum(0)
        self.counts[point] = self.counts.get(point, 0) + rows.shape[0]
        bank = torch.cat([self.banks[point], rows]) if point in self.banks else rows
        if bank.shape[0] > BANK_ROWS:
            bank = bank[torch.randperm(bank.shape[0], generator=generator)[:BANK_ROWS]]
        self.banks[point] = bank


def _hook_module(b: Block, kind: str):
    if kind == "neurons":
        return b.ffn.require_projections().down
    return {"heads": b.out_proj, "attn": b.attn, "mlp": b.mlp, "layer": b.layer}[kind]


@torch.inference_mode()
def collect_stats(model, components: Sequence[Component], sequences: Sequence[list[int]], seed: int = 0) -> ActivationStats:
    """Run each token sequence whole (no padding) and record the activations the components' ablation replaces."""
    stats, generator = ActivationStats(), torch.Generator().manual_seed(seed)
    all_blocks = blocks(model)
    handles = []
    for layer, kind in sorted({_point(c) for c in components}):
        module = _hook_module(all_blocks[layer], kind)
        point = (layer, kind)
        if kind in ("heads", "neurons"):
            handles.append(module.register_forward_pre_hook(lambda m, args, p=point: stats.add(p, args[0], generator)))
        elif kind == "layer":
            handles.append(module.register_forward_hook(
                lambda m, args, kwargs, out, p=point: stats.add(p, _first(out) - _layer_input(args, kwargs), generator), with_kwargs=True))
        else:
            handles.append(module.register_forward_hook(lambda m, args, out, p=point: stats.add(p, _first(out), generator)))
    device = next(model.parameters()).device
    try:
        for ids in sequences:
            model(input_ids=torch.tensor([ids], device=device))
    finally:
        for h in handles:
            h.remove()
    return stats


def _layer_input(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _replacement(method: str, stats: ActivationStats | None, point, like: torch.Tensor, sl: slice, generator) -> torch.Tensor:
    """What replaces like[..., sl] (like is (B, T, D))."""
    if method == "zero":
        return torch.zeros_like(like[..., sl])
    if stats is None:
        raise ValueError(f"{method} ablation needs activation statistics (collect_stats)")
    if method == "mean":
        return stats.mean(point)[sl].to(like.dtype).expand_as(like[..., sl])
    bank = stats.banks[point]
    rows = torch.randint(bank.shape[0], like.shape[:-1], generator=generator)
    return bank[rows][..., sl].to(like.dtype)


@contextmanager
def ablated(model, components: Sequence[Component], method: str = "zero", stats: ActivationStats | None = None, seed: int = 0) -> Iterator[None]:
    """Within the block, every forward pass of `model` runs with `components` ablated."""
    with ablated_rows(model, [components], method, stats, seed):
        yield


def _rows(x: torch.Tensor, replicas: int, r: int) -> torch.Tensor:
    """Replica r's rows of a replica-major batch (a view: writing to it writes to x)."""
    return x.view(replicas, -1, *x.shape[1:])[r]


@contextmanager
def ablated_rows(model, groups: Sequence[Sequence[Component]], method: str = "zero", stats: ActivationStats | None = None,
                 seed: int = 0) -> Iterator[None]:
    """Batched ablation: every forward pass's batch is `len(groups)` replicas, replica-major (as
    `score_tokens_replicated` builds it), and replica r runs with `groups[r]` ablated. One group: `ablated`."""
    if method not in METHODS:
        raise MindsetError(f"unknown ablation method {method!r}; choose one of {', '.join(METHODS)}")
    generator = torch.Generator().manual_seed(seed)
    all_blocks = blocks(model)
    replicas = len(groups)
    by_point: dict[tuple[int, str], dict[int, list[Component]]] = {}
    for r, group in enumerate(groups):
        for c in group:
            by_point.setdefault(_point(c), {}).setdefault(r, []).append(c)
    handles = []
    for (layer, kind), members in by_point.items():
        b, point = all_blocks[layer], (layer, kind)
        module = _hook_module(b, kind)
        if kind in ("heads", "neurons"):
            slices = {r: [features(c, b) for c in comps] for r, comps in members.items()}

            def pre_hook(m, args, slices=slices, point=point):
                x = args[0].clone()
                for r, sls in slices.items():
                    rows = _rows(x, replicas, r)
                    for sl in sls:
                        rows[..., sl] = _replacement(method, stats, point, rows, sl, generator).to(x.device)
                return (x, *args[1:])

            handles.append(module.register_forward_pre_hook(pre_hook))
        elif kind == "layer":
            def layer_hook(m, args, kwargs, out, point=point, members=members):
                before, after = _layer_input(args, kwargs), _first(out).clone()
                for r in members:
                    rows = _rows(after, replicas, r)
                    update = _replacement(method, stats, point, rows, slice(None), generator).to(after.device)
                    rows.copy_(_rows(before, replicas, r) + update)
                return _replace_first(out, after)

            handles.append(module.register_forward_hook(layer_hook, with_kwargs=True))
        else:
            def out_hook(m, args, out, point=point, members=members):
                value = _first(out).clone()
                for r in members:
                    rows = _rows(value, replicas, r)
                    rows.copy_(_replacement(method, stats, point, rows, slice(None), generator).to(value.device))
                return _replace_first(out, value)

            handles.append(module.register_forward_hook(out_hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
