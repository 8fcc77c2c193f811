"""Reading mergekit YAML: the published config as published, and one clear line for what is wrong."""

from pathlib import Path

import pytest

from mindset.errors import MindsetError
from mindset.merge import load_merge_config, parse_merge_config
from mindset.merge.config import ConditionalParameter

PROFESSOR = Path(__file__).resolve().parents[2] / "recipes" / "merges" / "professor-mini.yaml"


def test_the_published_config_reads_as_published():
    loaded = load_merge_config(PROFESSOR)
    config = loaded.config
    assert config.merge_method == "linear" and config.parameters == {"weight": 1.0}
    ranges = [tuple(s.sources[0].layer_range) for s in config.slices]
    assert ranges == [(0, 1), (1, 20), (10, 30), (20, 40), (25, 45), (30, 50), (40, 60), (50, 70), (55, 75), (60, 79), (79, 80)]
    assert [len(s.sources) for s in config.slices] == [2] + [1] * 9 + [2]
    assert config.slices[0].sources[1].parameters == {"weight": 0} and config.dtype == "float16"
    assert config.tokenizer_source == "model:models/dolphin-mini"
    assert config.tokenizer_choice == "models/dolphin-mini"  # the legacy prefix means the model
    assert "# embed_tokens comes along" in loaded.text  # kept verbatim for the model card


def test_settings_scalars_gradients_and_filters():
    config = parse_merge_config(
        "merge_method: slerp\nbase_model: a\nparameters:\n  t:\n    - {filter: self_attn, value: [0, 0.5, 1]}\n    - value: 0.5\n"
        "slices:\n  - sources:\n      - {model: a, layer_range: [0, 2], parameters: {x: 1e-3}}\n"
    ).config
    t = config.parameters["t"]
    assert isinstance(t, list) and all(isinstance(c, ConditionalParameter) for c in t)
    assert t[0].filter == "self_attn" and t[0].value == [0, 0.5, 1] and t[1].filter is None
    assert config.slices[0].sources[0].parameters == {"x": "1e-3"}  # YAML reads 1e-3 as text; the method converts it


@pytest.mark.parametrize(
    "text,message",
    [
        ("merge_method: linear\nmodels:\n  - model: a\n    paramters: {weight: 1}\n", r"merge.yaml:4: models\[0\]: unknown field 'paramters' \(did you mean 'parameters'\?\)"),
        ("merge_method: linear\nmodels:\n  - model: a\ntokenizer_source: union\ntokenizer: {source: base}\n", r"merge.yaml:5: give 'tokenizer_source' or 'tokenizer', not both"),
        ("merge_method: linear\n", r"merge.yaml: give exactly one of 'slices' or 'models'"),
        ("merge_method: linear\nmodels: [{model: a}]\nslices: [{sources: [{model: a, layer_range: [0, 1]}]}]\n", r"give exactly one of 'slices' or 'models'"),
        ("merge_method: linear\nmodels:\n  - model: a+lora\n", r"merge.yaml:3: models\[0\].model: Value error, 'a\+lora': LoRA adapters"),
        ("merge_method: linear\nmodels:\n  - model: org/a@main\n", r"hub revisions \(@rev\) are not supported"),
        ("merge_method: linear\nmodels: [{model: a}]\ndtype: float8\n", r"merge.yaml:3: dtype: Value error, unknown dtype 'float8'"),
        ("merge_method: linear\nmodules: {text: {models: [{model: a}]}}\n", r"merge.yaml:2: multi-module merges \(modules:\) are not supported"),
        ("merge_method: linear\nslices:\n  - sources: [{model: a, layer_range: [0, 1]}]\n    residual_weight: 0.5\n", r"merge.yaml:4: residual_weight is never used"),
        ("merge_method: linear\nmodels: [{model: a}]\ntokenizer:\n  source: union\n  tokens: {x: {}}\n", r"merge.yaml:5: per-token embedding sources"),
        ("merge_method: linear\nslices:\n  - sources: [{model: a, layer_range: [0]}]\n", r"merge.yaml:3: slices\[0\].sources\[0\].layer_range"),
        ("merge_method: linear\nmodels: [{model: a}]\nmodels: [{model: b}]\n", r"merge.yaml:3: duplicate key 'models'"),
    ],
)
def test_bad_configs_name_the_line(tmp_path, text, message):
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    with pytest.raises(MindsetError, match=message):
        load_merge_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(MindsetError, match="no such file"):
        load_merge_config(tmp_path / "nope.yaml")
