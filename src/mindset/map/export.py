"""The points as parquet: one row per point, for pandas, embedding-atlas and anything else that reads it.

Columns: x, y (layout coordinates), text (prompt + completion), prompt, completion, model, key (the item,
shared by its points under two models), then every label as a string column (task, split, correct, ...).
`embedding-atlas points.parquet --x x --y y --text text` opens it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_parquet(path: Path, runs, coords: np.ndarray, labels: dict[str, list[str]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    items = [it for r in runs for it in r.items]
    columns = {
        "x": pa.array(np.asarray(coords[:, 0], dtype=np.float32)),
        "y": pa.array(np.asarray(coords[:, 1], dtype=np.float32)),
        "text": pa.array([it.text for it in items], pa.string()),
        "prompt": pa.array([it.prompt for it in items], pa.string()),
        "completion": pa.array([it.completion for it in items], pa.string()),
        "model": pa.array([r.name for r in runs for _ in r.items], pa.string()),
        "key": pa.array([it.key for it in items], pa.string()),
    }
    for name, values in labels.items():
        if name not in columns:
            columns[name] = pa.array(values, pa.string())
    table = pa.table(columns)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path
