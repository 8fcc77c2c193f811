"""Recipe step `export`: the current model as GGUF (+ Ollama Modelfile) in the run folder."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mindset.export import export_gguf
from mindset.runcontext import RunContext


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["gguf"] = Field("gguf", description="file format (GGUF is the only one so far)")
    dtype: Literal["f32", "f16", "q8_0"] = Field("f16", description="precision of the written weights (norms always stay f32)")
    filename: str = Field("model.gguf", pattern=r"^[\w.-]+\.gguf$", description="file name inside the run folder")
    modelfile: bool = Field(True, description="write an Ollama Modelfile beside it")


def export_step(ctx: RunContext, params: ExportParams) -> dict:
    written = export_gguf(ctx.loaded, ctx.run_dir / params.filename, params.dtype, params.modelfile, overwrite=True)  # the run folder was claimed by `mindset run`
    ctx.console.print(f"wrote {written['gguf']} ({written['bytes'] / 2**20:.1f} MiB, {params.dtype})")
    lines = [f"- `{written['gguf']}` — {written['bytes'] / 2**20:.1f} MiB, {params.dtype}"]
    if "modelfile" in written:
        lines.append(f"- `{written['modelfile']}` — for `ollama create NAME -f Modelfile`")
    ctx.add_section("Export", "\n".join(lines))
    return written
