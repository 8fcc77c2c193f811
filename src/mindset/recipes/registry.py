"""Recipe steps by name. A step is a plain function in its capability package:

    def step(ctx: RunContext, params: SomeParams) -> dict    # returns the step's metrics

where SomeParams is a pydantic model (unknown fields forbidden). Entries are "module:function" strings,
so naming a step imports only its own package. New capabilities add a line here; the runner never changes.
"""

from __future__ import annotations

import difflib
import importlib
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from mindset.errors import MindsetError

STEPS: dict[str, str] = {
    "inspect": "mindset.models.steps:inspect_step",
    "ppl": "mindset.evaluate.steps:ppl_step",
    "eval": "mindset.evaluate.steps:eval_step",
    "generate": "mindset.chat.steps:generate_step",
    "export": "mindset.export.steps:export_step",
    "distill": "mindset.circuits.protected_distill:distill_step",  # train's step plus protect:
    "ffn_to_memory": "mindset.surgery.steps:ffn_to_memory_step",
    "merge": "mindset.merge.steps:merge_step",
    "merge_fixtures": "mindset.merge.steps:merge_fixtures_step",
    "map": "mindset.map.steps:map_step",
    "circuits": "mindset.circuits.steps:circuits_step",
    "circuits_patch": "mindset.circuits.steps:circuits_patch_step",
    "memorize": "mindset.memory.steps:memorize_step",
    "forget": "mindset.memory.steps:forget_step",
}
# One step per architecture edit, the rows of mindset.surgery.edit_steps.EDITS (a test keeps the two in step;
# listed here by name so that naming a step still imports only its own package).
EDIT_STEPS = (
    "widen_ffn", "narrow_ffn", "add_heads", "remove_heads", "insert_layers", "drop_layers", "duplicate_layers", "move_layer",
    "embedding_shim", "head_gates", "grow_saturated", "prune_closed", "layerwise_feedback",
)  # fmt: skip
STEPS.update({name: f"mindset.surgery.edit_steps:{name}_step" for name in EDIT_STEPS})


def step_names() -> list[str]:
    return list(STEPS)


def resolve_step(name: str) -> tuple[Callable[..., dict[str, Any]], type[BaseModel]]:
    """The step function and its parameters model; unknown names get a 'did you mean'."""
    if name not in STEPS:
        hint = difflib.get_close_matches(name, STEPS, n=1, cutoff=0.4)
        suggestion = f"did you mean {hint[0]!r}? " if hint else ""
        raise MindsetError(f"unknown recipe step {name!r}; {suggestion}steps: {', '.join(STEPS)}")
    module_name, function_name = STEPS[name].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    params_model = typing.get_type_hints(function)["params"]
    return function, params_model
