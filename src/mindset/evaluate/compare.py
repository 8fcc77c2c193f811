"""One table comparing runs: tasks (and metrics) as rows, models as columns, deltas against the first.

Each cell is `mean ± standard error`. A delta's standard error is paired when both runs scored the same
documents (the standard error of the per-document differences: the honest one, much smaller than the
unpaired one when models agree on most documents), else sqrt(se1² + se2²). A delta is marked `*` when
|delta| > 1.96 se (p < 0.05, two-sided, normal approximation) and `**` when > 2.58 (p < 0.01).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mindset.errors import MindsetError
from mindset.evaluate.metrics import mean_and_stderr


def display_task(name: str) -> str:
    from mindset.evaluate.suites import display_name

    return display_name(name)


def delta(base: dict, other: dict, metric: str) -> dict[str, Any]:
    """other - base for one task's metric, with its standard error and significance."""
    b, o = base["metrics"][metric], other["metrics"][metric]
    diff = o["value"] - b["value"]
    xs, ys = base.get("doc_scores", {}).get(metric), other.get("doc_scores", {}).get(metric)
    same_docs = base.get("docs_hash") is not None and base.get("docs_hash") == other.get("docs_hash")
    paired = same_docs and xs is not None and ys is not None and len(xs) == len(ys) and len(xs) > 1
    if paired:
        _, se = mean_and_stderr([y - x for x, y in zip(xs, ys)])
    else:
        se = math.sqrt((b["stderr"] or 0.0) ** 2 + (o["stderr"] or 0.0) ** 2)
    z = abs(diff) / se if se else (math.inf if diff else 0.0)
    marker = "**" if z > 2.58 else "*" if z > 1.96 else ""
    return {"delta": diff, "stderr": se, "paired": paired, "z": z, "significant": marker}


def comparison(runs: list[dict]) -> dict[str, Any]:
    """Rows (task, metric) over every run; a run lacking a task gets an empty cell."""
    if not runs:
        raise MindsetError("nothing to compare: give at least one run folder")
    labels = _unique([r.get("label") or r["model"] for r in runs])
    rows = []
    keys = []
    for run in runs:
        for task, result in run["tasks"].items():
            for metric in result["metrics"]:
                if (task, metric) not in keys:
                    keys.append((task, metric))
    base = runs[0]
    for task, metric in keys:
        row = {"task": task, "metric": metric, "chance": None, "cells": []}
        for run in runs:
            result = run["tasks"].get(task)
            if result is None or metric not in result["metrics"]:
                row["cells"].append(None)
                continue
            row["chance"] = row["chance"] if row["chance"] is not None else result.get("chance", {}).get(metric)
            cell = {**result["metrics"][metric], "n": result["n"]}
            base_result = base["tasks"].get(task)
            if run is not base and base_result is not None and metric in base_result["metrics"]:
                cell["vs_first"] = delta(base_result, result, metric)
            row["cells"].append(cell)
        rows.append(row)
    return {"models": labels, "sources": [r.get("source") for r in runs], "rows": rows}


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _fmt(value: float | None, stderr: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f} ± {stderr:.3f}" if stderr is not None else f"{value:.3f}"


def table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for rich / markdown: task, metric, chance, n, first model, then each other with its delta."""
    models = data["models"]
    headers = ["task", "metric", "chance", "n", models[0]]
    for name in models[1:]:
        headers += [name, f"Δ {name}"]
    rows = []
    for row in data["rows"]:
        cells = row["cells"]
        n = next((c["n"] for c in cells if c), "")
        chance = "" if row["chance"] is None else f"{row['chance']:.2f}"
        line = [display_task(row["task"]), row["metric"], chance, str(n), _fmt(cells[0]["value"], cells[0]["stderr"]) if cells[0] else "—"]
        for cell in cells[1:]:
            line.append(_fmt(cell["value"], cell["stderr"]) if cell else "—")
            d = cell.get("vs_first") if cell else None
            line.append(f"{d['delta']:+.3f} ± {d['stderr']:.3f}{d['significant']}" if d else "—")
        rows.append(line)
    return headers, rows


def write_comparison(data: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """comparison.md and comparison.json in `out` (a folder), the same numbers in both."""
    from mindset.fileio import atomic_write_json, atomic_write_text
    from mindset.tables import markdown_table

    out = Path(out)
    headers, rows = table(data)
    note = "Cells: mean ± standard error. Δ: against the first column, paired by document when both scored the same ones; * p<0.05, ** p<0.01."
    atomic_write_text(out / "comparison.md", markdown_table(headers, rows) + "\n\n" + note + "\n")
    atomic_write_json(out / "comparison.json", data)
    return out / "comparison.md", out / "comparison.json"
