"""Two checkpoints over the same items: how far each item moved, and how its correctness changed.

Movement is measured where the models compute, not on the picture: the cosine distance between the
item's two encodings (unit length, as the layout sees them). The 2-D distance of the arrow is reported
beside it, but a layout bends distances, so the ranking uses the encodings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mindset.fileio import atomic_write_text
from mindset.tables import markdown_table

CHANGES = {("yes", "yes"): "still right", ("no", "no"): "still wrong", ("no", "yes"): "fixed", ("yes", "no"): "broken"}


def change_labels(runs) -> list[str]:
    a, b = runs
    return [CHANGES.get((x.labels.get("correct"), y.labels.get("correct")), "n/a") for x, y in zip(a.items, b.items)]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - (na * nb).sum(axis=1)


def moved_most(runs, xy: np.ndarray, top: int = 50) -> list[dict]:
    a, b = runs
    n = len(a.items)
    distance = cosine_distance(a.encodings, b.encodings)
    arrow = np.linalg.norm(xy[n:] - xy[:n], axis=1)
    changes = change_labels(runs)
    order = np.argsort(-distance, kind="stable")[:top]
    return [
        {"item": int(i), "key": a.items[i].key, "cosine": round(float(distance[i]), 5), "arrow": round(float(arrow[i]), 4),
         "change": changes[i], "prompt": a.items[i].prompt[-300:], "completion_a": a.items[i].completion[:200], "completion_b": b.items[i].completion[:200]}
        for i in order
    ]


def write_compare_report(path: Path, runs, moved: list[dict], top: int = 20) -> None:
    a, b = runs
    changes = change_labels(runs)
    counts = {c: changes.count(c) for c in ("fixed", "broken", "still right", "still wrong", "n/a") if changes.count(c)}
    distance = cosine_distance(a.encodings, b.encodings)
    lines = [
        f"# {a.name} → {b.name}",
        "",
        f"{len(a.items)} items; cosine distance between the two encodings of an item: median {np.median(distance):.4f}, "
        f"max {distance.max():.4f}.",
        "",
        "Correctness: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
        "",
        "## Items that moved most",
        "",
        markdown_table(["item", "cosine distance", "arrow (map units)", "correctness", f"answer of {a.name}", f"answer of {b.name}"],
                       [[m["key"], m["cosine"], m["arrow"], m["change"], m["completion_a"].strip()[:60], m["completion_b"].strip()[:60]] for m in moved[:top]]),
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
