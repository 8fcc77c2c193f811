"""Malformed recipes, generated from a valid one: `mindset run RECIPE.yaml` gives exit code 2 and one line naming
the file and line before any step runs, never a traceback."""

from __future__ import annotations

import pytest
from malformed import FILE_LEVEL, as_yaml, check_one_line_error, duplicated_key, mutations, replaced


def base():
    return {
        "name": "malformed",
        "model": "tiny-llama",
        "device": "cpu",
        "dtype": "float32",
        "steps": [
            "inspect",
            {"ppl": {"max_tokens": 40, "context": 32, "split": "valid"}},
            {"generate": {"prompts": ["Hello"], "max_new_tokens": 2, "temperature": 0.0}},
            {"merge": {"config": {"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 1.0}}]}, "shard_size": "1MB", "load": False}},
            {"eval": {"tasks": ["capitals"], "limit": 2}},
        ],
    }


ACCEPTS = {
    "name": {"null"},
    "model": {"null"},
    "steps.0": {"mapping"},  # {inspect: ...}: a one-key mapping is a step too
    "steps.*.*.max_tokens": {"null", "bool"},
    "steps.*.*.context": {"null", "bool"},
    "steps.*.*": {"null"},  # a step's parameters left empty: its defaults
    "steps.*.generate.max_new_tokens": {"bool"},
    "steps.*.generate.temperature": {"int", "bool"},
    "steps.*.merge.config.models.*.parameters.weight": {"int", "bool", "text", "list"},
    "steps.*.merge.config.models.*.parameters": {"null"},
    "steps.*.merge.shard_size": {"int"},
    "steps.*.eval.limit": {"null", "bool"},
}
OPTIONAL = ("name", "model", "device", "dtype", "steps.*.*.*", "steps.*.merge.config.models.*.parameters*")
OPEN = ("steps.*.merge.config.models.*.parameters",)
EXTRA = [
    ("unknown step", ("steps", 0), "inspekt"),
    ("a step with two names", ("steps", 0), {"inspect": None, "ppl": None}),
    ("unknown dtype", ("dtype",), "float17"),
    ("unknown device", ("device",), "gpu0"),
    ("bad shard_size", ("steps", 3, "merge", "shard_size"), "5XB"),
    ("zero shard_size", ("steps", 3, "merge", "shard_size"), 0),
    ("shard_size as a list", ("steps", 3, "merge", "shard_size"), ["5GB"]),
    ("merge config: slices is a number", ("steps", 3, "merge", "config"), {"merge_method": "linear", "slices": 3}),
    ("merge config: neither slices nor models", ("steps", 3, "merge", "config"), {"merge_method": "linear"}),
    ("merge config: refused key", ("steps", 3, "merge", "config", "modules"), {"a": 1}),
    ("no steps", ("steps",), []),
    ("merge config file is missing", ("steps", 3, "merge", "config"), "no-such-merge.yaml"),
    ("bad run name", ("name",), "../up"),
]
CASES = mutations(base(), ACCEPTS, optional=OPTIONAL, open_mappings=OPEN) + [(name, replaced(base(), loc, value)) for name, loc, value in EXTRA]


def run_cli(cli, tmp_path, path):
    return cli("run", str(path), "-o", str(tmp_path / "runs" / "run"))


@pytest.mark.parametrize("name,data", CASES, ids=[c[0] for c in CASES])
def test_malformed_recipe(tmp_path, cli, name, data):
    path = tmp_path / "recipe.yaml"
    path.write_text(as_yaml(data))
    check_one_line_error(*run_cli(cli, tmp_path, path)[::2], "recipe.yaml", line=True)
    assert not (tmp_path / "runs").exists()  # rejected before any step ran


@pytest.mark.parametrize("name,content", [*FILE_LEVEL, ("duplicated key", None)], ids=[n for n, _ in FILE_LEVEL] + ["duplicated key"])
def test_malformed_recipe_file(tmp_path, cli, name, content):
    content = duplicated_key(base()) if content is None else content
    path = tmp_path / "recipe.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    check_one_line_error(*run_cli(cli, tmp_path, path)[::2], "recipe.yaml", line=False)


def test_a_bad_shard_size_names_the_recipe_field_not_the_cli_option(tmp_path, cli):
    path = tmp_path / "recipe.yaml"
    path.write_text(as_yaml(replaced(base(), ("steps", 3, "merge", "shard_size"), "big")))
    code, _, err = run_cli(cli, tmp_path, path)
    assert code == 2 and "recipe.yaml:23: steps[3].merge.shard_size: Value error, cannot read 'big'" in err and "--shard-size" not in err


def test_an_inline_merge_configs_plan_errors_name_the_recipe_line(tmp_path, cli):
    merge = {"merge": {"config": {"merge_method": "linear", "models": [{"model": "no-such-model", "parameters": {"weight": 1.0}}]}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(as_yaml({"steps": [merge]}))
    code, _, err = run_cli(cli, tmp_path, path)
    check_one_line_error(code, err, "recipe.yaml", line=True)
    assert "recipe.yaml:6: models[0].model: model 'no-such-model': no such model folder" in err and "<yaml>" not in err
