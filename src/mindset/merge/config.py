"""mergekit's YAML, read as mergekit 0.1.5 reads it, with every unknown key an error that names its line.

Accepted as published: `slices` or `models`, `layer_range`, `parameters` at the top, slice and model
level (scalars, gradients as lists, `filter`/`value` lists), `base_model`, `dtype`, `out_dtype`,
`tokenizer_source` (`base`, `union`, a model, and the legacy `model:<name>` form current mergekit
rejects), `tokenizer: {source, pad_to_multiple_of}` and `chat_template`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mindset.configfile import YamlDocument, load_yaml, parse_yaml, validate
from mindset.errors import MindsetError

Scalar = Union[bool, int, float, str]


class ConditionalParameter(BaseModel):
    """A value used for tensors whose name contains `filter` (no filter, or '*': every tensor)."""

    model_config = ConfigDict(extra="forbid")

    value: Union[Scalar, list[Scalar]]
    filter: str | None = None


# A setting is a scalar, a gradient (a list of scalars interpolated over a slice's layers), or a list
# of filtered values tried in order.
ParameterSetting = Union[ConditionalParameter, list[ConditionalParameter], Scalar, list[Scalar]]
Parameters = dict[str, ParameterSetting]

DTYPES = ("float32", "float16", "bfloat16", "float64")


def _model_name(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if "+" in value:
            raise ValueError(f"{value!r}: LoRA adapters (model+lora) are not supported; merge the adapter into the model first")
        if "@" in value:
            raise ValueError(f"{value!r}: hub revisions (@rev) are not supported; point at a local folder")
        if not value:
            raise ValueError("empty model name")
    return value


class SliceSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    layer_range: tuple[int, int]
    parameters: Parameters | None = None

    _check_model = field_validator("model", mode="before")(_model_name)


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    parameters: Parameters | None = None

    _check_model = field_validator("model", mode="before")(_model_name)


class OutputSlice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[SliceSource] = Field(min_length=1)
    base_model: str | None = None
    parameters: Parameters | None = None

    _check_base = field_validator("base_model", mode="before")(_model_name)


class TokenizerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = "union"
    pad_to_multiple_of: int | None = Field(None, ge=1)


class MergeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merge_method: str
    slices: list[OutputSlice] | None = None
    models: list[InputModel] | None = None
    base_model: str | None = None
    parameters: Parameters | None = None
    dtype: str | None = None
    out_dtype: str | None = None
    tokenizer_source: str | None = None
    tokenizer: TokenizerSettings | None = None
    chat_template: str | None = None

    _check_base = field_validator("base_model", mode="before")(_model_name)

    @field_validator("dtype", "out_dtype", mode="before")
    @classmethod
    def _known_dtype(cls, value: Any) -> Any:
        if value is None:
            return None
        name = str(value).removeprefix("torch.")
        if name not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}; use one of {', '.join(DTYPES)}")
        return name

    @property
    def tokenizer_choice(self) -> str | None:
        """'base', 'union', a model name, or None (copy the donor's tokenizer, vocabularies must match).

        The published frankenmerge writes `tokenizer_source: model:<name>`, a form from before mergekit
        0.1; current mergekit takes `model:` as part of a path and fails. It means the model `<name>`.
        """
        source = self.tokenizer.source if self.tokenizer else self.tokenizer_source
        if source is None:
            return None
        source = str(source).strip()
        return source.removeprefix("model:").strip() if source.startswith("model:") else source


@dataclass
class LoadedConfig:
    config: MergeConfig
    doc: YamlDocument
    text: str  # the file as written: the model card and mergekit_config.yml keep it verbatim

    @property
    def folder(self) -> Path | None:
        return self.doc.path.parent if self.doc.path else None


# Keys mergekit's schema has that mindset refuses, with the reason (a plain "unknown field" would mislead);
# checked on the raw YAML before validation.
UNSUPPORTED = {
    ("modules",): "multi-module merges (modules:) are not supported; use slices or models",
    ("tokenizer", "tokens"): "per-token embedding sources (tokenizer.tokens) are not supported",
    ("residual_weight",): "residual_weight is never used by mergekit's merge; remove it",
}


def load_merge_config(path: str | Path) -> LoadedConfig:
    doc = load_yaml(path)
    return _validate(doc, Path(path).read_text(encoding="utf-8"))


def parse_merge_config(text: str, path: Path | None = None) -> LoadedConfig:
    return _validate(parse_yaml(text, path), text)


def _validate(doc: YamlDocument, text: str) -> LoadedConfig:
    if isinstance(doc.data, dict):
        _refuse_unsupported(doc)
    config = validate(MergeConfig, doc.data, doc)
    if bool(config.slices) == bool(config.models):
        raise MindsetError(f"{doc.where()}: give exactly one of 'slices' or 'models'")
    if config.tokenizer_source is not None and config.tokenizer is not None:
        raise MindsetError(f"{doc.where(('tokenizer',))}: give 'tokenizer_source' or 'tokenizer', not both")
    return LoadedConfig(config, doc, text)


def _refuse_unsupported(doc: YamlDocument) -> None:
    data = doc.data
    for key, reason in UNSUPPORTED.items():
        if key == ("residual_weight",):
            for i, piece in enumerate(data.get("slices") or []):
                if isinstance(piece, dict) and "residual_weight" in piece:
                    raise MindsetError(f"{doc.where(('slices', i, 'residual_weight'))}: {reason}")
            continue
        node: Any = data
        for part in key:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            raise MindsetError(f"{doc.where(key)}: {reason}")
