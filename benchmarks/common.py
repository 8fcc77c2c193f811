"""Shared by the benchmark scripts: machine description, medians, the table and its JSON twin."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from mindset.fileio import atomic_write_json
from mindset.tables import rich_table


def machine() -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def median(values: list[float]) -> float:
    return statistics.median(values)


def publish(script: str, title: str, headers: list[str], rows: list[list[Any]], data: dict[str, Any]) -> Path:
    """Print the table and write the same numbers as JSON next to the script."""
    Console().print(rich_table(title, headers, rows))
    out = Path(script).with_suffix(".json")
    atomic_write_json(out, {"title": title, "machine": machine(), "headers": headers, "rows": rows, **data})
    print(f"wrote {out}")
    return out


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
