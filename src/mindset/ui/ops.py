"""The UI's edit vocabulary: the recipe steps that change a model's architecture, run as `mindset run` runs them.

An op is the name of a row of `mindset.surgery.edit_steps.EDITS` (widen_ffn, add_heads, insert_layers...)
or `ffn_to_memory`. Applying one calls that recipe step with a throwaway run context holding a working
copy of the model, so the UI, `mindset run` and `mindset surgery` execute the same function with the same
pydantic parameters, and the history of ops is, verbatim, a recipe's step list.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.console import Console

from mindset.errors import MindsetError

EXTRA_OPS = ("ffn_to_memory", "distill", "memorize", "forget")  # recipe steps that change the model but are not rows of EDITS; distill heals
# the current model from the original (the step's default teacher is the recipe's model before any surgery)


def op_names() -> list[str]:
    from mindset.surgery.edit_steps import EDITS

    return [*EDITS, *EXTRA_OPS]


def check_op(op: str) -> str:
    """`op` if it is an edit; otherwise a MindsetError listing the edits, with a did-you-mean."""
    names = op_names()
    if op in names:
        return op
    hint = difflib.get_close_matches(str(op), names, n=1, cutoff=0.5)
    suggestion = f"did you mean {hint[0]!r}? " if hint else ""
    raise MindsetError(f"unknown edit {op!r}; {suggestion}edits: {', '.join(names)}")


def _step(op: str):
    from mindset.recipes.registry import resolve_step

    return resolve_step(check_op(op))


def parse_params(op: str, params: dict[str, Any] | None) -> BaseModel:
    """The op's validated parameters. `save` is refused: the UI saves through /api/save, under --root."""
    params = dict(params or {})
    if "save" in params:
        raise MindsetError(f"{op}: the parameter 'save' is not available in the UI; save the model with /api/save (the Save button)")
    _, model = _step(op)
    try:
        return model.model_validate(params)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        got = params.get(str(first["loc"][0]), "") if first["loc"] else params
        hint = f"; {op} takes {', '.join(f for f in model.model_fields if f != 'save')}" if first["type"] == "extra_forbidden" else ""
        raise MindsetError(f"{op}: {where}: {first['msg']} (got {got!r}){hint}") from None


def recipe_params(params: BaseModel) -> dict[str, Any]:
    """The parameters as a recipe writes them (JSON types, without `save`)."""
    return params.model_dump(mode="json", exclude={"save"})


@dataclass
class Applied:
    loaded: Any  # the edited LoadedModel (a new object; the input is untouched)
    result: dict  # what the step reported: changed layers, parameter counts, the recorded edit


def working_copy(loaded):
    """A deep copy of the model (tied weights stay tied) with the same tokenizer: edits change this, never the input."""
    return dataclasses.replace(loaded, model=copy.deepcopy(loaded.model))


def apply_op(loaded, op: str, params: BaseModel, spec: str | None = None) -> Applied:
    """Run recipe step `op` on a working copy of `loaded`, in a run whose model is `spec` (the original, which
    distill takes as its teacher). A failure raises and leaves `loaded` as it was."""
    from mindset.runcontext import RunContext

    step, _ = _step(op)
    with tempfile.TemporaryDirectory(prefix="mindset-ui-") as run_dir:
        ctx = RunContext(Path(run_dir), spec, device=loaded.device.type, dtype=str(loaded.dtype).removeprefix("torch."), console=Console(file=io.StringIO(), width=120), progress=False)
        ctx.set_model(working_copy(loaded))
        result = step(ctx, params)
        return Applied(ctx.loaded, result or {})


def op_catalog() -> list[dict[str, Any]]:
    """[{op, summary, params: [{name, type, default, description, enum, minimum}]}] for the page's Edit view."""
    from mindset.surgery.edit_steps import EDITS

    out = []
    for op in op_names():
        _, model = _step(op)
        summary = EDITS[op].summary if op in EDITS else (model.__doc__ or "Turn FFN blocks into memory layers.").strip().splitlines()[0]
        if op == "ffn_to_memory":
            summary = "Turn FFN blocks into memory layers (featural: top-k over the block's own slots; associative: a store)."
        if op in ("memorize", "forget"):
            summary = "Write a text into the model's memory stores." if op == "memorize" else "Remove entries from a memory store by id."
        if op == "distill":
            summary = "Heal: distil the current model from the loaded original on the shipped corpus (runs until done; keep steps small on a CPU)."
        out.append({"op": op, "summary": summary, "params": _fields(model)})
    return out


def _fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    rows = []
    for name, prop in schema.get("properties", {}).items():
        if name == "save":
            continue
        kinds = [p.get("type") for p in prop.get("anyOf", [prop]) if p.get("type") not in (None, "null")]
        rows.append({
            "name": name, "types": kinds, "default": prop.get("default"), "required": name in schema.get("required", []),
            "description": prop.get("description", ""), "enum": prop.get("enum"), "minimum": prop.get("minimum"),
        })  # fmt: skip
    return rows
