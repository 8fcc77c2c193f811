"""Recipe step `ffn_to_memory`: turn FFN blocks of the current model into memory layers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mindset.runcontext import RunContext


class FfnToMemoryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: list[int | str] | str | None = Field(None, description="layers, e.g. [4, 12, 20], '4,12,20', '0-3,8' or 'L4,L12' (default: all)")
    kind: Literal["featural", "associative"] = Field("featural", description="featural (top-k over the block's own slots) or associative (block + gated store)")
    k: int = Field(32, ge=1, description="slots (featural) or entries (associative) read per token")
    score: Literal["exact", "bound"] = Field("exact", description="featural top-k score for gated blocks")
    path: Literal["auto", "gather", "masked"] = Field("auto", description="featural compute path, same result: gather (cost grows with k), masked (dense matmul), auto picks")
    store: str = Field("torch", description="associative store backend: torch or faiss:<factory>")
    capacity: int = Field(4096, ge=1, description="associative store entries per layer")
    temperature: float = Field(0.1, gt=0, description="associative read: softmax temperature over the cosines of the retrieved keys")
    threshold: float = Field(0.9, ge=-1, le=1, description="associative write: a key less similar (cosine) than this to its nearest entry becomes a new entry")
    eviction: Literal["lrfu", "fifo", "none"] = Field("lrfu", description="associative store full: drop the least recently/frequently used entry (lrfu), the oldest (fifo), or refuse (none)")
    save: Path | None = Field(None, description="also save the converted model to this folder")


def ffn_to_memory_step(ctx: RunContext, params: FfnToMemoryParams) -> dict:
    from mindset.models import save
    from mindset.surgery.memory import ffn_to_memory, memory_layers

    options = params.model_dump(exclude={"layers", "save"})
    converted = ffn_to_memory(ctx.loaded, params.layers, inplace=True, **options)
    ctx.set_model(converted)
    layers = memory_layers(converted)
    rows = [[index, kind, params.k] for index, kind in layers.items()]
    ctx.add_table("Memory layers", ["layer", "kind", "k"], rows)
    ctx.console.print(f"{len(layers)} feed-forward block(s) turned into {params.kind} memory, k={params.k}")
    result = {"layers": list(layers), "kind": params.kind, "k": params.k}
    if params.save is not None:
        folder = params.save if params.save.is_absolute() else ctx.run_dir / params.save
        save(converted, folder, overwrite=True)
        result["saved"] = str(folder)
    return result
