"""Building a map: items -> encodings (cached) -> 2-D layout -> the site, the parquet file and a summary.

With a second model (`compare`), both encode the same items, one layout is fitted on both sets together
(so positions are comparable), and each item is drawn as an arrow from A's point to B's.

Folder written (`out`):
  index.html, map.js, map.css, vendor/, data.js   the page (open index.html, or `mindset map --serve`)
  points.parquet                                 x, y, text, prompt, completion, model, key and labels
  layout.safetensors, layout.json                the fitted layout, for projecting new points
  map.json                                       settings, counts, timings, model fingerprints
  compare.md                                     with a second model: the items that moved most
  tasks/                                         the suites' task files, as `mindset eval` writes them
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mindset.fileio import atomic_write_json
from mindset.map.sources import Item


class MapSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: list[str] = Field(["capitals", "arithmetic", "canaries"], min_length=1, description="suites, task .yaml files, .jsonl/.txt files")
    layer: int = Field(-1, description="hidden layer to encode: 0 embeddings ... n the last (-1)")
    limit: int | None = Field(40, ge=1, description="documents per task and split (null: all)")
    splits: list[Literal["test", "train"]] = Field(["test"], min_length=1, description="suite splits to map")
    method: Literal["auto", "umap", "pca"] = Field("auto", description="auto: UMAP from 64 points, PCA below")
    seed: int | None = Field(0, description="seed of the suites and of UMAP (null: UMAP on every core, not reproducible)")
    encode: Literal["pair", "prompt"] = Field("pair", description="encode prompt+completion (pair) or the prompt alone")
    paths: int = Field(200, ge=0, description="generated completions whose generation path is computed and drawn")
    batch_tokens: int = Field(8192, ge=16, description="padded tokens per forward pass")
    cache: Path | None = Field(None, description="encoding cache folder (default $MINDSET_HOME/map-cache)")
    use_cache: bool = Field(True, description="read and store encodings in the cache (off: encode everything again and store nothing)")


@dataclass
class Encoded:
    name: str
    fingerprint: str
    items: list[Item]
    encodings: np.ndarray
    paths: dict[int, np.ndarray]  # item index -> (T, H)
    computed: int  # encodings computed now (the rest came from the cache)
    seconds: dict


def encode_model(loaded, settings: MapSettings, workdir: Path, say: Callable[[str], None] = lambda m: None, progress: bool = True) -> Encoded:
    from mindset.map.cache import EncodingCache, default_cache_root, model_fingerprint
    from mindset.map.encode import encode_items, resolve_layer, tokenize_item
    from mindset.map.sources import load_items

    times = {}
    start = time.perf_counter()
    fingerprint = model_fingerprint(loaded)
    times["fingerprint"] = time.perf_counter() - start
    layer = resolve_layer(loaded.model, settings.layer)
    root = settings.cache or default_cache_root()
    cache_dir = root if settings.use_cache else None
    start = time.perf_counter()
    items = load_items(loaded, settings.data, workdir, limit=settings.limit, splits=tuple(settings.splits), seed=settings.seed or 0,
                       cache_dir=cache_dir, fingerprint=fingerprint, say=say)
    times["score"] = time.perf_counter() - start
    start = time.perf_counter()
    context = loaded.context_length
    tokenized = [tokenize_item(loaded.tokenizer, it.prompt, it.completion if settings.encode == "pair" else "", context) for it in items]
    paths_for = [i for i, it in enumerate(items) if it.generated and settings.encode == "pair"][: settings.paths]
    cache = EncodingCache(root, fingerprint, layer) if settings.use_cache else None
    encodings, paths, computed = encode_items(loaded, tokenized, layer, cache=cache, batch_tokens=settings.batch_tokens, paths_for=paths_for, progress=progress)
    times["encode"] = time.perf_counter() - start
    say(f"{loaded.name}: {len(items)} items, {computed} encoded now, {len(items) - computed} from the cache (layer {layer})")
    return Encoded(loaded.name, fingerprint, items, encodings, paths, computed, times)


def build_map(loaded, out: str | Path, settings: MapSettings | None = None, *, compare=None, say: Callable[[str], None] = lambda m: None,
              progress: bool = True) -> dict:
    """Build the map of `loaded` (and `compare`, a second LoadedModel) into `out`; returns map.json's content."""
    from mindset.map.encode import resolve_layer
    from mindset.map.export import write_parquet
    from mindset.map.layout import choose_method, fit_layout
    from mindset.map.site import frame_of, write_site

    settings = settings or MapSettings()
    out = Path(out)
    started = time.perf_counter()
    runs = [encode_model(loaded, settings, out, say, progress)]
    if compare is not None:
        runs.append(encode_model(compare, settings, out, say, progress))
        _check_comparable(runs)
    start = time.perf_counter()
    points = np.concatenate([r.encodings for r in runs])
    states, path_rows = path_states(runs, len(points))
    method = choose_method(len(points), settings.method)  # by the items, as documented: path states are extra rows
    layout = fit_layout(np.concatenate([points, states]), method, seed=settings.seed)
    layout_seconds = time.perf_counter() - start
    say(f"layout: {layout.method} of {len(points)} points and {len(states)} path states in {layout_seconds:.1f} s")
    coords = layout.coords[: len(points)]
    frame = frame_of(layout.coords)  # path vertices are in the picture too
    layout.settings.update({"frame": frame, "layer": resolve_layer(loaded.model, settings.layer), "encode": settings.encode,
                            "models": [r.name for r in runs], "fingerprints": [r.fingerprint for r in runs],
                            "points": len(points), "path_rows": {str(p): list(rows) for p, rows in path_rows.items()}})
    layout.save(out)
    page = page_data(runs, coords, frame, layout, settings, path_rows)
    start = time.perf_counter()
    write_site(out, page)
    write_parquet(out / "points.parquet", runs, coords, page.labels)
    site_seconds = time.perf_counter() - start
    summary = {
        "models": [r.name for r in runs],
        "fingerprints": [r.fingerprint for r in runs],
        "points": int(len(coords)),
        "path_states": int(len(states)),
        "items": len(runs[0].items),
        "layer": layout.settings["layer"],
        "method": layout.method,
        "settings": settings.model_dump(mode="json"),
        "encoded_now": [r.computed for r in runs],
        "paths": len(page.paths),
        "seconds": {
            **{f"{k}_{i}" if len(runs) > 1 else k: round(v, 3) for i, r in enumerate(runs) for k, v in r.seconds.items()},
            "layout": round(layout_seconds, 3),
            "site": round(site_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    if compare is not None:
        from mindset.map.compare import write_compare_report

        summary["moved"] = page.moved[:20]
        write_compare_report(out / "compare.md", runs, page.moved)
    atomic_write_json(out / "map.json", summary)
    return summary


def _check_comparable(runs: list[Encoded]) -> None:
    from mindset.errors import MindsetError

    a, b = runs
    if a.encodings.shape[1] != b.encodings.shape[1]:
        raise MindsetError(f"{a.name} and {b.name} have different hidden sizes ({a.encodings.shape[1]} and {b.encodings.shape[1]}); "
                           "one layout can only hold models whose states live in spaces of the same size")
    if [i.key for i in a.items] != [i.key for i in b.items]:
        raise MindsetError("the two models' items differ; they must be mapped over the same data")


def path_states(runs: list[Encoded], n_points: int) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """The generation paths' states, stacked to be laid out with the points, and each path's rows in the layout.

    Why fitted, not projected: a state placed afterwards by its nearest neighbours lands between clusters it
    does not belong to, and a path becomes a straight line across the map. Fitted, every vertex is a point
    the layout placed. A path's last state is its item's own encoding (the same forward pass), so it is not
    repeated: the path ends at the item's point. Rows count from the start of the layout (after the points).
    """
    hidden = runs[0].encodings.shape[1]
    blocks, rows = [], {}
    start = n_points
    offset = 0
    for run in runs:
        for i, states in sorted(run.paths.items()):
            inner = np.asarray(states[:-1], dtype=np.float32)
            if len(inner):
                blocks.append(inner)
                rows[offset + i] = (start, start + len(inner))
                start += len(inner)
        offset += len(run.items)
    return (np.concatenate(blocks) if blocks else np.zeros((0, hidden), dtype=np.float32)), rows


def page_data(runs: list[Encoded], coords: np.ndarray, frame: list[float], layout, settings: MapSettings,
              path_rows: dict[int, tuple[int, int]]):
    from mindset.map.compare import change_labels, moved_most
    from mindset.map.site import PageData, to_frame

    xy = to_frame(coords, frame)
    n = len(runs[0].items)
    models, item, prompt, completion = [], [], [], []
    labels: dict[str, list[str]] = {}
    names = sorted({k for r in runs for it in r.items for k in it.labels})
    for m, run in enumerate(runs):
        for i, it in enumerate(run.items):
            models.append(m)
            item.append(i)
            prompt.append(it.prompt)
            completion.append(it.completion)
    for name in names:
        labels[name] = [it.labels.get(name, "n/a") for r in runs for it in r.items]
    if len(runs) > 1:
        labels["model"] = [r.name if runs[0].name != runs[1].name else f"{'AB'[m]}: {r.name}" for m, r in enumerate(runs) for _ in r.items]
        labels["change"] = change_labels(runs) * 2
    paths = {p: to_frame(np.concatenate([layout.coords[a:b], coords[p : p + 1]]), frame).tolist() for p, (a, b) in path_rows.items()}
    info = {"layer": layout.settings["layer"], "method": layout.method, "points": len(coords), "path_states": len(layout.coords) - len(coords),
            "encode": settings.encode, "neighbours": layout.settings.get("neighbours")}
    title = " vs ".join(r.name for r in runs)
    pairs = [[i, n + i] for i in range(n)] if len(runs) > 1 else []
    moved = moved_most(runs, xy) if len(runs) > 1 else []
    return PageData(title, [r.name for r in runs], xy[:, 0], xy[:, 1], models, item, prompt, completion, labels, info, paths, pairs, moved)
