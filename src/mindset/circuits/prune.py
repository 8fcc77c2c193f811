"""Structured pruning that really removes heads and FFN neurons, chosen by importance or by weight magnitude.

Scores:
- `attribution_scores`: the first-order estimate of what zero-ablating each head and each FFN neuron does
  to a loss (attribution patching, `circuits.attribution`: |Σ_tokens activation · ∂loss/∂activation|), in one forward and backward
  pass per document: the canary suites' correct-answer log-probs plus next-token loss on a text. Ablating
  270 heads and 46,080 neurons one by one is out of reach on a CPU; this is the standard fast stand-in.
- `magnitude_scores`: the baseline, the squared weight norm of each head's (each neuron's) rows and columns.

Shapes: the pruned model must stay a plain HF model that saves and loads anywhere, and an HF config has one
`num_attention_heads` and one `intermediate_size` for all layers. So every layer loses the same number of
heads and neurons; which ones, per layer, is what the scores decide. Heads (Llama-style q/k/v/o only):
with grouped-query attention, each key/value group loses the same number of query heads, so queries still
map to their own kv head; kv heads are kept (k_proj and v_proj are unchanged) and `head_dim` is written to
the config explicitly. GPT-2's fused c_attn is not head-pruned (its FFN is). A heterogeneous model (layers of their own shapes,
from `mindset.surgery`) loses the same fraction of each layer's heads and neurons, counted per layer; its
config keeps what the layers share and the surgery record `save` writes lists the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mindset.circuits.attribution import Capture
from mindset.circuits.components import blocks
from mindset.circuits.suite import Suite
from mindset.errors import MindsetError
from mindset.models.anatomy import describe_ffn, in_features, is_conv1d, text_config


@dataclass
class Scores:
    heads: list[torch.Tensor]  # per layer (n_heads,)
    neurons: list[torch.Tensor]  # per layer (d_ff,)


def mlp_projections(mlp: nn.Module) -> tuple[list[nn.Module], nn.Module]:
    """(input projections, output projection) of an MLP: the output one reads the neurons."""
    ffn = describe_ffn(mlp).require_projections()
    return ffn.inputs, ffn.down


# --- scores --------------------------------------------------------------------------------------------

def attribution_scores(loaded, suites: Sequence[Suite] = (), text_ids: Sequence[int] | None = None, *, window: int = 512,
                       text_weight: float = 0.5) -> Scores:
    """|Σ activation · gradient| per head and neuron, for the suites' correct answers and a text's next tokens.
    Each source's scores are normalised to sum 1 per kind before mixing (text: `text_weight`)."""
    model = loaded.model
    all_blocks = blocks(model)
    totals = {src: _zero_scores(all_blocks) for src in ("suite", "text")}
    was_training = model.training
    model.eval()
    try:
        with _Attribution(model, all_blocks) as attribution, torch.enable_grad():
            for loss in _suite_losses(loaded, suites):
                attribution.accumulate(loss, totals["suite"])
            for loss in _text_losses(loaded, text_ids or (), window):
                attribution.accumulate(loss, totals["text"])
    finally:
        model.train(was_training)
    weights = {"suite": (1 - text_weight) if text_ids else 1.0, "text": text_weight if suites else 1.0}
    return _mix(totals, weights)


def _zero_scores(all_blocks) -> Scores:
    return Scores([torch.zeros(b.n_heads) for b in all_blocks], [torch.zeros(in_features(mlp_projections(b.mlp)[1])) for b in all_blocks])


class _Attribution:
    """The inputs of every attention output projection (the heads, concatenated) and every MLP output
    projection (the neurons), kept by `attribution.Capture`, so that after each backward pass
    |Σ activation · gradient| per head and neuron can be added up (zero baseline)."""

    def __init__(self, model, all_blocks):
        self.model, self.blocks = model, all_blocks
        self.capture = Capture(model, [(b.index, kind) for b in all_blocks for kind in ("heads", "neurons")])

    def __enter__(self) -> _Attribution:
        self.capture.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.capture.__exit__(*exc)

    def accumulate(self, loss: torch.Tensor, into: Scores) -> None:
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        for i, kind in list(self.capture.captured):
            contribution = self.capture.contributions((i, kind)).sum(0)  # (features,)
            if kind == "heads":
                into.heads[i] += contribution.view(self.blocks[i].n_heads, -1).sum(-1).abs().detach().cpu()
            else:
                into.neurons[i] += contribution.abs().detach().cpu()
        self.capture.captured.clear()


def _suite_losses(loaded, suites: Sequence[Suite]):
    """For each suite item, minus the log-probability of its correct continuation (one forward pass each)."""
    from mindset.evaluate.loglikelihood import model_max_length

    model, tok, device = loaded.model, loaded.tokenizer, loaded.device
    limit = model_max_length(model, tok)
    for suite in suites:
        pairs = suite.encoded(tok)
        i = 0
        for item in suite.items:
            ctx, cont = pairs[i + item.gold[0]]
            i += len(item.choices)
            x = torch.tensor([(ctx + cont)[-limit:]], device=device)
            logp = torch.log_softmax(model(input_ids=x).logits[0, -len(cont) - 1 : -1].float(), -1)
            yield -logp.gather(1, torch.tensor(cont, device=device)[:, None]).sum()


def _text_losses(loaded, text_ids: Sequence[int], window: int):
    """Summed next-token loss of each `window`-token chunk of the text."""
    for start in range(0, max(1, len(text_ids) - 1), window):
        chunk = torch.tensor([list(text_ids[start : start + window])], device=loaded.device)
        if chunk.shape[1] > 1:
            yield loaded.model(input_ids=chunk, labels=chunk).loss * chunk.shape[1]


def _mix(totals: dict[str, Scores], weights: dict[str, float]) -> Scores:
    """Each source normalised to sum 1 per kind, then weighted and added."""
    first = totals["suite"]
    mixed = Scores([torch.zeros_like(h) for h in first.heads], [torch.zeros_like(n) for n in first.neurons])
    for src, scores in totals.items():
        head_sum = sum(float(h.sum()) for h in scores.heads) or 1.0
        neuron_sum = sum(float(n.sum()) for n in scores.neurons) or 1.0
        for i in range(len(first.heads)):
            mixed.heads[i] += weights[src] * scores.heads[i] / head_sum
            mixed.neurons[i] += weights[src] * scores.neurons[i] / neuron_sum
    return mixed


def _rows(module: nn.Module, index: torch.Tensor | slice) -> torch.Tensor:
    """A projection's weights for the given output features, as (features, in)."""
    w = module.weight
    return w[:, index].T if is_conv1d(module) else w[index]


def magnitude_scores(model) -> Scores:
    """Squared weight norms: a head's q rows and o columns; a neuron's input-projection rows and output column."""
    heads, neurons = [], []
    with torch.no_grad():
        for b in blocks(model):
            d = b.head_dim
            q = b.attention.q
            o_cols = (b.out_proj.weight.T if not is_conv1d(b.out_proj) else b.out_proj.weight).float()  # (in, hidden)
            per_head = o_cols.view(b.n_heads, d, -1).pow(2).sum((1, 2))
            if q is not None:
                per_head = per_head + q.weight.float().view(b.n_heads, d, -1).pow(2).sum((1, 2))
            heads.append(per_head.cpu())
            inputs, out = mlp_projections(b.mlp)
            score = sum(_rows(m, slice(None)).float().pow(2).sum(1) for m in inputs)
            out_cols = out.weight.float() if is_conv1d(out) else out.weight.float().T  # (d_ff, hidden)
            neurons.append((score + out_cols.pow(2).sum(1)).cpu())
    return Scores(heads, neurons)


# --- surgery -------------------------------------------------------------------------------------------

def _keep_out_features(module: nn.Module, keep: torch.Tensor) -> None:
    with torch.no_grad():
        if is_conv1d(module):
            module.weight = nn.Parameter(module.weight[:, keep].clone())
            module.nf = len(keep)
        else:
            module.weight = nn.Parameter(module.weight[keep].clone())
            module.out_features = len(keep)
        if getattr(module, "bias", None) is not None:
            module.bias = nn.Parameter(module.bias[keep].clone())


def _keep_in_features(module: nn.Module, keep: torch.Tensor) -> None:
    with torch.no_grad():
        if is_conv1d(module):
            module.weight = nn.Parameter(module.weight[keep].clone())
        else:
            module.weight = nn.Parameter(module.weight[:, keep].clone())
            module.in_features = len(keep)


def prune(loaded, scores: Scores, *, head_fraction: float = 0.0, neuron_fraction: float = 0.0):
    """Remove the lowest-scoring heads and FFN neurons, the same fraction of every layer (see the module
    docstring; a uniform model loses the same number everywhere); returns the same LoadedModel, smaller, with its config updated so it saves and loads."""
    if not (0 <= head_fraction < 1 and 0 <= neuron_fraction < 1):
        raise MindsetError("head_fraction and neuron_fraction must be in [0, 1)")
    model = loaded.model
    config = text_config(model.config)
    all_blocks = blocks(model)
    if neuron_fraction:
        for b, s in zip(all_blocks, scores.neurons):  # per layer: a heterogeneous model's widths differ
            d_ff = s.numel()
            keep = torch.sort(torch.topk(s, d_ff - round(neuron_fraction * d_ff)).indices).values.to(loaded.device)
            inputs, out = mlp_projections(b.mlp)
            for m in inputs:
                _keep_out_features(m, keep)
            _keep_in_features(out, keep)
    if head_fraction:
        _prune_heads(all_blocks, scores.heads, head_fraction, loaded.device)
    if head_fraction or neuron_fraction:
        _state_shapes(model, config, blocks(model))
    return loaded


def _state_shapes(model, config, pruned) -> None:
    """Write the pruned shapes into the config when every layer agrees (so plain transformers loads the folder);
    layers that differ (a heterogeneous model) are listed by the surgery record `save` writes."""
    d_ffs = {in_features(mlp_projections(b.mlp)[1]) for b in pruned}
    if len(d_ffs) == 1:
        width = d_ffs.pop()
        for name in ("intermediate_size", "n_inner"):
            if hasattr(config, name):
                setattr(config, name, width)
    if pruned[0].attention.fused or pruned[0].attention.q is None:
        return
    config.head_dim = pruned[0].head_dim
    heads = {(b.n_heads, b.attention.n_kv_heads) for b in pruned}
    if len(heads) == 1:
        config.num_attention_heads = heads.pop()[0]


def _prune_heads(all_blocks, head_scores, fraction: float, device) -> None:
    """Each layer's kv groups lose round(fraction x its query heads per group) heads each; a layer's own
    head counts decide, so layers of a heterogeneous model may lose different numbers."""
    b0 = all_blocks[0]
    if b0.attention.fused or b0.attention.q is None:
        raise MindsetError(f"head pruning needs separate q/k/v projections; {type(b0.attn).__name__} fuses them (prune FFN neurons only)")
    removals = [round(fraction * (b.n_heads // b.attention.n_kv_heads)) for b in all_blocks]
    if not any(removals):
        per_group = b0.n_heads // b0.attention.n_kv_heads
        raise MindsetError(f"a head fraction of {fraction:g} removes no head: each of the {b0.attention.n_kv_heads} key/value groups has {per_group} query heads, so fractions come in steps of 1/{per_group}")
    for b, s, remove in zip(all_blocks, head_scores, removals):
        n_kv, d = b.attention.n_kv_heads, b.head_dim
        per_group = b.n_heads // n_kv
        keep_per_group = per_group - remove
        kept_heads = []
        for g in range(n_kv):  # repeat_kv: query heads g*per_group ... read kv head g
            group = torch.arange(g * per_group, (g + 1) * per_group)
            kept_heads += sorted(group[torch.topk(s[group], keep_per_group).indices].tolist())
        cols = torch.cat([torch.arange(h * d, (h + 1) * d) for h in kept_heads]).to(device)
        _keep_out_features(b.attention.q, cols)
        _keep_in_features(b.out_proj, cols)
        follow = getattr(b.out_proj, "mindset_reindex_heads", None)  # a projection with per-head state (head gates)
        if follow is not None:
            follow(kept_heads)
        b.attn.num_key_value_groups = keep_per_group
        if hasattr(b.attn, "num_heads"):
            b.attn.num_heads = len(kept_heads)
