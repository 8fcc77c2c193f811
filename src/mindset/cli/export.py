"""mindset export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mindset.cli.common import ModelArg, OverwriteOpt, console, load_model, options_from, out_option

if TYPE_CHECKING:
    from mindset.export.steps import ExportParams


@options_from("mindset.export.steps:ExportParams", exclude=("filename",), names={"dtype": "--out-type"})
def export(model: str = ModelArg, out: Path = out_option(..., "the .gguf file to write"), overwrite: bool = OverwriteOpt, *, params: ExportParams) -> None:
    """Export a Llama-architecture model as GGUF for llama.cpp / Ollama."""
    from mindset.export import export_gguf
    from mindset.fileio import check_output

    check_output(out, overwrite)  # before the load: a refusal costs nothing
    loaded = load_model(model, "cpu", "float32")
    written = export_gguf(loaded, out, params.dtype, params.modelfile, overwrite=overwrite)
    console.print(f"wrote {written['gguf']} ({written['bytes'] / 2**20:.1f} MiB, {params.dtype})")
    if "modelfile" in written:
        console.print(f"wrote {written['modelfile']}: ollama create NAME -f {written['modelfile']}")


def register(app: typer.Typer) -> None:
    app.command()(export)
