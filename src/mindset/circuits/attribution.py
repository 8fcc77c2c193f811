"""Attribution patching: the first-order estimate of every component's ablation effect, from one forward and
one backward pass per batch of sequences (Nanda 2023; Syed et al. 2023; "AtP", Kramár et al. 2024).

Ablating a component replaces its activation a (at every position) by a baseline b (zero, or its clean mean
over the suite, exactly as `ablation.ablated` does). For a metric M of the run,

    M(clean) - M(ablated)  ≈  Σ_positions (a - b) · ∂M/∂a          (first order in a - b)

so one backward pass gives every component's estimate at once. The activation a is what the ablation hook
replaces: a head's slice of the attention output projection's input, an attention block's or an MLP's
output, a layer's update (output minus input; ∂M/∂a is then the gradient at the layer's output), or an FFN
neuron (the MLP output projection's input). `Capture` keeps these tensors during a forward pass and reads
activation × gradient after the backward one; `circuits.prune` uses it for its pruning scores too.

Rows are independent (causal attention, no cross-row mixing), so with a metric that is a sum over
documents, the gradient at a document's rows is the gradient of that document's own metric: one backward
pass gives per-document estimates (for a paired standard error). Right padding is harmless: nothing a real
position reads depends on the padding after it, so the gradient there is zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from mindset.circuits.ablation import ActivationStats, _first, _hook_module, _layer_input, _point, _replace_first, features
from mindset.circuits.components import Component, blocks

POINT_KINDS = ("heads", "attn", "mlp", "layer", "neurons")


class Capture:
    """Hooks keeping the activation of each hook point (layer, kind) in a forward pass, with its gradient
    retained, so that after `backward` the per-row contribution (a - b) · g can be read."""

    def __init__(self, model, points: Iterable[tuple[int, str]]):
        self.model, self.blocks, self.points = model, blocks(model), sorted(set(points))
        self.captured: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}  # point: (activation, tensor holding the gradient)

    def __enter__(self) -> Capture:
        self.handles = []
        for layer, kind in self.points:
            b, point = self.blocks[layer], (layer, kind)
            if kind in ("heads", "neurons"):
                module = _hook_module(b, kind)
                self.handles.append(module.register_forward_pre_hook(lambda m, args, p=point: self._keep(p, args[0], args[0])))
            elif kind == "layer":
                self.handles.append(b.layer.register_forward_hook(
                    lambda m, args, kwargs, out, p=point: self._keep(p, (_first(out) - _layer_input(args, kwargs)).detach(), _first(out)),
                    with_kwargs=True))
            else:
                self.handles.append(_hook_module(b, kind).register_forward_hook(lambda m, args, out, p=point: self._keep(p, _first(out), _first(out))))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.captured.clear()
        self.model.zero_grad(set_to_none=True)

    def _keep(self, point, activation: torch.Tensor, graded: torch.Tensor) -> None:
        if graded.requires_grad:
            graded.retain_grad()
            self.captured[point] = (activation, graded)

    def contributions(self, point, baseline: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, features): Σ_positions (a - b) · ∂M/∂a for the last backward pass (b = 0 without a baseline)."""
        activation, graded = self.captured[point]
        a = activation.detach().float()
        if baseline is not None:
            a = a - baseline.to(a.device, a.dtype)
        if graded.grad is None:  # no path from it to the metric (GradDrop cut its layer)
            return torch.zeros(a.shape[0], a.shape[-1], device=a.device)
        return (a * graded.grad.float()).sum(dim=tuple(range(1, a.dim() - 1)))


@dataclass
class Batch:
    """Sequences run together: ids (rows, T) right-padded, the document each row belongs to, and the metric
    of the run as a function of the logits: (rows, T, V) -> (documents,), one value per document."""

    ids: torch.Tensor
    docs: torch.Tensor  # (rows,) document index within the batch
    n_docs: int
    metric: Callable[[torch.Tensor], torch.Tensor]


def attribute(model, comps: Sequence[Component], batches: Iterable[Batch], method: str = "zero",
              stats: ActivationStats | None = None, *, graddrop: bool = False, steps: int = 1) -> torch.Tensor:
    """(documents, components): the first-order estimate of each document's metric drop (clean minus
    ablated) when each component is ablated to `method`'s baseline (zero or mean).

    `graddrop` (AtP*'s GradDrop, Kramár et al. 2024 §3.2): L backward passes, pass l with no gradient
    through layer l's update (its output is input + update.detach()), and the estimate
    Σ_l |estimate_l| / (L − 1): a magnitude, never negative, that a component cannot hide by cancelling
    between the paths through different later layers. L times the cost; a component of layer l gets nothing
    from pass l, hence L − 1.

    `steps` > 1: integrated gradients along the ablation (`integrated.integrated_estimate`), hook point by
    hook point; steps × (hook points) passes instead of one."""
    if method not in ("zero", "mean"):
        raise ValueError(f"attribution estimates zero or mean ablation, not {method}")
    if steps > 1 and graddrop:
        raise ValueError("GradDrop and integrated steps are separate estimates; ask for one")
    all_blocks = blocks(model)
    points = sorted({_point(c) for c in comps})
    out: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        with Capture(model, points) as capture, torch.enable_grad():
            for batch in batches:
                if steps > 1:
                    from mindset.circuits.integrated import integrated_estimate

                    out.append(integrated_estimate(model, batch, comps, method, stats, steps))
                    continue
                if not graddrop:
                    out.append(_estimate(model, capture, batch, comps, method, stats))
                    continue
                total = 0
                for b in all_blocks:
                    with _no_gradient_through(b):
                        total = total + _estimate(model, capture, batch, comps, method, stats).abs()
                out.append(total / max(1, len(all_blocks) - 1))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, len(comps))


def _estimate(model, capture: Capture, batch: Batch, comps: Sequence[Component], method: str, stats) -> torch.Tensor:
    """(documents, components) from one forward and one backward pass of a batch."""
    all_blocks = capture.blocks
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=batch.ids).logits
    batch.metric(logits).sum().backward()
    per_point = {}
    for p in sorted({_point(c) for c in comps}):
        baseline = stats.mean(p) if method == "mean" else None
        rows = capture.contributions(p, baseline)  # (rows, features)
        per_point[p] = torch.zeros(batch.n_docs, rows.shape[1]).index_add_(0, batch.docs.cpu(), rows.cpu())
    capture.captured.clear()
    return torch.stack([per_point[_point(c)][:, features(c, all_blocks[c.layer])].sum(-1) for c in comps], 1)


@contextmanager
def _no_gradient_through(b) -> Iterator[None]:
    """The layer's forward value unchanged, its update cut from the backward pass (GradDrop's dropout of one layer)."""
    def hook(m, args, kwargs, out):
        before = _layer_input(args, kwargs)
        return _replace_first(out, before + (_first(out) - before).detach())

    handle = b.layer.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
