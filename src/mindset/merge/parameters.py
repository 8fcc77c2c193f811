"""A method parameter's value for one tensor: filters, gradients and precedence, as mergekit resolves them.

Precedence, highest first: the slice source's (or `models:` entry's) own `parameters`, the slice's,
then the top level's. At each level a setting may be a scalar, a gradient (a list interpolated
linearly over the slice's layers: t = layer / (layers - 1), and t = 0 for embeddings, norms and head)
or a list of `{filter, value}` tried in order, where `filter` matches any tensor whose name contains
it; a level whose filters all miss defers to the next one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mindset.merge.config import ConditionalParameter, Parameters
from mindset.merge.methods.registry import Param

MISSING = object()


def evaluate(setting: Any, tensor_name: str, t: float, param: Param) -> Any:
    """The converted value of one level's setting, or MISSING when its filters do not match."""
    if isinstance(setting, ConditionalParameter):
        setting = [setting]
    if isinstance(setting, list) and setting and all(isinstance(s, ConditionalParameter) for s in setting):
        for condition in setting:
            if condition.filter in (None, "*") or (tensor_name and condition.filter in tensor_name):
                return evaluate(condition.value, tensor_name, t, param)
        return MISSING
    if isinstance(setting, list):
        if not setting:
            return MISSING
        values = [param.convert(v) for v in setting]
        if not all(isinstance(v, float) for v in values):  # booleans pick a step instead of interpolating
            return values[int(t * (len(values) - 1))]
        scaled = t * (len(setting) - 1)
        low = int(scaled)
        high = min(len(setting) - 1, low + 1)
        fraction = scaled - low
        return param.convert((1 - fraction) * values[low] + fraction * values[high])
    return param.convert(setting)


def resolve(param: Param, levels: Iterable[Parameters | None], tensor_name: str, t: float) -> Any:
    """The first level that gives a value wins; then the default; MISSING if the parameter is required."""
    for level in levels:
        if level and param.name in level:
            value = evaluate(level[param.name], tensor_name, t, param)
            if value is not MISSING:
                return value
    return MISSING if param.required else param.default


def check_setting(setting: Any, param: Param) -> None:
    """Convert every value a setting can produce, so a bad one fails before any tensor is planned."""
    if isinstance(setting, ConditionalParameter):
        setting = [setting]
    if isinstance(setting, list) and setting and all(isinstance(s, ConditionalParameter) for s in setting):
        for condition in setting:
            check_setting(condition.value, param)
        return
    for value in setting if isinstance(setting, list) else [setting]:
        param.convert(value)
