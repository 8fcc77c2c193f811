"""YAML config files validated by pydantic, with errors that name the file and line.

Every YAML a user writes (recipes now; merge configs and task files later) goes through
`load_yaml` + `validate`, so a typo anywhere reads the same: `recipe.yaml:12: steps[1].ppl: unknown field 'strid'`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mindset.errors import MindsetError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class YamlDocument:
    """Parsed YAML plus the 1-based line of every key and list item, by path."""

    data: Any
    path: Path | None = None
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest ancestor that has one."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def where(self, loc: Loc = ()) -> str:
        """'file:line' prefix for a message about `loc`."""
        name = str(self.path) if self.path else "<yaml>"
        line = self.line_of(loc)
        return f"{name}:{line}" if line else name


def load_yaml(path: str | Path) -> YamlDocument:
    path = Path(path)
    if not path.exists():
        raise MindsetError(f"{path}: no such file")
    if path.is_dir():
        raise MindsetError(f"{path} is a folder, not a YAML file")
    return parse_yaml(path.read_text(encoding="utf-8"), path)


def parse_yaml(text: str, path: Path | None = None) -> YamlDocument:
    name = str(path) if path else "<yaml>"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise MindsetError(f"{where}: invalid YAML: {problem}") from None
    doc = YamlDocument(data=data, path=path)
    if node is not None:
        _record_lines(node, (), doc)
    return doc


def _record_lines(node: yaml.Node, loc: Loc, doc: YamlDocument) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:  # PyYAML would silently keep the last one
                raise MindsetError(f"{doc.path or '<yaml>'}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
            doc.lines[loc + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, loc + (key,), doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[loc + (i,)] = item.start_mark.line + 1
            _record_lines(item, loc + (i,), doc)


def validate(model: type[M], data: Any, doc: YamlDocument | None = None, loc: Loc = ()) -> M:
    """Validate `data` (found at `loc` inside `doc`) against a pydantic model, or raise one clear line."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as err:
        raise MindsetError(describe_validation_error(err, model, doc, loc)) from None


def describe_validation_error(err: ValidationError, model: type[BaseModel], doc: YamlDocument | None, loc: Loc) -> str:
    # an unknown key usually explains the rest (a misspelt required field is also "missing"): report it first
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    full = _drop_union_tags(loc + tuple(first["loc"]), doc)
    where = doc.where(full) if doc else "config"
    if first["type"] == "extra_forbidden":
        name = str(first["loc"][-1])
        owner = _model_at(model, full[len(loc) : -1])
        known = list(owner.model_fields) if owner else []
        hint = difflib.get_close_matches(name, known, n=1)
        message = f"unknown field {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        message += f"; known fields: {', '.join(known)}" if known and not hint else ""
        full = full[:-1]
    else:
        message = first["msg"]
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: {format_loc(full) or 'top level'}: {message}{more}"


def _drop_union_tags(loc: Loc, doc: YamlDocument | None) -> Loc:
    """pydantic names the union member it tried inside a location ('config.MergeConfig.x'); the YAML
    has no such key, so drop a part that is not in the document when the path goes on without it."""
    if doc is None:
        return loc
    kept: Loc = ()
    for i, part in enumerate(loc):
        rest = loc[i + 1 :]
        if isinstance(part, str) and kept + (part,) not in doc.lines and rest and kept + rest[:1] in doc.lines:
            continue
        kept += (part,)
    return kept


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that describes the object at `loc`, following nested models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        current = next(_models_in(annotation), annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _models_in(annotation: Any):
    """The pydantic models inside an annotation, through Optional, unions and containers (list[M] | None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
