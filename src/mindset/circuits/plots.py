"""Heatmaps as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    _pyplot().close(fig)
    return path


def importance_heatmap(result, path: str | Path) -> Path:
    """Layers (rows) × heads (columns) of the log-prob drop; layers × neurons for neuron maps (at most 16
    inches wide, no per-neuron ticks); one column for MLP, attention or layer maps."""
    plt = _pyplot()
    grid = result.grid()
    width = min(16.0, 1.2 + 0.45 * grid.shape[1]) if grid.shape[1] > 1 else 2.6
    fig, ax = plt.subplots(figsize=(max(width, 3.5), 1.0 + 0.28 * grid.shape[0]))
    limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_ylabel("layer")
    ax.set_yticks(range(grid.shape[0]))
    if result.granularity == "neuron":
        ax.set_xlabel("FFN neuron")
    elif grid.shape[1] > 1:
        ax.set_xlabel("head")
        ax.set_xticks(range(grid.shape[1]))
    else:
        ax.set_xticks([0], [result.granularity])
    fig.colorbar(image, ax=ax, label="Δ correct-answer log-prob (nats)")
    ax.set_title(f"{result.suite}: {result.method} ablation" + (" (attribution estimate)" if result.estimate == "attribution" else "") + f"\n{result.model}", fontsize=9)
    return _save(fig, path)


KIND_TITLES = {"resid": "single restored layer (residual stream)", "mlp": "restored MLP outputs", "attn": "restored attention outputs"}
KIND_CMAPS = {"resid": "Purples", "mlp": "Greens", "attn": "Reds"}


def trace_heatmap(trace, path: str | Path) -> Path:
    """ROME's figure: one panel per kind, token positions (rows, subject tokens starred) × layers (columns),
    colour = probability of the answer with that state restored in the corrupted run."""
    plt = _pyplot()
    kinds = list(trace.grids)
    n_tokens = len(trace.tokens)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 0.9 + 0.32 * n_tokens), squeeze=False)
    labels = [f"{t!r}*" if trace.subject_start <= i < trace.subject_end else repr(t) for i, t in enumerate(trace.tokens)]
    for ax, kind in zip(axes[0], kinds):
        grid = np.asarray(trace.grids[kind]).T  # (tokens, layers)
        image = ax.imshow(grid, cmap=KIND_CMAPS.get(kind, "viridis"), vmin=trace.p_corrupted, aspect="auto", interpolation="nearest")
        ax.set_yticks(range(n_tokens), labels, fontsize=8)
        ax.set_xlabel("layer" + (f" (window {trace.window}, centred)" if kind != "resid" else ""))
        ax.set_title(KIND_TITLES.get(kind, kind), fontsize=9)
        fig.colorbar(image, ax=ax, label=f"p({trace.answer!r})")
    fig.suptitle(f"causal trace: {trace.prompt!r} → {trace.answer!r}  (clean p={trace.p_clean:.3f}, corrupted p={trace.p_corrupted:.3f})", fontsize=9, y=1.02)
    return _save(fig, path)


def lines_plot(series: dict[str, tuple[list[float], list[float]]], path: str | Path, *, title: str, xlabel: str, ylabel: str,
               hline: float | None = None, hline_label: str | None = None) -> Path:
    """One line per named (x, y) series."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle="--", linewidth=1, label=hline_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


PATCH_TITLES = {"resid": "residual stream (layer input)", "attn": "attention output", "mlp": "MLP output", "heads": "head outputs (all positions)"}


def patch_heatmap(patching, path: str | Path) -> Path:
    """Activation patching: one panel per state; positions (rows; tokens where the prompts differ marked
    clean→corrupted) × layers, and layers × heads for heads; colour = normalized logit difference (0 corrupted, 1 clean)."""
    plt = _pyplot()
    kinds = list(patching.grids)
    n_tokens = len(patching.tokens)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 0.9 + 0.32 * max(n_tokens, patching.n_layers)), squeeze=False)
    labels = [f"{t!r}*" if i in patching.changed else repr(t) for i, t in enumerate(patching.tokens)]
    for ax, kind in zip(axes[0], kinds):
        grid = np.asarray(patching.grids[kind], dtype=float)
        low, high = min(0.0, float(np.nanmin(grid))), max(1.0, float(np.nanmax(grid)))
        if kind == "heads":
            image = ax.imshow(grid, cmap="Blues", vmin=low, vmax=high, aspect="auto", interpolation="nearest")
            ax.set_xlabel("head")
            ax.set_xticks(range(grid.shape[1]))
            ax.set_ylabel("layer")
            ax.set_yticks(range(grid.shape[0]))
        else:
            image = ax.imshow(grid.T, cmap="Blues", vmin=low, vmax=high, aspect="auto", interpolation="nearest")
            ax.set_yticks(range(n_tokens), labels, fontsize=8)
            ax.set_xlabel("layer")
            ax.set_xticks(range(grid.shape[0]))
        ax.set_title(PATCH_TITLES.get(kind, kind), fontsize=9)
        fig.colorbar(image, ax=ax, label="normalized logit difference")
    fig.suptitle(f"{patching.direction}: {patching.clean!r} vs {patching.corrupted!r}, {patching.answer_token!r} − {patching.wrong_token!r} "
                 f"(clean {patching.logit_diff_clean:+.2f}, corrupted {patching.logit_diff_corrupted:+.2f}); * = changed token", fontsize=9, y=1.02)
    return _save(fig, path)
