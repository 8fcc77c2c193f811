"""mindset run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import console, out_option, quiet_transformers, run_folder


def run(
    recipe: Path = typer.Argument(..., help="recipe YAML file"),
    out: Optional[Path] = out_option(None, "the run folder (default runs/<name>)"),
    name: Optional[str] = typer.Option(None, help="run folder name under runs/ (default: the recipe's name); or give the whole folder with -o"),
    device: Optional[str] = typer.Option(None, help="override the recipe's device"),
    overwrite: bool = typer.Option(False, "--overwrite", help="run again into an existing run folder (each step replaces its outputs)"),
) -> None:
    """Run a recipe: its steps in order, writing runs/<name>/ with config, metrics.json and report.md."""
    quiet_transformers()
    from mindset.recipes import run_recipe

    runs_dir, name = run_folder(out, name)
    run_recipe(recipe, runs_dir=runs_dir, name=name, device=device, console=console, overwrite=overwrite)


def register(app: typer.Typer) -> None:
    app.command()(run)
