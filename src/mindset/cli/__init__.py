"""The `mindset` command: one typer app; each capability contributes its commands from a module here.

A module defines its commands and `register(app)`; adding a capability adds one name to COMMAND_MODULES.
Heavy imports (torch, transformers) happen inside commands, and a command is built (its options generated
from the parameter models of its capability, which import torch) only when it runs or shows its own help,
so `mindset --help` and `mindset merge` stay fast.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

from mindset.cli import interrupt
from mindset.cli.common import console, err_console, state
from mindset.errors import MindsetError

COMMAND_MODULES = ("models", "chat", "evaluate", "recipes", "serve", "export", "train", "surgery", "memory", "merge", "map", "circuits", "ui", "experiment")


@functools.cache
def _module_app(module: str) -> typer.Typer:
    """The commands one CLI module registers, on a Typer of their own (importing the module is cheap)."""
    sub = typer.Typer()
    importlib.import_module(f"mindset.cli.{module}").register(sub)
    return sub


@functools.cache
def _built(module: str) -> TyperGroup:
    return typer.main.get_group(_module_app(module))


def _plain(value):
    return value.value if isinstance(value, DefaultPlaceholder) else value


def _entries(module: str) -> list[tuple[str, str]]:
    """(name, help) of each command a module registers, read without building it."""
    sub = _module_app(module)
    found = [(c.name or typer.main.get_command_name(c.callback.__name__), _plain(c.help) or inspect.getdoc(c.callback) or "") for c in sub.registered_commands]
    found += [(_plain(g.name), _plain(g.help) or _plain(g.typer_instance.info.help) or "") for g in sub.registered_groups]
    return found


class LazyCommands(interrupt.InterruptibleGroup):
    """The top-level group (Ctrl-C goes through InterruptibleGroup): each command is built when it is looked up to run (or to show its own help); the
    listing in `mindset --help` uses placeholders that carry only a name and a help text."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        self._module_of = {}
        for module in COMMAND_MODULES:
            for name, help_text in _entries(module):
                self._module_of[name] = module
                self.commands[name] = TyperCommand(name, help=help_text)

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in self._module_of:
            return None
        if self._listing:
            return self.commands[cmd_name]
        return _built(self._module_of[cmd_name]).commands[cmd_name]

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            return super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="mindset",
    cls=LazyCommands,
    help="Surgery on real transformer language models, and honest measurements of what it does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


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
