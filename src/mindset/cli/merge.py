"""mindset merge."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import console
from mindset.errors import MindsetError


def parse_size(text: str) -> int:
    """--shard-size as bytes (mindset.merge.sizes reads it), or an error that names the option."""
    from mindset.merge.sizes import parse_size as to_bytes

    try:
        return to_bytes(text)
    except ValueError as err:
        raise MindsetError(f"--shard-size: {err}") from None


def merge(
    config: Path = typer.Argument(..., help="a mergekit-compatible merge config (YAML)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output model folder (written atomically)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (layers and their sources, parameters, bytes) and stop"),
    lazy: bool = typer.Option(True, "--lazy/--no-lazy", help="map each input file only while its tensor is merged (low memory); --no-lazy keeps them mapped"),
    shard_size: str = typer.Option("5GB", "--shard-size", help="largest output shard (5GB, 500MB, 2GiB)"),
    seed: int = typer.Option(0, help="seed for methods that draw random masks (dare_ties, dare_linear)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing output folder"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Merge models as a mergekit YAML config says: exact mergekit arithmetic, streamed, low memory."""
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read if transformers is imported (tokenizers); a plain merge never imports it
    from mindset.merge import execute_plan, plan_merge
    from mindset.merge.report import LAYER_HEADERS, layer_rows, summary_rows
    from mindset.models.summary import human_bytes
    from mindset.tables import rich_table

    if out is None and not dry_run:
        raise MindsetError("give the output folder with -o OUT (or --dry-run to only print the plan)")
    shard_bytes = parse_size(shard_size)
    plan = plan_merge(config, seed=seed)
    if dry_run:
        console.print(rich_table(f"Merge plan: {config}", ["", ""], summary_rows(plan)))
        console.print(rich_table("Output layers", LAYER_HEADERS, layer_rows(plan)))
        return
    result = execute_plan(plan, out, shard_bytes=shard_bytes, lazy=lazy, progress=progress, overwrite=overwrite)
    console.print(
        f"merged [bold]{result.folder}[/]: {plan.num_layers} layers, {result.parameters:,} parameters, "
        f"{human_bytes(result.bytes)} in {result.shards} shard{'s' if result.shards > 1 else ''}, {result.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command()(merge)
