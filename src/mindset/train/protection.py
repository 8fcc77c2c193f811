"""What training asks of a protection: the Protocol `distill(protection=...)` takes.

Training only needs these methods and records; it never knows how the protection chose what to protect.
`mindset.circuits.Protection` implements it (from importance maps and canary suites), so the arrow runs
from circuits to train, never back.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Protection(Protocol):
    protected: list[str]  # the optimizer units trained slower
    scales: dict[str, float]  # unit -> current LR scale
    history: list[dict]  # one entry per canary check
    events: list[dict]  # rollbacks

    def setup(self, model: torch.nn.Module, tokenizer: Any, trainable: set[str], lr: float) -> None:
        """Bind to the model about to train; `trainable` are the parameter names that train, `lr` the base LR."""

    def param_groups(self) -> list[dict]:
        """The optimizer's parameter groups, each with its own learning rate."""

    def penalty(self) -> torch.Tensor | None:
        """An extra loss term (e.g. an L2 pull of protected weights to their start), or None."""

    def callback(self) -> Any:
        """A Lightning callback that watches the run (and may roll it back)."""
