"""A task's local data: `dataset_kwargs.data_files` (a path, a list, or a mapping split -> path(s)) found and read.

Relative paths are tried from the working directory first (what lm-eval, through `datasets`, does) and then
from the task file's folder. Files are JSON Lines, or one JSON array (or an object holding one under `field`).
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mindset.configfile import describe_value, read_text
from mindset.errors import MindsetError

if TYPE_CHECKING:
    from mindset.evaluate.taskfile import TaskSpec


def split_files(spec: TaskSpec) -> dict[str, list[Path]]:
    files = spec.dataset_kwargs["data_files"]
    by_split = files if isinstance(files, dict) else {"train": files}
    return {split: [_find(spec, str(p)) for p in (paths if isinstance(paths, list) else [paths])] for split, paths in by_split.items()}


def _find(spec: TaskSpec, name: str) -> Path:
    candidates = [Path(name).expanduser()]
    if spec.source and not Path(name).is_absolute():
        candidates.append(spec.source.parent / name)
    for candidate in candidates:
        if any(ch in str(candidate) for ch in "*?["):
            hits = sorted(glob.glob(str(candidate)))
            if hits:
                return Path(hits[0]) if len(hits) == 1 else _many(spec, name, hits)
        elif candidate.is_file():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise MindsetError(f"{spec.location()}: data file {name!r} not found (looked for {tried})")


def _many(spec: TaskSpec, name: str, hits: list[str]) -> Path:
    raise MindsetError(f"{spec.location()}: {name!r} matches {len(hits)} files; list them under data_files instead")


def read_records(path: Path, field: str | None = None) -> list[dict[str, Any]]:
    """JSON Lines, or one JSON array (or an object holding one under `field`)."""
    text = read_text(path, "data file")
    stripped = text.lstrip()
    try:
        if stripped.startswith("[") or (stripped.startswith("{") and field):
            data = json.loads(text)
            if field and not isinstance(data, dict):
                raise MindsetError(f"{path}: field {field!r} is read from a JSON object; this file holds {describe_value(data)}")
            rows = data[field] if field else data
            if not isinstance(rows, list):
                raise MindsetError(f"{path}: the records must be a JSON array, not {describe_value(rows)}")
        else:
            rows = []
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise MindsetError(f"{path}:{number}: invalid JSON: {err.msg}") from None
    except json.JSONDecodeError as err:
        raise MindsetError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    except KeyError:
        raise MindsetError(f"{path}: no field {field!r} at the top level") from None
    if not all(isinstance(row, dict) for row in rows):
        raise MindsetError(f"{path}: every record must be a JSON object")
    return rows


def load_split(spec: TaskSpec, split: str) -> list[dict[str, Any]]:
    files = split_files(spec)
    if split not in files:
        raise MindsetError(f"{spec.location()}: split {split!r} has no data_files (splits: {', '.join(files)})")
    # records stay as written: a record lacking a field the templates use is an error naming the record
    # (through `datasets`, lm-eval would fill the field with None and render "None" into the prompt)
    return [row for path in files[split] for row in read_records(path, spec.dataset_kwargs.get("field"))]
