"""Grow and shrink feed-forward blocks, per layer: `widen_ffn` and `narrow_ffn`.

A hidden neuron j of an FFN is row j of each input projection (gate, up) and column j of the down
projection. Widening appends neurons; narrowing keeps the highest-scoring ones. Layers may end with
different widths: the surgery record keeps them, and `mindset.models.load` rebuilds them.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mindset.errors import MindsetError
from mindset.models.anatomy import Block, blocks
from mindset.models.custom import note_edit
from mindset.models.names import parse_layers
from mindset.models.shapes import bias_of, drawn_like, set_projection, sync_config, weight_oi
from mindset.surgery.layers import unwrap, working_copy

WIDEN_INITS = ("zero", "split", "random")


def _ffn_blocks(model: nn.Module, layers) -> list[Block]:
    found = blocks(model)
    wanted = range(len(found)) if layers is None else parse_layers(layers, len(found))
    out = [found[i] for i in sorted(set(wanted))]
    for b in out:
        b.ffn.require_projections()
    return out


def _take_neurons(b: Block, index: torch.Tensor, down_scale: torch.Tensor | None = None) -> None:
    """Rebuild the FFN from neurons `index` (repeats allowed); `down_scale` multiplies each kept column."""
    ffn = b.ffn
    for proj in ffn.inputs:
        bias = bias_of(proj)
        set_projection(proj, weight_oi(proj)[index], None if bias is None else bias[index])
    down = weight_oi(ffn.down)[:, index]
    set_projection(ffn.down, down if down_scale is None else down * down_scale, bias_of(ffn.down))


def _append_neurons(b: Block, rows: list[torch.Tensor], biases: list[torch.Tensor | None], down_cols: torch.Tensor) -> None:
    ffn = b.ffn
    for proj, new, new_bias in zip(ffn.inputs, rows, biases, strict=True):
        bias = bias_of(proj)
        set_projection(proj, torch.cat([weight_oi(proj), new]), None if bias is None else torch.cat([bias, new_bias]))
    set_projection(ffn.down, torch.cat([weight_oi(ffn.down), down_cols], dim=1), bias_of(ffn.down))


def _widen_block(b: Block, add: int, init: str, generator: torch.Generator, noise: float) -> None:
    ffn = b.ffn
    d_ff = ffn.d_ff
    if init == "split":
        # Net2WiderNet: new neuron j copies neuron src[j]; every copy (the original too) gets 1/count of its
        # output column, so the sum is unchanged; `noise` perturbs the copies' input rows to break symmetry.
        src = torch.cat([torch.randperm(d_ff, generator=generator) for _ in range(-(-add // d_ff))])[:add].to(weight_oi(ffn.down).device)
        index = torch.cat([torch.arange(d_ff, device=src.device), src])
        count = torch.bincount(index, minlength=d_ff).to(weight_oi(ffn.down).dtype)
        _take_neurons(b, index, (1.0 / count)[index])
        if noise:
            for proj in ffn.inputs:
                w = weight_oi(proj).clone()
                jitter = torch.randn(add, w.shape[1], generator=generator).to(w) * noise * w.std()
                w[d_ff:] += jitter
                set_projection(proj, w, bias_of(proj))
        return
    rows, biases = [], []
    for proj in ffn.inputs:
        w = weight_oi(proj)
        if init == "random":  # drawn from this projection's own weight statistics
            new = drawn_like(w, add, generator)
        else:
            new = w.new_zeros(add, w.shape[1])
        rows.append(new)
        biases.append(None if proj.bias is None else proj.bias.detach().new_zeros(add))
    down = weight_oi(ffn.down)
    out_columns = down.new_zeros(down.shape[0], add)
    if init == "random" and noise:  # the output columns drawn too, x noise: the new neurons write, logits change
        out_columns = drawn_like(down.T, add, generator).T * noise
    _append_neurons(b, rows, biases, out_columns)


def widen_ffn(model, layers=None, *, add: int | None = None, width: int | None = None, init: str = "zero",
              seed: int = 0, noise: float = 0.0, inplace: bool = False):
    """Add hidden neurons to the FFN of each of `layers` (None: all): `add` more, or up to `width` each.

    init: `zero` (new input rows and output columns zero: logits unchanged), `random` (input rows drawn
    from the layer's own weight mean and std, output columns zero: unchanged, and the neurons can learn;
    with `noise` > 0 the output columns are drawn as well, times `noise`, which changes logits),
    `split` (Net2WiderNet: duplicate existing neurons and halve each pair's output weights: unchanged; with
    `noise` > 0 the copies' input rows are perturbed by noise x the weights' std, which changes logits).
    """
    hf, rewrap = unwrap(model)
    if init not in WIDEN_INITS:
        raise MindsetError(f"unknown init {init!r} for widen_ffn; choose one of {', '.join(WIDEN_INITS)}")
    if (add is None) == (width is None):
        raise MindsetError("widen_ffn needs exactly one of add=N (neurons to add) or width=W (the new width)")
    if noise < 0:
        raise MindsetError(f"noise {noise} must be 0 or more")
    if add is not None and add <= 0:
        raise MindsetError(f"add={add}: the number of neurons to add must be 1 or more")
    if width is not None:
        if width <= 0:
            raise MindsetError(f"width={width}: an FFN width must be 1 or more")
        for b in _ffn_blocks(hf, layers):
            if width <= b.ffn.d_ff:
                raise MindsetError(f"width={width}: layer {b.index}'s FFN already has {b.ffn.d_ff} neurons; widen to {b.ffn.d_ff + 1} or more")
    out = working_copy(hf, inplace)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        chosen = _ffn_blocks(out, layers)
        for b in chosen:
            _widen_block(b, add if add is not None else width - b.ffn.d_ff, init, generator, noise)
    sync_config(out)
    note_edit(out, "widen_ffn", layers=[b.index for b in chosen], add=add, width=width, init=init, seed=seed, noise=noise)
    return rewrap(out)


def magnitude_scores(b: Block) -> torch.Tensor:
    """A neuron's size: the norm of its output column times the mean norm of its input rows."""
    inputs = torch.stack([weight_oi(p).norm(dim=1) for p in b.ffn.inputs]).mean(0)
    return inputs * weight_oi(b.ffn.down).norm(dim=0)


def _score_map(scores, chosen: list[Block]) -> dict[int, torch.Tensor]:
    if isinstance(scores, str):
        if scores == "magnitude":
            return {b.index: magnitude_scores(b) for b in chosen}
        if scores == "attribution":
            raise MindsetError(
                "surgery does not compute attribution itself; pass scores=mindset.circuits.prune.attribution_scores(loaded, suites) "
                "(or a {layer: tensor of d_ff scores} map)"
            )
        raise MindsetError(f"unknown scores {scores!r}; choose magnitude, or pass a {{layer: tensor of d_ff scores}} map")
    if hasattr(scores, "neurons"):  # circuits.prune.Scores: one tensor per layer
        scores = dict(enumerate(scores.neurons))
    if not isinstance(scores, Mapping):
        raise MindsetError(f"scores must be 'magnitude' or a {{layer: tensor}} map, not {type(scores).__name__}")
    out = {}
    for b in chosen:
        if b.index not in scores:
            raise MindsetError(f"the scores map has no entry for layer {b.index}; it covers layers {sorted(scores)}")
        s = torch.as_tensor(scores[b.index]).flatten()
        if s.numel() != b.ffn.d_ff:
            raise MindsetError(f"scores for layer {b.index} have {s.numel()} entries; its FFN has {b.ffn.d_ff} neurons")
        out[b.index] = s
    return out


def narrow_ffn(model, layers=None, *, width: int, scores="magnitude", inplace: bool = False):
    """Keep the `width` highest-scoring neurons of each of `layers`' FFNs (None: all), in their order.

    scores: `magnitude` (output-column norm x input-row norm), a {layer: tensor of d_ff scores} map, or
    circuits' attribution Scores (`mindset.circuits.prune.attribution_scores(...)`, whose `.neurons` is used).
    """
    hf, rewrap = unwrap(model)
    chosen = _ffn_blocks(hf, layers)
    for b in chosen:
        if not 0 < width < b.ffn.d_ff:
            raise MindsetError(f"width={width}: layer {b.index}'s FFN has {b.ffn.d_ff} neurons; narrow to 1-{b.ffn.d_ff - 1}")
    score_map = _score_map(scores, chosen)
    out = working_copy(hf, inplace)
    with torch.no_grad():
        for b in _ffn_blocks(out, layers):
            keep = torch.topk(score_map[b.index].float(), width).indices.sort().values.to(weight_oi(b.ffn.down).device)
            _take_neurons(b, keep)
    sync_config(out)
    note_edit(out, "narrow_ffn", layers=[b.index for b in chosen], width=width, scores=scores if isinstance(scores, str) else "map")
    return rewrap(out)
