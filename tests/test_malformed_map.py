"""Malformed map data sources: `mindset map tiny-llama --data FILE` gives exit code 2 and one line naming the
file and line, never a traceback; task .yaml sources are checked like `mindset eval`'s."""

from __future__ import annotations

import json

import pytest
from malformed import WRONG, as_yaml, check_one_line_error
from test_malformed_tasks import CASES as TASK_CASES
from test_malformed_tasks import NAMED, WHOLE_FILE, write_data

RECORD = {"prompt": "The capital of France is", "completion": " Paris", "task": "capitals"}


def record_cases():
    """A valid first line, then a malformed second one."""
    cases = []
    for key in ("prompt", "completion"):
        for name, value in WRONG.items():
            if name != "text":
                cases.append((f"{key}={name}", json.dumps({**RECORD, key: value})))
    cases += [
        ("prompt dropped", json.dumps({"completion": " Paris"})),
        ("blank prompt", json.dumps({**RECORD, "prompt": "   "})),
        ("a list", json.dumps([RECORD])),
        ("a number", "3"),
        ("a string", json.dumps("The capital of France is")),
        ("null", "null"),
        ("invalid JSON", '{"prompt": "unclosed'),
        ("trailing comma", '{"prompt": "a",}'),
    ]
    return cases


CASES = record_cases()


def map_cli(cli, tmp_path, source):
    """A model that does not exist: the data sources must be checked, and fail, before any model is loaded."""
    code, out, err = cli("map", "no-such-model", "--data", str(source), "--limit", "2", "-o", str(tmp_path / "map"), "--no-cache", "--device", "cpu")
    assert "no-such-model" not in err
    return code, out, err


@pytest.mark.parametrize("name,line", CASES, ids=[c[0] for c in CASES])
def test_malformed_jsonl_line(tmp_path, cli, name, line):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(RECORD) + "\n" + line + "\n")
    code, _, err = map_cli(cli, tmp_path, path)
    check_one_line_error(code, err, "items.jsonl", line=True)
    assert "items.jsonl:2: " in err
    assert not (tmp_path / "map" / "index.html").exists()


@pytest.mark.parametrize("name,content", [("empty jsonl", b""), ("not UTF-8", b'{"prompt": "\xff"}\n'), ("blank lines only", b"\n  \n")],
                         ids=["empty jsonl", "not UTF-8", "blank lines only"])
def test_malformed_data_file(tmp_path, cli, name, content):
    path = tmp_path / "items.jsonl"
    path.write_bytes(content)
    check_one_line_error(*map_cli(cli, tmp_path, path)[::2], "items.jsonl", line=False)


def test_missing_data_file_and_folder(tmp_path, cli):
    check_one_line_error(*map_cli(cli, tmp_path, tmp_path / "nope.jsonl")[::2], "nope.jsonl", line=False)
    (tmp_path / "folder.jsonl").mkdir()
    check_one_line_error(*map_cli(cli, tmp_path, tmp_path / "folder.jsonl")[::2], "folder.jsonl", line=False)


MAP_TASK_CASES = TASK_CASES[::6]  # every sixth malformed task file: the same reader as eval, so a sample


@pytest.mark.parametrize("name,data", MAP_TASK_CASES, ids=[c[0] for c in MAP_TASK_CASES])
def test_malformed_task_source(tmp_path, cli, name, data):
    write_data(tmp_path)
    (tmp_path / "task.yaml").write_text(as_yaml(data).replace("'!function'", "!function"))
    code, _, err = map_cli(cli, tmp_path, tmp_path / "task.yaml")
    check_one_line_error(code, err, NAMED.get(name, "task.yaml"), line=name not in WHOLE_FILE)


def test_a_task_whose_split_lists_its_files_maps_with_the_cache(tmp_path, cli):
    """data_files: {train: [a.jsonl]} is valid lm-eval; the map's cache key hashed the lists and crashed (TypeError: unhashable)."""
    from test_malformed_tasks import base

    write_data(tmp_path)
    (tmp_path / "task.yaml").write_text(as_yaml(base()))
    code, _, err = cli("map", "tiny-llama", "--data", str(tmp_path / "task.yaml"), "--limit", "4", "--splits", "test,train", "-o", str(tmp_path / "map"),
                       "--cache", str(tmp_path / "cache"), "--device", "cpu", "--paths", "0")
    assert code == 0, err
    assert (tmp_path / "map" / "index.html").exists() and list((tmp_path / "cache").rglob("items/*.json"))
