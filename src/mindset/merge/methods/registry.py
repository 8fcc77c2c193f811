"""What a merge method is: one typed function over a tensor group, its parameters, and its input rules.

A method receives `MergeInputs` (the input tensors of one output tensor, already in one dtype, the base's
position, each input's resolved parameters) plus its shared parameters as keyword arguments, and
returns the merged tensor. `register` adds it by name; the planner checks a config against `params`,
`base` and the input counts before any weight is read.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from mindset.errors import MindsetError

Scope = Literal["shared", "input", "non_base"]  # one value per tensor / per input / per input except the base
REQUIRED = object()


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # float or bool; YAML strings like "1e-3" are converted
    scope: Scope
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    optional: bool = False  # None is a valid value (passthrough's scale)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def convert(self, value: Any) -> Any:
        """The value as the method receives it, or ValueError with a sentence."""
        if value is None and self.optional:
            return None
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise ValueError(f"{self.name} must be true or false, not {value!r}")
        if isinstance(value, bool):
            raise ValueError(f"{self.name} must be a number, not {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
            raise ValueError(f"{self.name} must be a number, not {value!r}") from None
        if number != number:
            raise ValueError(f"{self.name} must be a number, not NaN")
        if number in (float("inf"), float("-inf")):
            raise ValueError(f"{self.name} must be a finite number, not {value!r}")
        if self.low is not None and number < self.low or self.high is not None and number > self.high:
            raise ValueError(f"{self.name} must be between {self.low} and {self.high}, not {number:g}")
        return number


@dataclass
class MergeInputs:
    """The inputs of one output tensor, in the slice's source order."""

    tensors: list[torch.Tensor]
    base: int | None  # position of the base model's tensor, when the method uses one
    params: list[dict[str, Any]]  # each input's per-input parameters
    name: str = ""  # the output tensor's name
    generator: torch.Generator | None = None  # seeded per tensor, for methods that draw random masks
    out: torch.Tensor | None = None  # a buffer of the output's shape and dtype a method may fill and return

    def values(self, param: str, inputs: list[int] | None = None) -> list[Any]:
        return [self.params[i][param] for i in (range(len(self.tensors)) if inputs is None else inputs)]

    @property
    def others(self) -> list[int]:
        """Positions of the inputs that are not the base, in order."""
        return [i for i in range(len(self.tensors)) if i != self.base]


@dataclass(frozen=True)
class MergeMethod:
    name: str
    function: Callable[..., torch.Tensor]
    params: tuple[Param, ...] = ()
    base: Literal["ignored", "required"] = "ignored"
    min_inputs: int = 1
    max_inputs: int | None = None
    random: bool = False  # draws random masks: results depend on the seed
    description: str = ""
    reference: str = ""
    # True when each output element depends only on the same element of each input (given the
    # parameters): the executor may then merge a tensor in cache-sized pieces, with identical results.
    elementwise: Callable[[list[dict[str, Any]], dict[str, Any]], bool] = lambda per_input, shared: False
    # True when the result depends on whole-tensor floating-point reductions (norms, sums), whose
    # rounding depends on how many threads torch splits them across: such merges keep torch's default
    # thread count, as mergekit runs them, and merge one tensor at a time.
    reduces: Callable[[list[dict[str, Any]], dict[str, Any]], bool] = lambda per_input, shared: False

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def shared(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.scope == "shared")

    @property
    def per_input(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.scope != "shared")

    def __call__(self, inputs: MergeInputs, shared: dict[str, Any]) -> torch.Tensor:
        return self.function(inputs, **shared)


METHODS: dict[str, MergeMethod] = {}


def register(method: MergeMethod) -> MergeMethod:
    if method.name in METHODS:
        raise ValueError(f"merge method {method.name!r} registered twice")
    METHODS[method.name] = method
    return method


def merge_method(name: str, *, params: tuple[Param, ...] = (), **options: Any):
    """Decorator: register `function` as the merge method `name`."""

    def wrap(function: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        register(MergeMethod(name, function, params, description=(function.__doc__ or "").strip().split("\n")[0], **options))
        return function

    return wrap


def get_method(name: str) -> MergeMethod:
    if name in MERGEKIT_ONLY:
        raise MindsetError(f"merge method {name!r} is mergekit's, not implemented in mindset; methods: {', '.join(METHODS)}")
    if name not in METHODS:
        hint = difflib.get_close_matches(name, METHODS, n=1)
        suggestion = f"did you mean {hint[0]!r}? " if hint else ""
        raise MindsetError(f"unknown merge method {name!r}; {suggestion}methods: {', '.join(METHODS)}")
    return METHODS[name]


# mergekit methods mindset does not implement: the error says so instead of "unknown".
MERGEKIT_ONLY = ("breadcrumbs", "breadcrumbs_ties", "della", "della_linear", "sce", "nuslerp", "multislerp", "karcher", "nearswap", "arcee_fusion", "ram", "ramplus_tl")
