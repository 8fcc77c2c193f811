"""mindset export."""

from __future__ import annotations

from pathlib import Path

import typer

from mindset.cli.common import ModelArg, console, load_model, params_from_options


def export(
    model: str = ModelArg,
    out: Path = typer.Option(..., "-o", "--out", help="the .gguf file to write"),
    format: str = typer.Option("gguf", "--format", help="gguf (the only format so far)"),
    dtype: str = typer.Option("f16", "--dtype", help="f32, f16 or q8_0 (norms always stay f32)"),
    modelfile: bool = typer.Option(True, "--modelfile/--no-modelfile", help="write an Ollama Modelfile beside it"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing OUT"),
) -> None:
    """Export a Llama-architecture model as GGUF for llama.cpp / Ollama."""
    from mindset.export import export_gguf
    from mindset.export.steps import ExportParams
    from mindset.fileio import check_output

    params_from_options(ExportParams, {"format": "--format", "dtype": "--dtype"}, format=format, dtype=dtype)
    check_output(out, overwrite)  # before the load: a refusal costs nothing
    loaded = load_model(model, "cpu", "float32")
    written = export_gguf(loaded, out, dtype, modelfile, overwrite=overwrite)
    console.print(f"wrote {written['gguf']} ({written['bytes'] / 2**20:.1f} MiB, {dtype})")
    if "modelfile" in written:
        console.print(f"wrote {written['modelfile']}: ollama create NAME -f {written['modelfile']}")


def register(app: typer.Typer) -> None:
    app.command()(export)
