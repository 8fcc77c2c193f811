"""What differs between layers of one model, and between two models: plain data for `mindset inspect`.

`layer_rows(model)` lists each layer's shape (heads, kv heads, FFN width, custom modules inside it) and
`heterogeneous(rows)` says whether those differ, so inspect shows a per-layer table only when it tells
something the architecture table does not.

`diff_models(a, b)` compares two models: their config values, layer count and per-layer shapes, their
parameter counts (total and per layer where they differ), and their tensors. Tensors with the same name
and shape are compared by relative change ‖a − b‖ / ‖a‖ (Frobenius, in float64 so a one-step perturbation
of a large tensor does not round to zero); tensors only in one model are added or removed, tensors whose
shapes differ are reshaped. The CLI only prints what this returns.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mindset.models.anatomy import blocks, text_config
from mindset.models.custom import custom_modules
from mindset.models.shapes import block_shape

SHAPE_KEYS = ("n_heads", "n_kv_heads", "d_ff")
# config values that describe the architecture (others, like ids of special tokens, are not shape)
CONFIG_KEYS = (
    "model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "n_inner", "vocab_size", "max_position_embeddings", "n_positions", "tie_word_embeddings",
)  # fmt: skip


# --- one model's layers ----------------------------------------------------------------------------------

def layer_rows(model: nn.Module) -> list[dict[str, Any]]:
    """[{layer, n_heads, n_kv_heads, d_ff, custom, params}] per decoder layer; d_ff None when the FFN is
    not one mindset reads (e.g. a memory), custom the class names of custom modules inside the layer."""
    found = custom_modules(model)
    rows = []
    for b in blocks(model):
        shape = block_shape(b)
        inside = [type(m).__name__ for path, m in found if path == b.path or path.startswith(b.path + ".")]
        rows.append({
            "layer": b.index, "n_heads": shape["n_heads"], "n_kv_heads": shape["n_kv_heads"], "d_ff": shape.get("d_ff"),
            "custom": inside, "params": _count(b.layer),
        })  # fmt: skip
    return rows


def heterogeneous(rows: list[dict[str, Any]]) -> bool:
    """Whether the layers differ in shape or in custom modules (a uniform model's table would repeat one row)."""
    first = rows[0]
    return any(any(r[k] != first[k] for k in (*SHAPE_KEYS, "custom")) for r in rows[1:])


def layer_table(rows: list[dict[str, Any]]) -> tuple[str, list[str], list[list[str]]]:
    """(title, headers, rows) of the per-layer shapes."""
    body = [
        [str(r["layer"]), str(r["n_heads"]), str(r["n_kv_heads"]), "-" if r["d_ff"] is None else str(r["d_ff"]),
         f"{r['params']:,}", ", ".join(r["custom"]) or "-"]
        for r in rows
    ]  # fmt: skip
    return "Layers", ["layer", "heads", "kv heads", "d_ff", "parameters", "custom modules"], body


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- two models --------------------------------------------------------------------------------------------

def diff_models(a: nn.Module, b: nn.Module, top: int | None = 20) -> dict[str, Any]:
    """Everything that differs between models `a` and `b`, as JSON-able data (see the module docstring).

    `top` caps the changed-tensor list (largest relative change first; None: all); `changed_total` keeps
    the uncapped count. Tensors are compared on the CPU in float64, one at a time.
    """
    rows_a, rows_b = layer_rows(a), layer_rows(b)
    changed, added, removed, reshaped = _tensor_diff(_named_tensors(a), _named_tensors(b))
    return {
        "config": _config_diff(a, b),
        "layers": {"a": len(rows_a), "b": len(rows_b)},
        "shapes": _shape_diff(rows_a, rows_b),
        "parameters": {
            "a": _count(a), "b": _count(b),
            "layers": [
                {"layer": i, "a": ra["params"] if ra else None, "b": rb["params"] if rb else None}
                for i, (ra, rb) in enumerate(_pairs(rows_a, rows_b))
                if (ra and ra["params"]) != (rb and rb["params"])
            ],
        },  # fmt: skip
        "changed": changed if top is None else changed[:top],
        "changed_total": len(changed),
        "added": added,
        "removed": removed,
        "reshaped": reshaped,
    }


def identical(diff: dict[str, Any]) -> bool:
    """Whether a diff found nothing at all."""
    keys = ("config", "shapes", "changed", "added", "removed", "reshaped")
    return not any(diff[k] for k in keys) and diff["layers"]["a"] == diff["layers"]["b"]


def _pairs(rows_a: list, rows_b: list) -> list[tuple[dict | None, dict | None]]:
    n = max(len(rows_a), len(rows_b))
    return [(rows_a[i] if i < len(rows_a) else None, rows_b[i] if i < len(rows_b) else None) for i in range(n)]


def _config_diff(a: nn.Module, b: nn.Module) -> list[dict[str, Any]]:
    ca, cb = text_config(a.config), text_config(b.config)
    out = []
    for key in CONFIG_KEYS:
        va, vb = getattr(ca, key, None), getattr(cb, key, None)
        if va != vb:
            out.append({"key": key, "a": va, "b": vb})
    return out


def _shape_diff(rows_a: list, rows_b: list) -> list[dict[str, Any]]:
    """[{layer, key, a, b}] for each shape value that differs; a layer only one model has is listed once,
    with key "layer" and its shape as the other side's None."""
    out = []
    for i, (ra, rb) in enumerate(_pairs(rows_a, rows_b)):
        if ra is None or rb is None:
            present = ra or rb
            shape = {k: present[k] for k in SHAPE_KEYS}
            out.append({"layer": i, "key": "layer", "a": shape if ra else None, "b": shape if rb else None})
            continue
        for key in (*SHAPE_KEYS, "custom"):
            if ra[key] != rb[key]:
                out.append({"layer": i, "key": key, "a": ra[key], "b": rb[key]})
    return out


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """State-dict tensors by name, without tied duplicates' second names (they would be listed twice)."""
    seen: set[tuple[int, tuple[int, ...]]] = set()
    out = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = tensor
    return out


def _tensor_diff(ta: dict[str, torch.Tensor], tb: dict[str, torch.Tensor]):
    changed, reshaped = [], []
    for name in ta.keys() & tb.keys():
        x, y = ta[name], tb[name]
        if x.shape != y.shape:
            reshaped.append({"name": name, "a": list(x.shape), "b": list(y.shape)})
            continue
        rel = relative_change(x, y)
        if rel > 0:
            changed.append({"name": name, "shape": list(x.shape), "relative_change": rel})
    changed.sort(key=lambda c: (-c["relative_change"], c["name"]))
    reshaped.sort(key=lambda r: r["name"])
    added = [{"name": n, "shape": list(tb[n].shape)} for n in sorted(tb.keys() - ta.keys())]
    removed = [{"name": n, "shape": list(ta[n].shape)} for n in sorted(ta.keys() - tb.keys())]
    return changed, added, removed, reshaped


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖a‖ (Frobenius); a zero `a` gives ‖b‖ (the change itself) so that growth from zero shows."""
    x, y = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    delta = torch.linalg.vector_norm(x - y).item()
    if delta == 0:
        return 0.0
    base = torch.linalg.vector_norm(x).item()
    return delta / base if base else delta


# --- as tables ---------------------------------------------------------------------------------------------

def diff_tables(diff: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) tables of a diff, only those with something in them; columns A and B."""
    a, b = names
    tables = []
    config = [[c["key"], _cell(c["a"]), _cell(c["b"])] for c in diff["config"]]
    if diff["layers"]["a"] != diff["layers"]["b"] and not any(c["key"] == "num_hidden_layers" for c in diff["config"]):
        config.insert(0, ["layers", str(diff["layers"]["a"]), str(diff["layers"]["b"])])
    if config:
        tables.append(("Config", ["setting", a, b], config))
    if diff["shapes"]:
        tables.append(("Layer shapes", ["layer", "what", a, b], [[str(s["layer"]), s["key"], _cell(s["a"]), _cell(s["b"])] for s in diff["shapes"]]))
    p = diff["parameters"]
    params = [["total", f"{p['a']:,}", f"{p['b']:,}", f"{p['b'] - p['a']:+,}"]]
    params += [[f"layer {r['layer']}", _count_cell(r["a"]), _count_cell(r["b"]), f"{(r['b'] or 0) - (r['a'] or 0):+,}"] for r in p["layers"]]
    tables.append(("Parameters", ["", a, b, "change"], params))
    if diff["reshaped"]:
        tables.append(("Tensors with other shapes", ["tensor", a, b], [[r["name"], _cell(r["a"]), _cell(r["b"])] for r in diff["reshaped"]]))
    if diff["changed"]:
        title = f"Changed tensors (top {len(diff['changed'])} of {diff['changed_total']})" if len(diff["changed"]) < diff["changed_total"] else "Changed tensors"
        tables.append((title, ["tensor", "shape", "‖A−B‖/‖A‖"], [[c["name"], _cell(c["shape"]), f"{c['relative_change']:.3e}"] for c in diff["changed"]]))
    moved = [[r["name"], "added", _cell(r["shape"])] for r in diff["added"]] + [[r["name"], "removed", _cell(r["shape"])] for r in diff["removed"]]
    if moved:
        tables.append((f"Tensors only in {b} (added) or {a} (removed)", ["tensor", "", "shape"], moved))
    return tables


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "×".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _count_cell(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"
