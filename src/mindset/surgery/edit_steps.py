"""The architecture edits as recipe steps and commands, from one table.

    EDITS = {name: Edit("module:function", Params, "one line of help")}

Adding an edit is one parameters model (fields named as the function's keyword arguments, see
edit_params.py) and one row here: the recipe registry registers a step of the same name
(`widen_ffn_step`, generated below) and `mindset surgery` a command (`widen-ffn`) for every row. Each
runs the function in place on the current model, times it, and reports what changed: the layers whose
shape (heads, kv heads, FFN width) differs, the layer and parameter counts, and the edit as recorded.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mindset.models.anatomy import blocks
from mindset.models.shapes import block_shape
from mindset.runcontext import RunContext
from mindset.surgery import edit_params as p


@dataclass(frozen=True)
class Edit:
    function: str  # "module:function", imported when the edit runs
    params: type[p.EditParams]
    summary: str  # the command's help and the step's docstring

    def resolve(self) -> Callable[..., Any]:
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)


EDITS: dict[str, Edit] = {
    "widen_ffn": Edit("mindset.surgery.ffn_width:widen_ffn", p.WidenFfnParams, "Add neurons to FFNs, per layer (zero, split or random init: logits kept; noise > 0 changes them)."),
    "narrow_ffn": Edit("mindset.surgery.ffn_width:narrow_ffn", p.NarrowFfnParams, "Keep the highest-scoring FFN neurons of chosen layers."),
    "add_heads": Edit("mindset.surgery.heads:add_heads", p.AddHeadsParams, "Add attention heads to chosen layers (zero output columns: logits kept)."),
    "remove_heads": Edit("mindset.surgery.heads:remove_heads", p.RemoveHeadsParams, "Remove chosen attention heads, any count per layer."),
    "insert_layers": Edit("mindset.surgery.depth:insert_layers", p.InsertLayersParams, "Insert copies of a block after it (LLaMA Pro; identity init keeps logits)."),
    "drop_layers": Edit("mindset.surgery.depth:drop_layers", p.DropLayersParams, "Remove decoder layers."),
    "duplicate_layers": Edit("mindset.surgery.depth:duplicate_layers", p.DuplicateLayersParams, "Repeat decoder layers, each right after itself."),
    "move_layer": Edit("mindset.surgery.depth:move_layer", p.MoveLayerParams, "Move one decoder layer to another index."),
    "embedding_shim": Edit("mindset.surgery.shim:embedding_shim", p.EmbeddingShimParams, "Add an identity-initialised linear shim after the token embeddings (train it alone: shim)."),
    "head_gates": Edit("mindset.surgery.gates:head_gates", p.HeadGatesParams, "Gate each head's output by 2·sigmoid(c), c = 0 (gates 1: logits kept); the gates train like any weight."),
    "grow_saturated": Edit("mindset.surgery.gates:grow_saturated", p.GrowSaturatedParams, "Add heads to gated layers whose gates all saturated (zero output columns: logits kept)."),
    "prune_closed": Edit("mindset.surgery.gates:prune_closed", p.PruneClosedParams, "Remove heads whose gates closed (whole kv groups only)."),
    "layerwise_feedback": Edit("mindset.surgery.feedback:layerwise_feedback", p.LayerwiseFeedbackParams, "Feed layer j's output at t-1 into layer i's input at t (zero-initialised projections: logits kept)."),
}


@dataclass
class EditOutcome:
    """An edit's result and what it changed; `rows` are [layer or 'first-last', shape before, shape after] for layers that differ."""

    loaded: Any
    edit: dict  # the entry the edit wrote into the model's history (note_edit)
    layers: tuple[int, int]
    parameters: tuple[int, int]
    rows: list[list[Any]]
    seconds: float

    def line(self) -> str:
        (l0, l1), (p0, p1) = self.layers, self.parameters
        depth = f"layers {l0} → {l1}" if l0 != l1 else f"{l0} layers"
        return f"{self.edit.get('op', '?')}: {depth}, parameters {p0:,} → {p1:,} ({p1 - p0:+,}), in {self.seconds:.2f} s"

    def metrics(self) -> dict:
        return {"edit": self.edit, "layers": list(self.layers), "parameters": list(self.parameters), "changed_layers": self.rows, "edit_seconds": round(self.seconds, 3)}


def _shapes(model) -> list[dict[str, int]]:
    return [block_shape(b) for b in blocks(model)]


def _shown(shape: dict[str, int] | None) -> str:
    if shape is None:
        return "—"
    text = f"{shape['n_heads']} heads / {shape['n_kv_heads']} kv"
    return text + (f", d_ff {shape['d_ff']}" if "d_ff" in shape else "")


def _parameters(model) -> int:
    return sum(t.numel() for t in model.parameters())  # each tensor once: tied weights count once


def _runs(rows: list[list[Any]]) -> list[list[Any]]:
    """Consecutive layers with the same change as one row, '0-29': a uniform edit of 30 layers is one line."""
    out: list[list[Any]] = []
    for index, before, after in rows:
        last = out[-1] if out else None
        if last and last[1:] == [before, after] and int(str(last[0]).split("-")[-1]) == index - 1:
            last[0] = f"{str(last[0]).split('-')[0]}-{index}"
        else:
            out.append([index, before, after])
    return out


def apply_edit(name: str, loaded, params: p.EditParams) -> EditOutcome:
    """Run edit `name` in place on `loaded` (a LoadedModel) and measure what changed."""
    function = EDITS[name].resolve()
    before, p0 = _shapes(loaded.model), _parameters(loaded.model)
    start = time.perf_counter()
    edited = function(loaded, **params.arguments(), inplace=True)
    seconds = time.perf_counter() - start
    after, p1 = _shapes(edited.model), _parameters(edited.model)
    pairs = [(before[i] if i < len(before) else None, after[i] if i < len(after) else None) for i in range(max(len(before), len(after)))]
    rows = _runs([[i, _shown(a), _shown(b)] for i, (a, b) in enumerate(pairs) if a != b])
    history = getattr(edited.model, "mindset_edits", None) or [{"op": name}]
    return EditOutcome(edited, history[-1], (len(before), len(after)), (p0, p1), rows, seconds)


def edit_step(name: str, ctx: RunContext, params: p.EditParams) -> dict:
    """The recipe step of every edit: change the run's model, report what changed, save if asked."""
    outcome = apply_edit(name, ctx.loaded, params)
    ctx.set_model(outcome.loaded)
    ctx.console.print(outcome.line())
    ctx.add_section(f"Surgery: {name}", outcome.line())
    if outcome.rows:
        ctx.add_table(f"Layers {name} changed", ["layer", "before", "after"], outcome.rows)
    result = outcome.metrics()
    if params.save is not None:
        from mindset.models import save

        folder = params.save if params.save.is_absolute() else ctx.run_dir / params.save
        save(outcome.loaded, folder, overwrite=True)
        result["saved"] = str(folder)
    return result


def _step_function(name: str, params_model: type[BaseModel]) -> Callable[[RunContext, BaseModel], dict]:
    """`<name>_step(ctx, params)`, annotated with its own parameters model (which the registry reads)."""

    def step(ctx, params):
        return edit_step(name, ctx, params)

    step.__name__ = step.__qualname__ = f"{name}_step"
    step.__annotations__ = {"ctx": RunContext, "params": params_model, "return": dict}
    step.__doc__ = f"Recipe step `{name}`: {EDITS[name].summary}"
    return step


STEP_FUNCTIONS = {f"{name}_step": _step_function(name, edit.params) for name, edit in EDITS.items()}
globals().update(STEP_FUNCTIONS)  # so "mindset.surgery.edit_steps:widen_ffn_step" resolves like any step

