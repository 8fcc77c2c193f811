"""The activation-norm overlay: how much each head and each FFN writes into the residual stream on a prompt
the user types — POST /api/activations.

Per layer, read through the anatomy (models.anatomy.blocks: the attention's output projection and head
layout, the FFN block):
- head h: ‖W_o[:, h] z_h‖, the norm of the head's own write, z_h its head_dim slice of the output
  projection's input (after a head gate's scaling, where the layer has gates), W_o[:, h] the projection's
  columns that read it. A head whose output columns are zero (a head add_heads just added) or whose values
  are zero writes nothing: norm 0. The projection's bias belongs to no head and is left out.
- the FFN: ‖FFN(x)‖, the norm of the block's output (a memory layer's too).
Norms are per token, then averaged over the prompt's tokens (`reduce: mean`) or taken at its last token
(`reduce: last`). Hooks only record, and only the calling thread's forward pass, so a background job
running the same model at the same time is neither seen nor disturbed.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import torch
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError

MAX_TOKENS = 512
router = APIRouter()


class ActivationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(..., description="the text whose tokens the norms are measured on")
    model: Literal["current", "original"] = Field("current", description="which model runs the prompt")
    reduce: Literal["mean", "last"] = Field("mean", description="mean over the prompt's tokens, or the last token's")


@router.post("/api/activations", summary="Per layer, each head's and the FFN's output norm on a prompt (the activation overlay)")
def post_activations(body: ActivationRequest, request: Request) -> dict:
    bench = request.app.state.workbench
    with bench.lock:
        loaded = bench.current if body.model == "current" else bench.original
        return {**activation_norms(loaded, body.prompt, body.reduce), "model": body.model, "version": bench.version}


def _tokens(loaded, prompt: str) -> torch.Tensor:
    if not prompt.strip():
        raise MindsetError("the prompt is empty; type the text whose activation norms to show")
    ids = loaded.tokenizer(prompt, return_tensors="pt", add_special_tokens=True)["input_ids"]
    if ids.shape[1] > MAX_TOKENS:
        raise MindsetError(f"the prompt has {ids.shape[1]} tokens; give at most {MAX_TOKENS}")
    return ids.to(loaded.device)


@torch.no_grad()
def activation_norms(loaded, prompt: str, reduce: str = "mean") -> dict[str, Any]:
    """{tokens, reduce, layers: [{index, heads: [norm per head], mlp: norm}], values: {"L0.H1": n, "L0.mlp": n}}."""
    from mindset.models.anatomy import blocks

    if reduce not in ("mean", "last"):
        raise MindsetError(f"reduce {reduce!r}: average over the tokens (mean) or take the last token (last)")
    ids = _tokens(loaded, prompt)
    found = blocks(loaded.model)
    heads_in, ffn_out = _record(loaded.model, found, ids)
    layers, values = [], {}
    for b in found:
        per_token = _head_writes(b, heads_in[b.index])  # (T, H)
        heads = (per_token.mean(0) if reduce == "mean" else per_token[-1]).tolist()
        out = ffn_out[b.index].float().norm(dim=-1)  # (T,)
        mlp = float(out.mean() if reduce == "mean" else out[-1])
        layers.append({"index": b.index, "heads": heads, "mlp": mlp})
        values.update({f"L{b.index}.H{h}": v for h, v in enumerate(heads)})
        values[f"L{b.index}.mlp"] = mlp
    tokens = [loaded.tokenizer.decode([int(t)]) for t in ids[0]]
    return {"prompt": prompt, "tokens": tokens, "reduce": reduce, "layers": layers, "values": values}


def _record(model, found, ids) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """One forward pass: each layer's output-projection input and FFN output, batch row 0, (T, features)."""
    me = threading.get_ident()
    heads_in: dict[int, torch.Tensor] = {}
    ffn_out: dict[int, torch.Tensor] = {}

    def before_o(index):
        def hook(module, args):
            if threading.get_ident() == me:
                heads_in[index] = args[0][0].detach()
        return hook

    def after_ffn(index):
        def hook(module, args, output):
            if threading.get_ident() == me:
                ffn_out[index] = (output[0] if isinstance(output, tuple) else output)[0].detach()
        return hook

    handles = []
    try:
        for b in found:
            handles.append(b.attention.o.register_forward_pre_hook(before_o(b.index)))
            handles.append(b.mlp.register_forward_hook(after_ffn(b.index)))
        model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    missing = [b.index for b in found if b.index not in heads_in or b.index not in ffn_out]
    if missing:
        raise RuntimeError(f"layers {missing} did not run their attention output projection or FFN in the forward pass")
    return heads_in, ffn_out


def _head_writes(b, z: torch.Tensor) -> torch.Tensor:
    """(T, H): ‖W_o[:, h] z_h‖ per token and head, from the projection's input z (T, H·head_dim)."""
    from mindset.models.anatomy import is_conv1d

    o, n, hd = b.attention.o, b.attention.n_heads, b.attention.head_dim
    if hasattr(o, "gated_input"):  # head gates scale each head's slice inside the projection
        z = o.gated_input(z)
    weight = o.weight.detach().float()
    weight = weight.T if is_conv1d(o) else weight  # (out, in)
    per_head = z.float().unflatten(-1, (n, hd))  # (T, H, hd)
    writes = torch.einsum("thd,ohd->tho", per_head, weight.unflatten(-1, (n, hd)))
    return writes.norm(dim=-1)
