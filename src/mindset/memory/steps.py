"""Recipe steps that change what a model's memory stores hold: `memorize` (write a text into its kNN-LM
datastore and associative layers, as `mindset memory memorize` does) and `forget` (remove entries by id).

As steps they are replayable: entry ids are handed out in insertion order, so a recipe that memorizes and
then forgets ids gives the same stores on every run. The UI applies both as undoable edits.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from mindset.errors import MindsetError
from mindset.runcontext import RunContext


class MemorizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., min_length=1, description="the text to write into the model's memory stores")
    label: str | None = Field(None, description="a name kept with each entry's source text")
    context: int = Field(512, ge=2, description="window in tokens")
    save: Path | None = Field(None, description="also save the model, its stores included, to this folder (relative: in the run folder)")


class ForgetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: str = Field(..., description="the module holding the store, e.g. model.layers.1.mlp or lm_head (GET /api/memory lists them)")
    ids: list[int] = Field(..., min_length=1, description="entry ids to remove")
    save: Path | None = Field(None, description="also save the model, its stores included, to this folder (relative: in the run folder)")


def memorize_step(ctx: RunContext, params: MemorizeParams) -> dict:
    from mindset.memory.knn_lm import memorize

    if not params.text.strip():
        raise MindsetError("memorize: the text is empty; give the text to write into the stores")
    report = memorize(ctx.loaded, params.text, label=params.label, context=params.context)
    ctx.console.print(f"memorized {len(params.text)} characters into {', '.join(report)}")
    return saved(ctx, params.save, {"stores": report})


def forget_step(ctx: RunContext, params: ForgetParams) -> dict:
    store = store_of(ctx.loaded.model, params.store)
    removed = store.remove(params.ids)
    if removed != len(set(params.ids)):
        raise MindsetError(f"forget: {params.store} holds {removed} of the ids {params.ids}; list its entries for the ids it has")
    return saved(ctx, params.save, {"store": params.store, "removed": removed, "entries": len(store)})


def saved(ctx: RunContext, folder: Path | None, result: dict) -> dict:
    """Save the model to `folder` when given (as the edit steps' `save`), so a recipe that ends in memorize or
    forget, as one the UI exports may, still writes the model it rebuilt."""
    if folder is None:
        return result
    from mindset.models import save

    target = folder if folder.is_absolute() else ctx.run_dir / folder
    save(ctx.loaded, target, overwrite=True)
    return {**result, "saved": str(target)}


def store_of(model, path: str):
    """The store of module `path` (an associative layer or a kNN-LM head)."""
    try:
        module = model.get_submodule(path)
    except AttributeError:
        module = None
    if module is None or not hasattr(module, "store"):
        have = [name for name, m in model.named_modules() if hasattr(m, "store") and name]
        raise MindsetError(f"no memory store at {path!r}; stores: {', '.join(have) or 'none (ffn_to_memory kind=associative adds them)'}")
    return module.store
