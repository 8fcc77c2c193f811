"""The recipe file: a model and a list of steps, validated in full before any step runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mindset.configfile import YamlDocument, format_loc, validate
from mindset.errors import MindsetError
from mindset.recipes.registry import resolve_step


class RecipeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="run folder name (default: file name)")
    model: str | None = Field(None, description="model spec: a name, an HF folder or a .gguf file")
    device: str = "auto"
    dtype: str = "auto"
    steps: list[Any] = Field(min_length=1, description="each item is a step name, or {name: {parameters}}")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        """Checked here so a typo fails before the first step, not when a step loads the model."""
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        from mindset.models.device import DTYPES

        if value != "auto" and value not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}; use auto, {', '.join(DTYPES)}")
        return value


@dataclass
class PlannedStep:
    key: str  # unique name in metrics.json: the step name, with _2, _3... for repeats
    name: str
    function: Callable[..., dict]
    params: BaseModel


def plan_steps(config: RecipeConfig, doc: YamlDocument) -> list[PlannedStep]:
    planned: list[PlannedStep] = []
    counts: dict[str, int] = {}
    for i, entry in enumerate(config.steps):
        loc = ("steps", i)
        if isinstance(entry, str):
            name, raw = entry, None
        elif isinstance(entry, dict) and len(entry) == 1:
            name, raw = next(iter(entry.items()))
        else:
            raise MindsetError(f"{doc.where(loc)}: {format_loc(loc)}: a step is a name, or a mapping with one key (the step name)")
        try:
            function, params_model = resolve_step(str(name))
        except MindsetError as err:
            raise MindsetError(f"{doc.where(loc)}: {err}") from None
        params = validate(params_model, raw, doc, loc + (name,))
        counts[name] = counts.get(name, 0) + 1
        key = name if counts[name] == 1 else f"{name}_{counts[name]}"
        planned.append(PlannedStep(key, name, function, params))
    return planned
