"""mindset surgery ffn-to-memory | memory-to-ffn | knn-lm, and one command per architecture edit
(widen-ffn, add-heads, insert-layers, embedding-shim, ...: the rows of mindset.surgery.edit_steps.EDITS)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from typer.core import TyperGroup

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, OverwriteOpt, console, load_model, options_from, out_option
from mindset.errors import MindsetError
from mindset.fileio import check_output

if TYPE_CHECKING:
    from mindset.surgery.steps import FfnToMemoryParams


class SurgeryCommands(TyperGroup):
    """The surgery group, plus one command per architecture edit, added when the group is built (when
    `mindset surgery ...` runs): the edit table imports torch, and `mindset --help` must not."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, command in _edit_commands().commands.items():
            self.add_command(command, name)


surgery_app = typer.Typer(help="Change a model's structure and save the result as a model folder.", no_args_is_help=True, cls=SurgeryCommands)
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


def _edit_commands() -> TyperGroup:
    """`widen-ffn` for `widen_ffn` and so on: one command per row of EDITS, its options from the row's parameters model."""
    from mindset.surgery.edit_steps import EDITS

    edits = typer.Typer()
    for name in EDITS:
        edits.command(name.replace("_", "-"), help=EDITS[name].summary)(_edit_command(name))
    return typer.main.get_group(edits)


def _edit_command(name: str):
    from mindset.surgery.edit_steps import EDITS

    def command(model: str = ModelArg, output: Path = OutputOpt, overwrite: bool = OverwriteOpt, device: str = DeviceOpt, dtype: str = DtypeOpt,
                *, params) -> None:
        _run_edit(name, model, output, overwrite, device, dtype, params)

    command.__doc__ = EDITS[name].summary
    return options_from(EDITS[name].params, exclude=("save",))(command)


def _run_edit(name: str, model: str, output: Path, overwrite: bool, device: str, dtype: str, params) -> None:
    """Load, edit, save; print the layers whose shape changed, the parameter count and the edit's time."""
    from rich.table import Table

    from mindset.models import save
    from mindset.surgery.edit_steps import apply_edit

    _check_output(output, overwrite)
    outcome = apply_edit(name, load_model(model, device, dtype), params)
    save(outcome.loaded, output, overwrite=overwrite)
    if outcome.rows:
        table = Table("layer", "before", "after", title=f"layers {name} changed")
        for row in outcome.rows:
            table.add_row(*map(str, row))
        console.print(table)
    edit = ", ".join(f"{k}={v}" for k, v in outcome.edit.items() if k != "op")
    console.print(f"{outcome.line()}\n{edit}\nsaved to [bold]{output}[/]", highlight=False, soft_wrap=True)


@surgery_app.command("gates")
def gates(
    model: str = ModelArg,
    saturated: float = typer.Option(0.95, help="count a head saturated when sigmoid(c) = gate/2 is at least this (grow_saturated's threshold)"),
    closed: float = typer.Option(0.05, help="count a head closed when sigmoid(c) = gate/2 is at most this (prune_closed's threshold)"),
    heads: bool = typer.Option(False, "--heads", help="one row per head instead of one per layer"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Show a gated model's head gates (g = 2·sigmoid(c)): per layer, or per head with --heads."""
    from mindset.surgery.gates import gate_report, gate_summary
    from mindset.tables import rich_table

    loaded = load_model(model, device, dtype)
    if heads:
        rows = [[r["layer"], r["head"], f"{r['gate']:.3f}", f"{r['logit']:+.2f}"] for r in gate_report(loaded)]
        console.print(rich_table("Head gates", ["layer", "head", "gate", "c"], rows))
        return
    rows = [[r["layer"], r["heads"], f"{r['min']:.3f}", f"{r['mean']:.3f}", f"{r['max']:.3f}", r["saturated"], r["closed"]]
            for r in gate_summary(loaded, saturated, closed)]
    console.print(rich_table("Head gates by layer", ["layer", "heads", "min", "mean", "max", f"saturated (≥ {saturated})", f"closed (≤ {closed})"], rows))


def _check_output(output: Path, overwrite: bool) -> None:
    check_output(output, overwrite)


def register(app: typer.Typer) -> None:
    app.add_typer(surgery_app, name="surgery")
