"""Parameters of the architecture edits, one pydantic model per surgery function, for recipes and the CLI.

Each field is named as the function's keyword argument and its description is the option's help, so a
recipe step, a `mindset surgery <edit>` command and a Python call spell an edit the same way. Checks that
need no model (ranges, exactly one of add/width, the heads map's syntax) run here, before a weight is read;
the function checks the rest (layer indices, head grouping) against the model before it changes anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

LAYERS_HELP = "layers, e.g. [4, 12, 20], '4,12,20', '0-3,8' or 'L4,L12'"
Layers = list[int | str] | str  # as FfnToMemoryParams: a list, or one string the CLI joins with commas


class EditParams(BaseModel):
    """What every edit step takes besides its own arguments: where to save the result, if anywhere."""

    model_config = ConfigDict(extra="forbid")

    save: Path | None = Field(None, description="also save the edited model to this folder (a relative path is inside the run folder)")

    def arguments(self) -> dict:
        """The surgery function's keyword arguments."""
        return self.model_dump(exclude={"save"})


class WidenFfnParams(EditParams):
    layers: Layers | None = Field(None, description=LAYERS_HELP + " (default: all)")
    add: int | None = Field(None, ge=1, description="neurons to add to each layer's FFN (or give width)")
    width: int | None = Field(None, ge=1, validate_default=True, description="the new FFN width of each layer (or give add)")
    init: Literal["zero", "split", "random"] = Field("zero", description="new neurons: zero, split (Net2WiderNet copies, halved outputs) or random (input rows from the layer's weight statistics); all keep logits at noise 0")
    seed: int = Field(0, description="random seed for split and random")
    noise: float = Field(0.0, ge=0, description="> 0 changes logits: split perturbs the copies' input rows by noise x the weights' std; random also draws the output columns, x noise")

    @field_validator("width")
    @classmethod
    def _one_of(cls, width: int | None, info: ValidationInfo) -> int | None:
        if (info.data.get("add") is None) == (width is None):
            raise ValueError("give exactly one of add (neurons to add) or width (the new FFN width)")
        return width


class NarrowFfnParams(EditParams):
    layers: Layers | None = Field(None, description=LAYERS_HELP + " (default: all)")
    width: int = Field(..., ge=1, description="neurons each chosen FFN keeps (fewer than it has)")
    scores: Literal["magnitude"] = Field("magnitude", description="how neurons rank: magnitude (output-column norm x input-row norm); attribution scores need Python (mindset.circuits.prune)")


class AddHeadsParams(EditParams):
    layers: Layers | None = Field(None, description=LAYERS_HELP + " (default: all)")
    n: int = Field(1, ge=1, description="query heads to add per layer; with grouped-query attention a multiple of the heads per kv head")
    init: Literal["zero", "random"] = Field("zero", description="new heads' q/k/v rows: zero or random (from the weights' statistics); output columns are zero either way, so logits are kept")
    seed: int = Field(0, description="random seed for init random")


HEADS_SYNTAX = "layer:head,head;layer:head, e.g. 3:0,1;5:2"


class RemoveHeadsParams(EditParams):
    heads: dict[int, list[int]] | str = Field(..., description=f"heads to remove per layer: {HEADS_SYNTAX} (a recipe may give a mapping {{L3: [0, 1]}})")

    @field_validator("heads", mode="before")
    @classmethod
    def _read_heads(cls, value):
        """A mapping (recipe YAML) or the CLI's string; layer keys may be written 3 or L3."""
        if isinstance(value, str):
            value = _heads_from_text(value)
        if not isinstance(value, dict) or not value:
            raise ValueError(f"give heads per layer as {HEADS_SYNTAX}, or a mapping {{L3: [0, 1]}}")
        return {_layer_key(k): [value[k]] if isinstance(value[k], int) else value[k] for k in value}


def _heads_from_text(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        layer, sep, heads = part.partition(":")
        listed = [h.strip() for h in heads.split(",") if h.strip()]
        if not sep or not listed:
            raise ValueError(f"cannot read {part!r} in heads {text!r}; write {HEADS_SYNTAX}")
        out.setdefault(layer.strip(), []).extend(listed)
    return out


def _layer_key(key) -> int:
    text = str(key).strip()
    if isinstance(key, bool) or not re.fullmatch(r"L?\d+", text):
        raise ValueError(f"cannot read layer {key!r} in heads; write layers as 3 or L3 ({HEADS_SYNTAX})")
    return int(text.removeprefix("L"))


class InsertLayersParams(EditParams):
    after: int = Field(..., ge=0, description="insert after this layer (copies of it)")
    n: int = Field(1, ge=1, description="how many layers to insert")
    init: Literal["identity", "copy"] = Field("identity", description="identity (output projections zero: logits kept, LLaMA Pro) or copy (exact copies: changes the function)")


class DropLayersParams(EditParams):
    layers: Layers = Field(..., description=LAYERS_HELP + " to remove")


class DuplicateLayersParams(EditParams):
    layers: Layers = Field(..., description=LAYERS_HELP + " to repeat, each right after itself")


class MoveLayerParams(EditParams):
    src: int = Field(..., ge=0, description="the layer to move")
    dst: int = Field(..., ge=0, description="the index it gets (the others keep their order)")


class EmbeddingShimParams(EditParams):
    rank: int | None = Field(None, ge=1, description="low-rank shim I + A·B of this rank (default: a full d x d matrix)")
    seed: int = Field(0, description="random seed for A of a low-rank shim")


class HeadGatesParams(EditParams):
    layers: Layers | None = Field(None, description=LAYERS_HELP + " to gate (default: all)")


class GrowSaturatedParams(EditParams):
    threshold: float = Field(0.95, gt=0, lt=1, description="a layer is saturated when every head's sigmoid(c) = gate/2 is at least this")
    n: int | None = Field(None, ge=1, description="query heads to add to each saturated layer (default: one kv group)")
    init: Literal["zero", "random"] = Field("random", description="new heads' q/k/v rows: random (from the weights' statistics, so they learn) or zero; output columns are zero either way")
    seed: int = Field(0, description="random seed for init random")


class PruneClosedParams(EditParams):
    threshold: float = Field(0.05, gt=0, lt=1, description="a head is closed when its sigmoid(c) = gate/2 is at most this; a kv group goes when all its heads are closed")


PAIRS_SYNTAX = "i:j,i:j, e.g. 2:10,5:20 (layer j's output at t-1 feeds layer i's input at t, j > i)"


class LayerwiseFeedbackParams(EditParams):
    pairs: list[tuple[int, int]] | str = Field(..., description=f"feedback pairs: {PAIRS_SYNTAX}; a recipe may give [[2, 10], [5, 20]]")
    rank: int | None = Field(None, ge=1, description="low-rank projections up·down of this rank (default: full hidden x hidden)")
    seed: int = Field(0, description="random seed for the low-rank down projection")

    @field_validator("pairs", mode="before")
    @classmethod
    def _read_pairs(cls, value):
        """The CLI's string '2:10,5:20' or a list of [i, j] pairs."""
        if isinstance(value, str):
            value = [_pair_from_text(part, value) for part in filter(None, (p.strip() for p in value.split(",")))]
        if not isinstance(value, list) or not value:
            raise ValueError(f"give feedback pairs as {PAIRS_SYNTAX}")
        return value


def _pair_from_text(part: str, text: str) -> tuple[int, int]:
    match = re.fullmatch(r"L?(\d+)\s*:\s*L?(\d+)", part)
    if not match:
        raise ValueError(f"cannot read {part!r} in pairs {text!r}; write {PAIRS_SYNTAX}")
    return int(match.group(1)), int(match.group(2))
