"""The static site: index.html and its assets copied from the package, the points written as data.js.

The points are a script (`window.MINDSET_MAP = {...}`), not a JSON file fetched at load time, because a
page opened from disk (file://) may run scripts beside it but not fetch files: the folder works offline,
by double-click, and served by `mindset map --serve` alike. Coordinates are columns scaled into [-1, 1]
(what the WebGL scatter plot draws), rounded to 5 digits.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mindset.fileio import atomic_write_text

ASSETS = Path(__file__).parent / "assets"
PAGE_FILES = ("index.html", "map.js", "map.css")
MAX_TEXT = 4000  # characters of prompt or completion kept per point in the page (the parquet has them whole)


@dataclass
class PageData:
    title: str
    models: list[str]
    x: np.ndarray  # (P,) in [-1, 1]
    y: np.ndarray
    model: list[int]  # per point: index into models
    item: list[int]  # per point: which item (two checkpoints' points of one item share it)
    prompt: list[str]
    completion: list[str]
    labels: dict[str, list[str]]  # name -> per point value
    info: dict = field(default_factory=dict)  # layer, method, counts, timings: shown in the header
    paths: dict[int, list[list[float]]] = field(default_factory=dict)  # point -> [[x, y], ...]
    pairs: list[list[int]] = field(default_factory=list)  # [point in A, point in B] per compared item
    moved: list[dict] = field(default_factory=list)  # items that moved most (compare)


def frame_of(coords: np.ndarray, margin: float = 0.92) -> list[float]:
    """[cx, cy, scale] mapping coords into [-margin, margin] with the aspect ratio kept."""
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    centre = (lo + hi) / 2
    span = float(max((hi - lo).max(), 1e-9))
    return [float(centre[0]), float(centre[1]), 2 * margin / span]


def to_frame(coords: np.ndarray, frame: list[float]) -> np.ndarray:
    cx, cy, scale = frame
    return (np.asarray(coords, dtype=np.float64) - [cx, cy]) * scale


def _columns(values: list[str]) -> dict:
    """A categorical column as distinct values (by count, most common first) and one code per point."""
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    names = sorted(counts, key=lambda v: (-counts[v], v))
    code = {v: i for i, v in enumerate(names)}
    return {"values": names, "counts": [counts[v] for v in names], "codes": [code[v] for v in values]}


def write_site(folder: Path, data: PageData) -> Path:
    """Write index.html, assets/ and data.js into folder; returns index.html."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        shutil.copyfile(ASSETS / name, folder / name)
    vendor = folder / "vendor"
    if vendor.exists():
        shutil.rmtree(vendor)
    shutil.copytree(ASSETS / "vendor", vendor)
    payload = {
        "title": data.title,
        "models": data.models,
        "info": data.info,
        "x": np.round(np.asarray(data.x, dtype=np.float64), 5).tolist(),
        "y": np.round(np.asarray(data.y, dtype=np.float64), 5).tolist(),
        "model": list(data.model),
        "item": list(data.item),
        "prompt": [p[:MAX_TEXT] for p in data.prompt],
        "completion": [c[:MAX_TEXT] for c in data.completion],
        "labels": {name: _columns(values) for name, values in data.labels.items()},
        "paths": {str(k): [[round(a, 5), round(b, 5)] for a, b in v] for k, v in data.paths.items()},
        "pairs": data.pairs,
        "moved": data.moved,
    }
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    # "</" cannot end the script early when data.js is inlined by anyone; JSON allows the escape
    atomic_write_text(folder / "data.js", "window.MINDSET_MAP = " + body.replace("</", "<\\/") + ";\n")
    return folder / "index.html"
