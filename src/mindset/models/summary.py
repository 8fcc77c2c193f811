"""What a model is: its architecture from the config, and where its parameters and bytes are."""

from __future__ import annotations

from typing import Any

from torch import nn

COMPONENTS = ("embeddings", "attention", "mlp", "norms", "head", "other")


def architecture(model) -> dict[str, Any]:
    """Shape of the model: layers, heads and d_ff as anatomy reads them from the first block's weights (so a
    pruned model reports what it has), the rest from the (text) config."""
    from mindset.models.anatomy import blocks, text_config

    config = text_config(model.config)
    first = blocks(model)[0]
    return {
        "family": model.config.model_type,
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "heads": first.n_heads,
        "kv_heads": first.attention.n_kv_heads,
        "head_dim": first.head_dim,
        "d_ff": first.ffn.d_ff,
        "vocab": config.vocab_size,
        "context": getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None),
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
    }


def component_of(path: str, chain: list[nn.Module], output_embeddings: nn.Module | None) -> str:
    """Which component a parameter belongs to, from the classes of the modules that hold it.

    Modules may declare `mindset_component` (surgery does, for the layers it adds); otherwise the
    class names decide: HF names its blocks *Attention*, *MLP* and *Norm* across architectures.
    """
    for module in reversed(chain):
        declared = getattr(module, "mindset_component", None)
        if declared:
            return declared
    owner = chain[-1]
    if isinstance(owner, nn.Embedding):
        return "embeddings"
    if output_embeddings is not None and owner is output_embeddings:
        return "head"
    names = [type(m).__name__.lower() for m in reversed(chain)]
    for name in names:
        if "norm" in name:
            return "norms"
        if "attention" in name or name.endswith("attn"):
            return "attention"
        if "mlp" in name or "feedforward" in name:
            return "mlp"
    return "other"


def parameters_by_component(model) -> dict[str, dict[str, int]]:
    """{component: {"params": n, "bytes": b}}; a tied tensor counts once, under the module that owns it first."""
    output_embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    totals = {c: {"params": 0, "bytes": 0} for c in COMPONENTS}
    seen: set[int] = set()

    def visit(module: nn.Module, chain: list[nn.Module], prefix: str) -> None:
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            component = component_of(f"{prefix}{name}", chain, output_embeddings)
            entry = totals.setdefault(component, {"params": 0, "bytes": 0})
            entry["params"] += param.numel()
            entry["bytes"] += param.numel() * param.element_size()
        for child_name, child in module.named_children():
            visit(child, [*chain, child], f"{prefix}{child_name}.")

    visit(model, [model], "")
    return {c: v for c, v in totals.items() if v["params"] or c in COMPONENTS[:5]}  # "other" only when present


def memory_bytes(model) -> dict[str, int]:
    params = sum(p.numel() * p.element_size() for p in model.parameters())  # parameters() dedupes tied tensors
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return {"parameters": params, "buffers": buffers, "total": params + buffers}


def summarize(model) -> dict[str, Any]:
    """Architecture, parameters by component and memory; `layers` (per-layer shapes) only when layers differ,
    since the architecture table then states the first layer's shape only."""
    from mindset.models.diff import heterogeneous, layer_rows

    params = parameters_by_component(model)
    summary = {
        "architecture": architecture(model),
        "parameters": params,
        "total_parameters": sum(v["params"] for v in params.values()),
        "memory_bytes": memory_bytes(model),
    }
    rows = layer_rows(model)
    if heterogeneous(rows):
        summary["layers"] = rows
    return summary


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def human_count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def summary_tables(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) tables shared by the terminal and the markdown report."""
    arch = summary["architecture"]
    per_layer = {"heads", "kv_heads", "d_ff"} if summary.get("layers") else set()
    arch_rows = [[k.replace("_", " "), f"{v} (layer 0; per layer below)" if k in per_layer else str(v)] for k, v in arch.items()]
    total = summary["total_parameters"]
    param_rows = [
        [_component_label(name, arch), human_count(v["params"]), f"{100 * v['params'] / max(total, 1):.1f}%", human_bytes(v["bytes"])]
        for name, v in summary["parameters"].items()
    ]
    mem = summary["memory_bytes"]
    param_rows.append(["total", human_count(total), "100.0%", human_bytes(mem["parameters"])])
    if mem["buffers"]:
        param_rows.append(["buffers", "", "", human_bytes(mem["buffers"])])
    tables = [
        ("Architecture", ["property", "value"], arch_rows),
        ("Parameters by component", ["component", "parameters", "share", "bytes"], param_rows),
    ]
    if summary.get("layers"):
        from mindset.models.diff import layer_table

        tables.insert(1, layer_table(summary["layers"]))
    return tables


def _component_label(name: str, arch: dict[str, Any]) -> str:
    return "head (tied to embeddings)" if name == "head" and arch["tied_embeddings"] else name
