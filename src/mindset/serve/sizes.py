"""Memory sizes for the model pool: what a loaded model takes, and a budget as people write it ("2GB", "1.5GiB")."""

from __future__ import annotations

import re

from mindset.errors import MindsetError

SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(i?)b?|b)?", re.IGNORECASE)


def parse_budget(text: str, option: str = "--memory-budget") -> int:
    """'2GB' (10^9), '1.5GiB' (2^30), '800MB', '500k' or a byte count, in bytes; a MindsetError naming the value otherwise."""
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise MindsetError(f"{option} {text!r}: write a size such as 2GB, 800MB or 1.5GiB (B, KB, MB, GB, TB, or KiB ... TiB)")
    number, unit, binary = match.groups()
    power = "kmgt".index(unit.lower()) + 1 if unit else 0
    size = int(float(number) * ((1024 if binary else 1000) ** power))
    if size < 1:
        raise MindsetError(f"{option} {text!r}: a budget is at least one byte")
    return size


def model_bytes(model) -> int:
    """Bytes the model's parameters and buffers take, each tensor once (tied embeddings share their storage)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        key = (tensor.device, tensor.data_ptr()) if tensor.numel() else id(tensor)
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def format_bytes(n: int | None) -> str:
    """400.2 kB, 1.3 GB: decimal units, as --memory-budget 2GB reads."""
    if n is None:
        return "unknown size"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError
