"""Malformed merge configs, generated from two valid ones: `mindset merge CFG --dry-run` (and a real merge)
gives exit code 2 and one line naming the file and line, never a traceback (issue 14: `slices: 3` printed
`TypeError: 'int' object is not iterable`)."""

from __future__ import annotations

import pytest
from malformed import FILE_LEVEL, as_yaml, check_one_line_error, duplicated_key, mutations, replaced


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """base and ft1: small Llamas of one family (4 layers)."""
    from mindset.merge.fixtures import write_finetune_family

    paths = write_finetune_family(tmp_path_factory.mktemp("family"), hidden=16)
    return {"base": str(paths["base"]), "ft1": str(paths["ft1"])}


def models_base(m):  # ties over `models:`, with a base model, per-model parameters, dtype and tokenizer settings
    return {
        "merge_method": "ties",
        "base_model": m["base"],
        "models": [{"model": m["ft1"], "parameters": {"weight": 0.7, "density": [0.2, 0.8]}}, {"model": m["base"]}],
        "parameters": {"normalize": True, "int8_mask": False},
        "dtype": "float32",
        "tokenizer": {"source": "base", "pad_to_multiple_of": 8},
    }


def slices_base(m):  # slerp over `slices:`, with layer ranges, a filtered gradient and out_dtype
    sources = [{"model": m["base"], "layer_range": [0, 4]}, {"model": m["ft1"], "layer_range": [0, 4]}]
    return {
        "merge_method": "slerp",
        "base_model": m["base"],
        "slices": [{"sources": sources, "parameters": {"t": [{"filter": "self_attn", "value": [0.0, 1.0]}, {"value": 0.5}]}}],
        "out_dtype": "float16",
    }


# kinds each location takes besides its own (unions of the schema): those replacements are valid configs
ACCEPTS = {
    "parameters.*": {"int", "float", "bool", "text", "list"},  # scalars (text: '1e-3') and gradients; checked per method
    "models.*.parameters.weight": {"int", "text", "list"},
    "models.*.parameters.density": {"int", "float", "text"},
    "models.*.parameters.density.*": {"int", "float", "text"},
    "slices.*.parameters.t": {"int", "float", "text", "list", "mapping"},
    "slices.*.parameters.t.*.value.*": {"int", "text"},
    "slices.*.parameters.t.*": {"int", "float", "text"},
    "slices.*.parameters.t.*.filter": {"null"},
    "slices.*.sources.*.layer_range.*": {"text"},  # '0' reads as 0
    "tokenizer.pad_to_multiple_of": {"null", "text", "bool"},  # pydantic reads true as 1
    "parameters": {"null"},
    "dtype": {"null"},
    "out_dtype": {"null"},
    "tokenizer": {"null"},
    "slices.*.parameters.t.*.value": {"int", "float", "text", "list"},
    "parameters.normalize": {"int", "text"},
    "parameters.int8_mask": {"int", "text"},
}
OPTIONAL = ("slices.*.parameters.t.*.filter", "dtype", "out_dtype", "parameters", "parameters.*", "tokenizer", "tokenizer.*", "models.*.parameters", "models.*.parameters.*",
            "slices.*.parameters")
OPEN = ("parameters", "models.*.parameters", "slices.*.parameters")

# wrong values of the right type: each is one line, too
EXTRA = [
    ("layer_range of one", ("slices", 0, "sources", 0, "layer_range"), [0]),
    ("layer_range of three", ("slices", 0, "sources", 0, "layer_range"), [0, 1, 2]),
    ("layer_range reversed", ("slices", 0, "sources", 0, "layer_range"), [4, 0]),
    ("layer_range negative", ("slices", 0, "sources", 0, "layer_range"), [-1, 3]),
    ("layer_range past the end", ("slices", 0, "sources", 0, "layer_range"), [0, 100]),
    ("layer_range fraction", ("slices", 0, "sources", 0, "layer_range"), [0.5, 4]),
    ("unknown out_dtype", ("out_dtype",), "float17"),
    ("dtype as a number", ("out_dtype",), 16),
    ("huge integer t", ("slices", 0, "parameters", "t"), 10**400),
    ("infinite t", ("slices", 0, "parameters", "t"), float("inf")),
    ("density out of range", ("slices", 0, "parameters"), {"t": 0.5, "density": 1.5}),
    ("empty model name", ("slices", 0, "sources", 0, "model"), " "),
    ("no sources", ("slices", 0, "sources"), []),
    ("no slices", ("slices",), []),
    ("unknown method", ("merge_method",), "slurp"),
    ("residual_weight", ("slices", 0, "residual_weight"), 0.5),
]


def cases():
    out = [(f"models:{name}", "models", data) for name, data in mutations(models_base(PLACEHOLDER), ACCEPTS, optional=OPTIONAL, open_mappings=OPEN)]
    out += [(f"slices:{name}", "slices", data) for name, data in mutations(slices_base(PLACEHOLDER), ACCEPTS, optional=OPTIONAL, open_mappings=OPEN)]
    out += [(f"slices:{name}", "slices", replaced(slices_base(PLACEHOLDER), loc, value)) for name, loc, value in EXTRA]
    return out


PLACEHOLDER = {"base": "@base@", "ft1": "@ft1@"}
CASES = cases()


def fill(text: str, models: dict) -> str:
    return text.replace("@base@", models["base"]).replace("@ft1@", models["ft1"])


def test_the_valid_bases_plan(models, tmp_path, cli):
    for base in (models_base, slices_base):
        path = tmp_path / "merge.yaml"
        path.write_text(as_yaml(base(models)))
        code, _, err = cli("merge", str(path), "--dry-run")
        assert code == 0, err


@pytest.mark.parametrize("name,base,data", CASES, ids=[c[0] for c in CASES])
def test_malformed_merge_config(models, tmp_path, cli, name, base, data):
    path = tmp_path / "merge.yaml"
    path.write_text(fill(as_yaml(data), models))
    whole = name.split(":", 1)[1] in WHOLE_CONFIG
    check_one_line_error(*cli("merge", str(path), "--dry-run")[::2], "merge.yaml", line=not whole)


# a rule about the whole config ("give exactly one of 'slices' or 'models'") names the file, not a line
WHOLE_CONFIG = {"models=null", "models dropped", "slices=null", "slices dropped", "no slices"}


@pytest.mark.parametrize("name,content", [*FILE_LEVEL, ("duplicated key", None)], ids=[n for n, _ in FILE_LEVEL] + ["duplicated key"])
def test_malformed_merge_file(models, tmp_path, cli, name, content):
    path = tmp_path / "merge.yaml"
    if content is None:
        content = duplicated_key(slices_base(models))
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    check_one_line_error(*cli("merge", str(path), "-o", str(tmp_path / "out"))[::2], "merge.yaml", line=False)
    assert not (tmp_path / "out").exists()


def test_the_issues_config_without_dry_run(tmp_path, cli):
    path = tmp_path / "cfg.yaml"
    path.write_text("merge_method: linear\nslices: 3\n")
    code, _, err = cli("merge", str(path), "-o", str(tmp_path / "out"))
    check_one_line_error(code, err, "cfg.yaml", line=True)
    assert "cfg.yaml:2: slices: Input should be a valid list, not the number 3" in err


@pytest.mark.parametrize("size,message", [("5XB", "cannot read '5XB'"), ("0MB", "a size must be at least one byte")])
def test_shard_size_on_the_cli_names_the_option(models, tmp_path, cli, size, message):
    path = tmp_path / "merge.yaml"
    path.write_text(as_yaml(slices_base(models)))
    code, _, err = cli("merge", str(path), "-o", str(tmp_path / "out"), "--shard-size", size)
    assert code == 2 and f"error: --shard-size: {message}" in err and len(err.strip().splitlines()) == 1
