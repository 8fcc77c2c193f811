"""One progress style for long work: a rich bar on a terminal, plain lines everywhere else.

A rich bar redraws itself in place, which only a terminal can show: in a pipe or a CI log it prints
nothing until the end (or blank lines). So when stderr is not a terminal, progress is a plain line such as
`perplexity: 12/40 windows (30%) 4.1 s`, written at most every PLAIN_EVERY seconds and once more at the
end when a line was written before (short work stays quiet). Everything long (perplexity, eval, ablation
maps, map encodings, merges, training, GGUF dequantization) reports through `Progress` or `track`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

PLAIN_EVERY = 10.0  # seconds between plain progress lines: a modest rate for logs


def stderr_is_terminal() -> bool:
    from rich.console import Console

    return Console(stderr=True).is_terminal


class Progress:
    """Counts work done toward `total`; `advance(n)` as it goes, `close()` (or `with`) at the end."""

    def __init__(self, total: int, description: str, *, unit: str = "", enabled: bool = True):
        self.total, self.description, self.unit = total, description, unit
        self.done = 0
        self.started = self.last_line = time.perf_counter()
        self.lines = 0
        self.note = ""  # appended to plain lines, e.g. the latest loss
        self._said = 0  # work done at the last plain line
        self._bar = self._task = None
        self.enabled = enabled
        if enabled and stderr_is_terminal():
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
        self._bar = RichProgress(*columns, transient=True, console=Console(stderr=True))
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total)

    def line(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        note = f", {self.note}" if self.note else ""
        return f"{self.description}: {self.done}/{self.total}{unit}{percent} {time.perf_counter() - self.started:.1f} s{note}"

    def _say(self) -> None:
        print(self.line(), file=sys.stderr, flush=True)
        self.lines += 1
        self._said = self.done
        self.last_line = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.advance(self._task, n)
        elif time.perf_counter() - self.last_line >= PLAIN_EVERY:
            self._say()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.enabled and self.lines and self.done == self.total and self._said != self.done:
            self._say()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], total: int, description: str, enabled: bool = True, unit: str = "") -> Iterator[T]:
    """Yield `items`, reporting each one done (see Progress)."""
    if not enabled:
        yield from items
        return
    with Progress(total, description, unit=unit) as progress:
        for item in items:
            yield item
            progress.advance()
