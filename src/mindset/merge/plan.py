"""The whole merge decided and checked before any weight is read: every output tensor, where each of its
inputs comes from, the resolved parameters, the output dtype and shape, the tokenizer and the config.

Layer stitching follows mergekit: output layers are numbered in slice order; the tensors before the
layers (embeddings) come from the first slice's sources and the tensors after them (final norm, head)
from the last slice's, with those slices' parameters (gradients at t = 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mindset.configfile import format_loc
from mindset.errors import MindsetError
from mindset.merge.config import LoadedConfig, Parameters
from mindset.merge.methods import MergeMethod, get_method
from mindset.merge.parameters import check_setting
from mindset.merge.sources import SourceModel, read_source, resolve_folder
from mindset.merge.tokenizer import Vocabulary, build_vocabulary, choose_chat_template, load_tokenizer

Loc = tuple


@dataclass
class PlannedSource:
    model: int  # index into MergePlan.models
    start: int
    end: int
    parameters: Parameters | None
    loc: Loc


@dataclass
class PlannedSlice:
    sources: list[PlannedSource]
    base: int | None  # model index of the slice's base model, when the method uses one
    parameters: Parameters | None
    loc: Loc

    @property
    def length(self) -> int:
        return self.sources[0].end - self.sources[0].start


@dataclass
class TensorInput:
    model: int
    name: str  # the name asked for (the output name, renumbered to the input's layer)
    stored: str  # the name in the model's files (differs for a tied head)
    params: dict[str, Any]


@dataclass
class OutputTensor:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype  # as written
    inputs: list[TensorInput]
    base: int | None  # position of the base model in `inputs`
    shared: dict[str, Any]
    vocab_axis: int | None = None  # re-indexed to the output vocabulary before merging
    seed: int | None = None  # for methods that draw random masks
    where: str = ""  # 'before layers', 'layer 12', 'after layers'

    @property
    def nbytes(self) -> int:
        return torch.Size(self.shape).numel() * self.dtype.itemsize


@dataclass
class MergePlan:
    loaded: LoadedConfig
    method: MergeMethod
    models: list[SourceModel]
    slices: list[PlannedSlice]
    tensors: list[OutputTensor]
    donor: int  # the model whose config and tokenizer the output starts from
    out_config: dict
    dtype: torch.dtype | None  # inputs are cast to this before merging (config `dtype`)
    vocabulary: Vocabulary | None = None
    chat_template: str | None = None
    ignored: list[str] = field(default_factory=list)  # stored tensors the architecture does not have

    @property
    def num_layers(self) -> int:
        return sum(s.length for s in self.slices)

    @property
    def parameter_count(self) -> int:
        return sum(torch.Size(t.shape).numel() for t in self.tensors)

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed: the same masks whatever order, or in parallel, tensors are merged."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") & (2**63 - 1)


def build_plan(loaded: LoadedConfig, *, search: list[Path] | None = None, seed: int = 0) -> MergePlan:
    """Check everything a merge needs, reading only configs, tokenizers and safetensors headers."""
    config, doc = loaded.config, loaded.doc

    def fail(loc: Loc, message: str) -> MindsetError:
        return MindsetError(f"{doc.where(loc)}: {format_loc(loc) + ': ' if loc else ''}{message}")

    try:
        method = get_method(config.merge_method)
    except MindsetError as err:
        raise fail(("merge_method",), str(err)) from None
    _check_parameter_names(method, loaded, fail)

    table = ModelTable(search or [Path.cwd()] + ([loaded.folder] if loaded.folder else []), fail)
    base = table.index(config.base_model, ("base_model",)) if config.base_model else None
    slices = _normalize_slices(loaded, method, base, table, fail)
    models = table.models
    _check_architectures(models, slices, fail)
    donor = base if base is not None else slices[0].sources[0].model
    vocabulary = None
    if config.tokenizer_choice is not None:
        vocabulary = _vocabulary(loaded, table, donor, fail)
    elif not any((models[donor].folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        loc = ("base_model",) if base is not None else slices[0].sources[0].loc
        raise fail(loc, f"the merged model takes its tokenizer from {models[donor].ref!r}, which has none; add one to that folder or set tokenizer_source")
    chat_template = None
    if config.chat_template:
        inputs = [load_tokenizer(m.folder, m.ref) for m in models] if config.chat_template == "auto" else []
        try:
            chat_template = choose_chat_template(config.chat_template, inputs)
        except MindsetError as err:
            raise fail(("chat_template",), str(err)) from None
    dtype = DTYPES[config.dtype] if config.dtype else None
    plan = MergePlan(loaded, method, models, slices, [], donor, {}, dtype, vocabulary, chat_template)
    from mindset.merge.stitch import output_config, plan_tensors  # stitch builds this module's dataclasses

    plan_tensors(plan, seed, fail)
    plan.out_config = output_config(plan)
    return plan


class ModelTable:
    """The config's models in order of first mention, each read once."""

    def __init__(self, search: list[Path], fail):
        self.search, self.fail = search, fail
        self.models: list[SourceModel] = []
        self._index: dict[str, int] = {}

    def index(self, ref: str, loc: Loc) -> int:
        if ref not in self._index:
            try:
                self.models.append(read_source(ref, resolve_folder(ref, self.search)))
            except MindsetError as err:
                raise self.fail(loc, str(err)) from None
            self._index[ref] = len(self.models) - 1
        return self._index[ref]

    def __getitem__(self, index: int) -> SourceModel:
        return self.models[index]


def _check_parameter_names(method: MergeMethod, loaded: LoadedConfig, fail) -> None:
    """Unknown names, values of the wrong type, and shared parameters set per model are errors."""
    config = loaded.config
    levels: list[tuple[Loc, Parameters | None, bool]] = [(("parameters",), config.parameters, False)]
    for i, piece in enumerate(config.slices or []):
        levels.append((("slices", i, "parameters"), piece.parameters, False))
        levels += [(("slices", i, "sources", j, "parameters"), s.parameters, True) for j, s in enumerate(piece.sources)]
    levels += [(("models", j, "parameters"), m.parameters, True) for j, m in enumerate(config.models or [])]
    known = [p.name for p in method.params]
    for loc, parameters, per_model in levels:
        for name, setting in (parameters or {}).items():
            param = method.param(name)
            if param is None:
                import difflib

                hint = difflib.get_close_matches(name, known, n=1)
                takes = f"{method.name} takes: {', '.join(known)}" if known else f"{method.name} takes no parameters"
                raise fail(loc + (name,), f"unknown parameter {name!r} for {method.name}" + (f" (did you mean {hint[0]!r}?)" if hint else f"; {takes}"))
            if per_model and param.scope == "shared":
                raise fail(loc + (name,), f"{name!r} applies to all inputs of a tensor; set it in the slice's or the top-level parameters")
            try:
                check_setting(setting, param)
            except ValueError as err:
                raise fail(loc + (name,), str(err)) from None


def _normalize_slices(loaded: LoadedConfig, method: MergeMethod, base: int | None, table: ModelTable, fail) -> list[PlannedSlice]:
    """`models:` becomes one slice over every layer (the base added if missing); every slice checked."""
    config = loaded.config
    slices: list[PlannedSlice] = []
    if config.models:
        sources = []
        for j, entry in enumerate(config.models):
            m = table.index(entry.model, ("models", j, "model"))
            sources.append((m, entry.parameters, ("models", j)))
        if base is not None and base not in [m for m, _, _ in sources]:
            sources.append((base, None, ("base_model",)))
        planned = [PlannedSource(m, 0, table[m].num_layers, parameters, loc) for m, parameters, loc in sources]
        slices.append(PlannedSlice(planned, base, None, ("models",)))
    else:
        for i, piece in enumerate(config.slices):
            slice_base = table.index(piece.base_model, ("slices", i, "base_model")) if piece.base_model else base
            planned = [
                PlannedSource(table.index(s.model, ("slices", i, "sources", j, "model")), s.layer_range[0], s.layer_range[1], s.parameters, ("slices", i, "sources", j))
                for j, s in enumerate(piece.sources)
            ]
            slices.append(PlannedSlice(planned, slice_base, piece.parameters, ("slices", i)))
    get = table.__getitem__
    for piece in slices:
        for source in piece.sources:
            model = get(source.model)
            if not 0 <= source.start < source.end <= model.num_layers:
                raise fail(
                    source.loc + (("layer_range",) if config.slices else ()),
                    f"layer_range [{source.start}, {source.end}] is outside {model.ref!r}, which has layers 0 to {model.num_layers - 1} (ranges are [first, last + 1])",
                )
        lengths = {s.end - s.start for s in piece.sources}
        if len(lengths) > 1:
            raise fail(piece.loc, f"every source of a slice must cover the same number of layers; got {sorted(lengths)}")
        refs = [get(s.model).ref for s in piece.sources]
        if len(set(refs)) != len(refs):
            raise fail(piece.loc, "the same model is listed twice in one slice")
        _check_contract(method, piece, get, fail)
    return slices


def _check_contract(method: MergeMethod, piece: PlannedSlice, get, fail) -> None:
    count = len(piece.sources)
    if count < method.min_inputs or (method.max_inputs is not None and count > method.max_inputs):
        wanted = f"exactly {method.min_inputs}" if method.min_inputs == method.max_inputs else (
            f"at most {method.max_inputs}" if method.max_inputs is not None and count > method.max_inputs else f"at least {method.min_inputs}"
        )
        hint = " (to stack layers from several models, give each its own slice)" if method.name == "passthrough" else ""
        raise fail(piece.loc, f"{method.name} takes {wanted} model{'s' if method.min_inputs != 1 or method.max_inputs != 1 else ''} per slice; this one has {count}{hint}")
    if method.base == "required":
        if piece.base is None:
            raise fail(piece.loc, f"{method.name} needs a base_model (the model the others are compared with)")
        if piece.base not in [s.model for s in piece.sources]:
            raise fail(piece.loc, f"{method.name}: the base model {get(piece.base).ref!r} must be one of this slice's sources")


def _first_mention(slices: list[PlannedSlice], model: int) -> Loc:
    return next((s.loc for piece in slices for s in piece.sources if s.model == model), ())


def _check_architectures(models: list[SourceModel], slices: list[PlannedSlice], fail) -> None:
    def kind(m: SourceModel) -> tuple:
        return (m.config.get("model_type"), tuple(m.config.get("architectures") or ()))

    first = models[0]
    for index, model in enumerate(models[1:], 1):
        if kind(model) != kind(first):
            raise fail(
                _first_mention(slices, index),
                f"mismatched architectures: {model.ref!r} is {_describe(model)} but {first.ref!r} is {_describe(first)}",
            )


def _describe(model: SourceModel) -> str:
    architectures = ", ".join(model.config.get("architectures") or ["?"])
    return f"{model.config.get('model_type')} ({architectures})"


def _vocabulary(loaded: LoadedConfig, table: ModelTable, donor: int, fail) -> Vocabulary:
    config = loaded.config
    loc: Loc = ("tokenizer", "source") if config.tokenizer else ("tokenizer_source",)
    choice = config.tokenizer_choice
    source_tokenizer = None
    if choice not in ("base", "union"):
        source = table[table.index(choice, loc)]
        source_tokenizer = load_tokenizer(source.folder, source.ref)
    tokenizers = {}
    for index, model in enumerate(table.models):
        try:
            tokenizers[index] = load_tokenizer(model.folder, model.ref)
        except MindsetError as err:
            raise fail(loc, f"{err}; tokenizer_source needs every input's tokenizer to re-index its embeddings") from None
    pad_to = config.tokenizer.pad_to_multiple_of if config.tokenizer else None
    try:
        return build_vocabulary(choice, table.models, tokenizers, donor, source_tokenizer, pad_to)
    except MindsetError as err:
        raise fail(loc, str(err)) from None
