"""mergekit's YAML, read as mergekit 0.1.5 reads it, with every unknown key an error that names its line.

Accepted as published: `slices` or `models`, `layer_range`, `parameters` at the top, slice and model
level (scalars, gradients as lists, `filter`/`value` lists), `base_model`, `dtype`, `out_dtype`,
`tokenizer_source` (`base`, `union`, a model, and the legacy `model:<name>` form current mergekit
rejects), `tokenizer: {source, pad_to_multiple_of}` and `chat_template`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mindset.configfile import YamlDocument, parse_yaml, read_text, require_mapping, validate

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


def refused(reason: str) -> Any:
    """A key of mergekit's schema that mindset refuses: giving it is an error with `reason` (a plain
    "unknown field" would mislead). Part of the schema, so the raw YAML is never walked before validation."""

    def reject(value: Any) -> Any:
        raise PydanticCustomError("unsupported", reason)

    return Annotated[Any, BeforeValidator(reject), Field(None, exclude=True)]


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
    residual_weight: refused("residual_weight is never used by mergekit's merge; remove it")

    _check_base = field_validator("base_model", mode="before")(_model_name)


class TokenizerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = "union"
    pad_to_multiple_of: int | None = Field(None, ge=1)
    tokens: refused("per-token embedding sources (tokenizer.tokens) are not supported")


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
    modules: refused("multi-module merges (modules:) are not supported; use slices or models")

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

    @model_validator(mode="after")
    def _one_layout(self) -> MergeConfig:
        if bool(self.slices) == bool(self.models):
            raise PydanticCustomError("config", "give exactly one of 'slices' or 'models'")
        if self.tokenizer_source is not None and self.tokenizer is not None:
            raise PydanticCustomError("config", "give 'tokenizer_source' or 'tokenizer', not both", {"at": "tokenizer"})
        return self

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


def load_merge_config(path: str | Path) -> LoadedConfig:
    text = read_text(path, "merge config")
    return _validate(parse_yaml(text, Path(path)), text)


def parse_merge_config(text: str, path: Path | None = None) -> LoadedConfig:
    return _validate(parse_yaml(text, path), text)


def _validate(doc: YamlDocument, text: str) -> LoadedConfig:
    require_mapping(doc, "a merge config is a mapping with merge_method and slices or models")
    return LoadedConfig(validate(MergeConfig, doc.data, doc), doc, text)
