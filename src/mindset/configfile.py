"""YAML config files validated by pydantic, with errors that name the file and line.

Every YAML a user writes (recipes, merge configs, lm-eval task files) goes through `load_yaml` (or
`parse_yaml`) + `validate`, so a typo anywhere reads the same: `recipe.yaml:12: steps[1].ppl: unknown field 'strid'`.
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

    def within(self, loc: Loc, data: Any) -> YamlDocument:
        """The document of the part at `loc` (an inline merge config in a recipe): same file, lines re-rooted."""
        lines = {key[len(loc) :]: line for key, line in self.lines.items() if key[: len(loc)] == loc}
        return YamlDocument(data, self.path, lines)

    def where(self, loc: Loc = ()) -> str:
        """'file:line' prefix for a message about `loc`."""
        name = str(self.path) if self.path else "<yaml>"
        line = self.line_of(loc)
        return f"{name}:{line}" if line else name


def read_text(path: str | Path, what: str = "YAML file") -> str:
    """The file's text, or one line saying why it cannot be read (missing, a folder, not UTF-8)."""
    path = Path(path)
    if not path.exists():
        raise MindsetError(f"{path}: no such file")
    if path.is_dir():
        raise MindsetError(f"{path}: a folder, not a {what}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise MindsetError(f"{path}:{line}: is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise MindsetError(f"{path}: cannot read it ({err.strerror})") from None


def load_yaml(path: str | Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> YamlDocument:
    path = Path(path)
    return parse_yaml(read_text(path), path, loader=loader)


def parse_yaml(text: str, path: Path | None = None, *, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> YamlDocument:
    """Parse `text` with `loader` (a SafeLoader, maybe with constructors for tags such as lm-eval's `!function`)
    and record the line of every key and list item; a YAML error, a duplicated key, a key that is not text or an
    alias that contains itself is one MindsetError naming the line."""
    name = str(path) if path else "<yaml>"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = YamlDocument(data=None, path=path)
        if node is not None:
            _record_lines(node, (), doc, set())
        doc.data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader or a subclass of it
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise MindsetError(f"{where}: invalid YAML: {one_line(problem)}") from None
    except RecursionError:
        raise MindsetError(f"{name}: invalid YAML: nested too deeply") from None
    return doc


def _record_lines(node: yaml.Node, loc: Loc, doc: YamlDocument, open_nodes: set[int]) -> None:
    """Fill `doc.lines`; `open_nodes` are the nodes being walked above this one (an alias may repeat a node,
    but a node that contains itself would never end)."""
    if id(node) in open_nodes:
        raise MindsetError(f"{doc.path or '<yaml>'}:{node.start_mark.line + 1}: invalid YAML: an alias refers to a node that contains it")
    open_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in (STR_TAG, MERGE_TAG):
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else f"a {type(key_node).__name__.removesuffix('Node').lower()}"
                raise MindsetError(f"{doc.path or '<yaml>'}:{line}: key {shown!r} is not a name; keys are text (quote it if you mean the text)")
            key = key_node.value
            if key in seen:  # PyYAML would silently keep the last one
                raise MindsetError(f"{doc.path or '<yaml>'}:{line}: duplicate key {key!r}")
            seen.add(key)
            doc.lines[loc + (key,)] = line
            _record_lines(value_node, loc + (key,), doc, open_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[loc + (i,)] = item.start_mark.line + 1
            _record_lines(item, loc + (i,), doc, open_nodes)
    open_nodes.discard(id(node))


STR_TAG, MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"


def one_line(text: str) -> str:
    """A message as one line: the CLI prints each error as a single line."""
    return " ".join(str(text).split())


def require_mapping(doc: YamlDocument, what: str) -> dict:
    """The document's top-level mapping, or one line saying what the file should hold (empty, a list, text)."""
    if isinstance(doc.data, dict):
        return doc.data
    name = str(doc.path) if doc.path else "<yaml>"
    if doc.data is None:
        raise MindsetError(f"{name}: the file is empty; {what}")
    raise MindsetError(f"{name}: top level: {what}, not {describe_value(doc.data)}")


def describe_value(value: Any) -> str:
    """'a list', 'the number 3', "the text 'abc'": what a user wrote, in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def validate(model: type[M], data: Any, doc: YamlDocument | None = None, loc: Loc = ()) -> M:
    """Validate `data` (found at `loc` inside `doc`) against a pydantic model, or raise one clear line."""
    try:
        return model.model_validate({} if data is None else data, context={"doc": doc, "loc": loc})
    except ValidationError as err:
        raise MindsetError(describe_validation_error(err, model, doc, loc, data)) from None


# errors that explain the rest, reported first: an unknown key (a misspelt required field is also "missing"),
# and a key mindset knows but refuses (its reason beats the type errors of the same value)
FIRST = ("unsupported", "extra_forbidden")
# PydanticCustomError types whose message is a whole sentence that names its keys: printed after 'file:line'
# alone; ctx {"at": key} points the line at a key of the object that failed
SENTENCES = ("unsupported", "config")


def describe_validation_error(err: ValidationError, model: type[BaseModel], doc: YamlDocument | None, loc: Loc, data: Any = None) -> str:
    errors = sorted(err.errors(), key=lambda e: e["type"] not in FIRST)
    first = errors[0]
    inner = _real_loc(tuple(first["loc"]), data, keep_last=first["type"] in ("missing", "extra_forbidden")) if doc else tuple(first["loc"])
    full = loc + inner
    where = doc.where(full) if doc else "config"
    if doc and first["type"] == "missing" and doc.line_of(full) is None and doc.lines:
        where = f"{doc.where()}:{min(doc.lines.values())}"  # a key missing at the top: the mapping starts there
    if first["type"] == "extra_forbidden":
        name = str(first["loc"][-1])
        owner = _model_at(model, inner[:-1])
        known = [n for n, f in owner.model_fields.items() if not f.exclude] if owner else []
        hint = difflib.get_close_matches(name, known, n=1)
        message = f"unknown field {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        message += f"; known fields: {', '.join(known)}" if known and not hint else ""
        full = full[:-1]
    elif first["type"] in SENTENCES:  # the sentence names its keys
        at = (first.get("ctx") or {}).get("at")
        return f"{doc.where(full + (at,)) if doc and at else where}: {one_line(first['msg'])}"
    else:
        message = first["msg"]
        if first["type"].endswith(("_type", "_parsing")) or first["type"] in ("model_attributes_type", "dict_type", "list_type", "literal_error"):
            message += f", not {describe_value(first.get('input'))}"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: {format_loc(full) or 'top level'}: {one_line(message)}{more}"


def _real_loc(loc: Loc, data: Any, keep_last: bool) -> Loc:
    """pydantic names the union member it tried inside a location ('config.inline.slices', 'weight.list[...]');
    the YAML has no such key. Keep the parts that walk the data (and a missing or unknown key's own name)."""
    kept: Loc = ()
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (last and keep_last):
            continue  # a union tag
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
