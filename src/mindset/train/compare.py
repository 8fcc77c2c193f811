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
FINETUNE_HEADER = "fine-tune loss"
RECORDS = ("pretrain.json", "finetune.json")  # a pretraining run's record, a fine-tuning run's


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
                **{key: _spread([r[key] for r in rows]) for key in ("canary_accuracy", "finetune_loss") if all(r.get(key) is not None for r in rows)},
            })  # fmt: skip
        return out

    def summary(self) -> dict[str, Any]:
        last = self.curve()[-1]
        speeds = [run["record"]["tokens_per_s"] for run in self.runs if run.get("record", {}).get("tokens_per_s")]
        canaries = [run["record"]["canary_accuracy"] for run in self.runs if run.get("record", {}).get("canary_accuracy") is not None]
        at_last = {key: last[key] for key in ("canary_accuracy", "finetune_loss") if key in last}  # rows that carry them: per seed, at that step
        return {
            "variant": self.name, "seeds": sorted(run.get("seed", 0) for run in self.runs),
            "parameters": round(statistics.fmean(run["rows"][-1].get("parameters", run["parameters"]) for run in self.runs)),
            "step": last["step"], "tokens": last["tokens"], "flops": last["flops"],
            "val_loss": last["mean"], "val_loss_std": last["std"], "val_ppl": math.exp(last["mean"]),
            "tokens_per_s": statistics.fmean(speeds) if speeds else None,
            "canary_accuracy": at_last["canary_accuracy"]["mean"] if "canary_accuracy" in at_last else statistics.fmean(canaries) if canaries else None,
            "canary_accuracy_std": at_last.get("canary_accuracy", {}).get("std"),
            "finetune_loss": at_last.get("finetune_loss", {}).get("mean"), "finetune_loss_std": at_last.get("finetune_loss", {}).get("std"),
        }  # fmt: skip


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def read_run(folder: Path) -> dict:
    """metrics.json of a run folder, with pretrain.json under "record" when the run finished."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise MindsetError(f"{folder}: not a pretraining run folder (no metrics.json); give folders written by `mindset pretrain`")
    run = json.loads(path.read_text())
    if not run.get("rows"):
        raise MindsetError(f"{path} holds no validation rows yet; let the run evaluate at least once")
    for name in RECORDS:
        if (Path(folder) / name).is_file():
            run["record"] = json.loads((Path(folder) / name).read_text())
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


def headers(summaries: list[dict]) -> list[str]:
    """HEADERS, and the fine-tune text's loss where any run has one (a fine-tuning sweep)."""
    return HEADERS + ([FINETUNE_HEADER] if any(s.get("finetune_loss") is not None for s in summaries) else [])


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def table_rows(summaries: list[dict]) -> list[list[Any]]:
    base = summaries[0]["val_loss"]
    extra = len(headers(summaries)) > len(HEADERS)
    rows = []
    for s in summaries:
        rows.append([
            s["variant"], len(s["seeds"]), _count(s["parameters"]), f"{s['tokens']:,.0f}", _pm(s["val_loss"], s["val_loss_std"], 4),
            f"{s['val_ppl']:.2f}", f"{s['val_loss'] - base:+.4f}", f"{s['tokens_per_s']:,.0f}" if s["tokens_per_s"] else "—",
            _pm(s["canary_accuracy"], s.get("canary_accuracy_std"), 3),
            *([_pm(s.get("finetune_loss"), s.get("finetune_loss_std"), 4)] if extra else []),
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
    if all("canary_accuracy" in c for curve in curves.values() for c in curve):
        plots.append(_plot(curves, "tokens", "fine-tuning tokens seen", out / "canaries_vs_tokens.png", "canary_accuracy", "canary accuracy (mean of suites)"))
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
    return f"# Pretraining comparison\n\n{asked}{note}\n\n{markdown_table(headers(summaries), table_rows(summaries))}\n\n{images}\n"


def _plot(curves: dict[str, list[dict]], axis: str, label: str, path: Path, metric: str | None = None, ylabel: str = "validation loss (nats/token)") -> Path:
    """Mean validation loss (or `metric`: a curve key holding mean/min/max) per variant against `axis`,
    the seeds' min-max band shaded (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, curve in curves.items():
        points = [c for c in curve if c[axis] > 0]  # step 0 has no place on a log axis
        xs = [c[axis] for c in points]
        values = [c[metric] if metric else c for c in points]
        (line,) = ax.plot(xs, [v["mean"] for v in values], marker="o", markersize=2.5, label=name)
        ax.fill_between(xs, [v["min"] for v in values], [v["max"] for v in values], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{ylabel.split(' (')[0]} vs {axis} (mean over seeds, min-max band)", fontsize=9)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    plt.close(fig)
    return path
