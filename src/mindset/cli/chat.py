"""mindset chat."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mindset.cli.common import DeviceOpt, DtypeOpt, ModelArg, console, err_console, load_model, options_from
from mindset.errors import MindsetError

if TYPE_CHECKING:
    from mindset.agent.layout import LayoutOptions
    from mindset.chat.sampling import SamplingParams


@options_from("mindset.agent.layout:LayoutOptions", param="layout", prefix="memory-", optional=True)
@options_from("mindset.chat.sampling:SamplingParams", defaults={"temperature": 0.7, "top_p": 0.9})
def chat(
    model: str = ModelArg,
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="answer this one message and exit ('-' reads it from stdin)"),
    system: Optional[str] = typer.Option(None, help="system message"),
    raw: bool = typer.Option(False, help="complete the prompt as plain text, without the chat template"),
    fast_cpu: bool = typer.Option(True, "--fast-cpu/--no-fast-cpu", help="batched matrix-vector path for CPU decoding"),
    stats: bool = typer.Option(False, help="print tokens/s after each answer (to stderr)"),
    memory: Optional[Path] = typer.Option(None, help="remember across sessions in this folder (a SQLite file inside); enables /remember, /recall, /sql ..."),
    backend: Optional[str] = typer.Option(None, help="with --memory: replies from this OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1); memory and embeddings stay local"),
    backend_model: Optional[str] = typer.Option(None, help="the model name to ask --backend for (default: the first it lists)"),
    backend_key: Optional[str] = typer.Option(None, envvar="MINDSET_BACKEND_KEY", help="API key for --backend (or MINDSET_BACKEND_KEY)"),
    embed_model: Optional[str] = typer.Option(None, help="with --memory: embed memories with this model (all-minilm-l6-v2, a sentence-transformers folder, or a model spec) instead of MODEL's hidden states"),
    reflect_every: int = typer.Option(0, min=0, help="with --memory: reflect on the recent memories after this many new ones (0: never)"),
    device: str = DeviceOpt,
    dtype: str = DtypeOpt,
    *,
    params: SamplingParams,
    layout: Optional[LayoutOptions],
) -> None:
    """Chat with a model: tokens stream as they are generated. --prompt answers once and exits."""
    from mindset.chat import ChatSession, generate

    if prompt == "-":
        prompt = sys.stdin.read()
    if prompt is not None and not prompt.strip():
        raise MindsetError("the prompt is empty")
    loaded = load_model(model, device, dtype)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def report(result) -> None:
        if stats:
            err_console.print(f"[dim]{len(result.tokens)} tokens, {result.tokens_per_second:.1f} tokens/s, {result.finish_reason}[/]")

    if memory is not None:
        from mindset.cli.chat_memory import chat_with_memory

        return chat_with_memory(loaded, memory, params, system=system, prompt=prompt, raw=raw, write=write, backend=backend,
                                backend_model=backend_model, backend_key=backend_key, embed_model=embed_model, reflect_every=reflect_every,
                                layout=layout.layout if layout is not None else None)
    if backend is not None or embed_model is not None or reflect_every or layout is not None:
        raise MindsetError("--backend, --embed-model, --reflect-every and --memory-layout work with --memory DIR: give a memory folder")
    if prompt is not None:
        result = generate(loaded, prompt, params, chat=not raw, system=system, on_text=write, fast_cpu=fast_cpu)
        write("\n")
        report(result)
        return
    if raw:
        raise MindsetError("--raw needs --prompt: an interactive chat always uses the chat template")
    session = ChatSession(loaded, params, system=system)
    console.print(f"[bold]{loaded.name}[/] — /reset forgets the conversation, /exit or Ctrl-D leaves")
    for message in read_messages(session.reset, "conversation forgotten"):
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


def read_messages(reset, reset_note: str):
    """The REPL's input side, shared by the plain and the memory chat: yields each non-empty message;
    /exit, /quit, Ctrl-D or Ctrl-C at the prompt end it; /reset calls `reset` and prints `reset_note`."""
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
            reset()
            console.print(f"[dim]{reset_note}[/]")
        elif command:
            yield message


def register(app: typer.Typer) -> None:
    app.command()(chat)
