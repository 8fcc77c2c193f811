"""Malformed variants of a valid config, built programmatically, for the tests that feed them to the CLI.

`mutations(base, accepts)` walks every key and list item of `base` and yields copies where that value is
replaced by one of each wrong kind (null, a number, text, a list, a mapping, a nested wrong shape), where a
key is dropped (unless optional) and where an unknown key joins each mapping. `accepts` names the kinds a
location legitimately takes besides its own (fnmatch patterns over dotted locations, list items as numbers):
those replacements would be valid configs and are not generated. `FILE_LEVEL` are whole-file mistakes.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Iterator
from typing import Any

import yaml

WRONG: dict[str, Any] = {
    "null": None,
    "int": 7,
    "float": 2.5,
    "bool": True,
    "text": "oops",
    "list": [1, 2],
    "mapping": {"oops": 1},
    "nested": [[{"oops": [1]}]],
}

# whole-file mistakes: (name, file content)
FILE_LEVEL: list[tuple[str, str | bytes]] = [
    ("empty", ""),
    ("comment only", "# nothing here\n"),
    ("top-level list", "- a\n- b\n"),
    ("top-level text", "hello\n"),
    ("top-level number", "3\n"),
    ("invalid YAML", "a: [1,\n"),
    ("tab indentation", "a:\n\tb: 1\n"),
    ("two documents", "a: 1\n---\nb: 2\n"),
    ("recursive alias", "a: &x [*x]\n"),
    ("list as a key", "? [a, b]\n: 1\n"),
    ("number as a key", "1: x\n"),
    ("not UTF-8", b"a: \xff\xfe\n"),
]

ONE_LINE_ERROR = re.compile(r"^error: \S+: \S")


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "text"
    return "mapping" if isinstance(value, dict) else "list"


def locations(data: Any, loc: tuple = ()) -> Iterator[tuple]:
    """Every key and list item below the top level, parents first."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield loc + (key,)
        yield from locations(value, loc + (key,))


def dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _parent(data: Any, loc: tuple) -> Any:
    for part in loc[:-1]:
        data = data[part]
    return data


def replaced(base: Any, loc: tuple, value: Any) -> Any:
    data = copy.deepcopy(base)
    _parent(data, loc)[loc[-1]] = copy.deepcopy(value)
    return data


def dropped(base: Any, loc: tuple) -> Any:
    data = copy.deepcopy(base)
    del _parent(data, loc)[loc[-1]]
    return data


def _matches(loc: tuple, rules: dict[str, set[str]], what: str) -> bool:
    return any(fnmatch.fnmatchcase(dotted(loc), pattern) and what in kinds for pattern, kinds in rules.items())


def mutations(base: dict, accepts: dict[str, set[str]], *, optional: tuple[str, ...] = (), open_mappings: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """(id, data) for every wrong-kind replacement, dropped required key and unknown key of `base`.

    `accepts`: pattern -> kinds valid there besides the original's; `optional`: patterns of keys that may be
    dropped; `open_mappings`: patterns of mappings whose keys are free (no unknown key is added there).
    """
    cases: list[tuple[str, Any]] = []
    for loc in locations(base):
        original = kind(_parent(base, loc)[loc[-1]])
        for name, value in WRONG.items():
            if name != original and not _matches(loc, accepts, name):
                cases.append((f"{dotted(loc)}={name}", replaced(base, loc, value)))
        if isinstance(loc[-1], str) and not any(fnmatch.fnmatchcase(dotted(loc), p) for p in optional):
            cases.append((f"{dotted(loc)} dropped", dropped(base, loc)))
    for loc in [(), *locations(base)]:
        node = _parent(base, loc + ("",))
        if isinstance(node, dict) and not any(fnmatch.fnmatchcase(dotted(loc), p) for p in open_mappings):
            data = copy.deepcopy(base)
            _parent(data, loc + ("",))["oops_unknown_key"] = 1
            cases.append((f"{dotted(loc) or 'top'}+unknown key", data))
    return cases


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def duplicated_key(data: dict) -> str:
    """The YAML of `data` with its last top-level key written twice."""
    text = as_yaml(data)
    last = [line for line in text.splitlines() if line and not line.startswith((" ", "-"))][-1]
    return text + last + "\n"


def check_one_line_error(code: int, err: str, name: str, *, line: bool) -> None:
    """Exit code 2 and one line on stderr, 'error: FILE[:LINE]: ...', no traceback."""
    lines = [text for text in err.splitlines() if text.strip()]
    assert code == 2, f"exit code {code}, stderr: {err[-2000:]}"
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert ONE_LINE_ERROR.match(lines[0]), lines[0]
    assert name in lines[0], lines[0]
    if line:
        assert re.search(re.escape(name) + r":\d+: ", lines[0]), lines[0]
