"""The current model's architecture as JSON for GET /api/model, read through models' anatomy.

Per layer: its heads, kv heads, FFN width and parameters (`models.diff.layer_rows`, what `mindset inspect`
shows), and its modules: attention, FFN, norms, and any custom module surgery put there (memory, gates,
feedback), each with its path, class and parameter count. Outside the layers: the embeddings, a shim, the
final norm and the head. Nothing here re-derives anatomy.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def overlays_for(loaded) -> list[str]:
    """The overlays /api/overlays can paint on this model: importance (a job computes it), weight change, and
    gate values where the model has head gates."""
    from mindset.ui.overlays import gate_values

    return ["importance", "weight_change"] + (["gates"] if gate_values(loaded) else [])


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _kind(module: nn.Module) -> str:
    declared = getattr(module, "mindset_restorer", None)
    if declared:
        return declared
    name = type(module).__name__.lower()
    return "norm" if "norm" in name else "other"


def architecture_json(loaded) -> dict[str, Any]:
    """{layers: [{index, heads, kv_heads, head_dim, d_ff, params, modules}], params, dtype, ...}."""
    from mindset.models.anatomy import blocks
    from mindset.models.custom import custom_modules
    from mindset.models.diff import layer_rows
    from mindset.models.summary import summarize

    model = loaded.model
    summary = summarize(model)
    custom = custom_modules(model)
    layers = []
    for b, row in zip(blocks(model), layer_rows(model)):
        layers.append({
            "index": b.index, "path": b.path, "heads": row["n_heads"], "kv_heads": row["n_kv_heads"], "head_dim": b.head_dim,
            "d_ff": row["d_ff"], "params": row["params"], "custom": row["custom"], "modules": _layer_modules(b, custom),
        })  # fmt: skip
    outside = [_module(path, m, custom=True) for path, m in custom if not any(path.startswith(b["path"] + ".") or path == b["path"] for b in layers)]
    return {
        "name": loaded.name, "family": summary["architecture"]["family"], "architecture": summary["architecture"],
        "layers": layers, "params": summary["total_parameters"], "parameters_by_component": summary["parameters"],
        "memory_bytes": summary["memory_bytes"], "dtype": str(loaded.dtype).removeprefix("torch."), "device": str(loaded.device),
        "max_d_ff": max((r["d_ff"] or 0) for r in layers), "max_heads": max(r["heads"] for r in layers),
        "custom_modules": outside, "overlays": overlays_for(loaded),
    }  # fmt: skip


def _module(path: str, module: nn.Module, *, kind: str | None = None, custom: bool = False) -> dict[str, Any]:
    return {"path": path, "name": path.rsplit(".", 1)[-1], "kind": kind or _kind(module), "class": type(module).__name__,
            "params": _count(module), "custom": custom or bool(getattr(module, "mindset_restorer", None))}  # fmt: skip


def _layer_modules(b, custom: list[tuple[str, nn.Module]]) -> list[dict[str, Any]]:
    """The layer's children in order (attention, FFN, norms...) and the custom modules nested deeper."""
    out = []
    for name, child in b.layer.named_children():
        path = f"{b.path}.{name}"
        kind = "attention" if path == b.attn_path else "ffn" if path == b.mlp_path else None
        out.append(_module(path, child, kind=kind if kind and not getattr(child, "mindset_restorer", None) else None))
    known = {m["path"] for m in out}
    out += [_module(path, m, custom=True) for path, m in custom if path.startswith(b.path + ".") and path not in known]
    return out


def module_stats(loaded, path: str, limit: int = 64) -> dict[str, Any]:
    """Shapes and weight statistics (mean, std, largest |w|, Frobenius norm) of the tensors of module `path`,
    for the details panel; computed in float64 on the CPU, one tensor at a time."""
    import torch

    from mindset.errors import MindsetError

    try:
        module = loaded.model.get_submodule(path)
    except AttributeError:
        raise MindsetError(f"no module {path!r} in the current model; GET /api/model lists each layer's module paths") from None
    rows = []
    for name, param in list(module.named_parameters())[:limit]:
        w = param.detach().to("cpu", torch.float64)
        rows.append({"name": name, "shape": list(w.shape), "params": w.numel(), "mean": float(w.mean()), "std": float(w.std()) if w.numel() > 1 else 0.0,
                     "abs_max": float(w.abs().max()), "norm": float(w.norm())})  # fmt: skip
    return {"path": path, "class": type(module).__name__, "params": _count(module), "tensors": rows}
