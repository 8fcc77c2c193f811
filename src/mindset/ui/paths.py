"""Where the UI may write: only inside --root. A path that leaves it (.., an absolute path elsewhere, a
symlink out) is a user error the API answers with 400."""

from __future__ import annotations

from pathlib import Path

from mindset.errors import MindsetError


class OutsideRoot(MindsetError):
    """A path that resolves outside the workbench's --root."""


def inside_root(root: Path, name: str | Path) -> Path:
    """`name` (relative to `root`, or absolute) resolved, if it lies inside `root`; else OutsideRoot."""
    text = str(name).strip()
    if not text:
        raise MindsetError("give a folder name under --root, e.g. edited-model")
    root = Path(root).resolve()
    target = (root / text).resolve()  # an absolute `text` replaces root here, and is then checked like any path
    if target == root or not target.is_relative_to(root):
        raise OutsideRoot(f"{text!r} is not inside --root {root}; give a folder name under it, e.g. edited-model")
    return target
