"""Malformed lm-eval task files, generated from a valid one: `mindset eval tiny-llama --tasks FILE.yaml` gives
exit code 2 and one line naming the file (and line), never a traceback; the map reads task files the same way."""

from __future__ import annotations

import json

import pytest
from malformed import FILE_LEVEL, as_yaml, check_one_line_error, duplicated_key, mutations, replaced

DOCS = [{"q": f"What is {i} plus 1?", "options": [str(i + 1), str(i + 2)], "gold": 0, "answer": str(i + 1)} for i in range(4)]


def base():
    return {
        "task": "plus_one",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": "test.jsonl", "train": ["train.jsonl"]}},
        "test_split": "test",
        "training_split": "train",
        "output_type": "generate_until",
        "doc_to_text": "Q: {{q}}\nA:",
        "doc_to_target": "answer",
        "description": "Arithmetic.\n\n",
        "num_fewshot": 1,
        "fewshot_config": {"sampler": "first_n"},
        "generation_kwargs": {"until": ["\n"], "do_sample": False, "temperature": 0.0, "max_gen_toks": 4},
        "filter_list": [{"name": "strict", "filter": [{"function": "regex", "regex_pattern": "(\\d+)", "group_select": 0}, {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True, "ignore_case": True, "regexes_to_ignore": [","]}],
        "metadata": {"version": 1.0, "chance": {"exact_match": 0.0}},
    }


ACCEPTS = {
    "doc_to_text": {"int", "list", "mapping", "null"},  # lm-eval templates: a field, an index, a list; null is 'missing'
    "doc_to_target": {"int", "list", "mapping", "null"},
    "dataset_kwargs.data_files": {"text", "list"},
    "dataset_kwargs.data_files.test": {"list"},
    "dataset_kwargs.data_files.train": {"text"},
    "generation_kwargs": {"null"},
    "generation_kwargs.until": {"text"},
    "generation_kwargs.temperature": {"int", "null"},
    "filter_list": {"null"},
    "filter_list.*.filter.*.group_select": {"null", "bool"},  # pydantic reads true as 1
    "filter_list.*.filter.*.regex_pattern": {"null"},
    "num_fewshot": {"null", "bool"},
    "metric_list": {"null"},
    "metric_list.*.regexes_to_ignore": {"null"},
    "metadata": {"null"},
    "metadata.chance": {"null"},
    "metadata.chance.exact_match": {"int"},
    "metadata.version": {"int", "float", "text", "bool", "list", "mapping", "nested", "null"},  # bookkeeping, never read
    "fewshot_config": {"null"},
    "training_split": {"null"},
}
OPTIONAL = ("description", "num_fewshot", "fewshot_config", "fewshot_config.*", "generation_kwargs", "generation_kwargs.*", "filter_list",
            "filter_list.*.filter.*.group_select", "filter_list.*.filter.*.regex_pattern", "metric_list", "metric_list.*.*", "metadata", "metadata.*",
            "output_type", "training_split", "dataset_kwargs.data_files.train")
OPEN = ("generation_kwargs", "metadata", "metadata.chance", "dataset_kwargs.data_files")

EXTRA = [
    ("unknown dataset_path", ("dataset_path",), "hellaswag"),
    ("bad regex", ("filter_list", 0, "filter", 0, "regex_pattern"), "(unclosed"),
    ("bad regex to ignore", ("metric_list", 0, "regexes_to_ignore"), ["[a-"]),
    ("option on a plain filter", ("filter_list", 0, "filter", 1), {"function": "take_first", "group_select": 1}),
    ("negative num_fewshot", ("num_fewshot",), -1),
    ("sampling", ("generation_kwargs", "do_sample"), True),
    ("zero token budget", ("generation_kwargs", "max_gen_toks"), 0),
    ("include a number", ("include",), 3),
    ("include a missing file", ("include",), "missing.yaml"),
    ("function tag without a module", ("doc_to_text",), "!function"),
    ("template syntax error", ("doc_to_text",), "{{ q"),
    ("template reads a missing field", ("doc_to_text",), "{{ question }}"),
    ("missing data file", ("dataset_kwargs", "data_files", "test"), "nope.jsonl"),
    ("field on a JSON Lines array", ("dataset_kwargs",), {"data_files": {"test": "array.json"}, "field": "rows"}),
    ("unknown split key", ("test_split",), "validation"),
]


def write_data(folder):
    (folder / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (folder / "train.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (folder / "array.json").write_text(json.dumps(DOCS))


def task_cases():
    cases = mutations(base(), ACCEPTS, optional=OPTIONAL, open_mappings=OPEN)
    return cases + [(name, replaced(base(), loc, value) if loc[0] in base() else {**base(), loc[0]: value}) for name, loc, value in EXTRA]


CASES = task_cases()
DATA_CASES = [  # malformed records in a valid task's data file
    ("a line is not JSON", '{"q": "a", "answer": "1"}\n{oops\n'),
    ("a record is a list", '[1, 2]\n'),
    ("an array of numbers", "[1, 2, 3]\n"),
    ("records lack the template's field", '{"question": "a", "answer": "1"}\n'),
    ("no records", ""),
    ("not UTF-8", b'{"q": "\xff"}\n'),
]


def eval_cli(cli, tmp_path, path):
    return cli("eval", "tiny-llama", "--tasks", str(path), "--limit", "2", "--out", str(tmp_path / "e"))


def test_the_valid_base_evaluates(tmp_path, cli):
    write_data(tmp_path)
    (tmp_path / "task.yaml").write_text(as_yaml(base()))
    code, _, err = eval_cli(cli, tmp_path, tmp_path / "task.yaml")
    assert code == 0, err


@pytest.mark.parametrize("name,data", CASES, ids=[c[0] for c in CASES])
def test_malformed_task_file(tmp_path, cli, name, data):
    write_data(tmp_path)
    text = as_yaml(data).replace("'!function'", "!function")  # a tag, not the text
    (tmp_path / "task.yaml").write_text(text)
    code, out, err = eval_cli(cli, tmp_path, tmp_path / "task.yaml")
    check_one_line_error(code, err, NAMED.get(name, "task.yaml"), line=name not in WHOLE_FILE)
    assert not (tmp_path / "e" / "tiny-llama").exists()  # nothing was scored


# errors about the task as a whole (its data, its templates on a document) name the file, not a line
WHOLE_FILE = {"template syntax error", "template reads a missing field", "missing data file", "field on a JSON Lines array", "unknown split key",
              "test_split dropped", "test_split=null", "doc_to_text=null", "doc_to_text dropped", "doc_to_target=null", "doc_to_target dropped",
              "dataset_kwargs.data_files.test dropped", "doc_to_text=bool", "doc_to_text=nested", "doc_to_target=bool", "doc_to_target=nested", "sampling"}
NAMED = {"field on a JSON Lines array": "array.json"}  # the error is in the data file


@pytest.mark.parametrize("name,content", [*FILE_LEVEL, ("duplicated key", None)], ids=[n for n, _ in FILE_LEVEL] + ["duplicated key"])
def test_malformed_task_yaml(tmp_path, cli, name, content):
    write_data(tmp_path)
    content = duplicated_key(base()) if content is None else content
    (tmp_path / "task.yaml").write_bytes(content if isinstance(content, bytes) else content.encode())
    check_one_line_error(*eval_cli(cli, tmp_path, tmp_path / "task.yaml")[::2], "task.yaml", line=False)


@pytest.mark.parametrize("name,content", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_malformed_task_data(tmp_path, cli, name, content):
    write_data(tmp_path)
    (tmp_path / "test.jsonl").write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "task.yaml").write_text(as_yaml(base()))
    check_one_line_error(*eval_cli(cli, tmp_path, tmp_path / "task.yaml")[::2], "task", line=False)


def test_an_include_names_the_including_line(tmp_path, cli):
    write_data(tmp_path)
    (tmp_path / "task.yaml").write_text("include: [other.yaml]\n" + as_yaml(base()))
    code, _, err = eval_cli(cli, tmp_path, tmp_path / "task.yaml")
    check_one_line_error(code, err, "task.yaml", line=True)
    assert "include: no such task file" in err


def test_a_key_from_an_included_file_is_reported_at_that_files_line(tmp_path, cli):
    write_data(tmp_path)
    shared = as_yaml({**base(), "num_fewshot": "three"})
    (tmp_path / "shared.yaml").write_text(shared)
    (tmp_path / "task.yaml").write_text("include: shared.yaml\ntask: plus_one_again\n")
    code, _, err = eval_cli(cli, tmp_path, tmp_path / "task.yaml")
    check_one_line_error(code, err, "shared.yaml", line=True)
    line = shared.splitlines().index("num_fewshot: three") + 1
    assert f"shared.yaml:{line}: num_fewshot: Input should be a valid integer" in err


@pytest.mark.parametrize("helper,message", [
    ("def shout(doc:\n", r"helpers.py: importing it for !function helpers.shout failed: SyntaxError"),
    ("raise RuntimeError('no config')\n", r"helpers.py: importing it for !function helpers.shout failed: RuntimeError: no config"),
    ("def shout(doc):\n    return doc['missing']\n", r"doc_to_text \(!function helpers.shout\) raised KeyError: 'missing' on document"),
], ids=["syntax error", "raises on import", "raises on a document"])
def test_a_broken_function_tag_is_one_line(tmp_path, cli, helper, message):
    import re

    write_data(tmp_path)
    (tmp_path / "helpers.py").write_text(helper)
    (tmp_path / "task.yaml").write_text(as_yaml({**base(), "doc_to_text": "FUNCTION"}).replace("FUNCTION", "!function helpers.shout"))
    assert "!function helpers.shout" in (tmp_path / "task.yaml").read_text()
    code, _, err = eval_cli(cli, tmp_path, tmp_path / "task.yaml")
    check_one_line_error(code, err, "helpers.py" if "importing" in message else "task.yaml", line=False)
    assert re.search(message, err), err
