"""mindset merge."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import OverwriteOpt, console, options_from, out_option
from mindset.errors import MindsetError

if TYPE_CHECKING:
    from mindset.merge.steps import MergeParams

UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """'5GB', '500MB', '2GiB', a byte count, or mergekit's '5B' (five billion bytes)."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+b", value):
        return int(value[:-1]) * 10**9
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?)?", value)
    if not match:
        raise MindsetError(f"--shard-size: cannot read {text!r}; write e.g. 5GB, 500MB or 2GiB")
    number, unit, binary = match.groups()
    scale = (1024 ** (1 + "kmgt".index(unit)) if binary else UNITS[unit]) if unit else 1
    size = int(float(number) * scale)
    if size < 1:
        raise MindsetError("--shard-size must be at least one byte")
    return size


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
    shard_bytes = parse_size(params.shard_size)
    plan = plan_merge(config, seed=params.seed)
    if dry_run:
        console.print(rich_table(f"Merge plan: {config}", ["", ""], summary_rows(plan)))
        console.print(rich_table("Output layers", LAYER_HEADERS, layer_rows(plan)))
        return
    result = execute_plan(plan, out, shard_bytes=shard_bytes, lazy=params.lazy, progress=progress, overwrite=overwrite)
    console.print(
        f"merged [bold]{result.folder}[/]: {plan.num_layers} layers, {result.parameters:,} parameters, "
        f"{human_bytes(result.bytes)} in {result.shards} shard{'s' if result.shards > 1 else ''}, {result.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.command()(merge)
