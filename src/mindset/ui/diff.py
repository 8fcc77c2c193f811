"""The diff view: the original model against the current one, per layer — GET /api/diff.

Each current layer is paired with the original layer it comes from (`layermap.layer_origins`, read from the
edit record), so an inserted, dropped or moved block shows as such instead of every later layer looking
changed. Per pair: heads, kv heads and FFN width before and after, the modules added or removed (a child
or custom module by its path inside the layer and its class: an FFN turned into memory is one removed and
one added), the parameter count, and the weight change
    ‖W_cur − W_orig‖ / ‖W_orig‖   (Frobenius, sums in float64, over the attention's, the FFN's and all the layer's tensors)
A tensor that grew (added heads, a widened FFN: the edits append) is compared on its original block, the
rest counts as added parameters; one that shrank or lost its name is listed as reshaped, not compared.
An inserted layer is compared with the block it copies (identity init: its zeroed output projections show).
Outside the layers: the embeddings, final norm and head tensors that changed, and the config values.
"""

from __future__ import annotations

from typing import Any

import torch
from fastapi import APIRouter, Request

router = APIRouter()


@router.get("/api/diff", summary="The original against the current model, per layer: shapes, modules, parameters, weight change, inserted/dropped/moved layers")
def get_diff(request: Request) -> dict:
    bench = request.app.state.workbench
    if not hasattr(request.app.state, "diff_cache"):
        request.app.state.diff_cache = {}
    cache = request.app.state.diff_cache  # the last diff, by model version: the weights are read once per change
    with bench.lock:
        key = (bench.version, id(bench.current))
        if key not in cache:
            cache.clear()
            cache[key] = {**model_diff(bench.original, bench.current), "version": bench.version}
        return cache[key]


@torch.no_grad()
def model_diff(original, current) -> dict[str, Any]:
    """{layers: [...per current layer], dropped: [...], params, config, outside, matched_by, counts}."""
    from mindset.models.anatomy import blocks
    from mindset.models.diff import layer_rows
    from mindset.ui.layermap import layer_origins

    old_blocks, new_blocks = blocks(original.model), blocks(current.model)
    old_rows, new_rows = layer_rows(original.model), layer_rows(current.model)
    origins, dropped, matched = layer_origins(original, current, len(old_blocks), len(new_blocks))
    rows = []
    custom = (_custom(original), _custom(current))
    for b, row, origin in zip(new_blocks, new_rows, origins):
        a = old_blocks[origin.source] if origin.source is not None else None
        rows.append(_layer_pair(custom, a, b, old_rows[origin.source] if a else None, row, origin))
    gone = [{"index": None, "source": i, "status": "dropped", "heads": old_rows[i]["n_heads"], "kv_heads": old_rows[i]["n_kv_heads"],
             "d_ff": old_rows[i]["d_ff"], "params": old_rows[i]["params"]} for i in dropped]  # fmt: skip
    p_old, p_new = _count(original.model), _count(current.model)
    return {
        "original": original.name, "current": current.name, "matched_by": matched,
        "counts": {"original": len(old_blocks), "current": len(new_blocks), "inserted": sum(r["status"] in ("inserted", "duplicate") for r in rows),
                   "dropped": len(dropped), "moved": sum(r["status"] == "moved" for r in rows), "changed": sum(r["changed"] for r in rows)},
        "params": {"original": p_old, "current": p_new, "delta": p_new - p_old},
        "layers": rows, "dropped": gone, "timeline": _timeline(rows, gone),
        "outside": _outside(original, current), "config": _config(original, current),
    }  # fmt: skip


def _layer_pair(custom, a, b, row_a, row_b, origin) -> dict[str, Any]:
    """One current layer against its source layer (None: a layer with no known source); custom: both models' custom modules."""
    from mindset.ui.architecture import _layer_modules

    def pair(key):
        return [row_a[key] if row_a else None, row_b[key]]

    out = {"index": b.index, "source": origin.source, "status": origin.how, "init": origin.init,
           "heads": pair("n_heads"), "kv_heads": pair("n_kv_heads"), "d_ff": pair("d_ff"), "params": pair("params")}  # fmt: skip
    mods_b = {_relative(m["path"], b.path): m["class"] for m in _layer_modules(b, custom[1])}
    mods_a = {_relative(m["path"], a.path): m["class"] for m in _layer_modules(a, custom[0])} if a else {}
    out["modules_added"] = sorted(f"{k} ({v})" for k, v in mods_b.items() if mods_a.get(k) != v) if a else []
    out["modules_removed"] = sorted(f"{k} ({v})" for k, v in mods_a.items() if mods_b.get(k) != v)
    if a is None:
        out.update(weight_change=None, reshaped=[], changed=True)
        return out
    tensors_a, tensors_b = dict(a.layer.named_parameters()), dict(b.layer.named_parameters())
    groups = {"attn": _relative(a.attn_path, a.path) + ".", "mlp": _relative(a.mlp_path, a.path) + ".", "total": ""}
    squares = _squares(tensors_a, tensors_b)
    out["weight_change"] = {g: _change(squares, prefix) for g, prefix in groups.items()}
    out["reshaped"] = sorted(n for n in tensors_a if n in tensors_b and not _comparable(tensors_a[n], tensors_b[n])) + sorted(set(tensors_a) ^ set(tensors_b))
    shape_changed = any(x != y for x, y in (out["heads"], out["kv_heads"], out["d_ff"], out["params"]))
    out["changed"] = bool(origin.how != "kept" or shape_changed or out["modules_added"] or out["modules_removed"] or (out["weight_change"]["total"] or 0) > 0)
    return out


def _custom(loaded):
    from mindset.models.custom import custom_modules

    return custom_modules(loaded.model)


def _relative(path: str, prefix: str) -> str:
    return path[len(prefix) + 1 :] if path.startswith(prefix + ".") else path


def _comparable(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Same rank and every dimension kept or grown: the original block is the new tensor's leading block."""
    return x.dim() == y.dim() and all(m <= n for m, n in zip(x.shape, y.shape))


def _squares(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """{name: (‖after − before‖², ‖before‖²)} of the comparable tensors (grown ones on their original block),
    each read once; differences in the tensors' own precision, sums in float64."""
    out = {}
    for name, w in before.items():
        v = after.get(name)
        if v is None or not _comparable(w, v):
            continue
        w = w.detach()
        v = v.detach()[tuple(slice(0, n) for n in w.shape)].to(w.dtype)
        same = v.data_ptr() == w.data_ptr() or torch.equal(v, w)  # most tensors are untouched: no difference to allocate
        delta = 0.0 if same else float(torch.linalg.vector_norm(v - w).double() ** 2)
        out[name] = (delta, float(torch.linalg.vector_norm(w).double() ** 2))
    return out


def _change(squares: dict[str, tuple[float, float]], prefix: str) -> float | None:
    """‖after − before‖ / ‖before‖ over the tensors under `prefix`; None when none is comparable."""
    parts = [v for name, v in squares.items() if name.startswith(prefix)]
    if not parts:
        return None
    diff, base = sum(d for d, _ in parts), sum(b for _, b in parts)
    return (diff / base) ** 0.5 if base > 0 else diff**0.5


def _timeline(rows: list[dict], dropped: list[dict]) -> list[dict]:
    """The current layers in order with each dropped original layer placed where it was (before the first
    kept layer that came after it in the original)."""
    out: list[dict] = []
    pending = list(dropped)
    for row in rows:
        while pending and row["status"] in ("kept", "moved") and row["source"] is not None and pending[0]["source"] < row["source"]:
            out.append(pending.pop(0))
        out.append(row)
    return out + pending


def _outside(original, current) -> dict[str, Any]:
    """Tensors outside the decoder layers (embeddings, final norm, head, shim): changed, added, removed."""
    from mindset.models.anatomy import layers_path

    def tensors(loaded):
        prefix = layers_path(loaded.model) + "."
        return {n: p for n, p in loaded.model.named_parameters() if not n.startswith(prefix)}

    a, b = tensors(original), tensors(current)
    changed = []
    for name in sorted(a.keys() & b.keys()):
        value = _change(_squares({name: a[name]}, {name: b[name]}), "")
        if value is None:
            changed.append({"name": name, "shape": [list(a[name].shape), list(b[name].shape)], "relative_change": None})
        elif value > 0:
            changed.append({"name": name, "shape": [list(a[name].shape), list(b[name].shape)], "relative_change": value})
    return {"changed": changed, "added": sorted(b.keys() - a.keys()), "removed": sorted(a.keys() - b.keys())}


def _config(original, current) -> list[dict[str, Any]]:
    from mindset.models.anatomy import text_config
    from mindset.models.diff import CONFIG_KEYS

    ca, cb = text_config(original.model.config), text_config(current.model.config)
    return [{"key": k, "original": getattr(ca, k, None), "current": getattr(cb, k, None)} for k in CONFIG_KEYS if getattr(ca, k, None) != getattr(cb, k, None)]


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())
