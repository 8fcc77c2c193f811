"""Reading lm-eval task YAML for local data, so a user's existing task file runs unchanged.

Supported (lm-eval 0.4 `TaskConfig` semantics): `dataset_path: json` with `dataset_kwargs: {data_files: ...}`
(a path, a list, or a mapping split -> path(s); JSON Lines or a JSON array), the split keys, `output_type`
multiple_choice / generate_until, Jinja `doc_to_text` / `doc_to_choice` / `doc_to_target` (or a field name,
an int, a list), `description`, `target_delimiter`, `fewshot_delimiter`, `num_fewshot`, `fewshot_split`,
`fewshot_config` (sampler `default` or `first_n`, split, delimiters, doc_to_* overrides), `metric_list`
(acc, acc_norm, exact_match with its options), `filter_list`, `generation_kwargs` (greedy only),
`include:` (merged, local keys win), and `!function file.name` tags (imported from the file beside the
YAML, as lm-eval does). `process_results: !function <file>.process_results_mc2` is TruthfulQA's mc2 and is
computed natively, so the task does not need lm-eval's own utils module to run.

Bookkeeping keys lm-eval reads but that do not change scores (tag, task_alias, metadata,
should_decontaminate, doc_to_decontamination_query) are accepted; keys that would change scores in ways
mindset does not implement are refused by name rather than ignored.

Relative `data_files` paths are tried from the working directory first (what lm-eval, through
`datasets`, does) and then from the YAML file's folder.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from mindset.configfile import YamlDocument, describe_value, one_line, parse_yaml, read_text, require_mapping, validate
from mindset.errors import MindsetError


@dataclass(frozen=True)
class FunctionRef:
    """A `!function module.name` tag: `module.py` sits beside the YAML file that names it."""

    module: str
    name: str
    folder: Path

    def load(self):
        """The function, imported once per file (lm-eval imports the module beside the YAML, too)."""
        if self not in _FUNCTIONS:
            _FUNCTIONS[self] = self._import()
        return _FUNCTIONS[self]

    def _import(self):
        path = self.folder / f"{self.module}.py"
        if not path.is_file():
            raise MindsetError(f"!function {self.module}.{self.name}: no file {path}")
        spec = importlib.util.spec_from_file_location(f"mindset_task_{self.module}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # the user's file: a syntax error or anything it raises is theirs to fix
            raise MindsetError(f"{path}: importing it for !function {self.module}.{self.name} failed: {type(err).__name__}: {one_line(err)}") from None
        if not hasattr(module, self.name):
            raise MindsetError(f"!function {self.module}.{self.name}: {path} defines no {self.name!r}")
        return getattr(module, self.name)


_FUNCTIONS: dict[FunctionRef, object] = {}

Template = str | int | list | dict | FunctionRef | None


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{pattern!r} is not a regular expression: {err}") from None
    return pattern


class MetricSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    aggregation: Literal["mean"] = "mean"
    higher_is_better: bool = True
    regexes_to_ignore: list[str] | None = None
    ignore_case: bool = False
    ignore_punctuation: bool = False
    ignore_numbers: bool = False
    hf_evaluate: bool = False

    _patterns = field_validator("regexes_to_ignore")(lambda value: value if value is None else [_compiles(p) for p in value])


class FilterStep(BaseModel):
    """One step of a filter pipeline; only `regex` takes options (lm-eval's RegexFilter's)."""

    model_config = ConfigDict(extra="forbid")

    function: Literal["regex", "take_first", "remove_whitespace", "lowercase", "uppercase"]
    regex_pattern: str | None = None
    group_select: int | None = None
    fallback: str | None = None

    _pattern = field_validator("regex_pattern")(lambda value: value if value is None else _compiles(value))

    @model_validator(mode="after")
    def _options_for_regex(self) -> FilterStep:
        given = [name for name in ("regex_pattern", "group_select", "fallback") if getattr(self, name) is not None]
        if given and self.function != "regex":
            raise ValueError(f"{', '.join(given)}: only the regex filter takes options, not {self.function}")
        return self


class FilterPipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    filter: list[FilterStep] = Field(min_length=1)


class FewshotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    sampler: Literal["default", "first_n"] = "default"
    split: str | None = None
    fewshot_delimiter: str | None = None
    target_delimiter: str | None = None
    doc_to_text: Template = None
    doc_to_target: Template = None
    doc_to_choice: Template = None


class TaskSpec(BaseModel):
    """One lm-eval task file, after `include:` is merged."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    task: str
    task_alias: str | None = None
    tag: str | list[str] | None = None
    dataset_path: Literal["json"] = Field(description="only local JSON / JSON Lines data: mindset never downloads a dataset")
    dataset_name: None = None
    dataset_kwargs: dict[str, Any] = Field(description="needs data_files")
    training_split: str | None = None
    validation_split: str | None = None
    test_split: str | None = None
    fewshot_split: str | None = None
    output_type: Literal["multiple_choice", "generate_until"] = "generate_until"
    doc_to_text: Template = None
    doc_to_target: Template = None
    doc_to_choice: Template = None
    process_results: FunctionRef | None = None
    description: str = ""
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    fewshot_config: FewshotSpec | None = None
    num_fewshot: int | None = Field(None, ge=0)
    metric_list: list[MetricSpec] | None = None
    generation_kwargs: dict[str, Any] | None = None
    repeats: Literal[1] = 1
    filter_list: list[FilterPipeline] | None = None
    should_decontaminate: bool = False
    doc_to_decontamination_query: str | None = None
    metadata: dict[str, Any] | None = None
    unsafe_code: Literal[False] = False

    @field_validator("dataset_kwargs")
    @classmethod
    def _data_files(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - {"data_files", "field"}
        if unknown:
            raise ValueError(f"only data_files (and field) are supported, not {', '.join(sorted(unknown))}")
        if "data_files" not in value:
            raise ValueError("data_files is required: the local JSON files of each split")
        files = value["data_files"]
        splits = files if isinstance(files, dict) else {"train": files}
        for paths in splits.values():
            if not _names(paths):
                raise ValueError(f"data_files: a file name, a list of them, or a mapping split -> file name(s); not {describe_value(paths)}")
        if not isinstance(value.get("field", ""), str):
            raise ValueError(f"field: the name of the top-level key holding the records, not {describe_value(value['field'])}")
        return value

    @field_validator("metadata")
    @classmethod
    def _chance(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        chance = (value or {}).get("chance")
        ok = isinstance(chance, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in chance.values())
        if chance is not None and not ok:
            raise ValueError(f"chance: a mapping metric -> chance level (a number), not {describe_value(chance)}")
        return value

    @field_validator("generation_kwargs")
    @classmethod
    def _generation(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        kwargs = value or {}
        until = kwargs.get("until", "")
        if not (isinstance(until, str) or (isinstance(until, list) and all(isinstance(u, str) for u in until))):
            raise ValueError(f"until: a stop string or a list of them, not {describe_value(until)}")
        if not isinstance(kwargs.get("do_sample", False), bool):
            raise ValueError(f"do_sample: true or false, not {describe_value(kwargs['do_sample'])}")
        if not _number(kwargs.get("temperature", 0.0) or 0.0):
            raise ValueError(f"temperature: a number, not {describe_value(kwargs['temperature'])}")
        for key in ("max_gen_toks", "max_new_tokens", "max_tokens"):
            budget = kwargs.get(key, 1)
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise ValueError(f"{key}: a number of tokens (1 or more), not {describe_value(budget)}")
        return value

    _source: Path | None = PrivateAttr(None)  # the file, for relative paths and messages

    @property
    def source(self) -> Path | None:
        return self._source

    def location(self) -> str:
        return str(self._source) if self._source else self.task

    @property
    def chance(self) -> dict[str, float]:
        """Chance level per metric, when the task file states it (mindset's suites do, under metadata.chance)."""
        return dict((self.metadata or {}).get("chance") or {})

    @property
    def eval_split(self) -> str:
        split = self.test_split or self.validation_split
        if split is None:
            raise MindsetError(f"{self.location()}: the task names no test_split or validation_split to evaluate on")
        return split

    @property
    def metrics(self) -> list[MetricSpec]:
        if self.metric_list is not None:
            return self.metric_list
        defaults = ["acc", "acc_norm"] if self.output_type == "multiple_choice" else ["exact_match"]
        return [MetricSpec(metric=m) for m in defaults]

    @property
    def filters(self) -> list[FilterPipeline]:
        return self.filter_list or [FilterPipeline(name="none", filter=[FilterStep(function="take_first")])]

    @property
    def fewshot(self) -> FewshotSpec:
        """The few-shot formatting, each field defaulting to the task's own (lm-eval `FewshotConfig.from_dict`)."""
        base = self.fewshot_config or FewshotSpec()
        return base.model_copy(
            update={
                "split": base.split if base.split is not None else self.fewshot_split,
                "fewshot_delimiter": base.fewshot_delimiter if base.fewshot_delimiter is not None else self.fewshot_delimiter,
                "target_delimiter": base.target_delimiter if base.target_delimiter is not None else self.target_delimiter,
                "doc_to_text": base.doc_to_text if base.doc_to_text is not None else self.doc_to_text,
                "doc_to_target": base.doc_to_target if base.doc_to_target is not None else self.doc_to_target,
                "doc_to_choice": base.doc_to_choice if base.doc_to_choice is not None else self.doc_to_choice,
            }
        )


def _names(value: Any) -> bool:
    """A name or a non-empty list of names (data files, stop strings)."""
    return isinstance(value, str) or (isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


UNSUPPORTED = {
    "gen_prefix": "an assistant prefix",
    "process_docs": "a Python pre-processing of the dataset",
    "use_prompt": "promptsource prompts",
    "doc_to_image": "images",
    "doc_to_audio": "audio",
    "custom_dataset": "a Python dataset",
    "group": "groups of tasks (give the member task files instead)",
    "task_list": "groups of tasks (give the member task files instead)",
}


def _loader(folder: Path) -> type[yaml.SafeLoader]:
    class TaskLoader(yaml.SafeLoader):
        pass

    def function(loader: yaml.SafeLoader, node: yaml.Node) -> FunctionRef:
        # a yaml error, so the message names the file and line like any other YAML mistake
        if not isinstance(node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(None, None, "!function takes file.function, not a list or mapping", node.start_mark)
        dotted = loader.construct_scalar(node)
        module, _, name = str(dotted).rpartition(".")
        if not module or not name:
            raise yaml.constructor.ConstructorError(None, None, f"!function {dotted}: write it as file.function (file.py beside the YAML)", node.start_mark)
        return FunctionRef(module, name, folder)

    TaskLoader.add_constructor("!function", function)
    return TaskLoader


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], YamlDocument]:
    """The task file's mapping with `include:` merged in (local keys win), and the file's line map."""
    path = path.expanduser().resolve()
    if path in seen:
        raise MindsetError(f"{path}: include cycle ({' -> '.join(p.name for p in (*seen, path))})")
    if not path.is_file() and not path.is_dir():
        raise MindsetError(f"{path}: no such task file")
    doc = parse_yaml(read_text(path, "task file"), path, loader=_loader(path.parent))
    data = require_mapping(doc, "a task file is a mapping of lm-eval task keys")
    includes = data.pop("include", None)
    if includes is None:
        return data, doc
    if not _names(includes):
        raise MindsetError(f"{doc.where(('include',))}: include: a task file name or a list of them, not {describe_value(includes)}")
    merged: dict[str, Any] = {}
    combined = IncludingDocument(doc.data, doc.path, doc.lines)
    for include in [includes] if isinstance(includes, str) else includes:
        included = Path(include) if Path(include).is_absolute() else path.parent / include
        if not included.is_file():
            raise MindsetError(f"{doc.where(('include',))}: include: no such task file {included}")
        inner, inner_doc = read_yaml(included, (*seen, path))
        inner.pop("task_list", None)
        merged.update(inner)
        combined.origins.update(dict.fromkeys(inner, inner_doc))
    merged.update(data)
    for key in data:
        combined.origins.pop(key, None)  # local keys win, and are reported at their own line
    return merged, combined


@dataclass
class IncludingDocument(YamlDocument):
    """A task file with `include:`: a key that came from an included file is reported at that file's line."""

    origins: dict[str, YamlDocument] = dataclass_field(default_factory=dict)

    def where(self, loc: tuple = ()) -> str:
        if loc and loc[0] in self.origins:
            return self.origins[loc[0]].where(loc)
        return super().where(loc)


def load_task(path: str | Path) -> TaskSpec:
    path = Path(path)
    data, doc = read_yaml(path)
    for key, what in UNSUPPORTED.items():
        if data.get(key) not in (None, False, [], ""):
            raise MindsetError(f"{doc.where((key,))}: {key} ({what}) is not supported by mindset's task reader")
    if isinstance(data.get("task"), list):
        raise MindsetError(f"{doc.where(('task',))}: a group of tasks; give the member task files instead")
    spec = validate(TaskSpec, data, doc)
    spec._source = path.resolve()
    return spec
