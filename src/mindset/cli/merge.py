"""mindset merge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import OverwriteOpt, console, options_from, out_option
from mindset.errors import MindsetError

if TYPE_CHECKING:
    from mindset.merge.steps import MergeParams


@options_from("mindset.merge.steps:MergeParams", exclude=("output", "load"), shared=("config",))
def merge(
    config: Path = typer.Argument(..., help="a mergekit-compatible merge config (YAML)"),
    out: Optional[Path] = out_option(None, "output model folder (written atomically)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (layers and their sources, parameters, bytes) and stop"),
    overwrite: bool = OverwriteOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    *,
    params: MergeParams,
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
    plan = plan_merge(config, seed=params.seed)
    if dry_run:
        console.print(rich_table(f"Merge plan: {config}", ["", ""], summary_rows(plan)))
        console.print(rich_table("Output layers", LAYER_HEADERS, layer_rows(plan)))
        return
    result = execute_plan(plan, out, shard_bytes=params.shard_size, lazy=params.lazy, progress=progress, overwrite=overwrite)
    console.print(
        f"merged [bold]{result.folder}[/]: {plan.num_layers} layers, {result.parameters:,} parameters, "
        f"{human_bytes(result.bytes)} in {result.shards} shard{'s' if result.shards > 1 else ''}, {result.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command()(merge)
