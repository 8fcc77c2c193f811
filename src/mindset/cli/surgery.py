"""mindset surgery ffn-to-memory | memory-to-ffn | knn-lm."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, OverwriteOpt, console, load_model, options_from, out_option
from mindset.errors import MindsetError
from mindset.fileio import check_output

if TYPE_CHECKING:
    from mindset.surgery.steps import FfnToMemoryParams

surgery_app = typer.Typer(help="Change a model's structure and save the result as a model folder.", no_args_is_help=True)
OutputOpt = out_option(..., "folder to write the changed model to")


@surgery_app.command("ffn-to-memory")
@options_from("mindset.surgery.steps:FfnToMemoryParams", exclude=("save",))
def ffn_to_memory(
    model: str = ModelArg,
    output: Path = OutputOpt,
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    *,
    params: FfnToMemoryParams,
) -> None:
    """Turn feed-forward blocks into memory layers; `mindset.models.load(OUT)` restores them."""
    from mindset.models import save
    from mindset.surgery.memory import ffn_to_memory as convert
    from mindset.surgery.memory import memory_layers

    _check_output(output, overwrite)
    loaded = load_model(model, device, dtype)
    converted = convert(loaded, params.layers, inplace=True, **params.model_dump(exclude={"layers", "save"}))
    save(converted, output, overwrite=overwrite)
    converted_layers = memory_layers(converted)
    console.print(f"{len(converted_layers)} layer(s) now {params.kind} memory with k={params.k}: {', '.join(map(str, converted_layers))}; saved to [bold]{output}[/]")


@surgery_app.command("memory-to-ffn")
def memory_to_ffn(model: str = ModelArg, output: Path = OutputOpt, overwrite: bool = OverwriteOpt, device: str = DeviceOpt, dtype: str = DtypeOpt) -> None:
    """Turn every memory layer back into its dense feed-forward block."""
    from mindset.models import save
    from mindset.surgery.memory import memory_layers
    from mindset.surgery.memory import memory_to_ffn as convert

    _check_output(output, overwrite)
    loaded = load_model(model, device, dtype)
    before = memory_layers(loaded)
    if not before:
        raise MindsetError(f"{model} has no memory layers")
    save(convert(loaded, inplace=True), output, overwrite=overwrite)
    console.print(f"{len(before)} memory layer(s) turned back into dense blocks; saved to [bold]{output}[/]")


@surgery_app.command("knn-lm")
def knn_lm(
    model: str = ModelArg,
    output: Path = OutputOpt,
    text: Optional[Path] = typer.Option(None, "--text", help="build the datastore from this UTF-8 file (default: the corpus split)"),
    split: str = typer.Option("train", help="corpus split to build from when no --text"),
    max_tokens: int = typer.Option(50_000, "--max-tokens", help="use the first N tokens of the text"),
    context: int = typer.Option(512, help="window in tokens while building"),
    k: int = typer.Option(16, "--k", help="neighbours per token"),
    lam: float = typer.Option(0.25, "--lambda", help="weight of the kNN distribution"),
    temperature: float = typer.Option(20.0, help="softmax temperature over negative squared distances"),
    fallback: Optional[float] = typer.Option(100.0, help="squared distance of the virtual neighbour that votes for the model itself (negative: none)"),
    backend: str = typer.Option("torch", help="store backend: torch or faiss:<factory>"),
    capacity: Optional[int] = typer.Option(None, help="store capacity (default: the tokens it is built from, at least 4096)"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Attach a kNN-LM datastore to the LM head, built from a text (keys: final hidden states, values: next tokens)."""
    from mindset.data import corpus_text
    from mindset.evaluate.steps import PplParams, read_text
    from mindset.memory.knn_lm import add_text
    from mindset.models import save
    from mindset.surgery.memory import attach_knn_lm

    _check_output(output, overwrite)
    body = read_text(PplParams(text_file=text))[0] if text else corpus_text(split)
    loaded = load_model(model, device, dtype)
    size = capacity or max(4096, max_tokens)
    attached = attach_knn_lm(loaded, backend, k=k, lam=lam, temperature=temperature, fallback=fallback if fallback is None or fallback >= 0 else None, capacity=size, inplace=True)
    head = attached.model.get_output_embeddings()
    added = add_text(attached.model, attached.tokenizer, head.store, body, context=context, max_tokens=max_tokens, label=str(text or f"austen/{split}"), progress=True)
    save(attached, output, overwrite=overwrite)
    console.print(f"kNN-LM datastore: {added:,} entries ({head.store.describe()}); saved to [bold]{output}[/]")


def _check_output(output: Path, overwrite: bool) -> None:
    check_output(output, overwrite)


def register(app: typer.Typer) -> None:
    app.add_typer(surgery_app, name="surgery")
