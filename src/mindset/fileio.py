"""Writes that are never seen half-done: write beside the target, then rename over it."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mindset.errors import MindsetError


def check_output(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse to replace existing output unless asked: the one rule (and message) of every command.

    A missing path or an empty folder holds nothing to lose; anything else needs `overwrite`. Call it
    before any work starts, so a refusal costs nothing.
    """
    path = Path(path)
    taken = path.is_file() or path.is_symlink() or (path.is_dir() and any(path.iterdir()))
    if taken and not overwrite:
        raise MindsetError(f"{path} exists; choose another output path or pass --overwrite to replace it")
    return path


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name beside `path` for a writer that takes a file name (safetensors, faiss); it
    replaces `path` only if the block finishes, and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes `path` only if the block finishes.

    An existing `path` is swapped out after the new folder is complete when `replace`; otherwise
    (another process finished the same work first) theirs is kept and ours dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if replace and path.exists():
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
