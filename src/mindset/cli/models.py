"""mindset inspect: one model's architecture, or with --diff what differs between two models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import MODEL_HELP, DeviceOpt, DtypeOpt, ModelArg, console, load_model, out_option


def inspect(
    model: str = ModelArg,
    diff: Optional[str] = typer.Option(None, "--diff", help=f"compare with this model ({MODEL_HELP}): shapes, parameter counts, changed tensors"),
    top: int = typer.Option(20, "--top", min=0, help="with --diff: list at most this many changed tensors, largest relative change first (0: all)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    out: Optional[Path] = out_option(None, "also write the summary (with --diff: the diff) to this JSON file"),
) -> None:
    """Architecture table, per-layer shapes when layers differ, and parameters by component; --diff B compares with B."""
    from mindset.fileio import atomic_write_json
    from mindset.tables import rich_table

    loaded = load_model(model, device, dtype)
    if diff is not None:
        other = load_model(diff, device, dtype)
        data, tables = _diff(loaded, other, top)
    else:
        console.print(f"[bold]{loaded.source.describe()}[/]")
        data, tables = _summary(loaded)
    for title, headers, rows in tables:
        console.print(rich_table(title, headers, rows))
    if out:
        atomic_write_json(out, data)


def _summary(loaded):
    from mindset.models.summary import summarize, summary_tables

    summary = summarize(loaded.model)
    return summary, summary_tables(summary)


def _diff(loaded, other, top: int):
    from mindset.models.diff import diff_models, diff_tables, identical

    result = diff_models(loaded.model, other.model, top=top or None)
    console.print(f"[bold]A = {loaded.source.describe()}\nB = {other.source.describe()}[/]")
    if identical(result):
        console.print("no differences: same config, shapes and tensors")
    return result, diff_tables(result)


def register(app: typer.Typer) -> None:
    app.command()(inspect)
