"""The map view: the map of the current model against the original (the map package's compare), built as a
background job and served by the UI app — POST /api/maps, GET /api/maps, GET /api/maps/{name}/{file}.

The job (kind `map`, jobs.py: progress as server-sent events, cancel) runs `map.build_map(original,
compare=current)`: both models encode the same suite items, one layout holds both, and each item is an
arrow from where the original puts it to where the current model does; `compare.md` lists the items that
moved most. It writes `--root/maps/<name>/` (the map's own static site) and the page opens
`api/maps/<name>/index.html`, so the map is behind the same token as the API and only files inside
`--root/maps` are served (a path that leaves it is a 400).

Like the importance job, it reads deep copies (the current model always, the original when it has custom
modules): a memory layer's store counts its reads, and a map must not change the model it maps. Progress
is one event per message the map builder says (a suite scored, a model encoded, the layout); cancel takes
effect at the next one.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mindset.errors import MindsetError

MAPS = "maps"  # the folder under --root the maps are written to
router = APIRouter()


class MapJobParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, pattern=r"^[\w.-]+$", max_length=100, description="folder under --root/maps (default: current-vs-original-v<version>)")
    data: list[str] = Field(["capitals", "canaries"], min_length=1, description="suites or task names whose items are mapped")
    limit: int = Field(20, ge=1, le=2000, description="documents per task")
    layer: int = Field(-1, description="hidden layer to encode (-1: the last)")
    method: Literal["auto", "umap", "pca"] = "auto"
    paths: int = Field(20, ge=0, description="generated completions whose generation path is drawn")
    seed: int = 0
    use_cache: bool = Field(True, description="reuse encodings of models already mapped ($MINDSET_HOME/map-cache)")


class MapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict, description="the map job's parameters: name, data, limit, layer, method, paths, seed, use_cache")


def parse(params: dict[str, Any]) -> MapJobParams:
    try:
        return MapJobParams.model_validate(params)
    except ValidationError as err:
        first = err.errors()[0]
        raise MindsetError(f"map: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}; it takes {', '.join(MapJobParams.model_fields)}") from None


def register(jobs) -> None:
    """Make `map` a job kind of `jobs` (POST /api/jobs with kind map, or POST /api/maps)."""
    jobs.register("map", parse, lambda job, base, version, parsed: build(jobs.workbench, job, base, version, parsed))


def build(bench, job, base, version: int, parsed: MapJobParams) -> dict[str, Any]:
    """The job's work: the map of `base` (the current model when the job started) against the original."""
    from mindset.map.build import MapSettings, build_map
    from mindset.models.custom import custom_modules
    from mindset.ui.ops import working_copy
    from mindset.ui.paths import inside_root

    name = parsed.name or f"current-vs-original-v{version}"
    out = inside_root(bench.root, f"{MAPS}/{name}")
    settings = MapSettings(**parsed.model_dump(exclude={"name"}))
    total = _steps(parsed.data)
    said: list[str] = []

    def say(message: str) -> None:
        said.append(message)
        job.emit(type="progress", step=len(said), total=max(total, len(said)), message=message)
        job.check()

    job.check()
    original = working_copy(bench.original) if custom_modules(bench.original.model) else bench.original
    original = _named(original, f"{original.name} (original)")  # the map's legend tells the two apart
    current = _named(working_copy(base), f"{base.name} (current, v{version})")
    summary = build_map(original, out, settings, compare=current, say=say, progress=False)
    return {"name": name, "url": f"api/maps/{name}/index.html", "version": version, "points": summary["points"], "items": summary["items"],
            "method": summary["method"], "layer": summary["layer"], "seconds": summary["seconds"], "moved": summary.get("moved", [])[:10]}  # fmt: skip


def _named(loaded, name: str):
    """The same model under another name (a LoadedModel is named by its source's spec)."""
    return dataclasses.replace(loaded, source=dataclasses.replace(loaded.source, spec=name))


def _steps(data: list[str]) -> int:
    """How many progress messages a map of both models says: per model a line per task scored and one when encoded; then the layout."""
    from mindset.evaluate.suites import SUITES

    tasks = sum(len(SUITES.get(d, [d])) for d in data)
    return 2 * (tasks + 1) + 1


@router.post("/api/maps", summary="Build the map of the current model against the original, as a background job; answers the job")
def post_map(body: MapRequest, request: Request) -> dict:
    return request.app.state.jobs.start("map", body.params).summary()


@router.get("/api/maps", summary="The maps built under --root/maps: name, URL, models, points")
def get_maps(request: Request) -> list[dict]:
    import json

    folder = Path(request.app.state.workbench.root) / MAPS
    out = []
    for info in sorted(folder.glob("*/map.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
        except ValueError:
            continue
        out.append({"name": info.parent.name, "url": f"api/maps/{info.parent.name}/index.html", "models": data.get("models"),
                    "points": data.get("points"), "built": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.stat().st_mtime))})  # fmt: skip
    return out


@router.get("/api/maps/{name}/{file:path}", summary="A file of a built map (its index.html, scripts, data), from --root/maps only")
def get_map_file(name: str, file: str, request: Request):
    from mindset.ui.paths import inside_root

    maps = Path(request.app.state.workbench.root).resolve() / MAPS
    target = inside_root(maps, f"{name}/{file or 'index.html'}")
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return JSONResponse({"error": f"no file {name}/{file} among the maps; GET /api/maps lists them"}, status_code=404)
    return FileResponse(target, headers={"Cache-Control": "no-store"})
