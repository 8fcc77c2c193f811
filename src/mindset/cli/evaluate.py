"""mindset ppl."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, console, load_model, params_from_options

def ppl(
    model: str = ModelArg,
    text: Optional[Path] = typer.Option(None, "--text", help="a UTF-8 text file (default: the shipped Austen corpus)"),
    split: str = typer.Option("valid", help="corpus split when no --text: train or valid"),
    context: Optional[int] = typer.Option(None, help="window in tokens (default: model context, at most 1024)"),
    stride: Optional[int] = typer.Option(None, help="tokens between windows (default: half the window)"),
    batch_size: int = typer.Option(1, "--batch-size", help="windows per forward pass"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="score only the first N tokens"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Perplexity of a text, with a sliding window when it is longer than the context."""
    from mindset.evaluate.perplexity import perplexity
    from mindset.evaluate.steps import PplParams, read_text

    names = {"text_file": "--text", "split": "--split", "context": "--context", "stride": "--stride", "batch_size": "--batch-size", "max_tokens": "--max-tokens"}
    params = params_from_options(PplParams, names, text_file=text, split=split, context=context, stride=stride, batch_size=batch_size, max_tokens=max_tokens)
    body, source = read_text(params)
    loaded = load_model(model, device, dtype)
    result = perplexity(loaded, body, context=params.context, stride=params.stride, batch_size=params.batch_size, max_tokens=params.max_tokens, progress=True)
    console.print(
        f"perplexity [bold]{result.perplexity:.3f}[/] on {source}: {result.tokens:,} tokens, "
        f"window {result.context}, stride {result.stride}, {result.windows} windows"
    )


def register(app: typer.Typer) -> None:
    app.command()(ppl)
