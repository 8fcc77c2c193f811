"""Numbers the Architecture view paints onto its cells: head gate values, weight change against the original,
and (from a job, see jobs.py) importance maps.

Weight change per layer module (attention, FFN): the relative Frobenius norm ‖W_cur − W_orig‖ / ‖W_orig‖ over
the module's tensors that exist in both models with the same name and shape (a widened or narrowed
projection has no same-shaped counterpart: the module is then marked `reshaped`). Blocks are matched by
position only when the layer count is unchanged; after inserting or dropping layers it says so instead of
comparing unrelated layers.
"""

from __future__ import annotations

from typing import Any

import torch


def gate_values(loaded) -> dict[str, float]:
    """{"L3.H2": g} for every gated attention projection (surgery.gates' HeadGate: g = 2·sigmoid(c))."""
    from mindset.models.anatomy import blocks

    out: dict[str, float] = {}
    for b in blocks(loaded.model):
        for module in b.layer.modules():
            if getattr(module, "mindset_restorer", None) == "head_gates" and hasattr(module, "gates"):
                out.update({f"L{b.index}.H{h}": float(g) for h, g in enumerate(module.gates().tolist())})
    return out


@torch.no_grad()
def weight_change(original, current) -> dict[str, Any]:
    """{"modules": {"L0.attn": r, "L0.mlp": r, ...}, "reshaped": [...], "comparable": bool}, r the relative change."""
    from mindset.models.anatomy import blocks

    old, new = blocks(original.model), blocks(current.model)
    if len(old) != len(new):
        return {"comparable": False, "modules": {}, "reshaped": [],
                "reason": f"the layer count changed ({len(old)} → {len(new)}): blocks no longer pair up by position"}  # fmt: skip
    modules: dict[str, float] = {}
    reshaped: list[str] = []
    for a, b in zip(old, new):
        for kind, pa, pb in (("attn", a.attn_path, b.attn_path), ("mlp", a.mlp_path, b.mlp_path)):
            name = f"L{a.index}.{kind}"
            ratio = _relative(dict(original.model.get_submodule(pa).named_parameters()), dict(current.model.get_submodule(pb).named_parameters()))
            if ratio is None:
                reshaped.append(name)
            else:
                modules[name] = ratio
    return {"comparable": True, "modules": modules, "reshaped": reshaped}


def _relative(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float | None:
    diff = base = 0.0
    for name, w in before.items():
        v = after.get(name)
        if v is None or v.shape != w.shape:
            return None
        w64, v64 = w.detach().double().cpu(), v.detach().double().cpu()
        diff += float((v64 - w64).pow(2).sum())
        base += float(w64.pow(2).sum())
    return (diff / base) ** 0.5 if base > 0 else 0.0
