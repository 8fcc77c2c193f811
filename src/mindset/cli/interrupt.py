"""Ctrl-C, said once for every command: one line, `interrupted; ...`, with how to continue, and exit 130.

typer turns a KeyboardInterrupt into a silent exit 130, so the app's group (`InterruptibleGroup`) turns it
into `Interrupted` before typer sees it, and `mindset.cli.main` prints `message(argv)`. What to say
depends on the command: HINTS maps a command name to a function of its arguments that returns the advice
(the exact command to continue with, where there is one), or None for a plain `interrupted`.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from typer.core import TyperGroup

EXIT_CODE = 130  # 128 + SIGINT, what shells report for a process stopped by Ctrl-C


class Interrupted(Exception):
    """A KeyboardInterrupt, carried past typer (which would swallow it) to `mindset.cli.main`."""


class InterruptibleGroup(TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as err:
            raise Interrupted() from err  # --debug shows where it landed


def _command(args: list[str]) -> str:
    return shlex.join(["mindset", *args])


def _with_flag(args: list[str], flag: str) -> list[str]:
    return args if flag in args else [*args, flag]


def _distill(args: list[str]) -> str:
    again = [a for a in args if a != "--overwrite"]  # resuming must not delete the run it resumes
    return f"run `{_command(_with_flag(again, '--resume'))}` to continue from the last checkpoint"


def _run(args: list[str]) -> str:
    return f"report.md keeps the finished steps; `{_command(_with_flag(args, '--overwrite'))}` runs the recipe again"


def _experiment(args: list[str]) -> str | None:
    if "run" not in args:
        return None
    return f"`{_command(args)}` again continues: finished runs are kept, the interrupted one resumes from its checkpoint"


def _nothing_written(args: list[str]) -> str:
    """These commands write to a temporary name and rename at the end, so an interrupted one left nothing."""
    return "nothing was written"


HINTS: dict[str, Callable[[list[str]], str | None]] = {
    "distill": _distill,
    "run": _run,
    "pretrain": _distill,  # the same --resume
    "experiment": _experiment,
    **dict.fromkeys(("eval", "map", "circuits", "merge", "export", "surgery"), _nothing_written),
}


def message(args: list[str]) -> str:
    """The one line for an interrupted `mindset ARGS`."""
    names = [a for a in args if not a.startswith("-")]
    hint = HINTS.get(names[0])(args) if names and names[0] in HINTS else None
    return f"interrupted; {hint}" if hint else "interrupted"
