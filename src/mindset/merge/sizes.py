"""Byte sizes as people write them ("5GB", "500MB", "2GiB", a byte count), as a validated config type.

`ByteSize` is what a recipe's `merge: {shard_size: ...}` and `mindset merge --shard-size` both take: a
pydantic field of this type turns "5GB" into 5_000_000_000 and a bad value into a ValueError that pydantic
reports at the field (recipe.yaml:7: steps[1].merge.shard_size: ...); the CLI names its option itself.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(value: Any) -> int:
    """'5GB', '500MB', '2GiB', a byte count, or mergekit's '5B' (five billion bytes); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"a size is a byte count or text such as 5GB, 500MB or 2GiB, not {value!r}")
    if isinstance(value, int):
        size = value
    else:
        size = _parse_text(value)
    if size < 1:
        raise ValueError(f"a size must be at least one byte, not {value!r}")
    return size


def _parse_text(text: str) -> int:
    value = text.strip().lower()
    if re.fullmatch(r"\d+b", value):
        return int(value[:-1]) * 10**9
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?)?", value)
    if not match:
        raise ValueError(f"cannot read {text!r}; write e.g. 5GB, 500MB or 2GiB")
    number, unit, binary = match.groups()
    scale = (1024 ** (1 + "kmgt".index(unit)) if binary else UNITS[unit]) if unit else 1
    return int(float(number) * scale)


ByteSize = Annotated[int, BeforeValidator(parse_size)]
