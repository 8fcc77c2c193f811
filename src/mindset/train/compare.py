"""`compare_runs(run_dirs, out)`: validation loss of pretraining runs against tokens and FLOPs, per variant.

Runs are grouped by their variant name (metrics.json's `variant`); a variant's curve is the mean over its
seeds at the evaluation steps all of them reached, with the min-max band shaded, and its row in the table
is the last such step: mean ± sample standard deviation over seeds of the validation loss, the perplexity
of the mean loss, parameters, tokens/s (pretrain.json, when the run finished) and canary accuracy where a
run recorded one. Writes compare.json, compare.md, loss_vs_tokens.png and loss_vs_flops.png.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mindset.errors import MindsetError
from mindset.fileio import atomic_write_json, atomic_write_text
from mindset.tables import markdown_table

HEADERS = ["variant", "seeds", "params", "tokens", "val loss", "ppl", "Δ vs first", "tokens/s", "canary acc"]


@dataclass
class Variant:
    name: str
    runs: list[dict] = field(default_factory=list)  # metrics.json (+ pretrain.json's "record") of each seed

    def curve(self) -> list[dict]:
        """Per evaluation step every seed reached: tokens, FLOPs, and the loss's mean, min, max and std."""
        by_step = [{r["step"]: r for r in run["rows"]} for run in self.runs]
        common = sorted(set.intersection(*(set(s) for s in by_step)))
        out = []
        for step in common:
            rows = [s[step] for s in by_step]
            losses = [r["val_loss"] for r in rows]
            out.append({
                "step": step, "tokens": statistics.fmean(r["tokens"] for r in rows), "flops": statistics.fmean(r["flops"] for r in rows),
                "mean": statistics.fmean(losses), "min": min(losses), "max": max(losses),
                "std": statistics.stdev(losses) if len(losses) > 1 else None,
            })  # fmt: skip
        return out

    def summary(self) -> dict[str, Any]:
        last = self.curve()[-1]
        speeds = [run["record"]["tokens_per_s"] for run in self.runs if run.get("record", {}).get("tokens_per_s")]
        canaries = [run["record"]["canary_accuracy"] for run in self.runs if run.get("record", {}).get("canary_accuracy") is not None]
        return {
            "variant": self.name, "seeds": sorted(run.get("seed", 0) for run in self.runs),
            "parameters": round(statistics.fmean(run["rows"][-1].get("parameters", run["parameters"]) for run in self.runs)),
            "step": last["step"], "tokens": last["tokens"], "flops": last["flops"],
            "val_loss": last["mean"], "val_loss_std": last["std"], "val_ppl": math.exp(last["mean"]),
            "tokens_per_s": statistics.fmean(speeds) if speeds else None,
            "canary_accuracy": statistics.fmean(canaries) if canaries else None,
        }  # fmt: skip


def read_run(folder: Path) -> dict:
    """metrics.json of a run folder, with pretrain.json under "record" when the run finished."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise MindsetError(f"{folder}: not a pretraining run folder (no metrics.json); give folders written by `mindset pretrain`")
    run = json.loads(path.read_text())
    if not run.get("rows"):
        raise MindsetError(f"{path} holds no validation rows yet; let the run evaluate at least once")
    record = Path(folder) / "pretrain.json"
    if record.is_file():
        run["record"] = json.loads(record.read_text())
    run["folder"] = str(folder)
    return run


def group(runs: list[dict]) -> list[Variant]:
    variants: dict[str, Variant] = {}
    for run in runs:
        variants.setdefault(run.get("variant", "?"), Variant(run.get("variant", "?"))).runs.append(run)
    for variant in variants.values():
        if not variant.curve():
            raise MindsetError(f"the runs of variant {variant.name!r} share no evaluation step; compare runs of the same schedule")
    return list(variants.values())


def table_rows(summaries: list[dict]) -> list[list[Any]]:
    base = summaries[0]["val_loss"]
    rows = []
    for s in summaries:
        spread = f" ± {s['val_loss_std']:.4f}" if s["val_loss_std"] is not None else ""
        rows.append([
            s["variant"], len(s["seeds"]), _count(s["parameters"]), f"{s['tokens']:,.0f}", f"{s['val_loss']:.4f}{spread}",
            f"{s['val_ppl']:.2f}", f"{s['val_loss'] - base:+.4f}", f"{s['tokens_per_s']:,.0f}" if s["tokens_per_s"] else "—",
            f"{s['canary_accuracy']:.3f}" if s["canary_accuracy"] is not None else "—",
        ])  # fmt: skip
    return rows


def _count(n: int) -> str:
    return f"{n / 1e6:.3f} M" if n >= 1_000_000 else f"{n:,}"


def compare_runs(folders: list[str | Path], out: str | Path, question: str = "") -> dict:
    """Group, summarize, tabulate and plot; returns what compare.json holds."""
    if not folders:
        raise MindsetError("give at least one run folder to compare")
    variants = group([read_run(Path(f)) for f in folders])
    summaries = [v.summary() for v in variants]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    curves = {v.name: v.curve() for v in variants}
    plots = [_plot(curves, "tokens", "tokens seen", out / "loss_vs_tokens.png"), _plot(curves, "flops", "training FLOPs (6N + attention)", out / "loss_vs_flops.png")]
    result = {"question": question, "variants": summaries, "curves": curves, "runs": [r for v in variants for r in (run["folder"] for run in v.runs)],
              "plots": [p.name for p in plots]}
    atomic_write_json(out / "compare.json", result)
    atomic_write_text(out / "compare.md", report_markdown(summaries, plots, question))
    return result


def report_markdown(summaries: list[dict], plots: list[Path], question: str = "") -> str:
    note = ("Validation loss at the last evaluation every seed of a variant reached: mean ± sample std over seeds; "
            "ppl = exp(mean loss); Δ against the first variant.")
    images = "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    asked = f"{question}\n\n" if question else ""
    return f"# Pretraining comparison\n\n{asked}{note}\n\n{markdown_table(HEADERS, table_rows(summaries))}\n\n{images}\n"


def _plot(curves: dict[str, list[dict]], axis: str, label: str, path: Path) -> Path:
    """Mean validation loss per variant against `axis`, the seeds' min-max band shaded (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, curve in curves.items():
        points = [c for c in curve if c[axis] > 0]  # step 0 has no place on a log axis
        xs = [c[axis] for c in points]
        (line,) = ax.plot(xs, [c["mean"] for c in points], marker="o", markersize=2.5, label=name)
        ax.fill_between(xs, [c["min"] for c in points], [c["max"] for c in points], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("validation loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"validation loss vs {axis} (mean over seeds, min-max band)", fontsize=9)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    plt.close(fig)
    return path
