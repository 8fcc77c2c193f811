"""Role-aware precision: int8 weights for the blocks a capability does not depend on, fp32 for the rest.

Two int8 modes for the Linear layers of attention blocks and MLPs:
- `weight-only` (default): `Int8Linear` (mindset.models.int8's Int8WeightLinear, the layer `--dtype int8`
  loads), int8 weights with one scale per output row (symmetric, absmax / 127); activations stay float.
  A quarter of the weight bytes. On a CPU the matmul is torch's int8-weight kernel (bf16 activations, a
  few 1e-3 relative error per layer, faster than fp32); elsewhere, or where the kernel cannot run, the
  weight is dequantized to the input's dtype at each call. `Int8Linear(linear)` built by hand defaults to
  that exact dequantized route (kernel=False).
- `dynamic`: torch's own dynamic quantization (`torch.ao.quantization.quantize_dynamic`, per-channel
  weight scales): activations are also quantized, per tensor and per batch, and the matmul runs in int8
  (fbgemm): faster on a CPU, but outlier activations cost accuracy. CPU and fp32 only.
The embedding and the (tied) output head stay fp32 in every variant. A block is an attention block
(`L3.attn`) or an MLP (`L3.mlp`); `critical` names those kept in fp32. Quantized models are for inference:
they do not train, and are not saved as HF folders.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from mindset.circuits.components import blocks
from mindset.errors import MindsetError
from mindset.models.int8 import Int8WeightLinear as Int8Linear

__all__ = ["Int8Linear", "block_names", "critical_blocks", "quantize_blocks", "weight_bytes"]


def block_names(model) -> list[str]:
    return [f"L{b.index}.{kind}" for b in blocks(model) for kind in ("attn", "mlp")]


def _block_prefixes(model) -> dict[str, str]:
    out = {}
    for b in blocks(model):
        out[f"L{b.index}.attn"] = b.attn_path
        out[f"L{b.index}.mlp"] = b.mlp_path
    return out


def quantize_blocks(loaded, critical: Sequence[str] = (), mode: str = "weight-only"):
    """A copy of `loaded` whose attention and MLP Linear layers are int8, except those in `critical` blocks."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if mode not in ("weight-only", "dynamic"):
        raise MindsetError(f"unknown int8 mode {mode!r}; choose weight-only or dynamic")
    if mode == "dynamic" and (loaded.device.type != "cpu" or loaded.dtype != torch.float32):
        raise MindsetError("dynamic int8 quantization runs on the CPU in fp32; load the model with --device cpu --dtype float32")
    prefixes = _block_prefixes(loaded.model)
    unknown = [c for c in critical if c not in prefixes]
    if unknown:
        raise MindsetError(f"{unknown[0]!r} is not a block of this model; blocks look like L0.attn, L0.mlp (L0 to L{len(prefixes) // 2 - 1})")
    keep = tuple(prefixes[c] + "." for c in critical)
    targets = {
        name: per_channel_dynamic_qconfig
        for name, module in loaded.model.named_modules()
        if isinstance(module, nn.Linear) and any(name.startswith(p + ".") for p in prefixes.values()) and not name.startswith(keep)
    }
    model = copy.deepcopy(loaded.model)
    if mode == "dynamic":
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*")  # torch.ao's deprecation notice
            model = quantize_dynamic(model, qconfig_spec=targets, dtype=torch.qint8)
    else:
        for name in targets:
            parent, _, child = name.rpartition(".")
            owner = model.get_submodule(parent)
            setattr(owner, child, Int8Linear(getattr(owner, child), kernel=True))
    return type(loaded)(model, loaded.tokenizer, loaded.source)


def weight_bytes(model) -> int:
    """Bytes of the weights as stored: fp32 tensors at 4 bytes, int8 weights at 1 byte plus their scales."""
    total = 0
    seen = set()
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            total += weight.numel() + (weight.q_per_channel_scales().numel() * 8 if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric) else 8)
            total += bias.numel() * 4 if bias is not None else 0
        if isinstance(module, Int8Linear):
            total += sum(b.numel() * b.element_size() for b in module.buffers(recurse=False))
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total


def critical_blocks(scores, fraction: float) -> list[str]:
    """The top `fraction` of blocks by importance: attribution Scores (summed per block) or an Importance map."""
    if hasattr(scores, "heads"):
        ranked = {f"L{i}.attn": float(h.sum()) for i, h in enumerate(scores.heads)}
        ranked.update({f"L{i}.mlp": float(n.sum()) for i, n in enumerate(scores.neurons)})
    else:
        ranked = {}
        for s in scores.scores:
            name = s.name if s.kind in ("attn", "mlp") else f"L{s.layer}.attn"
            ranked[name] = ranked.get(name, 0.0) + s.drop_logprob
    n = max(1, round(fraction * len(ranked))) if fraction > 0 else 0
    return sorted(ranked, key=ranked.get, reverse=True)[:n]
