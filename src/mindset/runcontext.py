"""What a recipe step sees: the current model, the run folder, and where its results go.

It lives below the capabilities (each one's steps.py takes it) and above `models`, which it loads on first
use; `mindset.recipes.RunContext` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from mindset.tables import markdown_table


@dataclass
class RunContext:
    run_dir: Path
    model_spec: str | None
    device: str = "auto"
    dtype: str = "auto"
    console: Console = field(default_factory=Console)
    progress: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)  # markdown sections, in step order
    _loaded: Any = None

    @property
    def loaded(self):
        """The current model (a LoadedModel), loaded on first use; a step may replace it with `set_model`."""
        if self._loaded is None:
            from mindset.errors import MindsetError
            from mindset.models import load

            if not self.model_spec:
                raise MindsetError("this recipe names no model, and no earlier step produced one")
            self.console.print(f"loading [bold]{self.model_spec}[/]")
            self._loaded = load(self.model_spec, device=self.device, dtype=self.dtype)
        return self._loaded

    def set_model(self, loaded) -> None:
        self._loaded = loaded

    def add_section(self, title: str, markdown: str) -> None:
        self.report.append(f"## {title}\n\n{markdown.strip()}\n")

    def add_table(self, title: str, headers: list[str], rows: list[list[Any]]) -> None:
        self.report.append(f"### {title}\n\n{markdown_table(headers, rows)}\n")
