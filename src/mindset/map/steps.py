"""Recipe step `map`: the current model's map (and, with `compare`, a second model's against it)."""

from __future__ import annotations

from pydantic import Field

from mindset.map.build import MapSettings, build_map
from mindset.runcontext import RunContext


class MapParams(MapSettings):
    compare: str | None = Field(None, description="a second model spec, mapped over the same items in the same layout")
    folder: str = Field("map", pattern=r"^[\w.-]+$", description="folder inside the run folder")


def map_step(ctx: RunContext, params: MapParams) -> dict:
    other = None
    if params.compare:
        from mindset.models import load

        other = load(params.compare, device=ctx.device, dtype=ctx.dtype)
    out = ctx.run_dir / params.folder
    settings = MapSettings(**params.model_dump(include=set(MapSettings.model_fields)))
    summary = build_map(ctx.loaded, out, settings, compare=other, say=ctx.console.print, progress=ctx.progress)
    ctx.console.print(f"wrote {out / 'index.html'}")
    lines = [
        f"`{params.folder}/index.html`: {summary['points']} points ({summary['items']} items × {len(summary['models'])} model(s)), "
        f"layer {summary['layer']}, {summary['method']} layout, {summary['paths']} generation paths; points also in `{params.folder}/points.parquet`.",
    ]
    if other is not None:
        lines.append(f"Items that moved most: `{params.folder}/compare.md`.")
    ctx.add_section("Map", "\n\n".join(lines))
    return {k: summary[k] for k in ("points", "items", "layer", "method", "paths", "seconds")}
