"""mindset chat MODEL --memory DIR: the chat REPL over mindset.agent.Agent (every turn stored and recalled)."""

from __future__ import annotations

from pathlib import Path

from mindset.cli.common import console, err_console
from mindset.errors import MindsetError


def chat_with_memory(loaded, folder: Path, params, *, system: str | None, prompt: str | None, raw: bool, write, backend: str | None = None,
                     backend_model: str | None = None, backend_key: str | None = None, embed_model: str | None = None,
                     reflect_every: int = 0, layout: str | None = None) -> None:
    """--prompt answers once (with memory) and exits; otherwise turns until /exit or end of input.
    The backend is reached (its model list read) before the memory folder is opened."""
    from mindset.agent import Agent
    from mindset.agent.commands import is_command
    from mindset.agent.embed import resolve_embedder

    if raw:
        raise MindsetError("--raw cannot be used with --memory: memories go into the chat template's system message")
    remote = None
    if backend is not None:
        from mindset.agent.backend import Backend

        remote = Backend(backend, backend_model, backend_key)
    agent = Agent(loaded, folder, params=params, system=system, embed=resolve_embedder(embed_model, loaded), backend=remote,
                  reflect_every=reflect_every, **({"layout": layout} if layout is not None else {}))
    try:
        if prompt is not None:
            if is_command(prompt):
                write(agent.reply(prompt))
            else:
                agent.reply(prompt, on_text=write)
            write("\n")
            return
        _repl(agent, write)
    finally:
        agent.close()


def _repl(agent, write) -> None:
    from mindset.agent.commands import is_command
    from mindset.cli.chat import read_messages

    who = f"{agent.backend.model} at {agent.backend.base}" if agent.backend is not None else agent.loaded.name
    console.print(f"[bold]{who}[/] with memory in {agent.db.path} — /help lists the memory commands, "
                  "/reset starts a new conversation, /exit or Ctrl-D leaves")
    for message in read_messages(agent.session.reset, "conversation forgotten (the memories stay)"):
        try:
            if is_command(message):
                console.print(agent.reply(message), markup=False, highlight=False, soft_wrap=True)
                continue
            console.print("[bold blue]bot ›[/] ", end="")
            agent.reply(message, on_text=write)
            write("\n")
        except MindsetError as err:
            err_console.print(str(err), style="red", markup=False, highlight=False)
        except KeyboardInterrupt:
            if agent.session.messages and agent.session.messages[-1]["role"] == "user":
                agent.session.messages.pop()  # the unanswered question: nothing of it was stored
            console.print("\n[dim]interrupted[/]")
