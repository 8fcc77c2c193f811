"""The `mindset` command: one typer app; each capability contributes its commands from a module here.

A module defines its commands and `register(app)`; adding a capability adds one name to COMMAND_MODULES.
Heavy imports (torch, transformers) happen inside commands, so `mindset --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from mindset.cli import interrupt
from mindset.cli.common import console, err_console, state
from mindset.errors import MindsetError

app = typer.Typer(
    name="mindset",
    help="Surgery on real transformer language models, and honest measurements of what it does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    cls=interrupt.InterruptibleGroup,
)

COMMAND_MODULES = ("models", "chat", "evaluate", "recipes", "serve", "export", "train", "surgery", "memory", "merge", "map", "circuits")


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


for _name in COMMAND_MODULES:
    importlib.import_module(f"mindset.cli.{_name}").register(app)


def main() -> None:
    try:
        app()
    except MindsetError as err:
        if state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except interrupt.Interrupted:
        if state["debug"]:
            raise
        err_console.print(interrupt.message(sys.argv[1:]), markup=False, highlight=False, soft_wrap=True)
        sys.exit(interrupt.EXIT_CODE)
