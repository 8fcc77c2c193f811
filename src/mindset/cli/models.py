"""mindset inspect."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, console, load_model, out_option


def inspect(
    model: str = ModelArg,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    out: Optional[Path] = out_option(None, "also write the summary to this JSON file"),
) -> None:
    """Architecture table and parameters by component."""
    from mindset.fileio import atomic_write_json
    from mindset.models.summary import summarize, summary_tables
    from mindset.tables import rich_table

    loaded = load_model(model, device, dtype)
    console.print(f"[bold]{loaded.source.describe()}[/]")
    summary = summarize(loaded.model)
    for title, headers, rows in summary_tables(summary):
        console.print(rich_table(title, headers, rows))
    if out:
        atomic_write_json(out, summary)


def register(app: typer.Typer) -> None:
    app.command()(inspect)
