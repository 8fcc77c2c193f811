"""The `mindset` command. Each capability adds its commands here; heavy imports happen inside them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from mindset.errors import MindsetError

app = typer.Typer(
    name="mindset",
    help="Surgery on real transformer language models, and honest measurements of what it does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)
state = {"debug": False}

DEFAULT_MODEL = "smollm2-135m"
ModelArg = typer.Argument(DEFAULT_MODEL, help="a name (smollm2-135m, tiny-llama, tiny-gpt2), an HF model folder or a .gguf file")
DeviceOpt = typer.Option("auto", help="auto, cpu, cuda or cuda:N")
DtypeOpt = typer.Option("auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16 or float16")


def _version(value: bool) -> None:
    if value:
        import mindset

        console.print(f"mindset {mindset.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="show full tracebacks for errors"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
) -> None:
    state["debug"] = debug


def _quiet_transformers() -> None:
    """Warnings and per-load progress bars from transformers are noise on a command line."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _load(spec: str, device: str, dtype: str):
    _quiet_transformers()
    from mindset.models import load
    from mindset.models.gguf_cache import is_cached
    from mindset.models.loading import EMBEDDED, locate_embedded

    gguf = locate_embedded(spec) if spec in EMBEDDED else (Path(spec) if spec.lower().endswith(".gguf") and Path(spec).is_file() else None)
    if gguf is not None and not is_cached(gguf):
        err_console.print(f"[dim]dequantizing {gguf.name} into a safetensors cache (first load only; later loads read the cache)[/]")
    return load(spec, device=device, dtype=dtype)


def _params(model_class, option_names: dict[str, str], **values: Any):
    """Build a pydantic params object from CLI options; errors name the option."""
    from pydantic import ValidationError

    try:
        return model_class(**values)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise MindsetError(f"{option_names.get(field, field)}: {first['msg']}") from None


@app.command()
def inspect(
    model: str = ModelArg,
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the summary as JSON here"),
) -> None:
    """Architecture table and parameters by component."""
    from mindset.fileio import atomic_write_json
    from mindset.models.summary import summarize, summary_tables
    from mindset.tables import rich_table

    loaded = _load(model, device, dtype)
    console.print(f"[bold]{loaded.source.describe()}[/]")
    summary = summarize(loaded.model)
    for title, headers, rows in summary_tables(summary):
        console.print(rich_table(title, headers, rows))
    if json_out:
        atomic_write_json(json_out, summary)


SAMPLING_OPTIONS = {"temperature": "--temperature", "top_p": "--top-p", "top_k": "--top-k", "max_new_tokens": "--max-new-tokens", "seed": "--seed"}


@app.command()
def chat(
    model: str = ModelArg,
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="answer this one message and exit ('-' reads it from stdin)"),
    system: Optional[str] = typer.Option(None, help="system message"),
    temperature: float = typer.Option(0.7, help="0 is greedy and deterministic"),
    top_p: float = typer.Option(0.9, "--top-p", help="nucleus sampling mass"),
    top_k: int = typer.Option(0, "--top-k", help="sample from the k most likely tokens (0: all)"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="longest answer in tokens"),
    seed: int = typer.Option(0, help="sampling seed"),
    raw: bool = typer.Option(False, help="complete the prompt as plain text, without the chat template"),
    fast_cpu: bool = typer.Option(True, "--fast-cpu/--no-fast-cpu", help="batched matrix-vector path for CPU decoding"),
    stats: bool = typer.Option(False, help="print tokens/s after each answer (to stderr)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
) -> None:
    """Chat with a model: tokens stream as they are generated. --prompt answers once and exits."""
    from mindset.chat import ChatSession, SamplingParams, generate

    params = _params(SamplingParams, SAMPLING_OPTIONS, temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=max_new_tokens, seed=seed)
    if prompt == "-":
        prompt = sys.stdin.read()
    if prompt is not None and not prompt.strip():
        raise MindsetError("the prompt is empty")
    loaded = _load(model, device, dtype)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def report(result) -> None:
        if stats:
            err_console.print(f"[dim]{len(result.tokens)} tokens, {result.tokens_per_second:.1f} tokens/s, {result.finish_reason}[/]")

    if prompt is not None:
        result = generate(loaded, prompt, params, chat=not raw, system=system, on_text=write, fast_cpu=fast_cpu)
        write("\n")
        report(result)
        return
    if raw:
        raise MindsetError("--raw needs --prompt: an interactive chat always uses the chat template")
    session = ChatSession(loaded, params, system=system)
    console.print(f"[bold]{loaded.name}[/] — /reset forgets the conversation, /exit or Ctrl-D leaves")
    while True:
        try:
            message = console.input("[bold green]you ›[/] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        command = message.strip().lower()
        if command in ("/exit", "/quit"):
            return
        if command == "/reset":
            session.reset()
            console.print("[dim]conversation forgotten[/]")
            continue
        if not command:
            continue
        console.print("[bold blue]bot ›[/] ", end="")
        try:
            result = session.reply(message, on_text=write)
        except KeyboardInterrupt:
            session.messages.pop()  # the unanswered question
            console.print("\n[dim]interrupted[/]")
            continue
        write("\n")
        report(result)
        if session.dropped_turns:
            err_console.print(f"[dim]{session.dropped_turns} oldest exchange(s) dropped to fit the context[/]")


@app.command()
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
    params = _params(PplParams, names, text_file=text, split=split, context=context, stride=stride, batch_size=batch_size, max_tokens=max_tokens)
    body, source = read_text(params)
    loaded = _load(model, device, dtype)
    result = perplexity(loaded, body, context=params.context, stride=params.stride, batch_size=params.batch_size, max_tokens=params.max_tokens, progress=True)
    console.print(
        f"perplexity [bold]{result.perplexity:.3f}[/] on {source}: {result.tokens:,} tokens, "
        f"window {result.context}, stride {result.stride}, {result.windows} windows"
    )


@app.command()
def run(
    recipe: Path = typer.Argument(..., help="recipe YAML file"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run folders go"),
    name: Optional[str] = typer.Option(None, help="run folder name (default: the recipe's name)"),
    device: Optional[str] = typer.Option(None, help="override the recipe's device"),
) -> None:
    """Run a recipe: its steps in order, writing runs/<name>/ with config, metrics.json and report.md."""
    _quiet_transformers()
    from mindset.recipes import run_recipe

    run_recipe(recipe, runs_dir=runs_dir, name=name, device=device, console=console)


def main() -> None:
    try:
        app()
    except MindsetError as err:
        if state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
